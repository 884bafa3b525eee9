// What a kill -9 at a named crash point leaves in the state store, and that the next run
// resumes from it. The stage runs in a child process (this test binary re-executed, so that
// crash points read EI_CRASH_AT afresh) and is killed there; the parent inspects the store
// the kill left, then runs the stage again in process against a simulator with the same seed.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <set>
#include <string>

#include <gtest/gtest.h>
#include <caf/all.hpp>

#include "tests/support/temp_dir.hpp"

#include "actors/sink.hpp"
#include "pipeline/stage.hpp"
#include "simulator/simulator.hpp"

namespace ei {
namespace {

namespace fs = std::filesystem;
constexpr const char* kKey = "crash-state-test-key";
constexpr const char* kScenarioVar = "EI_CRASH_STATE_SCENARIO";
constexpr const char* kDirVar = "EI_CRASH_STATE_DIR";

struct scenario {
  std::uint64_t items = 1000;
  std::string faults;
  actors::listing_mode listing = actors::listing_mode::parallel;
};

scenario scenario_named(const std::string& name) {
  scenario s;
  if (name == "offset_listing_short") s.faults = "items:empty_page@nth=3";
  return s;
}

std::unique_ptr<sim::simulator> start_simulator(const scenario& s) {
  sim::sim_config c;
  c.api_key = kKey;
  c.seed = 41;
  c.jobs = 1;
  c.items_per_job = s.items;
  c.all_in_progress = true;
  c.faults = s.faults;
  auto started = sim::simulator::start(c);
  EXPECT_TRUE(started.ok()) << (started.ok() ? "" : started.err().message);
  return started.ok() ? std::move(started.value()) : nullptr;
}

struct collector {
  std::mutex mutex;
  std::vector<actors::delivery_item> items;
};

pipeline::run_options options_for(const std::string& dir, const api::uuid& job, collector& c) {
  pipeline::run_options o;
  o.state_dir = dir + "/state";
  o.out = dir + "/out.ndjson";
  o.batch.jobs = {job};
  o.credentials = api::credentials::from_api_key(kKey).value();
  o.downstream_factory = [&c](caf::actor_system& sys) {
    return actors::spawn_callback_downstream(sys, [&c](const actors::item_batch& b) {
      std::lock_guard<std::mutex> lock(c.mutex);
      for (const auto& i : b.items)
        c.items.push_back(i);
      return true;
    });
  };
  return o;
}

pipeline::stage_config config_for(const sim::simulator& sim, const scenario& s) {
  pipeline::stage_config cfg;
  cfg.base_url = sim.base_url();
  cfg.settings.page_size = 100;
  cfg.settings.batch_size = 100;
  cfg.settings.credit_window = 300;
  cfg.settings.listing = s.listing;
  cfg.settings.ordering = storage::ordering_mode::entry_id;
  cfg.settings.request_timeout = std::chrono::seconds(20);
  cfg.store.sync = storage::sync_policy::none;
  return cfg;
}

/// Runs `scenario` in a fresh process killed at `crash_at`; true when it died by SIGKILL.
bool run_killed(const std::string& name, const std::string& crash_at, const std::string& dir) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setenv("EI_CRASH_AT", crash_at.c_str(), 1);
    ::setenv(kScenarioVar, name.c_str(), 1);
    ::setenv(kDirVar, dir.c_str(), 1);
    ::execl("/proc/self/exe", "crash_state_child", "--gtest_filter=CrashStateChild.Run",
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int status = 0;
  if (pid < 0 || ::waitpid(pid, &status, 0) != pid) return false;
  return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}

// The child's side: runs the stage of the scenario named in the environment (and is killed
// at the crash point). Skipped when run as a test of its own.
TEST(CrashStateChild, Run) {
  const char* name = std::getenv(kScenarioVar);
  const char* dir = std::getenv(kDirVar);
  if (name == nullptr || dir == nullptr) GTEST_SKIP() << "only run as a crash test's child";
  const auto s = scenario_named(name);
  auto sim = start_simulator(s);
  ASSERT_TRUE(sim);
  collector c;
  auto r = pipeline::run_stage(config_for(*sim, s), options_for(dir, sim->jobs().front().id, c));
  ASSERT_TRUE(r.ok());
}

std::set<std::string> in_scope_ids(const sim::simulator& sim, const api::uuid& job) {
  std::set<std::string> out;
  for (const auto& i : sim.items_of(job))
    if (i.status == api::item_status::pending || i.status == api::item_status::in_progress)
      out.insert(i.accounting_entry_id.to_string());
  return out;
}

// An offset listing whose pages do not add up to `total` (one page comes back empty) is
// listed again with cursors. Killed at the commit that would hold its last page, the store
// must not say that listing is complete: the next run would order a listing that failed its
// count check and lose the missing page's items.
TEST(CrashState, AnOffsetListingThatDoesNotAddUpIsNeverRecordedComplete) {
  ei::testing::temp_dir dir;
  // 10 offset pages: the 10th page commit would be the listing's last one.
  ASSERT_TRUE(run_killed("offset_listing_short", "after_page_commit:10", dir.path().string()));
  const auto s = scenario_named("offset_listing_short");
  auto sim = start_simulator(scenario{});
  ASSERT_TRUE(sim);
  const auto job = sim->jobs().front().id;
  {
    auto store = storage::state_store::open(dir.path() / "state", {});
    ASSERT_TRUE(store.ok());
    auto rec = (*store)->load_job(job);
    ASSERT_TRUE(rec.ok() && rec->has_value());
    const auto& j = **rec;
    if (j.listing_complete) {
      EXPECT_EQ(j.counters.listed - j.counters.duplicates, s.items)
          << "a listing that failed its count check was recorded complete (epoch "
          << j.listing_epoch << ", " << j.counters.listed << " items listed)";
    }
  }
  collector c;
  auto r =
      pipeline::run_stage(config_for(*sim, scenario{}), options_for(dir.path().string(), job, c));
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->batch.jobs.front().result, actors::job_result::complete)
      << r->batch.jobs.front().reason;
  std::set<std::string> got;
  for (const auto& i : c.items)
    EXPECT_TRUE(got.insert(i.accounting_entry_id.to_string()).second);
  EXPECT_EQ(got, in_scope_ids(*sim, job));
}

}  // namespace
}  // namespace ei
