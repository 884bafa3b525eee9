// The real API's edges (issue 11, part A), end to end against the in-process simulator: a page
// that fails is fetched again alone (not the listing), a refused `limit` is halved, cycles
// under changing cursor texts, a job that changes in Pleo while it runs, and loose mode (fields
// the stage does not read missing, null or retyped; other date forms; null statuses) giving
// exactly the output of strict mode; gzip data-layer pages giving the same output.
#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
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
  auto cfg = testing::stage_config_for(s);
  cfg.settings.page_retry_backoff = std::chrono::milliseconds(5);
  return cfg;
}

std::vector<api::uuid> job_ids(const sim::simulator& s) {
  std::vector<api::uuid> out;
  for (auto& j : s.jobs())
    out.push_back(j.id);
  return out;
}

/// The in-scope ids of a job in the order `mode` gives them, from the simulator's truth.
std::vector<std::string> expected_order(const sim::simulator& s, const api::uuid& job,
                                        storage::ordering_mode mode) {
  auto items = s.items_of(job);
  std::erase_if(items, [](const sim::item_truth& i) {
    return i.status != api::item_status::pending && i.status != api::item_status::in_progress;
  });
  std::sort(items.begin(), items.end(), [&](const sim::item_truth& a, const sim::item_truth& b) {
    if (mode == storage::ordering_mode::chronological && a.date_ms != b.date_ms)
      return a.date_ms < b.date_ms;
    return a.accounting_entry_id < b.accounting_entry_id;
  });
  std::vector<std::string> ids;
  for (auto& i : items)
    ids.push_back(i.accounting_entry_id.to_string());
  return ids;
}

std::vector<std::string> ids_of(const std::vector<line>& lines, const api::uuid& job) {
  std::vector<std::string> out;
  for (auto& l : lines)
    if (l.job == job.to_string()) out.push_back(l.id);
  return out;
}

const actors::job_outcome* outcome_of(const pipeline::run_report& r, const api::uuid& job) {
  for (auto& o : r.batch.jobs)
    if (o.job_id == job) return &o;
  return nullptr;
}

/// GETs of `endpoint` by request target, in arrival order.
std::vector<sim::request_record> requests_to(const sim::simulator& s, std::string_view endpoint) {
  std::vector<sim::request_record> out;
  for (auto& r : s.request_log())
    if (r.endpoint == endpoint) out.push_back(r);
  return out;
}

// --- retry a page, not a listing ----------------------------------------------------------

TEST(Edges, APageThatFailsOnceIsFetchedAgainAloneInTheSameListing) {
  // A 200 whose body is JSON cut short, or an HTML page (a gateway in front of the API): that
  // page, and only that page, is asked again; no other page is fetched twice, nothing restarts.
  for (const char* fault : {"items:malformed@nth=3", "items:html@nth=3"}) {
    for (auto mode : {actors::listing_mode::cursor, actors::listing_mode::parallel}) {
      SCOPED_TRACE(std::string(fault) + (mode == actors::listing_mode::cursor ? " cursor" : ""));
      auto s = start_sim(one_job(31, 1000, fault));
      ASSERT_TRUE(s);
      temp_dir dir;
      auto cfg = config_for(*s);
      cfg.settings.listing = mode;
      cfg.settings.ordering = storage::ordering_mode::entry_id;
      const auto job = job_ids(*s).front();
      auto report = pipeline::run_stage(cfg, options_for(dir, {job}));
      ASSERT_TRUE(report.ok()) << report.err().message;
      auto* o = outcome_of(*report, job);
      ASSERT_NE(o, nullptr);
      EXPECT_EQ(o->result, actors::job_result::complete) << o->reason;
      EXPECT_EQ(ids_of(testing::read_output_lines(dir.path() / "out.ndjson"), job),
                expected_order(*s, job, storage::ordering_mode::entry_id));
      std::map<std::string, int> by_target;
      std::string faulted;
      for (auto& r : requests_to(*s, "items")) {
        ++by_target[r.target];
        if (!r.fault.empty()) faulted = r.target;
      }
      ASSERT_FALSE(faulted.empty());
      EXPECT_EQ(by_target.size(), 10U);  // 10 pages of 100, each its own request
      for (auto& [target, n] : by_target)
        EXPECT_EQ(n, target == faulted ? 2 : 1) << target;
      EXPECT_EQ(o->stats.listed, 1000U) << "one listing epoch: nothing listed twice";
    }
  }
}

