// The batch runner: takes a batch of jobs (explicit ids or discovered), verifies each one,
// and runs up to `max_jobs` job pipelines at once over the shared fetchers, store and
// downstream: oldest job first among the companies that are free, never two jobs of one
// company at the same time, and a failing job never stops the others. Replies with one report
// when every job has an outcome.
//
// Memory does not grow with the batch: jobs are verified (or discovered) at most
// `lookahead_jobs` ahead of the ones running, and with `collect_outcomes = false` the report
// keeps counters (and the ids of the jobs that did not fail) instead of one outcome per job;
// each outcome still goes to `listener` as the job ends.
// The protocol as hosts use it: docs/embedding.md, "The message protocol".
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/typed_actor.hpp>

#include "actors/job.hpp"

namespace ei::actors {

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

/// How far ahead of the running jobs the runner verifies or discovers jobs: the most jobs it
/// holds waiting (oldest first is decided among them), whatever the size of the batch.
inline constexpr std::size_t lookahead_jobs = 4096;

using batch_runner_actor =
    caf::typed_actor<caf::replies_to<run_atom, batch_request>::with<batch_report>,
                     caf::reacts_to<outcome_atom, job_outcome>>;

/// `fetchers` are shared round-robin by the jobs; `progress` may be null.
batch_runner_actor spawn_batch_runner(caf::actor_system& sys, job_context base,
                                      std::vector<fetcher_actor> fetchers,
                                      std::shared_ptr<batch_progress> progress);

}  // namespace ei::actors
