// What an embedded stage is configured with: the stage's knobs (stage_settings), the HTTP
// client's (client_config) and the state store's (store_options), in one embed_config.
// Public (export_items::stage_config); the command line's configuration adds its own keys
// (pipeline/config.hpp) and every key is documented in configs/README.md. Internal code
// includes these through actors/settings.hpp, api/http_client.hpp and storage/state_store.hpp.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace ei::api {

class wait_clock;  // api/retry.hpp: the clock the client waits on (tests inject one)

struct client_config {
  std::string base_url;                // e.g. "https://external.pleo.io"
  std::optional<std::string> ca_file;  // PEM bundle; the system CA store when absent
  /// TLS client certificate (PEM chain) and its private key, sent when the server asks (both
  /// or neither; etcd with --client-cert-auth). Unreadable files are invalid_config.
  std::optional<std::string> cert_file;
  std::optional<std::string> key_file;
  /// false: no Authorization header (for peers that are not Pleo's API, e.g. etcd).
  bool send_authorization = true;
  /// When set, asked right before each attempt is put on the wire; false fails the request
  /// with `cancelled` (not retried). A distributed worker refuses API requests once its etcd
  /// lease may have expired (distributed/worker.hpp). Called on an io thread: must not block.
  std::function<bool()> admit;
  std::chrono::milliseconds connect_timeout{5000};  // resolve + TCP connect, and TLS handshake
  /// Write; header read; body: the response fails with a timeout once no body byte arrived
  /// for io_timeout, and never later than the request deadline. Measured from the last read
  /// that returned bytes, by one timer per response (checked when it fires, re-armed at most
  /// once per io_timeout) instead of a timer per read: no slack, no timer syscall per read.
  std::chrono::milliseconds io_timeout{30000};
  std::chrono::milliseconds request_timeout{120000};  // whole request: queue, attempts, waits
  std::chrono::milliseconds idle_timeout{30000};      // pooled connections idle longer are dropped
  std::size_t max_response_bytes = std::size_t{64} << 20;  // body cap (headers: 64 KiB)
  /// false: never send Accept-Encoding, whatever the request asks (gzip bodies are still
  /// decoded).
  bool accept_gzip = true;
  std::uint32_t max_attempts = 6;  // >= 1; 1 disables retries
  std::chrono::milliseconds backoff_base{100};
  std::chrono::milliseconds backoff_cap{10000};
  std::chrono::milliseconds retry_after_cap{600000};  // longest Retry-After honoured (10 min)
  std::uint32_t max_connections = 4;                  // per client (one host)
  std::uint32_t max_in_flight = 64;                   // attempts on the wire at once
  double requests_per_second = 0;                     // token bucket over attempts; 0 = unlimited
  std::uint32_t rate_burst = 1;                       // bucket size
  /// Discover the server's rate limit from its 429s (AIMD over rate and in-flight window);
  /// the discovered rate never exceeds `requests_per_second` when that is set.
  bool adaptive_rate = true;
  /// Plain http:// to a host other than loopback (127.0.0.0/8, ::1, localhost) is refused
  /// unless this is set: the credentials would travel in clear text.
  bool allow_insecure_http = false;
  /// Waits (backoff, Retry-After, throttle pauses) run on this clock; null = the real clocks.
  std::shared_ptr<wait_clock> clock;
  std::uint32_t io_threads = 1;
  std::string user_agent = "export-items/0.1";
};

}  // namespace ei::api

namespace ei::storage {

/// When writes are fsynced. Every write goes to the WAL (never disabled) and is handed to the
/// OS with write() before the call returns, so under every policy a *process crash* loses
/// nothing that returned ok. The policies differ only for *power loss*.
enum class sync_policy : std::uint8_t {
  /// Never fsync. Power loss may lose any suffix of recent writes (a prefix survives).
  none,
  /// Default. fsync the WAL on put_job, finish_order, commit_dispatch, commit_acks and
  /// erase_job; listing pages, order chunks and drop_pages are not fsynced themselves (a lost
  /// page is re-fetched from its persisted cursor; lost chunks are recomputed) but become
  /// durable with the next synced write.
  commits,
  /// fsync every write.
  always,
};

/// How the store is opened and tuned. The defaults fit one process exporting a few jobs.
struct store_options {
  sync_policy sync = sync_policy::commits;
  /// Memtable size per column family (RocksDB write_buffer_size).
  std::size_t write_buffer_bytes = std::size_t{4} << 20;
  /// Memtable memory of all column families together (RocksDB WriteBufferManager): reaching
  /// it flushes the largest memtable. Bounds the store's memory whatever the job size.
  std::size_t memtable_budget_bytes = std::size_t{4} << 20;
  /// One LRU block cache shared by all column families. Small on purpose: every read of the
  /// pipeline is a one-pass scan (pages once by the orderer, order chunks once by dispatch).
  std::size_t block_cache_bytes = std::size_t{2} << 20;
  /// Create the directory and an empty store when `dir` holds none. When false, a missing
  /// store is store_errc::not_found.
  bool create_if_missing = true;
  /// Open for reading only (`status`, `state verify`, `state inspect`): RocksDB's
  /// OpenForReadOnly with its info log discarded and a shared lock on the directory. Nothing
  /// in the directory is created, repaired, rotated or deleted, whatever it holds; a
  /// directory without a store is store_errc::not_found. Write calls fail (io_error).
  /// `create_if_missing` is ignored.
  bool read_only = false;
};

enum class ordering_mode : std::uint8_t { chronological, entry_id };

}  // namespace ei::storage