TEST(Edges, APageThatKeepsFailingFailsTheJobWithoutRestartingTheListing) {
  auto s = start_sim(one_job(32, 1000, "items:malformed@from=3"));
  ASSERT_TRUE(s);
  temp_dir dir;
  auto cfg = config_for(*s);
  cfg.settings.listing = actors::listing_mode::cursor;
  cfg.settings.page_attempts = 3;
  const auto job = job_ids(*s).front();
  auto report = pipeline::run_stage(cfg, options_for(dir, {job}));
  ASSERT_TRUE(report.ok()) << report.err().message;
  auto* o = outcome_of(*report, job);
  ASSERT_NE(o, nullptr);
  EXPECT_EQ(o->result, actors::job_result::failed);
  EXPECT_EQ(o->reason_code, "decode") << o->reason;
  EXPECT_NE(o->reason.find("listing page 2"), std::string::npos) << o->reason;
  // Pages 0 and 1 once, page 2 three times; no new epoch starting from page 0 again.
  const auto items = requests_to(*s, "items");
  ASSERT_EQ(items.size(), 5U);
  EXPECT_EQ(items[2].target, items[3].target);
  EXPECT_EQ(items[3].target, items[4].target);
  // Its committed pages stay: a re-run resumes after them.
  auto store = storage::state_store::open(dir.path() / "state");
  ASSERT_TRUE(store.ok()) << store.err().message;
  auto rec = (*store)->load_job(job);
  ASSERT_TRUE(rec.ok() && rec.value());
  EXPECT_EQ(rec.value()->pages_committed, 2U);
}

TEST(Edges, ARefusedLimitIsHalvedAndTheSmallerPagesServeTheWholeJob) {
  // The server refuses `limit` above 40: 100 and 50 are refused (400 naming `limit`), 25 is
  // taken, for the control-layer listing and, from there, the data-layer walk.
  for (auto mode : {actors::listing_mode::parallel, actors::listing_mode::cursor}) {
    auto c = one_job(33, 700);
    c.refuse_limit_above = 40;
    auto s = start_sim(c);
    ASSERT_TRUE(s);
    temp_dir dir;
    auto cfg = config_for(*s);
    cfg.settings.listing = mode;
    const auto job = job_ids(*s).front();
    auto report = pipeline::run_stage(cfg, options_for(dir, {job}));
    ASSERT_TRUE(report.ok()) << report.err().message;
    auto* o = outcome_of(*report, job);
    ASSERT_NE(o, nullptr);
    EXPECT_EQ(o->result, actors::job_result::complete) << o->reason;
    EXPECT_EQ(ids_of(testing::read_output_lines(dir.path() / "out.ndjson"), job),
              expected_order(*s, job, storage::ordering_mode::chronological));
    std::map<std::string, std::pair<int, int>> by_limit;  // limit -> (refused, served)
    for (auto* endpoint : {"items", "export_items"})
      for (auto& r : requests_to(*s, endpoint)) {
        const auto at = r.target.find("limit=");
        ASSERT_NE(at, std::string::npos) << r.target;
        const auto limit = r.target.substr(at + 6, r.target.find('&', at) - at - 6);
        (r.status == 400 ? by_limit[limit].first : by_limit[limit].second)++;
      }
    EXPECT_EQ(by_limit["100"], std::make_pair(1, 0));
    EXPECT_EQ(by_limit["50"], std::make_pair(1, 0));
    EXPECT_EQ(by_limit["25"].first, 0);
    EXPECT_GE(by_limit["25"].second, 2 * 28) << "both layers listed in pages of 25";
  }
}

TEST(Edges, ACursorThatChangesTextWhileItsItemsRepeatIsACycle) {
  // From the third page on, every endCursor leads back one page under a new text: cursor text
  // never repeats, the items do.
  auto s = start_sim(one_job(34, 1000, "items:cycle_fresh@from=3"));
  ASSERT_TRUE(s);
  temp_dir dir;
  auto cfg = config_for(*s);
  cfg.settings.listing = actors::listing_mode::cursor;
  const auto job = job_ids(*s).front();
  auto report = pipeline::run_stage(cfg, options_for(dir, {job}));
  ASSERT_TRUE(report.ok()) << report.err().message;
  auto* o = outcome_of(*report, job);
  ASSERT_NE(o, nullptr);
  EXPECT_EQ(o->result, actors::job_result::failed);
  EXPECT_EQ(o->reason_code, "cursor_cycle");
  EXPECT_NE(o->reason.find("already started an earlier page"), std::string::npos) << o->reason;
  EXPECT_FALSE(fs::exists(dir.path() / "out.ndjson") &&
               !testing::read_output_lines(dir.path() / "out.ndjson").empty());
}

