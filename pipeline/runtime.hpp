// The parts of a running stage: the HTTP client, the state store, and the shared actors
// (fetchers, the store actor) spawned into a given system. Used by the embedding API
// (export_items::stage, embedded_stage.cpp), the one place that wires the stage's actors;
// run_stage and the `run` command go through that API. Also the conversions between the
// public stats (export_items::stage_stats) and the internal counters.
#pragma once

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>

#include "actors/job.hpp"
#include "api/credentials.hpp"
#include "api/http_client.hpp"
#include "common/result.hpp"
#include "export_items/stage.hpp"
#include "pipeline/config.hpp"
#include "pipeline/stage.hpp"
#include "storage/state_store.hpp"

namespace ei::pipeline {

struct stage_resources {
  std::shared_ptr<api::http_client> http;
  std::shared_ptr<storage::state_store> store;
  /// Ready once the store has been destroyed (closed, directory lock released), which happens
  /// on whichever thread drops the last reference: wait on it to know the lock is gone.
  std::shared_future<void> store_closed;
};

/// Creates the HTTP client for `cfg.http` (base_url set) and opens the state store (taking its
/// directory lock). Errors name what failed; the credentials never appear in them.
result<stage_resources, run_errc> open_resources(const embed_config& cfg,
                                                 const api::credentials& creds,
                                                 const std::string& state_dir);

/// How long an actor waits on the fetcher before it gives a request up: longer than the HTTP
/// client can take (its request_timeout, plus max_attempts Retry-After waits of up to
/// retry_after_cap) and never shorter than settings.request_timeout, so the actors' watchdog
/// never cuts a wait the server asked for.
std::chrono::milliseconds fetch_timeout_for(const embed_config& cfg);

/// The shared actors of a stage, spawned into `sys`.
struct stage_actors {
  actors::job_context base;  // fetcher = the first fetcher; downstream as given
  std::vector<actors::fetcher_actor> fetchers;
};

/// `writer`: the store actor, when the caller spawned it already (the NDJSON sink commits
/// through it); else one is spawned.
stage_actors spawn_stage_actors(caf::actor_system& sys, const embed_config& cfg,
                                const stage_resources& res, actors::downstream_actor downstream,
                                actors::store_actor writer = {});

/// Ends the shared actors (not the downstream, which belongs to whoever made it).
void stop_stage_actors(caf::actor_system& sys, const stage_actors& actors);

/// The public snapshot (export_items::stage::stats()) of a stage's counters and its HTTP
/// client's.
export_items::stage_stats stats_of(const actors::batch_progress& progress,
                                   const api::client_stats& http);
/// The HTTP client's counters as a snapshot has them (what the summary and the metrics file
/// show; the fields a snapshot does not carry stay 0).
api::client_stats http_stats_of(const export_items::stage_stats& stats);

}  // namespace ei::pipeline
