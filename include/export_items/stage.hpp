// export-items, embedded: run the stage inside a host's own caf::actor_system.
//
//   auto stage = export_items::stage::start(host_system, config, credentials, state_dir,
//                                           my_downstream);     // spawns into host_system
//   self->request(stage.value()->batch_runner(), deadline, export_items::run_atom::value,
//                 export_items::batch_request{{job_id}, false, {}, my_listener})
//       .then([](export_items::batch_report& report) { ... });
//   ...
//   stage.value()->shutdown();  // after the batches finished: actors stopped, store closed
//
// The downstream protocol (export_items/protocol.hpp, docs/embedding.md): the stage sends
// `(items_atom, item_batch, ack_receiver_actor)`; the host answers, whenever it has made the
// items safe, `(ack_atom, job_id, acked_through, false)` — cumulative, by sequence. An item
// acknowledged that way is never handed on again, across crashes and restarts of the host;
// items handed on but not acknowledged come again (flagged `redelivery`) after a restart.
//
// Write-back (docs/write-back.md): a downstream that acks with outcomes
// (`(ack_atom, job_id, acked_through, false, outcome_acks)`, export_items/protocol.hpp) has them
// recorded with the ack; `stage->write_back({.jobs = {job_id}, .complete = true})` then sends them
// to Pleo and completes the jobs that are ready, exactly once across crashes; with
// `fail_reason_type` set it sends `failed` instead.
//
// Progress and stats: `stage->stats()` (any thread, any time) counts jobs by state, items
// handed on and acknowledged, pages and HTTP requests since start().
//
// The built-in NDJSON file downstream (what `export-items run --out` writes), the
// reconciliation report and a graceful stop: `stage::start(host, config, credentials,
// state_dir, export_items::ndjson_file{"items.ndjson"}, {.reconcile_path = "...",
// .stop = flag})`; `stage->request_stop()` (any thread) stops gracefully too.
//
// Thread safety: start() and shutdown() from one host thread, not from inside an actor of
// the stage. batch_runner(), stats() and request_stop() may be called from anywhere; each
// batch_runner() call gives a fresh runner for one batch.
//
// Self-contained: this header and those it includes are all under export_items/ (plus the
// standard library and CAF). The types live in namespace ei (the implementation's); the names
// below are the API.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <caf/actor_system.hpp>

#include "export_items/config.hpp"
#include "export_items/credentials.hpp"
#include "export_items/errors.hpp"
#include "export_items/protocol.hpp"
#include "export_items/result.hpp"
#include "export_items/types.hpp"
#include "export_items/writeback.hpp"

