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
// The protocol types are public (include/export_items/protocol.hpp); as hosts use them:
// docs/embedding.md, "The message protocol".
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/typed_actor.hpp>

#include "actors/job.hpp"
#include "export_items/protocol.hpp"  // batch_request, batch_report, batch_runner_actor

namespace ei::actors {

/// How far ahead of the running jobs the runner verifies or discovers jobs: the most jobs it
/// holds waiting (oldest first is decided among them), whatever the size of the batch.
inline constexpr std::size_t lookahead_jobs = 4096;

/// `fetchers` are shared round-robin by the jobs; `progress` may be null.
batch_runner_actor spawn_batch_runner(caf::actor_system& sys, job_context base,
                                      std::vector<fetcher_actor> fetchers,
                                      std::shared_ptr<batch_progress> progress);

}  // namespace ei::actors
