// The messages a host exchanges with an embedded stage (docs/embedding.md, "The message
// protocol"): the downstream protocol (items handed on, acknowledgements with or without
// outcomes) and the batch runner protocol (a batch of jobs in, one outcome per job out).
// Public; the actor graph includes these through actors/downstream.hpp, actors/job.hpp and
// actors/batch.hpp. Namespace ei::actors is the implementation's; hosts use the export_items::
// names (export_items/stage.hpp).
//
// Downstream: a sequencer (one per job) sends `(items_atom, item_batch, ack_receiver_actor)`.
// Items of a batch belong to one job and carry consecutive sequence numbers (1-based positions
// in the job's deterministic order). Downstream answers, at any time and as often as it likes,
// `(ack_atom, job_id, acked_through, committed)`: every item of that job with sequence <=
// acked_through is acknowledged and never handed on again, across crashes and restarts. Acks
// are cumulative and may be coalesced; a lower ack than an earlier one is ignored. `committed`
// is true only when downstream recorded the watermark in the stage's state store itself (the
// stage's own NDJSON sink does); a host passes false. A sequencer never has more than
// `credit_window` unacknowledged items in flight.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/typed_actor.hpp>

#include "export_items/types.hpp"

namespace ei::actors {

using run_atom = caf::atom_constant<caf::atom("run")>;
using items_atom = caf::atom_constant<caf::atom("items")>;
using ack_atom = caf::atom_constant<caf::atom("ack")>;
using outcome_atom = caf::atom_constant<caf::atom("outcome")>;

// -- downstream protocol ------------------------------------------------------------------

/// One item handed on. `attempt` counts deliveries of this item (1 on the first);
/// `redelivery` is true when the item may have reached downstream before (it was in flight
/// when an earlier run stopped), so downstream can deduplicate by accounting_entry_id.
struct delivery_item {
  api::uuid job_id;
  api::uuid accounting_entry_id;
  api::item_status status = api::item_status::pending;
  std::string status_text;
  std::uint64_t sequence = 0;
  std::uint32_t attempt = 1;
  bool redelivery = false;
  api::tracking_fields tracking;
};

struct item_batch {
  api::uuid job_id;
  std::vector<delivery_item> items;
};

/// The outcome downstream gives an item it acknowledges (docs/write-back.md): `successful`
/// (optional exported_at, external_id, external_url) or `failed` (failure_reason_type,
/// failure_reason). Identified by id and the sequence it was handed on with.
struct item_outcome_ack {
  api::uuid accounting_entry_id;
  std::uint64_t sequence = 0;
  api::item_status status = api::item_status::successful;
  api::tracking_fields fields;
};

/// Outcomes travelling with an ack.
struct outcome_acks {
  std::vector<item_outcome_ack> items;
};

/// Acks, with or without outcomes. `(ack_atom, job, through, committed, outcome_acks)` acks
/// like the plain ack and records the outcomes in the SAME synced store write as the ack
/// (the sequencer writes it, whatever `committed` says). Every outcome must be of an item of
/// this ack (sequence <= through) with status successful or failed; a bad outcome fails the
/// job (downstream_protocol) and nothing of that ack is recorded. A later write-back
/// (`run --complete-jobs`, `export-items complete`) sends the outcomes to Pleo.
using ack_receiver_actor =
    caf::typed_actor<caf::reacts_to<ack_atom, api::uuid, std::uint64_t, bool>,
                     caf::reacts_to<ack_atom, api::uuid, std::uint64_t, bool, outcome_acks>>;

using downstream_actor =
    caf::typed_actor<caf::reacts_to<items_atom, item_batch, ack_receiver_actor>>;

// -- job outcomes and the batch runner protocol ------------------------------------------

/// An item reported for a person to look at: needs reconciliation (in_progress remotely with
/// no local record after state loss), was handed on and is now final remotely, or is missing
/// from a re-listing.
struct reconciliation_entry {
  api::uuid accounting_entry_id;
  std::string remote_status;  // "absent" when the latest listing no longer has it
  std::string action;         // to_string(reconcile_action), or "absent"
};

/// What a job did in this run (and, for counters that live in the store, in total).
struct job_stats {
  std::uint64_t listed = 0;
  std::uint64_t in_scope = 0;
  std::array<std::uint64_t, 6> by_remote_status{};  // indexed by api::item_status
  std::uint64_t duplicates = 0;
  std::uint64_t needs_reconciliation = 0;
  std::uint64_t undated = 0;               // in scope but absent from the data layer (ordered last)
  std::uint64_t skipped_out_of_scope = 0;  // left the scope since the order was fixed
  std::uint64_t out_of_scope_reported = 0;  // handed on before, final remotely now
  // Over every run of the job (from its order in the store, once it is done):
  // in_scope = acked + skipped_final_remotely + reported.
  std::uint64_t acked = 0;                   // handed on and acknowledged
  std::uint64_t skipped_final_remotely = 0;  // finalised elsewhere before it was handed on
  std::uint64_t reported = 0;                // handed on, final remotely before its ack; or absent
  std::uint64_t absent = 0;                  // missing from a re-listing (part of `reported`)
  std::uint64_t emitted = 0;
  std::uint64_t redelivered = 0;
  std::uint64_t pages = 0;
  std::uint64_t requests = 0;
  std::uint64_t retries = 0;
  std::int64_t total_reported = -1;  // pagination.total of the last page, -1 if absent
  double duration_seconds = 0;
  api::contract_deviations deviations;  // tolerated departures from the API contract
};

enum class job_result : std::uint8_t { complete, already_complete, failed };
std::string_view to_string(job_result r) noexcept;

struct job_outcome {
  api::uuid job_id;
  api::uuid company_id;
  job_result result = job_result::failed;
  std::string reason_code;  // e.g. "job_not_in_progress", "cursor_cycle", "http_404"
  std::string reason;       // for people
  job_stats stats;
  std::vector<reconciliation_entry> reported;
};

/// Whoever starts a job supervisor receives its outcome through this interface.
using outcome_receiver_actor = caf::typed_actor<caf::reacts_to<outcome_atom, job_outcome>>;

struct batch_request {
  std::vector<api::uuid> jobs;          // explicit job ids (verified with GET each)
  bool discover = false;                // list `in_progress` jobs (GET /v3/export-jobs)
  std::optional<api::uuid> company_id;  // discovery filter
  /// When set, every job's outcome is also sent here as soon as the job ends.
  std::optional<outcome_receiver_actor> listener;
  /// false: `batch_report::jobs` stays empty (the outcomes went to `listener`), so the report
  /// does not grow with the number of jobs. The counters are kept either way.
  bool collect_outcomes = true;
};

struct batch_report {
  std::vector<job_outcome> jobs;  // one per job, in the order they finished (collect_outcomes)
  double duration_seconds = 0;
  // Kept whether or not the outcomes are collected:
  std::uint64_t total = 0;             // outcomes reported (jobs, plus batch-level failures)
  std::uint64_t complete = 0;          // job_result::complete
  std::uint64_t already_complete = 0;  // job_result::already_complete
  std::uint64_t failed = 0;            // job_result::failed, interrupted ones included
  std::uint64_t interrupted = 0;       // failed with reason code `interrupted`
  std::vector<api::uuid> finished;     // ids of the jobs that did not fail (16 bytes a job)
};

using batch_runner_actor =
    caf::typed_actor<caf::replies_to<run_atom, batch_request>::with<batch_report>,
                     caf::reacts_to<outcome_atom, job_outcome>>;

}  // namespace ei::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(ei::api::uuid)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(ei::actors::item_batch)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(ei::actors::outcome_acks)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(ei::actors::reconciliation_entry)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<ei::actors::reconciliation_entry>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(ei::actors::job_outcome)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(ei::actors::batch_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(ei::actors::batch_report)
