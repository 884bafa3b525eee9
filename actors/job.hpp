// The job family: one pipeline per export job.
//
//   job supervisor (phases, errors, outcome)
//     verifying   GET the job through a fetcher; it must be `in_progress`
//     listing     paginator -> fetcher (pages); paginator scopes, one store write per page
//     ordering    orderer (entry_id, or chronological by the data layer's `date`)
//     dispatching sequencer -> downstream, credit window, acks -> store
//     complete | failed(reason)
//
// The supervisor reports `(outcome_atom, job_outcome)` to whoever started it, exactly once.
// Every phase boundary is persisted, so a re-run resumes where the last one stopped.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/typed_actor.hpp>

#include "actors/atoms.hpp"
#include "actors/downstream.hpp"
#include "actors/errors.hpp"
#include "actors/fetcher.hpp"
#include "actors/report.hpp"
#include "actors/settings.hpp"
#include "actors/store.hpp"
#include "export_items/protocol.hpp"  // job_stats, job_result, job_outcome, outcome_receiver_actor
#include "storage/state_store.hpp"

namespace ei::actors {

/// Marks the outcome failed with `f` (the code and its text) and `reason`.
inline void set_failure(job_outcome& out, job_failure f, std::string reason) {
  out.result = job_result::failed;
  out.failure = f;
  out.reason_code = f.text();
  out.reason = std::move(reason);
}

/// True when the outcome is a failure that a graceful stop caused (resumable).
inline bool is_interrupted(const job_outcome& out) noexcept {
  return out.result == job_result::failed && out.failure.code == job_errc::interrupted;
}

/// Live counters for progress lines and export_items::stage::stats(): written by the actors,
/// read from another thread. One may be shared by several batch runners (counts add up).
struct batch_progress {
  std::atomic<std::uint64_t> jobs_total{0};
  std::atomic<std::uint64_t> jobs_done{0};    // with an outcome (failed ones included)
  std::atomic<std::uint64_t> jobs_failed{0};  // of jobs_done
  std::atomic<std::uint64_t> jobs_running{0};
  std::atomic<std::uint64_t> pages{0};
  std::atomic<std::uint64_t> items_emitted{0};  // handed on (redeliveries included)
  std::atomic<std::uint64_t> items_acked{0};    // handed on and acknowledged in this run
  // For the ETA (pipeline/monitor.hpp): jobs started, the sum of their numberOfItems, and
  // the items their listings have committed so far.
  std::atomic<std::uint64_t> jobs_started{0};
  std::atomic<std::uint64_t> items_expected{0};
  std::atomic<std::uint64_t> items_listed{0};
  /// False while discovery may still add jobs (jobs_total is not final yet).
  std::atomic<bool> jobs_total_known{false};
  /// Set (by a signal watcher) to stop the batch gracefully: the batch runner starts no new
  /// job, sequencers hand on no new batch and end their job with reason code `interrupted`
  /// (the phase stays, so a re-run resumes it) once their in-flight batches are acknowledged.
  /// Null: the batch cannot be stopped this way.
  std::shared_ptr<const std::atomic<bool>> stop;
  bool stop_requested() const { return stop && stop->load(std::memory_order_relaxed); }
};

/// Everything a job pipeline needs from the process around it.
struct job_context {
  stage_settings settings;
  fetcher_actor fetcher;
  store_actor store_writer;
  std::shared_ptr<storage::state_store> store;  // reads
  downstream_actor downstream;
  std::shared_ptr<batch_progress> progress;  // may be null
  /// Set per job by its supervisor: the job's numberOfItems. A listing that ends with fewer
  /// items (or distinct items, once deduplicated) is short and is never taken as complete.
  std::optional<std::uint64_t> expected_items;
  /// Where reported items go before the job is recorded complete (null: nowhere).
  report_writer_actor report_writer;
  /// Set per job by its supervisor: how often the sequencer reads the job again while it
  /// dispatches (settings.job_check_interval, or expiresIn/4 when that is sooner).
  std::chrono::milliseconds job_check_every{0};
  /// Set per job by its supervisor at every read of the job: when the job expires if nothing
  /// acts on it (read time + expiresIn, in ms since the epoch; 0 when expiresIn is absent or
  /// 0). Page requests carry it, so no Retry-After is waited for past it.
  std::int64_t job_deadline_ms = 0;
};

/// What the listing phase hands back to the supervisor.
struct listing_result {
  bool ok = false;
  storage::job_record job;  // as committed with the last page
  job_failure failure;      // when !ok
  std::string message;
  std::uint64_t requests = 0;
  std::uint64_t retries = 0;
  std::int64_t total_reported = -1;
  api::contract_deviations deviations;
  std::uint32_t page_size = 0;  // the `limit` the listing ended with (halved when refused)
};

/// What the ordering phase hands back.
struct order_result {
  bool ok = false;
  storage::job_record job;  // phase dispatching, order_size set, persisted
  job_failure failure;      // when !ok
  std::string message;
  std::uint64_t requests = 0;
  std::uint64_t retries = 0;
  std::uint64_t undated = 0;
  std::vector<reconciliation_entry> reported;
  api::contract_deviations deviations;
};

/// What the reconciling phase (a resumed job re-listed against its persisted order) hands back.
struct reconcile_result {
  bool ok = false;
  storage::job_record job;  // phase dispatching again, order possibly extended, persisted
  job_failure failure;      // when !ok
  std::string message;
  std::uint64_t skipped_out_of_scope = 0;
  std::uint64_t out_of_scope_reported = 0;
  std::uint64_t absent = 0;  // in the order, missing from the re-listing (reported)
  std::uint64_t appended = 0;
  std::vector<reconciliation_entry> reported;
};

/// What the dispatching phase hands back.
struct dispatch_result {
  bool ok = false;
  job_failure failure;  // when !ok
  std::string message;
  std::uint64_t emitted = 0;
  std::uint64_t redelivered = 0;
  std::uint64_t skipped = 0;  // order entries no longer in scope, passed over
  std::uint64_t acked_through = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, listing_result& x) {
  return f(caf::meta::type_name("ei::actors::listing_result"), x.ok, x.job, x.failure, x.message,
           x.requests, x.retries, x.total_reported, x.deviations, x.page_size);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, order_result& x) {
  return f(caf::meta::type_name("ei::actors::order_result"), x.ok, x.job, x.failure, x.message,
           x.requests, x.retries, x.undated, x.reported, x.deviations);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, reconcile_result& x) {
  return f(caf::meta::type_name("ei::actors::reconcile_result"), x.ok, x.job, x.failure, x.message,
           x.skipped_out_of_scope, x.out_of_scope_reported, x.absent, x.appended, x.reported);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, dispatch_result& x) {
  return f(caf::meta::type_name("ei::actors::dispatch_result"), x.ok, x.failure, x.message,
           x.emitted, x.redelivered, x.skipped, x.acked_through);
}

using job_supervisor_actor =
    caf::typed_actor<caf::reacts_to<run_atom>, caf::reacts_to<done_atom, listing_result>,
                     caf::reacts_to<done_atom, order_result>,
                     caf::reacts_to<done_atom, reconcile_result>,
                     caf::reacts_to<done_atom, dispatch_result>>;

/// Spawns the supervisor of one job. On `run_atom` it works through the phases and sends
/// `(outcome_atom, job_outcome)` to `report_to`, then quits. `verified` is the job as the
/// batch runner already read it (the supervisor still checks its status).
job_supervisor_actor spawn_job_supervisor(caf::actor_system& sys, job_context ctx,
                                          api::export_job verified,
                                          outcome_receiver_actor report_to);

}  // namespace ei::actors