TEST(Edges, DiscoveryDetectsACycleUnderFreshCursorTexts) {
  // Page 3 of the job list points back to page 2 under a new cursor text, again and again:
  // no cursor text repeats, but the pages bring no job not listed before.
  sim::sim_config c;
  c.seed = 78;
  c.jobs = 210;  // three pages of the job list (100 a page)
  c.companies = 210;
  c.items_per_job = 2;
  c.all_in_progress = true;
  c.faults = "jobs:cycle_fresh@from=3";
  auto s = start_sim(c);
  ASSERT_TRUE(s);
  temp_dir dir;
  auto opts = options_for(dir, {});
  opts.batch.discover = true;
  auto report = pipeline::run_stage(config_for(*s), opts);
  ASSERT_TRUE(report.ok()) << report.err().message;
  const auto seen = testing::discovery_cycle_outcome_of(*report);
  EXPECT_TRUE(seen.cycle_reported);
  EXPECT_EQ(seen.completed, 210U);
  EXPECT_LT(requests_to(*s, "jobs").size(), 12U) << "discovery ended soon after the cycle";
}

// --- a job that changes mid-run ---------------------------------------------------------

TEST(Edges, AJobThatExpiresMidDispatchStopsAndLosesNothing) {
  auto s = start_sim(one_job(35, 1000));
  ASSERT_TRUE(s);
  temp_dir dir;
  const auto job = job_ids(*s).front();
  const auto in_scope = expected_order(*s, job, storage::ordering_mode::entry_id).size();
  auto cfg = config_for(*s);
  cfg.settings.ordering = storage::ordering_mode::entry_id;
  cfg.settings.batch_size = 100;
  cfg.settings.credit_window = 100;  // one batch in flight at a time
  cfg.settings.job_check_interval = std::chrono::milliseconds(20);
  auto opts = options_for(dir, {job});
  // Acknowledge the first batch; when the second arrives the job expires in Pleo and the batch
  // is never acknowledged.
  auto batches = std::make_shared<std::atomic<int>>(0);
  sim::simulator* sim = s.get();
  opts.downstream_factory = [batches, sim, job](caf::actor_system& sys) {
    return actors::spawn_callback_downstream(sys, [batches, sim, job](const actors::item_batch&) {
      if (++*batches == 1) return true;
      if (*batches == 2) sim->expire_job(job);
      return false;
    });
  };
  auto report = pipeline::run_stage(cfg, opts);
  ASSERT_TRUE(report.ok()) << report.err().message;
  auto* o = outcome_of(*report, job);
  ASSERT_NE(o, nullptr);
  EXPECT_EQ(o->result, actors::job_result::failed);
  EXPECT_EQ(o->reason_code, "job_expired") << o->reason;
  EXPECT_NE(o->reason.find("handed on through sequence 200 and acknowledged through 100"),
            std::string::npos)
      << o->reason;
  EXPECT_EQ(o->stats.emitted, 200U);
  EXPECT_EQ(o->stats.acked, 100U);
  EXPECT_EQ(batches->load(), 2) << "nothing was handed on once the job had expired";
  {
    auto store = storage::state_store::open(dir.path() / "state");
    ASSERT_TRUE(store.ok()) << store.err().message;
    auto wm = (*store)->load_watermarks(job);
    ASSERT_TRUE(wm.ok());
    EXPECT_EQ(wm->acked_through, 100U);
    EXPECT_EQ(wm->dispatched_through, 200U);  // unacknowledged, not lost
    auto rec = (*store)->load_job(job);
    ASSERT_TRUE(rec.ok() && rec.value());
    EXPECT_EQ(rec.value()->failure_code, "job_expired");
  }
  // In progress again (say, re-opened): a re-run resumes it. Its open items read abandoned
  // now, so the ones handed on are reported, the rest skipped, the acknowledged ones stand.
  s->set_job_status(job, api::job_status::in_progress);
  auto again = pipeline::run_stage(cfg, options_for(dir, {job}));
  ASSERT_TRUE(again.ok()) << again.err().message;
  auto* o2 = outcome_of(*again, job);
  ASSERT_NE(o2, nullptr);
  EXPECT_EQ(o2->result, actors::job_result::complete) << o2->reason;
  EXPECT_EQ(o2->stats.acked, 100U);
  EXPECT_EQ(o2->stats.reported, 100U);
  EXPECT_EQ(o2->stats.in_scope, in_scope);
  EXPECT_EQ(o2->stats.acked + o2->stats.skipped_final_remotely + o2->stats.reported, in_scope);
}

