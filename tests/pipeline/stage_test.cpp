// End-to-end tests of the stage against the in-process simulator: the exact in-scope set and
// order, determinism across server orders, pagination hazards, per-job failures, the
// per-company rule under concurrency, and the state store after a run.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include "tests/support/output_lines.hpp"
#include "tests/support/stage_fixture.hpp"
#include "tests/support/temp_dir.hpp"

#include "actors/sink.hpp"
#include "pipeline/stage.hpp"
#include "simulator/simulator.hpp"

namespace ei {
namespace {

namespace fs = std::filesystem;

using ei::testing::temp_dir;

using line = testing::output_line;

using testing::one_job;
using testing::options_for;
using testing::start_sim;

pipeline::stage_config config_for(const sim::simulator& s) {
  return testing::stage_config_for(s);
}

/// The expected output of one job: in-scope items ordered as the mode says.
std::vector<std::string> expected_order_of(std::vector<sim::item_truth> items,
                                           storage::ordering_mode mode);

std::vector<std::string> expected_order(const sim::simulator& s, const api::uuid& job,
                                        storage::ordering_mode mode) {
  return expected_order_of(s.items_of(job), mode);
}

std::vector<std::string> expected_order_of(std::vector<sim::item_truth> items,
                                           storage::ordering_mode mode) {
  std::vector<sim::item_truth> scoped;
  for (auto& i : items)
    if (i.status == api::item_status::pending || i.status == api::item_status::in_progress)
      scoped.push_back(i);
  std::sort(scoped.begin(), scoped.end(), [&](const sim::item_truth& a, const sim::item_truth& b) {
    if (mode == storage::ordering_mode::chronological && a.date_ms != b.date_ms)
      return a.date_ms < b.date_ms;
    return a.accounting_entry_id < b.accounting_entry_id;
  });
  std::vector<std::string> ids;
  for (auto& i : scoped)
    ids.push_back(i.accounting_entry_id.to_string());
  return ids;
}

std::vector<api::uuid> in_progress_jobs(const sim::simulator& s) {
  std::vector<api::uuid> out;
  for (auto& j : s.jobs())
    if (j.status == api::job_status::in_progress) out.push_back(j.id);
  return out;
}

const actors::job_outcome* outcome_of(const pipeline::run_report& r, const api::uuid& job) {
  for (auto& o : r.batch.jobs)
    if (o.job_id == job) return &o;
  return nullptr;
}

/// Requests the simulator saw on `endpoint`: by offset, and by cursor (`after=`).
std::pair<std::size_t, std::size_t> offset_and_cursor_requests(const sim::simulator& s,
                                                               std::string_view endpoint) {
  std::size_t offset = 0, cursor = 0;
  for (auto& r : s.request_log()) {
    if (r.endpoint != endpoint) continue;
    offset += r.target.find("offset=") != std::string::npos;
    cursor += r.target.find("after=") != std::string::npos;
  }
  return {offset, cursor};
}

void expect_exact_output(const sim::simulator& s, const api::uuid& job, storage::ordering_mode mode,
                         const std::vector<line>& lines) {
  std::vector<std::string> got;
  std::uint64_t seq = 0;
  for (auto& l : lines) {
    if (l.job != job.to_string()) continue;
    EXPECT_EQ(l.sequence, ++seq);
    EXPECT_EQ(l.attempt, 1U);
    EXPECT_FALSE(l.redelivery);
    EXPECT_TRUE(l.status == "pending" || l.status == "in_progress") << l.status;
    got.push_back(l.id);
  }
  EXPECT_EQ(got, expected_order(s, job, mode));
}

/// One job through the stage on its own simulator (`tune` adjusts the configuration): the job
/// must complete with exactly its in-scope items in `mode` order. The simulator stays up for
/// the caller's checks of its request log; `stats` are the job's.
struct exact_run {
  std::unique_ptr<sim::simulator> sim;
  actors::job_stats stats;
};
std::optional<exact_run> run_one_exactly(const sim::sim_config& c, storage::ordering_mode mode,
                                         const std::function<void(pipeline::stage_config&)>& tune) {
  exact_run out;
  out.sim = start_sim(c);
  if (!out.sim) {
    ADD_FAILURE() << "simulator did not start";
    return std::nullopt;
  }
  temp_dir dir;
  auto cfg = config_for(*out.sim);
  cfg.settings.ordering = mode;
  tune(cfg);
  auto jobs = in_progress_jobs(*out.sim);
  auto report = pipeline::run_stage(cfg, options_for(dir, jobs));
  if (!report.ok()) {
    ADD_FAILURE() << report.err().message;
    return std::nullopt;
  }
  auto* o = outcome_of(report.value(), jobs.front());
  if (o == nullptr) {
    ADD_FAILURE() << "no outcome for the job";
    return std::nullopt;
  }
  EXPECT_EQ(o->result, actors::job_result::complete) << o->reason;
  expect_exact_output(*out.sim, jobs.front(), mode,
                      testing::read_output_lines(dir.path() / "out.ndjson"));
  auto store = storage::state_store::open(dir.path() / "state");
  EXPECT_TRUE(store.ok()) << store.err().message;
  if (store.ok()) {
    auto problems = store.value()->verify();
    EXPECT_TRUE(problems.ok() && problems->empty())
        << (problems.ok() && !problems->empty() ? problems->front() : std::string{"verify failed"});
  }
  out.stats = o->stats;
  return out;
}

TEST(Stage, EmitsExactlyTheInScopeItemsInChronologicalOrder) {
  sim::sim_config c;
  c.seed = 7;
  c.jobs = 2;
  c.companies = 2;
  c.items_per_job = 1500;
  c.all_in_progress = true;
  auto s = start_sim(c);
  ASSERT_TRUE(s);
  temp_dir dir;
  auto jobs = in_progress_jobs(*s);
  ASSERT_EQ(jobs.size(), 2U);
  auto report = pipeline::run_stage(config_for(*s), options_for(dir, jobs));
  ASSERT_TRUE(report.ok()) << report.err().message;
  EXPECT_TRUE(report->all_complete());
  auto lines = testing::read_output_lines(dir.path() / "out.ndjson");
  for (auto& job : jobs) {
    expect_exact_output(*s, job, storage::ordering_mode::chronological, lines);
    auto* o = outcome_of(report.value(), job);
    ASSERT_NE(o, nullptr);
    EXPECT_EQ(o->stats.listed, 1500U);
    EXPECT_EQ(o->stats.emitted, o->stats.in_scope);
    EXPECT_EQ(o->stats.in_scope,
              expected_order(*s, job, storage::ordering_mode::chronological).size());
    EXPECT_GT(o->stats.by_remote_status[static_cast<int>(api::item_status::successful)], 0U);
  }
}

TEST(Stage, EntryIdOrderAndIdenticalOutputAcrossServerOrders) {
  std::vector<std::vector<line>> outputs;
  for (std::uint64_t order_seed : {11ULL, 99ULL}) {
    for (auto mode : {storage::ordering_mode::entry_id, storage::ordering_mode::chronological}) {
      sim::sim_config c;
      c.seed = 5;
      c.server_order_seed = order_seed;
      c.jobs = 1;
      c.items_per_job = 800;
      c.all_in_progress = true;
      auto s = start_sim(c);
      ASSERT_TRUE(s);
      temp_dir dir;
      auto cfg = config_for(*s);
      cfg.settings.ordering = mode;
      auto jobs = in_progress_jobs(*s);
      auto report = pipeline::run_stage(cfg, options_for(dir, jobs));
      ASSERT_TRUE(report.ok()) << report.err().message;
      auto lines = testing::read_output_lines(dir.path() / "out.ndjson");
      expect_exact_output(*s, jobs.front(), mode, lines);
      outputs.push_back(lines);
    }
  }
  ASSERT_EQ(outputs.size(), 4U);
  auto ids = [](const std::vector<line>& ls) {
    std::vector<std::string> v;
    for (auto& l : ls)
      v.push_back(l.id);
    return v;
  };
  // Same mode, different server order: identical output.
  EXPECT_EQ(ids(outputs[0]), ids(outputs[2]));
  EXPECT_EQ(ids(outputs[1]), ids(outputs[3]));
  EXPECT_NE(ids(outputs[0]), ids(outputs[1]));  // and the two modes really differ
}

struct hazard_case {
  std::string faults;
  bool completes;
  std::string code;
};

class StageHazards : public ::testing::TestWithParam<hazard_case> {};

TEST_P(StageHazards, HandledAsDesigned) {
  // The hazards are the cursor chain's: cursor listing meets each one as designed. Offset
  // listing (the default) never follows a cursor, so it must at least absorb every fault the
  // cursor listing absorbs, with the same exact output (a persistent fault may fail it or
  // send it back to cursors, which then fail as above).
  const auto& hc = GetParam();
  for (auto mode : {actors::listing_mode::cursor, actors::listing_mode::parallel}) {
    auto c = one_job(3, 1000, hc.faults);
    auto s = start_sim(c);
    ASSERT_TRUE(s);
    temp_dir dir;
    auto cfg = config_for(*s);
    cfg.settings.listing = mode;
    auto jobs = in_progress_jobs(*s);
    auto report = pipeline::run_stage(cfg, options_for(dir, jobs));
    ASSERT_TRUE(report.ok()) << report.err().message;
    auto* o = outcome_of(report.value(), jobs.front());
    ASSERT_NE(o, nullptr);
    if (hc.completes) {
      EXPECT_EQ(o->result, actors::job_result::complete) << o->reason;
      expect_exact_output(*s, jobs.front(), storage::ordering_mode::chronological,
                          testing::read_output_lines(dir.path() / "out.ndjson"));
    } else if (mode == actors::listing_mode::cursor) {
      EXPECT_EQ(o->result, actors::job_result::failed);
      EXPECT_EQ(o->reason_code, hc.code) << o->reason;
      EXPECT_FALSE(o->reason.empty());
    }
  }
}

// Every fault kind the simulator can inject: transient ones are absorbed (retries, listing
// restarts, deduplication) and the output is exact; persistent hazards fail the job alone with
// a typed reason.
INSTANTIATE_TEST_SUITE_P(
    FaultKinds, StageHazards,
    ::testing::Values(hazard_case{"items:status=500@nth=2", true, ""},
                      hazard_case{"items:status=503@rate=0.2", true, ""},
                      hazard_case{"export_items:status=502@nth=1,2", true, ""},
                      hazard_case{"items:throttle@nth=1,2", true, ""},
                      hazard_case{"items:throttle=0@nth=1,2", true, ""},
                      hazard_case{"job:throttle=0@nth=1", true, ""},
                      hazard_case{"items:latency=20ms@all", true, ""},
                      hazard_case{"items:reset@nth=2", true, ""},
                      hazard_case{"items:reset_mid_body@nth=2;items:truncate@nth=4", true, ""},
                      hazard_case{"export_items:truncate@nth=1", true, ""},
                      hazard_case{"items:malformed@nth=3", true, ""},
                      hazard_case{"export_items:malformed@nth=1", true, ""},
                      hazard_case{"items:cycle@nth=3", true, ""},
                      hazard_case{"items:cycle@all", false, "cursor_cycle"},
                      hazard_case{"items:empty_page@nth=2", true, ""},
                      hazard_case{"items:empty_page@from=2", false, "empty_pages"},
                      hazard_case{"items:duplicate@nth=2,4", true, ""},
                      hazard_case{"items:end_early@nth=2", true, ""},
                      hazard_case{"items:cycle_fresh@nth=3", true, ""},
                      hazard_case{"items:cycle_fresh@from=3", false, "cursor_cycle"},
                      hazard_case{"items:status=400@nth=3", false, "http_400"},
                      hazard_case{"items:end_early@all", false, "short_listing"},
                      hazard_case{"items:expired_cursor@nth=3", true, ""},
                      hazard_case{"items:expired_cursor@all", false, "cursor_rejected"},
                      hazard_case{"export_items:expired_cursor@nth=2", true, ""},
                      hazard_case{"items:status=503@all", false, "http_503"},
                      hazard_case{"items:expire_job@nth=3", false, "job_expired"}));

// Discovery pages through the in_progress jobs: a cursor that leads back to an earlier page
// (A -> B -> A, not only a page pointing at itself) ends discovery with a clear failure; the
// jobs found before it still run.
TEST(Stage, DiscoveryDetectsAnyCursorCycle) {
  sim::sim_config c;
  c.seed = 77;
  c.jobs = 250;  // three pages of 100 jobs
  c.companies = 250;
  c.items_per_job = 3;
  c.all_in_progress = true;
  c.faults = "jobs:cycle@from=3";  // page 3 points back to page 2's cursor, again and again
  auto s = start_sim(c);
  ASSERT_TRUE(s);
  temp_dir dir;
  auto opts = options_for(dir, {});
  opts.batch.discover = true;
  auto report = pipeline::run_stage(config_for(*s), opts);
  ASSERT_TRUE(report.ok()) << report.err().message;
  const auto seen = testing::discovery_cycle_outcome_of(*report);
  EXPECT_TRUE(seen.cycle_reported);
  EXPECT_EQ(seen.completed, 250U) << "every job was on the pages before the cycle";
}

TEST(Stage, ParallelOffsetListingGivesTheSameOutput) {
  for (const char* faults : {"", "items:empty_page@nth=3"}) {
    auto run = run_one_exactly(one_job(8, 2345, faults), storage::ordering_mode::chronological,
                               [](pipeline::stage_config& cfg) {
                                 cfg.settings.listing = actors::listing_mode::parallel;
                                 cfg.settings.parallel_requests = 6;
                               });
    ASSERT_TRUE(run);
    const auto [offset_requests, cursor_requests] = offset_and_cursor_requests(*run->sim, "items");
    EXPECT_EQ(offset_requests, 24U) << faults;  // 24 pages of 100, every one by offset
    if (std::string(faults).empty())
      EXPECT_EQ(cursor_requests, 0U);
    else
      EXPECT_GT(cursor_requests, 0U) << "a short offset listing must fall back to cursors";
  }
}

TEST(Stage, ParallelListingThatRepeatsAnItemFallsBackToCursors) {
  // Offset page 5 starts one item early: the count matches `total`, but one item is listed
  // twice and another not at all. The orderer's deduplication sees the repeat, and the job is
  // listed again with cursors, in both orders.
  for (auto mode : {storage::ordering_mode::entry_id, storage::ordering_mode::chronological}) {
    auto run = run_one_exactly(one_job(8, 2345, "items:duplicate@nth=5"), mode,
                               [](pipeline::stage_config& cfg) {
                                 cfg.settings.listing = actors::listing_mode::parallel;
                                 cfg.settings.parallel_requests = 4;
                               });
    ASSERT_TRUE(run);
    EXPECT_GT(offset_and_cursor_requests(*run->sim, "items").second, 0U)
        << "a repeated item must send the listing back to cursors";
    EXPECT_EQ(run->stats.duplicates, 0U);  // the cursor listing's count, not the offset one's
  }
}

TEST(Stage, DataLayerWalkUsesOffsetPagesAndFallsBackToCursors) {
  // chronological + parallel listing: the data layer's dates come by offset pages in flight.
  // A shifted offset page (an item twice, one missing, count unchanged) would leave an item
  // undated and out of place: the repeat is seen and the walk is done again with cursors.
  for (const char* faults : {"", "export_items:duplicate@nth=3"}) {
    auto run = run_one_exactly(one_job(12, 2345, faults), storage::ordering_mode::chronological,
                               [](pipeline::stage_config& cfg) {
                                 cfg.settings.parallel_requests = 4;
                                 cfg.settings.sort_run_items = 500;
                               });
    ASSERT_TRUE(run);
    EXPECT_EQ(run->stats.undated, 0U);
    const auto [offset_requests, cursor_requests] =
        offset_and_cursor_requests(*run->sim, "export_items");
    EXPECT_EQ(offset_requests, 24U) << faults;  // 24 pages of 100
    if (std::string(faults).empty())
      EXPECT_EQ(cursor_requests, 0U);
    else
      EXPECT_EQ(cursor_requests, 23U) << "the repeated item must send the walk back to cursors";
  }
}

TEST(Stage, SortedRunsSpilledToTheStoreGiveTheSameOrder) {
  // Small runs: the orderer spills and merges (scope, data-layer dates and the chronological
  // sort), and the output is exactly what the in-memory path gives; no runs are left behind.
  for (auto mode : {storage::ordering_mode::entry_id, storage::ordering_mode::chronological}) {
    auto run = run_one_exactly(one_job(21, 3001, "items:duplicate@nth=3"), mode,
                               [](pipeline::stage_config& cfg) {
                                 // the duplicate fault is a cursor's
                                 cfg.settings.listing = actors::listing_mode::cursor;
                                 cfg.settings.sort_run_items = 64;
                               });
    ASSERT_TRUE(run);
    EXPECT_EQ(run->stats.duplicates, 1U);  // the repeated item is counted once, emitted once
  }
}

TEST(Stage, StatusFlipBetweenPagesKeepsTheItemInScope) {
  auto c = one_job(3, 1000, "items:flip_status@nth=2,5");
  auto s = start_sim(c);
  ASSERT_TRUE(s);
  temp_dir dir;
  auto jobs = in_progress_jobs(*s);
  // The statuses as listed are the ones before the flips: the stage scopes by what it listed.
  const auto before = s->items_of(jobs.front());
  auto report = pipeline::run_stage(config_for(*s), options_for(dir, jobs));
  ASSERT_TRUE(report.ok());
  auto* o = outcome_of(report.value(), jobs.front());
  ASSERT_NE(o, nullptr);
  EXPECT_EQ(o->result, actors::job_result::complete) << o->reason;
  std::vector<std::string> got;
  for (auto& l : testing::read_output_lines(dir.path() / "out.ndjson"))
    got.push_back(l.id);
  EXPECT_EQ(got, expected_order_of(before, storage::ordering_mode::chronological));
  const auto after = s->items_of(jobs.front());
  EXPECT_NE(std::vector<sim::item_truth>(before).size(), 0U);
  std::size_t changed = 0;
  for (std::size_t i = 0; i < before.size(); ++i)
    changed += before[i].status != after[i].status;
  EXPECT_EQ(changed, 2U);  // the fault really changed two items while the listing ran
}

TEST(Stage, DuplicatesAcrossPagesAreCountedOnce) {
  auto c = one_job(3, 1000, "items:duplicate@nth=2,4");
  auto s = start_sim(c);
  ASSERT_TRUE(s);
  temp_dir dir;
  auto jobs = in_progress_jobs(*s);
  auto cfg = config_for(*s);
  cfg.settings.listing = actors::listing_mode::cursor;  // endCursor one item early
  auto report = pipeline::run_stage(cfg, options_for(dir, jobs));
  ASSERT_TRUE(report.ok());
  auto* o = outcome_of(report.value(), jobs.front());
  ASSERT_NE(o, nullptr);
  EXPECT_EQ(o->stats.duplicates, 2U);
  EXPECT_EQ(o->stats.listed, 1002U);
}

TEST(Stage, JobsNotInProgressFailAloneWithClearReasons) {
  sim::sim_config c;
  c.seed = 9;
  c.jobs = 10;
  c.companies = 5;
  c.items_per_job = 300;
  auto s = start_sim(c);
  ASSERT_TRUE(s);
  temp_dir dir;
  std::vector<api::uuid> all;
  for (auto& j : s->jobs())
    all.push_back(j.id);
  auto unknown = api::uuid::parse("00000000-0000-4000-8000-000000000000").value();
  all.push_back(unknown);
  auto report = pipeline::run_stage(config_for(*s), options_for(dir, all));
  ASSERT_TRUE(report.ok());
  EXPECT_FALSE(report->all_complete());
  ASSERT_EQ(report->batch.jobs.size(), all.size());
  auto lines = testing::read_output_lines(dir.path() / "out.ndjson");
  for (auto& j : s->jobs()) {
    auto* o = outcome_of(report.value(), j.id);
    ASSERT_NE(o, nullptr);
    if (j.status == api::job_status::in_progress) {
      EXPECT_EQ(o->result, actors::job_result::complete);
      expect_exact_output(*s, j.id, storage::ordering_mode::chronological, lines);
    } else {
      EXPECT_EQ(o->result, actors::job_result::failed);
      EXPECT_EQ(o->reason_code, "job_not_in_progress");
      EXPECT_NE(o->reason.find(j.status == api::job_status::pending ? "not been claimed" : "job"),
                std::string::npos)
          << o->reason;
    }
  }
  auto* u = outcome_of(report.value(), unknown);
  ASSERT_NE(u, nullptr);
  EXPECT_EQ(u->reason_code, "http_404");
  EXPECT_NE(u->reason.find("unknown job"), std::string::npos);
}

TEST(Stage, ManyJobsNeverRunTwoJobsOfOneCompanyAtOnce) {
  sim::sim_config c;
  c.seed = 21;
  c.jobs = 50;
  c.companies = 10;
  c.items_per_job = 400;
  c.all_in_progress = true;
  auto s = start_sim(c);
  ASSERT_TRUE(s);
  temp_dir dir;
  auto cfg = config_for(*s);
  cfg.settings.max_jobs = 8;
  auto jobs = in_progress_jobs(*s);
  ASSERT_EQ(jobs.size(), 50U);
  s->clear_request_log();
  auto report = pipeline::run_stage(cfg, options_for(dir, jobs));
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->all_complete());
  // From the simulator's log: each job's item-listing window, grouped by company.
  struct window {
    std::chrono::steady_clock::time_point first, last;
  };
  std::map<api::uuid, std::map<api::uuid, window>> by_company;
  std::set<api::uuid> concurrent_jobs_seen;
  for (auto& r : s->request_log()) {
    if (!r.job_id || !r.company_id || (r.endpoint != "items" && r.endpoint != "export_items"))
      continue;
    auto& w = by_company[*r.company_id][*r.job_id];
    if (w.first == std::chrono::steady_clock::time_point{} || r.received < w.first)
      w.first = r.received;
    w.last = std::max(w.last, r.finished);
  }
  EXPECT_EQ(by_company.size(), 10U);
  for (auto& [company, windows] : by_company) {
    std::vector<window> ws;
    for (auto& [job, w] : windows)
      ws.push_back(w);
    std::sort(ws.begin(), ws.end(), [](auto& a, auto& b) { return a.first < b.first; });
    for (std::size_t i = 1; i < ws.size(); ++i)
      EXPECT_LE(ws[i - 1].last, ws[i].first)
          << "two jobs of company " << company.to_string() << " overlapped";
  }
  auto lines = testing::read_output_lines(dir.path() / "out.ndjson");
  std::size_t expected = 0;
  for (auto& j : jobs)
    expected += expected_order(*s, j, storage::ordering_mode::chronological).size();
  EXPECT_EQ(lines.size(), expected);
}

TEST(Stage, StoreReflectsTheRunAndASecondRunIsANoOp) {
  sim::sim_config c;
  c.seed = 4;
  c.jobs = 2;
  c.items_per_job = 500;
  c.all_in_progress = true;
  auto s = start_sim(c);
  ASSERT_TRUE(s);
  temp_dir dir;
  auto jobs = in_progress_jobs(*s);
  auto opts = options_for(dir, jobs);
  auto first = pipeline::run_stage(config_for(*s), opts);
  ASSERT_TRUE(first.ok());
  const auto lines_after_first = testing::read_output_lines(dir.path() / "out.ndjson").size();
  {
    storage::store_options so;
    auto store = storage::state_store::open(opts.state_dir, so);
    ASSERT_TRUE(store.ok()) << store.err().message;
    auto records = (*store)->load_jobs();
    ASSERT_TRUE(records.ok());
    ASSERT_EQ(records->size(), 2U);
    for (auto& r : records.value()) {
      EXPECT_EQ(r.phase, storage::job_phase::complete);
      auto wm = (*store)->load_watermarks(r.job_id);
      ASSERT_TRUE(wm.ok());
      EXPECT_EQ(wm->acked_through, r.order_size);
      EXPECT_EQ(wm->dispatched_through, r.order_size);
    }
    auto problems = (*store)->verify();
    ASSERT_TRUE(problems.ok());
    EXPECT_TRUE(problems->empty()) << problems->front();
  }
  auto second = pipeline::run_stage(config_for(*s), opts);
  ASSERT_TRUE(second.ok());
  for (auto& o : second->batch.jobs)
    EXPECT_EQ(o.result, actors::job_result::already_complete);
  EXPECT_EQ(testing::read_output_lines(dir.path() / "out.ndjson").size(), lines_after_first);
}

TEST(Stage, LockedStateDirectoryIsAClearError) {
  sim::sim_config c;
  c.jobs = 1;
  c.items_per_job = 10;
  c.all_in_progress = true;
  auto s = start_sim(c);
  ASSERT_TRUE(s);
  temp_dir dir;
  auto opts = options_for(dir, in_progress_jobs(*s));
  auto holder = storage::state_store::open(opts.state_dir, {});
  ASSERT_TRUE(holder.ok());
  auto report = pipeline::run_stage(config_for(*s), opts);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.err().code, pipeline::run_errc::state_dir);
  EXPECT_NE(report.err().message.find(opts.state_dir), std::string::npos) << report.err().message;
}

