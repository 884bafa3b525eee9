// Closing the loop (docs/write-back.md): outcomes of items back to Pleo, then the job event.
//
//   outcome (downstream ack, or an NDJSON line of `export-items report`)
//     -> validated against the job's order and recorded in the state store (synced)
//     -> PUT /v3/export-jobs/{jobId}/items, <= 100 per request, several in flight
//        200: each item in `data` becomes `reported` (never sent again), each `errors[]` entry
//             keeps its type and message (retried unless ACCOUNTING_ENTRY_DOES_NOT_EXIST, at
//             most `max_rejections` times, then `rejected`); 422: the job's write-back stops
//     -> once every in-scope item of the job is reported (or rejected) and the job's items
//        were all acked: GET the job; final already -> record that; else POST the event
//        (`completed` / `completed_with_errors`, or `failed` on request), then record it.
//
// Exactly once: an outcome is sent only while its record says `recorded`, and the record
// moves to `reported` after the 200 (a crash in between re-sends the identical update, which
// Pleo applies idempotently); the event is sent only when no completion is recorded and the
// job is not final in Pleo, re-read just before.
//
// Threads: write_back() runs on the calling thread and blocks (store writes, waiting for
// responses); the HTTP requests run on the client's io thread. Call it from a CLI command, a
// host thread or a detached actor, never from an event-based actor.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/http_client.hpp"
#include "api/model.hpp"
#include "common/result.hpp"
#include "export_items/writeback.hpp"  // options, item_error, job_report, report
#include "storage/state_store.hpp"

namespace ei::writeback {

enum class wb_errc : std::uint8_t {
  invalid_input,  // an outcome (line or ack) is unusable; the message names line and field
  store,          // the state store failed
  usage,          // the options are unusable
};
std::string_view to_string(wb_errc c) noexcept;

// -- outcomes in --------------------------------------------------------------------------

/// One outcome as given by downstream (seq is filled in by the recorder from the order).
struct outcome_input {
  api::uuid job_id;
  storage::item_outcome outcome;
};

/// Parses one NDJSON outcome line: {"jobId","accountingEntryId","status" (successful|failed),
/// optional "exportedAt" (date-time), "externalId", "externalUrl" (successful),
/// "failureReason", "failureReasonType" (failed)}; unknown fields are ignored (so the stage's
/// own output lines with a final status are accepted), null is absent. Errors name the field.
result<outcome_input, wb_errc> parse_outcome_line(std::string_view line);

/// What became of one input outcome.
enum class verdict : std::uint8_t { recorded, duplicate, refused };

/// Validates outcomes against the store and records them. One per store and thread.
class outcome_recorder {
 public:
  explicit outcome_recorder(storage::state_store& store);
  ~outcome_recorder();
  outcome_recorder(const outcome_recorder&) = delete;
  outcome_recorder& operator=(const outcome_recorder&) = delete;

  /// Checks `in` (known job with a finished order; the item is in it and was handed on; the
  /// status is final; no different earlier outcome) and queues it. `refused` comes with the
  /// reason in `why`; `duplicate` is an identical repeat (nothing to do).
  verdict add(outcome_input in, std::string& why);
  /// Records every queued outcome: one synced write per job. Only then may they be counted
  /// or answered.
  status<wb_errc> flush();
  /// Jobs that got outcomes through this recorder, in first-seen order.
  const std::vector<api::uuid>& jobs() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

// -- write-back and completion ------------------------------------------------------------

/// Writes back every recorded outcome of the jobs and, when asked, completes the ready ones.
/// Job-level problems (HTTP failures, 422, a store error on one job) are in the job's report;
/// the error is only for unusable options or a store that cannot be read at all.
result<report, wb_errc> write_back(api::http_client& http, storage::state_store& store,
                                   const options& opts);

/// The JSON summary (per job: counts, errors, completion, stop reason).
std::string summary_json(const report& r, std::uint64_t lines_read = 0,
                         std::uint64_t lines_recorded = 0, std::uint64_t lines_duplicate = 0,
                         std::uint64_t lines_refused = 0);

}  // namespace ei::writeback
