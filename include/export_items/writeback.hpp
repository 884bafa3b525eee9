// What a host asks of write-back and gets back (export_items::stage::write_back; the same
// engine serves `export-items report`, `complete` and `run --complete-jobs`): outcomes of items
// back to Pleo, then the job event, exactly once (docs/write-back.md). Public; internal code
// includes these through writeback/writeback.hpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "export_items/types.hpp"

namespace ei::writeback {

struct options {
  /// Jobs to work on; empty: every job of the store that has outcomes or is complete.
  std::vector<api::uuid> jobs;
  /// Send the job event for jobs that are ready (every in-scope item reported or rejected).
  bool complete = false;
  /// Send `failed` with this failureReasonType instead (needs explicit `jobs`).
  std::optional<std::string> fail_reason_type;
  std::string fail_reason;
  std::size_t requests_in_flight = 4;
  std::size_t items_per_request = 100;  // the API's limit
  std::uint32_t max_rejections = 3;     // errors[] answers before an outcome is rejected
};

/// One `errors[]` entry (or a job-level stop), as the summary and the report show it.
struct item_error {
  api::uuid item;
  std::string type;  // e.g. ACCOUNTING_ENTRY_DOES_NOT_EXIST
  std::string message;
  bool final = false;  // rejected for good (not retried again)
};

struct job_report {
  api::uuid job_id;
  std::uint64_t updates_sent = 0;  // item updates put on the wire in this run
  std::uint64_t requests = 0;      // PUT requests in this run
  std::uint64_t reported = 0;      // outcomes confirmed by Pleo (over all runs)
  std::uint64_t rejected = 0;      // outcomes Pleo refused for good (over all runs)
  std::uint64_t recorded = 0;      // outcomes still waiting to be confirmed
  std::uint64_t successful = 0;    // outcomes by status (over all runs)
  std::uint64_t failed = 0;
  std::uint64_t awaiting_outcome = 0;  // in-scope items without an outcome (when known)
  std::vector<item_error> errors;      // errors[] answers of this run
  /// completed | completed_with_errors | failed (sent now); already_recorded (an earlier run
  /// recorded it); found_final (the job was final in Pleo, nothing sent); not_ready; stopped;
  /// skipped (no completion asked for).
  std::string completion = "skipped";
  std::string job_status;    // the final status in Pleo, when known
  std::string stop_code;     // why write-back or completion of this job stopped, e.g.
  std::string stop_message;  // EXPORT_JOB_STATUS_UNPROCESSABLE, http_timeout, store
  bool ok() const { return stop_code.empty(); }
};

struct report {
  std::vector<job_report> jobs;
  bool ok() const;
};

}  // namespace ei::writeback