TEST(Stage, InProcessDownstreamReceivesBatchesAndAcks) {
  sim::sim_config c;
  c.seed = 12;
  c.jobs = 2;
  c.companies = 2;
  c.items_per_job = 700;
  c.all_in_progress = true;
  auto s = start_sim(c);
  ASSERT_TRUE(s);
  temp_dir dir;
  auto jobs = in_progress_jobs(*s);
  auto opts = options_for(dir, jobs);
  auto received = std::make_shared<std::map<std::string, std::vector<std::string>>>();
  auto batches = std::make_shared<std::size_t>(0);
  opts.downstream_factory = [received, batches](caf::actor_system& sys) {
    return actors::spawn_callback_downstream(sys, [received, batches](const actors::item_batch& b) {
      ++*batches;
      for (auto& item : b.items) {
        EXPECT_EQ(item.job_id, b.job_id);
        (*received)[b.job_id.to_string()].push_back(item.accounting_entry_id.to_string());
      }
      return true;
    });
  };
  auto cfg = config_for(*s);
  cfg.settings.batch_size = 64;
  cfg.settings.credit_window = 128;
  auto report = pipeline::run_stage(cfg, opts);
  ASSERT_TRUE(report.ok()) << report.err().message;
  EXPECT_TRUE(report->all_complete());
  for (auto& job : jobs)
    EXPECT_EQ((*received)[job.to_string()],
              expected_order(*s, job, storage::ordering_mode::chronological));
  EXPECT_GT(*batches, 2 * 500 / 64U);  // batches really are bounded by batch_size
  EXPECT_FALSE(fs::exists(dir.path() / "out.ndjson"));
  // The acks were persisted by the sequencer: the store says every job is complete.
  auto store = storage::state_store::open(opts.state_dir, {});
  ASSERT_TRUE(store.ok());
  for (auto& job : jobs) {
    auto wm = (*store)->load_watermarks(job);
    auto rec = (*store)->load_job(job);
    ASSERT_TRUE(wm.ok() && rec.ok() && rec.value());
    EXPECT_EQ(wm->acked_through, rec.value()->order_size);
  }
}