namespace ei::actors {

/// How the control layer is listed: `cursor` follows endCursor page by page (the contract's
/// way); `parallel` (the default) asks for `offset` pages, several in flight: a first page
/// without `total`, a count that differs from it, or an id listed twice (seen by the orderer's
/// or reconciler's deduplication) sends the job back to cursor paging. Proven by the crash
/// harness in both modes.
enum class listing_mode : std::uint8_t { cursor, parallel };

struct stage_settings {
  std::uint32_t page_size = 500;  // `limit` of control- and data-layer pages
  storage::ordering_mode ordering = storage::ordering_mode::chronological;
  std::uint32_t credit_window = 16384;  // max unacknowledged items per job
  std::uint32_t batch_size = 2048;      // max items per batch handed downstream
  listing_mode listing = listing_mode::parallel;
  std::uint32_t parallel_requests = 16;  // offset pages in flight with listing_mode::parallel
  std::uint32_t max_empty_pages = 3;     // consecutive empty pages claiming more
  /// A page that fails to decode (HTML, a non-JSON 200, JSON cut short) or claims a next page
  /// without an endCursor is fetched again alone, in the same listing epoch, up to this many
  /// attempts in all; waits `page_retry_backoff`, doubled per attempt (capped at 5 s).
  std::uint32_t page_attempts = 4;
  std::chrono::milliseconds page_retry_backoff{200};
  /// While dispatching, the job is read again (GET /v3/export-jobs/{id}) at least this often,
  /// and at least every expiresIn/4; it is read at every phase boundary too. A job that expired
  /// or finished elsewhere stops with `job_expired` / `job_finished_elsewhere`.
  std::chrono::milliseconds job_check_interval{60000};
  /// A read of the job younger than this is not repeated at a phase boundary: the phases of a
  /// small job pass within milliseconds, and an extra request per boundary would cost a batch
  /// of many small jobs a large share of its requests. 0: read at every boundary.
  std::chrono::milliseconds job_check_fresh_for{1000};
  std::uint32_t sort_run_items = 65536;  // items the orderer sorts in memory per sorted run
  bool dispatch_unreconciled = false;    // dispatch in_progress items with no record
  bool recover_lost_state = false;       // jobs without a local record may have lost their state
  std::chrono::milliseconds request_timeout{300000};  // deadline of one request between actors
  /// Deadline of one request to the fetcher: a watchdog behind the HTTP client's own bound,
  /// which is its request_timeout plus every Retry-After it honours (each up to
  /// retry_after_cap, never past the job's deadline). pipeline::fetch_timeout_for() derives it
  /// from the HTTP options; the default fits the default ones (120 s + 6 x 10 min).
  std::chrono::milliseconds fetch_timeout{3780000};
  /// Pipelines at once. Many small jobs want many at once (their round trips and fsyncs
  /// overlap); a few large ones are held back by `max_window_items` instead.
  std::uint32_t max_jobs = 64;
  /// A job weighs min(numberOfItems, credit_window), the items it can have in flight: the jobs
  /// running at once weigh at most this together (one job always runs, whatever it weighs).
  /// Large jobs run 4 at a time by default, tiny ones up to `max_jobs`.
  std::uint32_t max_window_items = 65536;
  /// After a graceful stop was requested (batch_progress::stop): how long jobs that are still
  /// listing, ordering or draining their acknowledgements get before they are stopped where
  /// they stand (everything they committed stays; a re-run resumes them).
  std::chrono::milliseconds stop_timeout{30000};
};

}  // namespace ei::actors

namespace ei::pipeline {

/// The configuration of an embedded stage (export_items::stage::start). `base_url` is the
/// API's URL (https://external.pleo.io, or a simulator's); `http.base_url` is filled from it.
struct embed_config {
  std::string base_url;
  api::client_config http;
  actors::stage_settings settings;
  storage::store_options store;
  std::uint32_t fetchers = 2;  // fetcher actors shared by all jobs
};

}  // namespace ei::pipeline
