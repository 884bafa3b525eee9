// The embedding API as a host uses it: the stage inside the host's actor system, the host's own
// downstream actor acknowledging by sequence, per-job outcomes streamed to a listener, typed
// failures, and a clean shutdown after which the same state directory resumes.
// docs/embedding.md quotes this file.
#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include <caf/all.hpp>
#include "tests/support/temp_dir.hpp"

#include "export_items/stage.hpp"
#include "simulator/simulator.hpp"

namespace {

namespace fs = std::filesystem;
namespace xi = export_items;
constexpr const char* kKey = "embed-test-key";

// --- what a host writes -------------------------------------------------------------------

/// What the host's downstream has made safe (its own "ERP"), shared with the test.
struct ledger {
  std::mutex mutex;
  std::map<std::string, std::vector<std::uint64_t>> sequences;  // per job, in arrival order
  std::size_t redeliveries = 0;
};

/// The host's downstream: writes each item to its ledger, then acknowledges the batch by its
/// last sequence number. A real host would write to its ERP before acknowledging.
xi::downstream_actor::behavior_type host_downstream(std::shared_ptr<ledger> book) {
  return {
      [book](xi::items_atom, const xi::item_batch& batch, const xi::ack_receiver_actor& stage) {
        {
          std::lock_guard<std::mutex> lock(book->mutex);
          for (const auto& item : batch.items) {
            book->sequences[item.job_id.to_string()].push_back(item.sequence);
            if (item.redelivery) ++book->redeliveries;
          }
        }
        caf::anon_send(stage, xi::ack_atom::value, batch.job_id, batch.items.back().sequence,
                       false);
      },
  };
}

/// The host's listener: one message per job as soon as the job ends.
xi::outcome_receiver_actor::behavior_type host_listener(
    std::shared_ptr<std::vector<xi::job_outcome>> seen, std::shared_ptr<std::mutex> mutex) {
  return {
      [seen, mutex](xi::outcome_atom, const xi::job_outcome& outcome) {
        std::lock_guard<std::mutex> lock(*mutex);
        seen->push_back(outcome);
      },
  };
}

// --- the test -----------------------------------------------------------------------------

using ei::testing::temp_dir;

TEST(Embed, StageRunsInsideTheHostSystemAndAcksBySequence) {
  ei::sim::sim_config sc;
  sc.api_key = kKey;
  sc.seed = 77;
  sc.jobs = 4;
  sc.companies = 2;
  sc.items_per_job = 700;
  auto sim = ei::sim::simulator::start(sc);
  ASSERT_TRUE(sim.ok());
  std::vector<xi::uuid> jobs;
  std::size_t in_progress = 0;
  for (auto& j : sim.value()->jobs()) {
    jobs.push_back(j.id);
    in_progress += j.status == ei::api::job_status::in_progress;
  }
  temp_dir state;

  caf::actor_system_config host_cfg;
  host_cfg.set("scheduler.max-threads", std::size_t{2});
  caf::actor_system host{host_cfg};

  auto book = std::make_shared<ledger>();
  auto downstream = host.spawn(host_downstream, book);
  xi::stage_config config;
  config.base_url = sim.value()->base_url();
  config.settings.page_size = 100;
  config.settings.batch_size = 64;
  config.settings.credit_window = 256;
  auto creds = xi::credentials::from_api_key(kKey);
  ASSERT_TRUE(creds.ok());
  auto stage = xi::stage::start(host, config, creds.value(), state.str(), downstream);
  ASSERT_TRUE(stage.ok()) << stage.err().message;

  auto seen = std::make_shared<std::vector<xi::job_outcome>>();
  auto seen_mutex = std::make_shared<std::mutex>();
  auto listener = host.spawn(host_listener, seen, seen_mutex);
  std::optional<xi::batch_report> report;
  {
    caf::scoped_actor self{host};
    self->request(stage.value()->batch_runner(), std::chrono::seconds(60), xi::run_atom::value,
                  xi::batch_request{jobs, false, {}, listener})
        .receive([&](xi::batch_report& r) { report = std::move(r); },
                 [&](caf::error& err) { FAIL() << caf::to_string(err); });
  }
  ASSERT_TRUE(report);
  ASSERT_EQ(report->jobs.size(), jobs.size());
  std::size_t complete = 0;
  for (const auto& o : report->jobs) {
    if (o.result == xi::job_result::complete) {
      ++complete;
      EXPECT_EQ(xi::failure_of(o), xi::failure_kind::none);
      // Every item of the job reached the host once, in sequence order.
      std::lock_guard<std::mutex> lock(book->mutex);
      const auto& seqs = book->sequences[o.job_id.to_string()];
      ASSERT_EQ(seqs.size(), o.stats.in_scope);
      for (std::size_t i = 0; i < seqs.size(); ++i)
        EXPECT_EQ(seqs[i], i + 1);
    } else {
      EXPECT_EQ(xi::failure_of(o), xi::failure_kind::job_not_in_progress) << o.reason;
    }
  }
  EXPECT_EQ(complete, in_progress);
  EXPECT_EQ(book->redeliveries, 0U);
  {
    // The listener heard about every job. Its messages and the report travel to different
    // actors, so the last outcome may still be in the listener's mailbox: wait (bounded).
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    std::size_t heard = 0;
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(*seen_mutex);
        heard = seen->size();
      }
      if (heard >= jobs.size() || std::chrono::steady_clock::now() > deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    EXPECT_EQ(heard, jobs.size());
  }

  // Clean shutdown, then a second stage on the same state directory: nothing to redo.
  stage.value()->shutdown();
  auto again = xi::stage::start(host, config, creds.value(), state.str(), downstream);
  ASSERT_TRUE(again.ok()) << again.err().message;  // the directory lock was released
  auto second = again.value()->run(xi::batch_request{jobs, false, {}, std::nullopt});
  ASSERT_TRUE(second.ok());
  for (const auto& o : second->jobs) {
    if (o.result != xi::job_result::failed) {
      EXPECT_EQ(o.result, xi::job_result::already_complete);
    }
  }
  again.value()->shutdown();
  caf::anon_send_exit(downstream, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(listener, caf::exit_reason::user_shutdown);
}

TEST(Embed, StartRefusesWhatItCannotUse) {
  caf::actor_system_config host_cfg;
  host_cfg.set("scheduler.max-threads", std::size_t{1});
  caf::actor_system host{host_cfg};
  auto creds = xi::credentials::from_api_key(kKey).value();
  temp_dir state;
  xi::stage_config config;  // base_url "embedded": not for embedders
  auto book = std::make_shared<ledger>();
  auto downstream = host.spawn(host_downstream, book);
  auto s = xi::stage::start(host, config, creds, state.str(), downstream);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.err().code, xi::stage_errc::invalid_config);
  config.base_url = "http://127.0.0.1:9";
  auto no_downstream = xi::stage::start(host, config, creds, state.str(), {});
  ASSERT_FALSE(no_downstream.ok());
  auto ok = xi::stage::start(host, config, creds, state.str(), downstream);
  ASSERT_TRUE(ok.ok()) << ok.err().message;
  auto locked = xi::stage::start(host, config, creds, state.str(), downstream);
  ASSERT_FALSE(locked.ok());
  EXPECT_EQ(locked.err().code, xi::stage_errc::state_dir);
  ok.value()->shutdown();
  caf::anon_send_exit(downstream, caf::exit_reason::user_shutdown);
}

}  // namespace