TEST(Edges, ARetryAfterReachingPastTheJobsDeadlineIsNotWaitedFor) {
  // The job expires 60 s after its last action; the item listing answers 429 with
  // "Retry-After: 600" (within the 10-minute cap). Waiting would outlive the job, so the
  // request ends at once and the job stops without having waited (the test's own bound: 30 s).
  auto c = one_job(36, 300, "items:throttle=600@all");
  c.expires_in_seconds = 60;
  auto s = start_sim(std::move(c));
  ASSERT_TRUE(s);
  temp_dir dir;
  const auto job = job_ids(*s).front();
  auto cfg = config_for(*s);
  cfg.http.retry_after_cap = std::chrono::minutes(10);
  const auto started = std::chrono::steady_clock::now();
  auto report = pipeline::run_stage(cfg, options_for(dir, {job}));
  const auto took = std::chrono::steady_clock::now() - started;
  ASSERT_TRUE(report.ok()) << report.err().message;
  auto* o = outcome_of(*report, job);
  ASSERT_NE(o, nullptr);
  EXPECT_EQ(o->result, actors::job_result::failed);
  EXPECT_NE(o->reason.find("429"), std::string::npos) << o->reason;
  EXPECT_EQ(o->stats.emitted, 0U);
  EXPECT_LT(took, std::chrono::seconds(30))
      << "a Retry-After past the job's deadline was waited for";
  EXPECT_GE(requests_to(*s, "items").size(), 1U);
}

TEST(Edges, AJobFinishedElsewhereBetweenPhasesStopsBeforeItsItemsAreHandedOn) {
  // The job expires while the data layer is read (the data layer then answers 422): the job
  // is read again and stops as expired, not as an HTTP error; nothing was handed on.
  auto s = start_sim(one_job(36, 600, "export_items:expire_job@nth=2"));
  ASSERT_TRUE(s);
  temp_dir dir;
  const auto job = job_ids(*s).front();
  auto report = pipeline::run_stage(config_for(*s), options_for(dir, {job}));
  ASSERT_TRUE(report.ok()) << report.err().message;
  auto* o = outcome_of(*report, job);
  ASSERT_NE(o, nullptr);
  EXPECT_EQ(o->reason_code, "job_expired") << o->reason;
  EXPECT_NE(o->reason.find("no item was handed on"), std::string::npos) << o->reason;
  EXPECT_EQ(o->stats.emitted, 0U);

  // Completed by someone else once it is listed: the second read of the job (the first is the
  // verification before it starts) is at the boundary after the listing, and stops it there.
  // (By default a read younger than a second is not repeated at a boundary.)
  auto s2 = start_sim(one_job(37, 600, "job:complete_job@nth=2"));
  ASSERT_TRUE(s2);
  temp_dir dir2;
  const auto job2 = job_ids(*s2).front();
  auto cfg2 = config_for(*s2);
  cfg2.settings.job_check_fresh_for = std::chrono::milliseconds(0);  // read at every boundary
  auto report2 = pipeline::run_stage(cfg2, options_for(dir2, {job2}));
  ASSERT_TRUE(report2.ok()) << report2.err().message;
  auto* o2 = outcome_of(*report2, job2);
  ASSERT_NE(o2, nullptr);
  EXPECT_EQ(o2->reason_code, "job_finished_elsewhere") << o2->reason;
  EXPECT_EQ(o2->stats.emitted, 0U);
}

// --- loose mode -------------------------------------------------------------------------