TEST(Stage, CreditWindowBoundsWhatAStalledDownstreamReceives) {
  auto c = one_job(13, 2000);
  auto s = start_sim(c);
  ASSERT_TRUE(s);
  temp_dir dir;
  auto jobs = in_progress_jobs(*s);
  auto opts = options_for(dir, jobs);
  auto received = std::make_shared<std::atomic<std::size_t>>(0);
  opts.downstream_factory = [received](caf::actor_system& sys) {
    return actors::spawn_callback_downstream(sys, [received](const actors::item_batch& b) {
      *received += b.items.size();
      return false;  // never acknowledge
    });
  };
  auto cfg = config_for(*s);
  cfg.settings.batch_size = 100;
  cfg.settings.credit_window = 300;
  cfg.settings.request_timeout = std::chrono::milliseconds(600);
  auto report = pipeline::run_stage(cfg, opts);
  ASSERT_TRUE(report.ok()) << report.err().message;
  auto* o = outcome_of(report.value(), jobs.front());
  ASSERT_NE(o, nullptr);
  EXPECT_EQ(o->result, actors::job_result::failed);
  EXPECT_EQ(o->reason_code, "downstream_timeout") << o->reason;
  EXPECT_EQ(received->load(), 300U);
}

// A run that outlives several tokens: the simulator issues Bearer tokens of 250 ms and rotates
// them into a file; the stage reads PLEO_ACCESS_TOKEN_FILE's file again when it changes and
// after a 401 (retried once with the new token). The listing is stretched (cursor paging,
// 25 ms per page) over more than a second. The output is exact and no token appears in the
// summary.
TEST(Stage, ATokenThatExpiresMidRunIsRotatedFromItsFile) {
  temp_dir dir;
  auto token_file = (dir.path() / "token").string();
  auto c = one_job(41, 4000, "items:latency=25ms@all");
  c.token_lifetime_ms = 250;
  c.token_file = token_file;
  auto s = sim::simulator::start(c);
  ASSERT_TRUE(s.ok()) << s.err().message;
  auto& sim = *s.value();
  auto cfg = config_for(sim);
  cfg.settings.listing = actors::listing_mode::cursor;
  cfg.settings.ordering = storage::ordering_mode::entry_id;
  auto jobs = in_progress_jobs(sim);
  auto opts = options_for(dir, jobs);
  auto creds = api::credentials::from_token_file(token_file);
  ASSERT_TRUE(creds.ok()) << creds.err().message;
  opts.credentials = std::move(creds.value());
  auto report = pipeline::run_stage(cfg, opts);
  ASSERT_TRUE(report.ok()) << report.err().message;
  const auto* o = outcome_of(report.value(), jobs[0]);
  ASSERT_NE(o, nullptr);
  EXPECT_EQ(o->result, actors::job_result::complete) << o->reason_code << ": " << o->reason;
  std::vector<std::string> got;
  for (auto& l : testing::read_output_lines(opts.out))
    got.push_back(l.id);
  EXPECT_EQ(got, expected_order(sim, jobs[0], storage::ordering_mode::entry_id));
  EXPECT_GE(sim.stats().tokens_issued, 4u);  // the run outlived several tokens
  auto summary = pipeline::summary_json(report.value());
  EXPECT_EQ(summary.find("simtok-"), std::string::npos) << summary;
}

}  // namespace
}  // namespace ei
