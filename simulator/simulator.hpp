// An in-process simulator of Pleo's Export API v3 (see docs/api-contract.md), served
// over HTTP/1.1 (optionally TLS) by Boost.Beast on its own thread(s). The same class backs the
// `export-items-sim` binary, the embedded default of `export-items run --base-url embedded`,
// every integration test and the benchmarks.
//
// Data is generated deterministically from a seed: the same config always yields the same
// companies, jobs, items, statuses and dates. Item pages are rendered on demand from the seed,
// so a 1,000,000-item job costs no memory up front. The server order of items is a seeded
// permutation (neither chronological nor by id); `server_order_seed` changes only that order.
//
// Thread safety: every public member may be called from any thread while the server runs.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "api/model.hpp"
#include "common/result.hpp"

namespace ei::sim {

enum class sim_errc : std::uint8_t {
  invalid_config,  // a setting is out of range or inconsistent (message names it)
  invalid_faults,  // the fault spec does not parse (message names the clause)
  bind_failed,     // could not listen on host:port
  tls_failed,      // certificate or key could not be loaded
};
std::string_view to_string(sim_errc c) noexcept;

/// How the generated items' statuses are mixed (weights, need not sum to anything).
struct status_mix {
  std::uint32_t pending = 80;
  std::uint32_t in_progress = 5;
  std::uint32_t successful = 8;
  std::uint32_t failed = 4;
  std::uint32_t abandoned = 3;
};

/// One job to generate explicitly (in addition to or instead of `jobs`/`items_per_job`).
struct job_spec {
  std::optional<api::uuid> id;          // generated from the seed when absent
  std::optional<api::uuid> company_id;  // generated when absent
  api::job_status status = api::job_status::in_progress;
  std::uint64_t items = 0;
  std::optional<status_mix> mix;  // the config's mix when absent
};

struct sim_config {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;  // 0: the OS picks; read it back with port()
  std::uint64_t seed = 1;
  std::uint64_t server_order_seed = 0;  // 0: derived from `seed`

  // Credentials the server accepts. Both schemes work at once; empty means "not accepted".
  // A request without valid credentials gets 401 {"type":"UNAUTHORIZED",...}.
  // When both are empty, authentication is off and every request is accepted.
  std::string api_key;       // Authorization: Basic base64(api_key + ":")
  std::string access_token;  // Authorization: Bearer <access_token>
  // Tokens with a lifetime (simulator/admission.hpp): when > 0, Bearer tokens are issued by
  // the simulator, token k valid from start + k·lifetime to start + (k+1.25)·lifetime, and
  // `access_token` is not accepted. The current one is written to `token_file` (when set)
  // as it is issued; token_current() reads it too.
  std::int64_t token_lifetime_ms = 0;
  std::string token_file;

  // Rate limit per credential (a token bucket; simulator/admission.hpp): 0 = off. Beyond it,
  // 429 TOO_MANY_REQUESTS with a Retry-After in delta-seconds or as an HTTP date.
  double rate_limit = 0;  // requests per second
  double rate_burst = 0;  // bucket size; 0 = one second's worth (at least 1)

  // Generated data: `companies` companies, `jobs` jobs spread over them round-robin, each
  // with `items_per_job` items; job statuses cycle so that every ExportJobStatus appears
  // when jobs >= 5 unless `all_in_progress` is set. `extra_jobs` are added after them.
  std::uint32_t companies = 3;
  std::uint32_t jobs = 6;
  std::uint64_t items_per_job = 1000;
  bool all_in_progress = false;
  status_mix mix;
  std::vector<job_spec> extra_jobs;

  std::uint32_t default_limit = 100;  // page size when the request has no `limit`
  std::uint32_t max_limit = 10000;    // larger `limit` values are clamped to this
  std::int32_t expires_in_seconds = 3600;
  /// A `limit` above this is refused: 400 INVALID_PARAMETER naming 'limit' (0: never; larger
  /// values are clamped to max_limit instead). For clients that must halve a refused limit.
  std::uint32_t refuse_limit_above = 0;
  /// Loose mode: answers stray from the contract where the stage must tolerate it, the same
  /// way for the same seed. Fields the spec calls required but the stage does not read are
  /// sometimes missing, null or of another type; pending items' status is sometimes null;
  /// data-layer dates come with offsets, without a zone, or as a date alone (always the same
  /// instant, so the stage's output must not change). Details: simulator/loose.hpp.
  bool loose = false;

  std::uint32_t threads = 1;  // io threads serving connections

  // TLS: when both are set the server speaks HTTPS only.
  std::string tls_cert_file;
  std::string tls_key_file;

  // Fault plan, in the grammar documented by `export-items-sim --help` (fault_help()).
  std::string faults;

