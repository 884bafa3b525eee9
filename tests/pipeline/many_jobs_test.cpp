// A batch of very many tiny jobs (issue 14): 20,000 jobs of 5 items over 2,000 companies in one
// run. Checks the output (every job's in-scope items, in order), the summary (one entry per
// job, streamed from the spool) and the one-job-per-company rule in the simulator's request
// log; the report keeps counters, not one outcome per job. Not timed: throughput and memory
// are measured by `make bench` (benchmarks/README.md). Under ASan/UBSan (EI_SANITIZED) the
// same checks run on 2,000 jobs, so the test stays within its budget there.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include "tests/support/temp_dir.hpp"

#include "pipeline/stage.hpp"
#include "simulator/simulator.hpp"

namespace ei {
namespace {

namespace fs = std::filesystem;
constexpr const char* kKey = "many-jobs-test-key";
#ifdef EI_SANITIZED
constexpr std::uint32_t kJobs = 2000;
constexpr std::uint32_t kCompanies = 200;
#else
constexpr std::uint32_t kJobs = 20000;
constexpr std::uint32_t kCompanies = 2000;
#endif

TEST(ManyJobs, TwentyThousandTinyJobsAllCompleteOnePerCompanyAtATime) {
  sim::sim_config c;
  c.seed = 14;
  c.jobs = kJobs;
  c.companies = kCompanies;
  c.items_per_job = 5;
  c.all_in_progress = true;
  c.api_key = kKey;
  auto started = sim::simulator::start(c);
  ASSERT_TRUE(started.ok()) << started.err().message;
  auto& s = *started.value();

  std::vector<api::uuid> jobs;
  for (const auto& j : s.jobs())
    jobs.push_back(j.id);
  ASSERT_EQ(jobs.size(), kJobs);

  ei::testing::temp_dir dir;
  pipeline::stage_config cfg;
  cfg.base_url = s.base_url();
  cfg.settings.ordering = storage::ordering_mode::entry_id;
  cfg.settings.request_timeout = std::chrono::seconds(60);
  cfg.http.request_timeout = std::chrono::seconds(60);
  cfg.store.sync = storage::sync_policy::none;  // not a durability test
  pipeline::run_options o;
  o.state_dir = (dir.path() / "state").string();
  o.out = (dir.path() / "out.ndjson").string();
  o.batch.jobs = jobs;
  o.credentials = api::credentials::from_api_key(kKey).value();
  o.keep_outcomes = false;  // as the `run` command does
  s.clear_request_log();

  auto report = pipeline::run_stage(cfg, o);
  ASSERT_TRUE(report.ok()) << report.err().message;
  EXPECT_TRUE(report->all_complete());
  EXPECT_FALSE(report->interrupted());
  EXPECT_TRUE(report->batch.jobs.empty()) << "outcomes were kept in memory";
  EXPECT_EQ(report->batch.total, kJobs);
  EXPECT_EQ(report->batch.complete, kJobs);
  EXPECT_EQ(report->batch.failed, 0U);
  EXPECT_EQ(report->batch.finished.size(), kJobs);

  // The output: each job's in-scope items, in id order, sequence 1.. per job.
  std::map<std::string, std::vector<std::string>> got;
  {
    std::ifstream in(dir.path() / "out.ndjson");
    std::string text;
    while (std::getline(in, text)) {
      auto j = nlohmann::json::parse(text);
      auto& ids = got[j["jobId"].get<std::string>()];
      EXPECT_EQ(j["sequence"].get<std::uint64_t>(), ids.size() + 1);
      EXPECT_FALSE(j["redelivery"].get<bool>());
      ids.push_back(j["accountingEntryId"].get<std::string>());
    }
  }
  std::uint64_t expected_lines = 0, got_lines = 0;
  std::size_t wrong_jobs = 0;
  for (const auto& job : jobs) {
    std::vector<api::uuid> scoped;
    for (const auto& i : s.items_of(job))
      if (i.status == api::item_status::pending || i.status == api::item_status::in_progress)
        scoped.push_back(i.accounting_entry_id);
    std::sort(scoped.begin(), scoped.end());
    std::vector<std::string> want;
    for (const auto& id : scoped)
      want.push_back(id.to_string());
    expected_lines += want.size();
    auto it = got.find(job.to_string());
    const std::vector<std::string> none;
    if ((it == got.end() ? none : it->second) != want) ++wrong_jobs;
  }
  for (const auto& [job, ids] : got)
    got_lines += ids.size();
  EXPECT_EQ(wrong_jobs, 0U) << "jobs whose output is not their in-scope items in id order";
  EXPECT_EQ(got_lines, expected_lines);
  EXPECT_GT(expected_lines, 0U);

  // The summary: one entry per job, every one complete, totals that add up.
  std::ostringstream text;
  pipeline::write_summary(text, *report);
  auto summary = nlohmann::json::parse(text.str());
  ASSERT_EQ(summary["jobs"].size(), kJobs);
  std::set<std::string> in_summary;
  std::uint64_t emitted = 0;
  for (const auto& e : summary["jobs"]) {
    EXPECT_EQ(e["result"], "complete");
    in_summary.insert(e["jobId"].get<std::string>());
    emitted += e["emitted"].get<std::uint64_t>();
    EXPECT_EQ(e["acked"], e["inScope"]);
  }
  EXPECT_EQ(in_summary.size(), kJobs);
  EXPECT_EQ(emitted, expected_lines);
  EXPECT_EQ(summary["totals"]["jobs"], kJobs);
  EXPECT_EQ(summary["totals"]["complete"], kJobs);
  EXPECT_EQ(summary["totals"]["emitted"], expected_lines);

  // The per-company rule, from the simulator's request log: per company, the jobs' item
  // listing windows never overlap. Every job was listed (each has a window).
  struct window {
    std::chrono::steady_clock::time_point first, last;
  };
  std::map<api::uuid, std::map<api::uuid, window>> by_company;
  std::size_t listed_jobs = 0;
  for (const auto& r : s.request_log()) {
    if (!r.job_id || !r.company_id || r.endpoint != "items") continue;
    auto [pos, fresh] =
        by_company[*r.company_id].try_emplace(*r.job_id, window{r.received, r.finished});
    if (fresh) {
      ++listed_jobs;
      continue;
    }
    pos->second.first = std::min(pos->second.first, r.received);
    pos->second.last = std::max(pos->second.last, r.finished);
  }
  EXPECT_EQ(listed_jobs, kJobs);
  EXPECT_EQ(by_company.size(), kCompanies);
  std::size_t overlaps = 0;
  for (auto& [company, windows] : by_company) {
    std::vector<window> ws;
    for (auto& [job, w] : windows)
      ws.push_back(w);
    std::sort(ws.begin(), ws.end(), [](auto& a, auto& b) { return a.first < b.first; });
    for (std::size_t i = 1; i < ws.size(); ++i)
      if (ws[i - 1].last > ws[i].first) ++overlaps;
  }
  EXPECT_EQ(overlaps, 0U) << "two jobs of one company ran at the same time";
}

}  // namespace
}  // namespace ei
