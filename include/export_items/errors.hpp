// Why a job failed, as a value a host can switch on: `job_errc` (one code per cause; its
// text, to_string, is what the summary's `reasonCode` and the job record's `failure_code`
// say) and `job_failure` (the code plus, for job_errc::http_status, the status). Public:
// job_outcome (export_items/protocol.hpp) carries a job_failure. Internal code includes it
// through actors/errors.hpp, which adds the other components' codes and their categories.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <caf/meta/type_name.hpp>

namespace ei::actors {

/// Why a job failed. The text of each code is what the summary's `reasonCode` and the job
/// record's `failure_code` say; `http_status` reads `http_<status>` with the status
/// (job_failure::text).
enum class job_errc : std::uint8_t {
  // The job itself, read from the API:
  job_not_in_progress,     // pending (not claimed) or a status we do not know
  job_expired,             // failed remotely with failureReasonType job_expired
  job_finished_elsewhere,  // completed, completed_with_errors or failed by someone else
  // A fetch failed (fetch_errc, one for one, except `http_status`: http_<status>):
  http_status,
  invalid_url,
  invalid_config,
  connect_failed,
  tls_failed,
  timeout,  // also: a request between actors passed its deadline
  connection_reset,
  truncated_body,
  response_too_large,
  retries_exhausted,
  cancelled,
  bad_encoding,
  decode,
  // The listing broke the contract beyond repair:
  cursor_rejected,  // a 400 about the cursor
  limit_rejected,   // a 400 about the page size, at the smallest size
  cursor_cycle,
  empty_pages,
  missing_end_cursor,
  parallel_listing_mismatch,
  short_listing,
  item_of_another_job,
  discovery_failed,  // listing the jobs (GET /v3/export-jobs) failed
  // Downstream:
  downstream_timeout,
  downstream_protocol,
  downstream_down,
  // State:
  store,   // the state store failed
  report,  // the reconciliation report could not be written
  // The stage:
  internal,     // an actor of the stage stopped unexpectedly
  interrupted,  // a graceful stop ended the job before it finished (resumable)
};
std::string_view to_string(job_errc c) noexcept;

/// A job's failure: the code, and for job_errc::http_status the status.
struct job_failure {
  job_errc code = job_errc::internal;
  std::uint16_t http_status = 0;

  job_failure() = default;
  job_failure(job_errc c, std::uint16_t status = 0) : code(c), http_status(status) {}  // NOLINT

  /// The code's text: to_string(code), or `http_<status>` for job_errc::http_status.
  std::string text() const;
  friend bool operator==(const job_failure&, const job_failure&) = default;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, job_failure& x) {
  return f(caf::meta::type_name("ei::actors::job_failure"), x.code, x.http_status);
}

}  // namespace ei::actors