namespace export_items {

using ei::error;
using ei::result;
using ei::actors::ack_atom;
using ei::actors::ack_receiver_actor;
using ei::actors::batch_report;
using ei::actors::batch_request;
using ei::actors::batch_runner_actor;
using ei::actors::delivery_item;
using ei::actors::downstream_actor;
using ei::actors::item_batch;
using ei::actors::item_outcome_ack;
using ei::actors::items_atom;
using ei::actors::job_errc;
using ei::actors::job_failure;
using ei::actors::job_outcome;
using ei::actors::job_result;
using ei::actors::job_stats;
using ei::actors::listing_mode;
using ei::actors::outcome_acks;
using ei::actors::outcome_atom;
using ei::actors::outcome_receiver_actor;
using ei::actors::reconciliation_entry;
using ei::actors::run_atom;
using ei::actors::stage_settings;
using ei::api::credentials;
using ei::api::http_errc;
using ei::api::item_status;
using ei::api::tracking_fields;
using ei::api::uuid;
using ei::storage::ordering_mode;
using ei::storage::store_options;
using ei::storage::sync_policy;
using http_config = ei::api::client_config;
using stage_config = ei::pipeline::embed_config;
using write_back_options = ei::writeback::options;
using write_back_report = ei::writeback::report;

/// Why a job failed, as a type (job_outcome::failure carries the detailed code, and
/// job_outcome::reason_code its text).
enum class failure_kind : std::uint8_t {
  none,                 // the job completed (or was already complete)
  job_not_in_progress,  // pending (not claimed), finished, failed or expired remotely
  unknown_job,          // 404: the API has no such job
  unauthorized,         // 401/403: the credentials were refused
  api,                  // another HTTP status or exhausted retries
  listing,              // the listing broke the contract beyond repair (cycles, empty pages)
  decode,               // a response broke the contract (bad JSON, missing fields)
  downstream,           // downstream stopped acknowledging, or broke the protocol
  state,                // the state store failed
  internal,             // an actor of the stage stopped unexpectedly, or a deadline passed
};
std::string_view to_string(failure_kind k) noexcept;
/// Classifies an outcome.
failure_kind failure_of(const job_outcome& outcome) noexcept;

enum class stage_errc : std::uint8_t {
  invalid_config,  // the configuration (or an option of start()) is unusable
  state_dir,       // the state directory is not usable, corrupt, of another schema, or locked
  http_client,     // the HTTP client could not be created (bad URL, CA file, ...)
  stopped,         // the stage was shut down, or a batch did not finish
  output,          // ndjson_file: the output cannot be opened, is locked, or is not bound here
};
std::string_view to_string(stage_errc c) noexcept;

/// What an embedded stage has done since start(), over all its batches: a snapshot of
/// counters that the actors update as they work (stage::stats()). Jobs waiting to start are
/// jobs_total - jobs_running - jobs_done.
struct stage_stats {
  // Jobs
  std::uint64_t jobs_total = 0;    // taken into a batch (explicit ids, or discovered)
  std::uint64_t jobs_running = 0;  // in a pipeline now (listing, ordering or dispatching)
  std::uint64_t jobs_done = 0;     // with an outcome: complete, already complete or failed
  std::uint64_t jobs_failed = 0;   // of jobs_done: failed (interrupted ones included)
  /// False while discovery may still add jobs to a batch (jobs_total is not final yet).
  bool jobs_total_known = false;
  // For an ETA: jobs that got past verification, the sum of their numberOfItems, and the
  // items their listings have committed so far.
  std::uint64_t jobs_started = 0;
  std::uint64_t items_expected = 0;
  std::uint64_t items_listed = 0;
  // Items
  std::uint64_t pages = 0;            // item pages listed
  std::uint64_t items_handed_on = 0;  // sent to downstream (redeliveries included)
  /// Acknowledged by downstream and recorded in the state store, by sequence (order entries
  /// passed over because they left the scope count with the ack that covers them).
  std::uint64_t items_acked = 0;
  // HTTP requests of the stage's client (write_back() included)
  std::uint64_t http_requests = 0;       // requests made
  std::uint64_t http_succeeded = 0;      // completed with a 2xx
  std::uint64_t http_failed = 0;         // completed with an error (after their retries)
  std::uint64_t http_attempts = 0;       // attempts sent (first tries and retries)
  std::uint64_t http_retries = 0;        // attempts after the first
  std::uint64_t http_retry_wait_ms = 0;  // waited before retries (backoff and Retry-After)
  std::uint64_t http_throttled = 0;      // 429 responses
  std::uint64_t http_bytes_received = 0;
  std::uint64_t http_connections_opened = 0;  // TCP (+TLS) connections established
  double http_discovered_rate = 0;  // requests/s the client keeps to after 429s; 0: none yet
  std::array<std::uint64_t, 6> http_responses_by_class{};  // [2] = 2xx ... [5] = 5xx
  /// Something was appended to stage_options::reconcile_path since start().
  bool reconciliation_written = false;
};

/// The built-in downstream of `export-items run`: one NDJSON line per item in the file at
/// `path` ("-": stdout). A line counts as acknowledged once it is written and fsynced; the
/// acks are recorded in the same synced store write as the file offset after the last
/// acknowledged line, and a restart first cuts away anything after that offset. The file is
/// opened with O_APPEND and an exclusive lock, and `<path>.committed` tells followers the
/// acknowledged offset (README, "Output"). The file is bound to the state directory that
/// wrote it: start() checks that, reading the state directory, before it opens anything for
/// writing, so a refused start (stage_errc::output, naming both) changes nothing. stdout
/// binds nothing; its items count as acknowledged once write() returned.
struct ndjson_file {
  explicit ndjson_file(std::string file) : path(std::move(file)) {}
  std::string path;
};

/// Optional parts of a stage (start()).
struct stage_options {
  /// Items that need a person (reconciliation: job_outcome::reported) are appended here as
  /// NDJSON lines (`jobId`, `accountingEntryId`, `remoteStatus`, `action`) and fsynced before
  /// their job is recorded complete (read it as a set: a crash in between writes them again).
  /// The file is created on the first entry. Empty: no file (the outcomes still carry them).
  std::string reconcile_path;
  /// A graceful stop the host requests by setting this flag (from any thread, e.g. a signal
  /// watcher), the same as request_stop(). Null: the stage makes its own.
  std::shared_ptr<std::atomic<bool>> stop;
};

class stage {
 public:
  /// Opens the state directory (its lock is held until shutdown), creates the HTTP client
  /// (its own io thread) and spawns the stage's shared actors into `host`. `config.base_url`
  /// must be a real URL here (the embedded simulator is a command-line convenience).
  static ei::result<std::unique_ptr<stage>, stage_errc> start(
      caf::actor_system& host, stage_config config, const credentials& creds,
      const std::string& state_dir, downstream_actor downstream, stage_options options = {});
  /// The same with the built-in NDJSON file downstream (ndjson_file), which the stage spawns
  /// and stops itself. Refused outputs are stage_errc::output.
  static ei::result<std::unique_ptr<stage>, stage_errc> start(
      caf::actor_system& host, stage_config config, const credentials& creds,
      const std::string& state_dir, ndjson_file output, stage_options options = {});