  // When set, every answered request is also appended to this file (created or truncated at
  // start) as one NDJSON line: {"seq","endpoint","method","jobId","companyId","receivedUs",
  // "finishedUs","status"}, times steady_clock (CLOCK_MONOTONIC) microseconds. Buffered,
  // complete once stop() returns. Not bounded like request_log(); no credentials in it.
  std::string request_log_file;
};

/// What one generated job looks like (ground truth for tests and `--print-jobs`).
struct job_info {
  api::uuid id;
  api::uuid company_id;
  api::job_status status;
  std::uint64_t items;
};

/// The ground truth of one item, as the simulator currently holds it.
struct item_truth {
  api::uuid accounting_entry_id;
  api::item_status status;
  std::int64_t date_ms;  // the data layer's `date`
};

/// One served request, as recorded in the request log.
struct request_record {
  std::uint64_t seq;  // 1-based arrival number across all endpoints
  std::string method;
  std::string target;  // path + query, exactly as received
  std::string
      endpoint;  // "jobs" | "job" | "events" | "items" | "items_put" | "export_items" |
                 // "debug" (GET /sim/export-jobs/{id}/item-updates, never faulted) | "other"
  std::optional<api::uuid> job_id;
  std::optional<api::uuid> company_id;  // the job's company, when the request names a job
  unsigned status = 0;                  // 0 when the connection was dropped by a fault
  std::string fault;                    // the fault applied, empty when none
  std::uint32_t items_updated = 0;      // PUT: elements applied (also idempotent re-sends)
  std::uint32_t items_rejected = 0;     // PUT: elements rejected as invalid transitions
  bool gzipped = false;  // the 200 body went out gzipped (the request sent Accept-Encoding: gzip)
  std::chrono::steady_clock::time_point received;
  std::chrono::steady_clock::time_point finished;
};

/// How often PUT /v3/export-jobs/{id}/items touched one item (items never PUT are absent).
struct item_update_count {
  api::uuid accounting_entry_id;
  api::item_status status;     // current status
  std::uint32_t applied = 0;   // updates applied (idempotent re-sends included)
  std::uint32_t rejected = 0;  // EXPORT_ENTRY_STATUS_UPDATE_FAILED answers
};

struct counters {
  std::uint64_t requests = 0;
  std::uint64_t faults_injected = 0;
  std::uint64_t unauthorized = 0;
  std::uint64_t items_served = 0;   // control-layer items in 2xx pages
  std::uint64_t throttled = 0;      // 429s of the rate limit (not of throttle faults)
  std::uint64_t tokens_issued = 0;  // rotating tokens written to token_file so far
};

/// What the write-back of one job did to the simulator (simulator::write_back): counted when a
/// request is processed, so also when a fault then drops its response. Not counted when a
/// `malformed` fault garbles the PUT response it would be read from.
struct write_back_counts {
  /// PUT /v3/export-jobs/{id}/items elements applied (in the 200's `data`), per item.
  std::map<api::uuid, std::uint32_t> item_updates;
  /// PUT elements answered in `errors[]`, per item.
  std::map<api::uuid, std::uint32_t> item_errors;
  /// POST /v3/export-job-events accepted (202), by event ("completed", "failed", ...).
  std::map<std::string, std::uint32_t> events;
  std::uint32_t events_rejected = 0;  // 4xx answers to events naming the job
  std::uint32_t put_requests = 0;     // PUTs answered 200
};

class simulator {
 public:
  /// Generates the data, binds and starts serving. Returns once the socket listens.
  static result<std::unique_ptr<simulator>, sim_errc> start(sim_config config);

  ~simulator();  // stops serving and joins the threads
  simulator(const simulator&) = delete;
  simulator& operator=(const simulator&) = delete;

  std::uint16_t port() const noexcept;
  /// "http://127.0.0.1:PORT" (or https://...).
  std::string base_url() const;

  /// The generated jobs, in generation order.
  std::vector<job_info> jobs() const;
  /// Every item of a job in the server's order, with current status and date; empty when
  /// the job is unknown.
  std::vector<item_truth> items_of(const api::uuid& job_id) const;

  /// Replaces the fault plan at run time (same grammar as sim_config::faults).
  status<sim_errc> set_faults(const std::string& spec);
  /// Adds latency to every response from now on (on top of any latency fault).
  void set_latency(std::chrono::milliseconds latency);
  /// Forces a job's status, as if Pleo moved it (expiry sets failed + job_expired and moves
  /// the job's non-final items to abandoned).
  void set_job_status(const api::uuid& job_id, api::job_status status);
  void expire_job(const api::uuid& job_id);
  /// Changes one item's status, as if another actor updated it.
  void set_item_status(const api::uuid& job_id, const api::uuid& item_id, api::item_status s);

  /// Per-item PUT counters of a job, ordered by accountingEntryId; empty when the job is
  /// unknown or no item was PUT. Also served as JSON by GET /sim/export-jobs/{id}/item-updates
  /// (same credentials as the API; never faulted): {"data":[{"accountingEntryId","status",
  /// "applied","rejected"}]}.
  std::vector<item_update_count> item_updates(const api::uuid& job_id) const;
  /// The write-back counters of a job (empty when nothing was written back to it).
  write_back_counts write_back(const api::uuid& job_id) const;

  /// The Bearer token valid now, when tokens rotate (sim_config::token_lifetime_ms).
  std::string token_current() const;

  /// The last 200,000 requests (the file of sim_config::request_log_file keeps them all).
  std::vector<request_record> request_log() const;
  /// Empty, or the first error writing sim_config::request_log_file (naming the file).
  std::string request_log_file_error() const;
  void clear_request_log();
  counters stats() const;

  /// Stops accepting, closes connections, joins the threads. Idempotent.
  void stop();

  struct impl;  // opaque (simulator/impl.hpp); public so the connection sessions can name it

 private:
  explicit simulator(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

/// The fault grammar, for --help.
std::string fault_help();

/// Checks a fault spec without starting anything (error names the clause).
status<sim_errc> validate_faults(const std::string& spec);

/// The jobs `config` generates, without binding a socket (for --print-jobs). Cheap even for
/// 1M-item jobs.
result<std::vector<job_info>, sim_errc> preview_jobs(const sim_config& config);

/// Applies a JSON config document onto `base`. Keys are sim_config's member names
/// (`items` is accepted for `items_per_job`); `mix` is an object of status weights;
/// `extra_jobs` is an array of {id, company_id, status, items, mix}. Unknown keys and wrong
/// types are errors (invalid_config) whose message names the key.
result<sim_config, sim_errc> parse_config_json(std::string_view json, sim_config base = {});

}  // namespace ei::sim
