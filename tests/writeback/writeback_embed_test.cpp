// Embedding: a downstream that acks items with their outcomes (actors/outcome_downstream.hpp);
// the outcomes are recorded with the acks, written back after the batch (run_options::
// after_batch, as `run --complete-jobs` does) and the job completed, once; a second run is
// a no-op that sends nothing.
#include <gtest/gtest.h>

#include "actors/outcome_downstream.hpp"
#include "pipeline/stage.hpp"
#include "simulator/simulator.hpp"
#include "tests/support/temp_dir.hpp"
#include "writeback/writeback.hpp"

namespace ei {
namespace {

TEST(WriteBackEmbed, AcksWithOutcomesCompleteTheJobOnce) {
  sim::sim_config sc;
  sc.api_key = "embed-key";
  sc.jobs = 1;
  sc.companies = 1;
  sc.items_per_job = 700;
  sc.all_in_progress = true;
  sc.seed = 5;
  auto sim = sim::simulator::start(sc);
  ASSERT_TRUE(sim.ok());
  const auto job = (*sim)->jobs().front().id;
  testing::temp_dir dir{"ei-wb-embed-"};

  pipeline::stage_config cfg;
  cfg.base_url = (*sim)->base_url();
  pipeline::run_options opts;
  opts.state_dir = dir.str();
  opts.batch.jobs = {job};
  opts.credentials = api::credentials::from_api_key("embed-key").value();
  std::atomic<std::uint64_t> handed{0};
  opts.downstream_factory = [&](caf::actor_system& sys) {
    return actors::spawn_outcome_downstream(sys, [&](const actors::item_batch& b) {
      std::vector<actors::item_outcome_ack> out;
      for (const auto& it : b.items) {
        actors::item_outcome_ack a{
            it.accounting_entry_id, it.sequence, api::item_status::successful, {}};
        a.fields.external_id = "ERP-" + std::to_string(it.sequence);
        out.push_back(std::move(a));
      }
      handed += b.items.size();
      return std::optional{std::move(out)};
    });
  };
  std::optional<writeback::report> wb;
  opts.after_batch = [&](export_items::stage& stage, const actors::batch_report&) {
    writeback::options o;
    o.complete = true;
    o.jobs = {job};
    auto r = stage.write_back(o);
    ASSERT_TRUE(r.ok());
    wb = std::move(r.value());
  };
  auto run = pipeline::run_stage(cfg, opts);
  ASSERT_TRUE(run.ok()) << run.err().message;
  ASSERT_TRUE(run->all_complete());
  ASSERT_TRUE(wb.has_value());
  ASSERT_EQ(wb->jobs.size(), 1u);
  EXPECT_EQ(wb->jobs[0].completion, "completed") << wb->jobs[0].stop_message;
  EXPECT_EQ(wb->jobs[0].reported, handed.load());
  const auto counts = (*sim)->write_back(job);
  EXPECT_EQ(counts.item_updates.size(), handed.load());
  for (const auto& [id, n] : counts.item_updates)
    EXPECT_EQ(n, 1u);
  EXPECT_EQ(counts.events.at("completed"), 1u);
  std::uint64_t successful = 0;
  for (const auto& it : (*sim)->items_of(job))
    if (it.status == api::item_status::successful) ++successful;
  EXPECT_GE(successful, handed.load());

  // Again: nothing is handed on, nothing sent, the completion is already recorded.
  wb.reset();
  handed = 0;
  run = pipeline::run_stage(cfg, opts);
  ASSERT_TRUE(run.ok());
  ASSERT_TRUE(wb.has_value());
  EXPECT_EQ(wb->jobs[0].completion, "already_recorded");
  EXPECT_EQ(handed.load(), 0u);
  EXPECT_EQ((*sim)->write_back(job).events.at("completed"), 1u);
  auto store = storage::state_store::open(dir.path());
  ASSERT_TRUE(store.ok());
  EXPECT_TRUE((*store)->verify()->empty());
}

}  // namespace
}  // namespace ei
