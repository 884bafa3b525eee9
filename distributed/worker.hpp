// A worker of a distributed batch: connects to the coordinator (remote_actor), registers,
// runs the jobs it is assigned with the embedding API (export_items::stage in this process's
// actor system), forwards every item batch to the coordinator tagged with (job, epoch) and
// relays the coordinator's acknowledgements back to the stage; heartbeats every
// worker_settings::heartbeat_ms. See protocol.hpp.
//
// Resume: an assignment carries resume_from (the ledger's acked_through); sequences <=
// resume_from are passed over here and acknowledged locally (never sent), which is correct
// because every worker computes the same deterministic order with the same settings.
//
// run_worker blocks until the worker stops and returns its exit code: 0 the coordinator
// finished (drain), 2 usage / cannot connect / state directory, 3 fenced (the coordinator
// declared this worker dead: a zombie that came back), 4 lost the coordinator.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>

#include "api/credentials.hpp"

namespace ei::distributed {

struct worker_options {
  std::string coordinator;  // HOST:PORT
  std::string state_dir;
  std::string base_url;                          // overrides the coordinator's
  std::uint32_t connect_timeout_ms = 15000;      // keep trying to reach the coordinator this long
  std::uint32_t coordinator_timeout_ms = 30000;  // heartbeats unanswered this long: give up
};

int run_worker(const worker_options& options, const api::credentials& creds, std::ostream& log);

}  // namespace ei::distributed
