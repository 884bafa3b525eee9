// Internal to the job family: the actors a job supervisor spawns for its phases. Each one
// sends `(done_atom, <phase>_result)` to the supervisor exactly once and then quits; the
// supervisor monitors them, so a crash of one ends the job with a clear reason.
#pragma once

#include <caf/meta/type_name.hpp>
#include <caf/typed_actor.hpp>

#include "actors/job.hpp"

namespace ei::actors::detail {

using phase_actor = caf::typed_actor<caf::reacts_to<run_atom>>;

using sequencer_actor =
    caf::typed_actor<caf::reacts_to<run_atom>,
                     caf::reacts_to<ack_atom, api::uuid, std::uint64_t, bool>,
                     caf::reacts_to<ack_atom, api::uuid, std::uint64_t, bool, outcome_acks>,
                     caf::reacts_to<tick_atom>, caf::reacts_to<check_atom>>;

/// Detached when it resumes a listing (its walk of the pages committed is a scan), else on
/// the shared scheduler.
phase_actor spawn_paginator(caf::actor_system& sys, job_context ctx, storage::job_record job,
                            job_supervisor_actor supervisor);
/// The same paginator always on the system's scheduler: for tests on CAF's deterministic
/// test_coordinator only.
phase_actor spawn_paginator_scheduled(caf::actor_system& sys, job_context ctx,
                                      storage::job_record job, job_supervisor_actor supervisor);
phase_actor spawn_orderer(caf::actor_system& sys, job_context ctx, storage::job_record job,
                          job_supervisor_actor supervisor);
/// The same orderer on the system's scheduler instead of its own thread: for tests on CAF's
/// deterministic test_coordinator only (it blocks its scheduler thread on the store).
phase_actor spawn_orderer_scheduled(caf::actor_system& sys, job_context ctx,
                                    storage::job_record job, job_supervisor_actor supervisor);

/// True when the orderer of `job` (its listing done) runs on the shared scheduler rather than
/// detached: epoch 0, at most min(sort_run_items, one order chunk) listed records, and no
/// data-layer walk (entry_id, or nothing in scope), so its sorts never touch the store.
bool orders_in_memory(const stage_settings& s, const storage::job_record& job) noexcept;
phase_actor spawn_reconciler(caf::actor_system& sys, job_context ctx, storage::job_record job,
                             job_supervisor_actor supervisor);

/// Drops the pages of every listing epoch before the job's current one.
status<storage::store_errc> drop_previous_epochs(storage::state_store& store,
                                                 const storage::job_record& job);
sequencer_actor spawn_sequencer(caf::actor_system& sys, job_context ctx, storage::job_record job,
                                job_supervisor_actor supervisor);

/// Ends a phase actor exactly once: fills the result's verdict, lets `complete` add what the
/// phase knows (its job record, watermarks), reports to the supervisor and quits. The state
/// must have `finished`, `result` (with ok/failure/message) and `supervisor`. `failure` is
/// meaningless when ok.
template <class Self, class Complete>
void finish_phase(Self self, bool ok, job_failure failure, std::string message, Complete complete) {
  auto& st = self->state;
  if (st.finished) return;
  st.finished = true;
  st.result.ok = ok;
  st.result.failure = failure;
  st.result.message = std::move(message);
  complete(st);
  self->send(st.supervisor, done_atom::value, std::move(st.result));
  self->quit();
}

/// What became of a job's order over all its runs, read from the store: every entry is
/// acked (still in scope: handed on and acknowledged), skipped (left the scope before it was
/// handed on: finalised elsewhere) or reported (handed on, then final remotely before its ack;
/// or absent from a re-listing, counted in `absent` too). acked + skipped + reported is the
/// order's size, which is the job's in-scope count.
struct delivery_tally {
  std::uint64_t acked = 0;
  std::uint64_t skipped_final_remotely = 0;
  std::uint64_t reported = 0;
  std::uint64_t absent = 0;
};

/// Reads the job's order once (O(order size / chunk) reads) and tallies it; when `reported`
/// is given, appends an entry for every reported item.
result<delivery_tally, storage::store_errc> tally_delivery(
    storage::state_store& store, const storage::job_record& job,
    std::vector<reconciliation_entry>* reported);

/// Empty when the job's current listing, deduplicated (counters listed - duplicates), holds
/// at least the items the job has (ctx.expected_items); else why not. A short listing is
/// never ordered or reconciled: items missing from it would be lost or taken for absent.
std::string short_listing(const job_context& ctx, const storage::job_record& job);

/// What a fresh read of the job (GET /v3/export-jobs/{id}) says about going on with it. Not
/// `stop`: go on (it is in_progress, or the read failed for a reason that is not the job's:
/// the next check tells). Else why to stop: `job_expired` (failed with job_expired),
/// `job_finished_elsewhere` (completed, completed_with_errors or failed by someone else),
/// `job_not_in_progress` (back to pending, or a status we do not know), `http_404` (gone).
struct job_check {
  bool stop = false;
  job_failure failure;
  std::string message;
};
job_check check_job(const job_reply& reply);

/// The scope rule of docs/design.md for a first listing: pending and in_progress are in scope.
bool in_scope(api::item_status s) noexcept;

/// Offset listing (listing_mode::parallel), shared by the paginator and the orderer's
/// data-layer walk: the request for page `page_no`, and how many pages `total` items make.
page_request offset_page(const api::uuid& job_id, std::uint32_t page_size, std::uint32_t page_no,
                         std::int64_t not_after_ms);
std::uint32_t offset_page_count(std::int64_t total, std::uint32_t page_size) noexcept;

}  // namespace ei::actors::detail