TEST(Edges, LooseModeGivesExactlyTheOutputOfStrictModeInBothOrderings) {
  for (auto mode : {storage::ordering_mode::chronological, storage::ordering_mode::entry_id}) {
    std::vector<std::vector<line>> outputs;
    std::vector<api::contract_deviations> deviations;
    for (bool loose : {false, true}) {
      SCOPED_TRACE(std::string(storage::to_string(mode)) + (loose ? " loose" : " strict"));
      sim::sim_config c;
      c.seed = 40;
      c.jobs = 2;
      c.companies = 2;
      c.items_per_job = 700;
      c.all_in_progress = true;
      c.loose = loose;
      auto s = start_sim(c);
      ASSERT_TRUE(s);
      temp_dir dir;
      auto cfg = config_for(*s);
      cfg.settings.ordering = mode;
      auto opts = options_for(dir, {});
      opts.batch.discover = true;  // the job list too
      auto report = pipeline::run_stage(cfg, opts);
      ASSERT_TRUE(report.ok()) << report.err().message;
      EXPECT_TRUE(report->all_complete());
      api::contract_deviations d;
      for (auto& o : report->batch.jobs) {
        EXPECT_EQ(o.result, actors::job_result::complete) << o.reason;
        EXPECT_EQ(o.stats.undated, 0U);
        d.merge(o.stats.deviations);
      }
      auto lines = testing::read_output_lines(dir.path() / "out.ndjson");
      for (auto& j : s->jobs())
        EXPECT_EQ(ids_of(lines, j.id), expected_order(*s, j.id, mode));
      std::sort(lines.begin(), lines.end(),
                [](const line& a, const line& b) { return a.job + a.id < b.job + b.id; });
      outputs.push_back(std::move(lines));
      deviations.push_back(std::move(d));
    }
    ASSERT_EQ(outputs.size(), 2U);
    EXPECT_EQ(outputs[0].size(), outputs[1].size());
    EXPECT_TRUE(outputs[0] == outputs[1]) << "loose mode changed the output";
    EXPECT_TRUE(deviations[0].empty());
    std::set<std::string> paths;
    for (auto& d : deviations[1].by_path)
      paths.insert(d.path);
    for (const char* p : {"data[].status", "data[].exportJobId", "pagination.hasPreviousPage",
                          "pagination.currentRequestPagination"})
      EXPECT_TRUE(paths.contains(p)) << p;
    if (mode == storage::ordering_mode::chronological) {
      EXPECT_TRUE(paths.contains("data[].date"));
    }
  }
}

// --- content encoding (issue 11 item 6) ---------------------------------------------------

TEST(Edges, GzipDataLayerPagesGiveExactlyTheSameOutputWithFewerBytes) {
  // One chronological job, with http.accept_gzip on (the default) and off: the data-layer pages
  // (GET /v3/export-items) go out gzipped only when asked, nothing else is gzipped, and the
  // output is the same line for line.
  std::vector<std::vector<line>> outputs;
  std::vector<std::uint64_t> bytes;
  for (bool accept_gzip : {true, false}) {
    SCOPED_TRACE(accept_gzip ? "gzip" : "identity");
    auto s = start_sim(one_job(41, 700));
    ASSERT_TRUE(s);
    temp_dir dir;
    auto cfg = config_for(*s);
    cfg.settings.ordering = storage::ordering_mode::chronological;
    cfg.http.accept_gzip = accept_gzip;
    const auto job = job_ids(*s).front();
    auto report = pipeline::run_stage(cfg, options_for(dir, {job}));
    ASSERT_TRUE(report.ok()) << report.err().message;
    auto* o = outcome_of(*report, job);
    ASSERT_NE(o, nullptr);
    EXPECT_EQ(o->result, actors::job_result::complete) << o->reason;
    auto lines = testing::read_output_lines(dir.path() / "out.ndjson");
    EXPECT_EQ(ids_of(lines, job), expected_order(*s, job, storage::ordering_mode::chronological));
    outputs.push_back(std::move(lines));
    bytes.push_back(report->http.bytes_received);
    auto data_layer = requests_to(*s, "export_items");
    ASSERT_GE(data_layer.size(), 7U);  // 700 items in pages of 100
    for (auto& r : data_layer) {
      if (r.status == 200) {
        EXPECT_EQ(r.gzipped, accept_gzip) << r.target;
      }
    }
    for (auto& r : s->request_log()) {
      if (r.endpoint != "export_items") {
        EXPECT_FALSE(r.gzipped) << r.endpoint << " " << r.target;
      }
    }
  }
  ASSERT_EQ(outputs.size(), 2U);
  EXPECT_GT(outputs[0].size(), 500U);  // the in-scope items of 700
  EXPECT_TRUE(outputs[0] == outputs[1]) << "gzip changed the output";
  EXPECT_LT(bytes[0] * 2, bytes[1])
      << "gzip did not shrink the data-layer pass: " << bytes[0] << " bytes against " << bytes[1];
}

}  // namespace
}  // namespace ei