  /// A fresh runner for one batch: request `(run_atom, batch_request)` from it; it replies
  /// one batch_report when every job has an outcome (and streams each outcome to
  /// batch_request::listener when set). Several batches may run at once.
  batch_runner_actor batch_runner();

  /// The counters since start() (cheap: atomic loads; any thread, also while batches run).
  stage_stats stats() const;

  /// A graceful stop of every batch, running or later (any thread): no new job starts, no new
  /// item batch is handed on, the batches in flight are acknowledged, and the unfinished jobs
  /// end failed with job_errc::interrupted (their phase kept, so a later stage resumes them);
  /// jobs still listing or ordering get settings.stop_timeout and are then stopped where they
  /// stand. Each batch still replies its report. Cannot be undone.
  void request_stop() noexcept;

  /// Blocking convenience: runs one batch and waits for its report. Never call it from an
  /// actor of `host`.
  ei::result<batch_report, stage_errc> run(const batch_request& batch);

  /// Writes back the outcomes recorded for `options.jobs` (every job with outcomes when empty)
  /// and, with `options.complete`, sends the job event for each job that is ready
  /// (`completed`, `completed_with_errors`, or `failed` with `options.fail_reason_type`).
  /// Job-level problems (HTTP, 422, not ready) are in the report per job; the error is for
  /// unusable options or an unreadable store. Blocking: call it from a host thread, never
  /// from an actor of `host`; typically once a batch has reported.
  ei::result<write_back_report, stage_errc> write_back(const write_back_options& options);

  /// Stops the stage's actors (the NDJSON sink of ndjson_file first, and the reconciliation
  /// report's writer) and closes the HTTP client and the state store. Call it after
  /// the batches have reported: acknowledgements that arrive later are not recorded (the
  /// items are then redelivered by the next run, never lost). Blocks until every stage actor
  /// that held the store is gone (bounded: 30 s), so that the directory lock is released when
  /// it returns and a new stage may open it. Idempotent.
  void shutdown();

  ~stage();
  stage(const stage&) = delete;
  stage& operator=(const stage&) = delete;

 private:
  struct impl;
  explicit stage(std::unique_ptr<impl> p);
  static ei::result<std::unique_ptr<stage>, stage_errc> start_with(
      caf::actor_system& host, stage_config config, const credentials& creds,
      const std::string& state_dir, downstream_actor downstream, std::optional<ndjson_file> output,
      stage_options options);
  std::unique_ptr<impl> impl_;
};

}  // namespace export_items
