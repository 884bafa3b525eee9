// One job against the in-process simulator, run through the whole stage: the set-up that
// stage_test and edges_test share (a simulator with the test key, a stage config with short
// backoffs and no fsync, run options writing into a temporary directory).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "api/credentials.hpp"
#include "pipeline/stage.hpp"
#include "simulator/simulator.hpp"
#include "tests/support/temp_dir.hpp"

namespace ei::testing {

inline constexpr const char* kStageTestKey = "stage-test-key";

/// One in-progress job of `items` items, generated from `seed`, with an optional fault plan.
inline sim::sim_config one_job(std::uint64_t seed, std::uint64_t items, std::string faults = {}) {
  sim::sim_config c;
  c.seed = seed;
  c.jobs = 1;
  c.items_per_job = items;
  c.all_in_progress = true;
  c.faults = std::move(faults);
  return c;
}

/// The simulator of `c`, taking the test key; null (and a failed expectation) when it does not
/// start.
inline std::unique_ptr<sim::simulator> start_sim(sim::sim_config c) {
  c.api_key = kStageTestKey;
  auto s = sim::simulator::start(std::move(c));
  EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.err().message);
  return s.ok() ? std::move(s.value()) : nullptr;
}

/// The stage against `s`: pages of 100, short backoffs, generous deadlines, no fsync (these
/// tests do not measure durability).
inline pipeline::stage_config stage_config_for(const sim::simulator& s) {
  pipeline::stage_config cfg;
  cfg.base_url = s.base_url();
  cfg.settings.page_size = 100;
  cfg.settings.request_timeout = std::chrono::seconds(30);
  cfg.http.backoff_base = std::chrono::milliseconds(5);
  cfg.http.backoff_cap = std::chrono::milliseconds(50);
  cfg.http.request_timeout = std::chrono::seconds(30);
  cfg.store.sync = storage::sync_policy::none;
  return cfg;
}

/// `jobs` run with the state and the output (out.ndjson) in `dir`.
inline pipeline::run_options options_for(const temp_dir& dir, std::vector<api::uuid> jobs) {
  pipeline::run_options o;
  o.state_dir = (dir.path() / "state").string();
  o.out = (dir.path() / "out.ndjson").string();
  o.batch.jobs = std::move(jobs);
  o.credentials = api::credentials::from_api_key(kStageTestKey).value();
  return o;
}

/// What a discovery run that met a cycle in the job list left: the jobs that completed, and
/// whether discovery's own outcome (the nil job id) reported `discovery_failed` naming the cycle.
struct discovery_cycle_outcome {
  std::size_t completed = 0;
  bool cycle_reported = false;
};

inline discovery_cycle_outcome discovery_cycle_outcome_of(const pipeline::run_report& r) {
  discovery_cycle_outcome out;
  for (const auto& o : r.batch.jobs) {
    if (o.job_id.is_nil()) {
      EXPECT_EQ(o.reason_code, "discovery_failed");
      EXPECT_NE(o.reason.find("cycle"), std::string::npos) << o.reason;
      out.cycle_reported = true;
    } else if (o.result == actors::job_result::complete) {
      ++out.completed;
    }
  }
  return out;
}

}  // namespace ei::testing
