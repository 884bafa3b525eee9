// The knobs the actor graph runs with. Filled from the pipeline configuration (configs/*.json
// and the command line); defaults are what ships.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "storage/state_store.hpp"

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

/// The wait before attempt `failures + 1` of a page that failed `failures` (>= 1) times in a
/// row: `page_retry_backoff` doubled per failure, capped at 5 s; nullopt once `page_attempts`
/// are used up. One rule for the item listing and the data-layer walk.
inline std::optional<std::chrono::milliseconds> page_retry_delay(const stage_settings& s,
                                                                 std::uint32_t failures) {
  if (failures >= (s.page_attempts > 0 ? s.page_attempts : 1)) return std::nullopt;
  const std::uint32_t shift = failures - 1 < 16 ? failures - 1 : 16;
  const auto delay = s.page_retry_backoff * (1U << shift);
  return delay < std::chrono::milliseconds(5000) ? delay : std::chrono::milliseconds(5000);
}

}  // namespace ei::actors
