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
//
// Every message is serialisable: each struct has its CAF `inspect` next to it (the value types
// theirs in export_items/types.hpp). The stage's own actor systems register them by name; a
// host that serialises them (another node, a recording) registers the ones it sends with
// `actor_system_config::add_message_type<T>("<the type_name its inspect gives>")`.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <caf/atom.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/typed_actor.hpp>

#include "export_items/errors.hpp"
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

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, delivery_item& x) {
  return f(caf::meta::type_name("ei::actors::delivery_item"), x.job_id, x.accounting_entry_id,
           x.status, x.status_text, x.sequence, x.attempt, x.redelivery, x.tracking);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, item_batch& x) {
  return f(caf::meta::type_name("ei::actors::item_batch"), x.job_id, x.items);
}

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

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, item_outcome_ack& x) {
  return f(caf::meta::type_name("ei::actors::item_outcome_ack"), x.accounting_entry_id, x.sequence,
           x.status, x.fields);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, outcome_acks& x) {
  return f(caf::meta::type_name("ei::actors::outcome_acks"), x.items);
}

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

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, reconciliation_entry& x) {
  return f(caf::meta::type_name("ei::actors::reconciliation_entry"), x.accounting_entry_id,
           x.remote_status, x.action);
}

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

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, job_stats& x) {
  return f(caf::meta::type_name("ei::actors::job_stats"), x.listed, x.in_scope, x.by_remote_status,
           x.duplicates, x.needs_reconciliation, x.undated, x.skipped_out_of_scope,
           x.out_of_scope_reported, x.acked, x.skipped_final_remotely, x.reported, x.absent,
           x.emitted, x.redelivered, x.pages, x.requests, x.retries, x.total_reported,
           x.duration_seconds, x.deviations);
}

struct job_outcome {
  api::uuid job_id;
  api::uuid company_id;
  job_result result = job_result::failed;
  /// Why the job failed (meaningful when result == failed; export_items/errors.hpp).
  job_failure failure;
  /// failure.text() (e.g. "job_not_in_progress", "cursor_cycle", "http_404"): the summary's
  /// `reasonCode`, for people and hosts; programs look at `failure`.
  std::string reason_code;
  std::string reason;  // for people
  job_stats stats;
  std::vector<reconciliation_entry> reported;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, job_outcome& x) {
  return f(caf::meta::type_name("ei::actors::job_outcome"), x.job_id, x.company_id, x.result,
           x.failure, x.reason_code, x.reason, x.stats, x.reported);
}

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

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, batch_request& x) {
  return f(caf::meta::type_name("ei::actors::batch_request"), x.jobs, x.discover,
           wire::opt(x.company_id), wire::opt(x.listener), x.collect_outcomes);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, batch_report& x) {
  return f(caf::meta::type_name("ei::actors::batch_report"), x.jobs, x.duration_seconds, x.total,
           x.complete, x.already_complete, x.failed, x.interrupted, x.finished);
}

using batch_runner_actor =
    caf::typed_actor<caf::replies_to<run_atom, batch_request>::with<batch_report>,
                     caf::reacts_to<outcome_atom, job_outcome>>;

}  // namespace ei::actors
