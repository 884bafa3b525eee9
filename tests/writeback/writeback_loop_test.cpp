// The whole loop against the simulator, as a user runs it: `run` -> outcomes -> `report` ->
// `complete`, then the simulator's item statuses, tracking fields, per-item update counts and
// the job's status and events; bad outcome lines; a job finished elsewhere (422); --fail-job.
#include <map>

#include <gtest/gtest.h>

#include "api/codec.hpp"
#include "api/http_client.hpp"
#include "simulator/simulator.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/writeback/cli.hpp"

namespace ei {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::cli_result;
using testing::run_cli;
using testing::temp_dir;

constexpr const char* kKey = "writeback-test-key";

class WriteBackLoop : public ::testing::Test {
 protected:
  void SetUp() override {
    sim::sim_config c;
    c.api_key = kKey;
    c.seed = 11;
    c.jobs = 2;
    c.companies = 2;
    c.items_per_job = 260;
    c.all_in_progress = true;
    auto s = sim::simulator::start(c);
    ASSERT_TRUE(s.ok());
    sim_ = std::move(s.value());
    for (const auto& j : sim_->jobs())
      jobs_.push_back(j.id.to_string());
    env_ = {std::string("PLEO_API_KEY=") + kKey};
  }

  std::vector<std::string> common(const std::string& cmd) {
    return {cmd, "--state-dir", (dir_.path() / "state").string(), "--base-url", sim_->base_url()};
  }

  cli_result run_stage() {
    auto args = common("run");
    for (const auto& j : jobs_) {
      args.push_back("--job");
      args.push_back(j);
    }
    for (std::string a :
         std::vector<std::string>{"--out", (dir_.path() / "items.ndjson").string(), "--quiet",
                                  "--summary", (dir_.path() / "run.json").string()})
      args.push_back(a);
    return run_cli(args, env_, dir_.path());
  }

  cli_result report(const std::vector<json>& lines, bool complete = false) {
    const auto in = dir_.path() / "outcomes.ndjson";
    testing::write_lines(in, lines);
    auto args = common("report");
    for (std::string a : std::vector<std::string>{"--outcomes", "-", "--summary",
                                                  (dir_.path() / "report.json").string()})
      args.push_back(a);
    if (complete) args.push_back("--complete-jobs");
    return run_cli(args, env_, dir_.path(), in.string());
  }

  cli_result complete(std::vector<std::string> extra = {}) {
    auto args = common("complete");
    args.push_back("--summary");
    args.push_back((dir_.path() / "complete.json").string());
    for (auto& e : extra)
      args.push_back(e);
    return run_cli(args, env_, dir_.path());
  }

  json summary(const char* name) { return json::parse(testing::slurp(dir_.path() / name)); }

  /// The job's items as Pleo now lists them (status and tracking fields).
  std::map<std::string, api::export_job_item> remote_items(const std::string& job) {
    api::client_config cc;
    cc.base_url = sim_->base_url();
    auto creds = api::credentials::from_api_key(kKey);
    auto client = api::http_client::create(cc, std::move(creds.value()));
    EXPECT_TRUE(client.ok());
    api::request req;
    req.path = "/v3/export-jobs/" + job + "/items";
    req.query = {{"limit", "10000"}};
    auto r = (*client)->request_sync(req);
    EXPECT_TRUE(r.ok());
    auto page = api::decode_job_items_reference(r->body, "test");
    EXPECT_TRUE(page.ok());
    std::map<std::string, api::export_job_item> out;
    for (auto& it : page->data)
      out[it.accounting_entry_id.to_string()] = it;
    return out;
  }

  sim::job_info job_info(const std::string& id) {
    for (const auto& j : sim_->jobs())
      if (j.id.to_string() == id) return j;
    return {};
  }

  temp_dir dir_{"ei-writeback-"};
  std::unique_ptr<sim::simulator> sim_;
  std::vector<std::string> jobs_;
  std::vector<std::string> env_;
};

TEST_F(WriteBackLoop, RunReportCompleteReachesPleoExactlyOnce) {
  auto r = run_stage();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto outcomes = testing::outcomes_for_output(testing::slurp(dir_.path() / "items.ndjson"));
  ASSERT_GT(outcomes.size(), 200u);

  r = report(outcomes);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto s = summary("report.json");
  EXPECT_EQ(s["lines"]["recorded"], outcomes.size());
  EXPECT_EQ(s["lines"]["refused"], 0);
  EXPECT_EQ(s["totals"]["reported"], outcomes.size());
  EXPECT_EQ(s["totals"]["jobsFinal"], 0);  // report alone does not complete

  // Every outcome reached Pleo once, with its tracking fields.
  std::map<std::string, std::map<std::string, json>> by_job;
  for (const auto& o : outcomes)
    by_job[o["jobId"]][o["accountingEntryId"]] = o;
  for (const auto& [job, items] : by_job) {
    auto remote = remote_items(job);
    const auto counts = sim_->write_back(*api::uuid::parse(job));
    for (const auto& [id, o] : items) {
      const auto& it = remote.at(id);
      EXPECT_EQ(api::to_string(it.status), o["status"].get<std::string>()) << id;
      if (o["status"] == "successful") {
        EXPECT_EQ(it.tracking.external_id, o["externalId"].get<std::string>());
        EXPECT_EQ(it.tracking.external_url, o["externalUrl"].get<std::string>());
        EXPECT_EQ(it.tracking.exported_at, o["exportedAt"].get<std::string>());
      } else {
        EXPECT_EQ(it.tracking.failure_reason_type, "invalid_vat_code");
        EXPECT_EQ(it.tracking.failure_reason, o["failureReason"].get<std::string>());
      }
      EXPECT_EQ(counts.item_updates.at(*api::uuid::parse(id)), 1u) << id;
    }
    EXPECT_EQ(counts.item_updates.size(), items.size());
    EXPECT_TRUE(counts.events.empty());
  }

  // Reporting the same outcomes again is a no-op: nothing is sent twice.
  r = report(outcomes);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(summary("report.json")["lines"]["duplicate"], outcomes.size());
  EXPECT_EQ(summary("report.json")["totals"]["updatesSent"], 0);

  r = complete();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const auto& job : jobs_) {
    const auto counts = sim_->write_back(*api::uuid::parse(job));
    EXPECT_EQ(counts.events.size(), 1u);
    EXPECT_EQ(counts.events.at("completed_with_errors"), 1u);
    EXPECT_EQ(job_info(job).status, api::job_status::completed_with_errors);
    for (const auto& [item, n] : counts.item_updates)
      EXPECT_EQ(n, 1u);
  }
  // A re-run completes nothing again and says so.
  r = complete();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("already completed_with_errors"), std::string::npos) << r.err;
  for (const auto& job : jobs_)
    EXPECT_EQ(sim_->write_back(*api::uuid::parse(job)).events.at("completed_with_errors"), 1u);
  r = run_cli({"state", "verify", "--state-dir", (dir_.path() / "state").string()}, env_,
              dir_.path());
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
}

TEST_F(WriteBackLoop, NotReadyUntilEveryItemHasAnOutcome) {
  ASSERT_EQ(run_stage().exit_code, 0);
  auto outcomes = testing::outcomes_for_output(testing::slurp(dir_.path() / "items.ndjson"));
  // Only successful outcomes, all but the last item of the first job.
  std::vector<json> some;
  std::string first_job = outcomes.front()["jobId"];
  std::size_t held_back = 0;
  for (auto& o : outcomes) {
    if (o["jobId"] != first_job) continue;
    o = testing::outcome_for(o["jobId"], o["accountingEntryId"], 0);
    some.push_back(o);
  }
  some.pop_back();
  ++held_back;
  auto r = report(some, /*complete=*/true);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto s = summary("report.json");
  EXPECT_EQ(s["jobs"][0]["completion"], "not_ready");
  EXPECT_EQ(s["jobs"][0]["awaitingOutcome"], held_back);
  EXPECT_TRUE(sim_->write_back(*api::uuid::parse(first_job)).events.empty());
  // The last one arrives: all successful -> completed.
  std::vector<json> last;
  for (auto& o : outcomes)
    if (o["jobId"] == first_job) last = {o};
  r = report(last, true);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(summary("report.json")["jobs"][0]["completion"], "completed");
  EXPECT_EQ(job_info(first_job).status, api::job_status::completed);
  EXPECT_EQ(sim_->write_back(*api::uuid::parse(first_job)).events.at("completed"), 1u);
}

TEST_F(WriteBackLoop, BadLinesAreRefusedByLineAndFieldValidOnesStillSent) {
  ASSERT_EQ(run_stage().exit_code, 0);
  auto outcomes = testing::outcomes_for_output(testing::slurp(dir_.path() / "items.ndjson"));
  const std::string job = outcomes[0]["jobId"];
  const std::string item = outcomes[0]["accountingEntryId"];
  std::vector<json> lines;
  lines.push_back(outcomes[0]);            // 1 ok
  lines.push_back(json("not an object"));  // 2 wrong type
  auto unknown_job = outcomes[1];
  unknown_job["jobId"] = "00000000-0000-4000-8000-000000000001";  // 3 unknown job
  lines.push_back(unknown_job);
  auto unknown_item = outcomes[1];
  unknown_item["accountingEntryId"] = job;  // 4 not an item of the job
  lines.push_back(unknown_item);
  auto pending = outcomes[2];
  pending["status"] = "pending";  // 5 not final
  lines.push_back(pending);
  auto conflict = outcomes[0];
  conflict = testing::outcome_for(job, item, 3);  // 6 a different second outcome (failed)
  lines.push_back(conflict);
  lines.push_back(outcomes[0]);  // 7 identical repeat: no-op
  auto no_status = outcomes[4];
  no_status.erase("status");  // 8 missing field
  lines.push_back(no_status);
  lines.push_back(outcomes[5]);  // 9 ok
  const auto in = dir_.path() / "outcomes.ndjson";
  testing::write_lines(in, lines);
  {
    std::ofstream o(in, std::ios::app);
    o << "{\"jobId\": tru\n";  // 10 not JSON
  }
  auto args = common("report");
  for (std::string a : std::vector<std::string>{"--outcomes", in.string(), "--summary",
                                                (dir_.path() / "report.json").string()})
    args.push_back(a);
  auto r = run_cli(args, env_, dir_.path());
  EXPECT_EQ(r.exit_code, 2) << r.err;
  auto s = summary("report.json");
  EXPECT_EQ(s["lines"]["read"], 10);
  EXPECT_EQ(s["lines"]["recorded"], 2);
  EXPECT_EQ(s["lines"]["duplicate"], 1);
  EXPECT_EQ(s["lines"]["refused"], 7);
  EXPECT_EQ(s["totals"]["reported"], 2);
  for (const char* expect :
       {":2: expected a JSON object", ":3: unknown job", ":4: field 'accountingEntryId'",
        ":5: field 'status': 'pending' is not a final status", ":6: item", "different outcome",
        ":8: field 'status' is required", ":10: not JSON"})
    EXPECT_NE(r.err.find(expect), std::string::npos) << expect << "\n" << r.err;
  // Only the two valid outcomes reached Pleo; the first one stands.
  std::uint32_t total = 0;
  for (const auto& j : jobs_)
    for (const auto& [id, n] : sim_->write_back(*api::uuid::parse(j)).item_updates)
      total += n;
  EXPECT_EQ(total, 2u);
  EXPECT_EQ(remote_items(job).at(item).status, api::item_status::successful);
  EXPECT_EQ(r.err.find(kKey), std::string::npos);
}

TEST_F(WriteBackLoop, AJobFinishedElsewhereStopsItsWriteBackWithATypedReason) {
  ASSERT_EQ(run_stage().exit_code, 0);
  auto outcomes = testing::outcomes_for_output(testing::slurp(dir_.path() / "items.ndjson"));
  const std::string job = outcomes[0]["jobId"];
  sim_->set_job_status(*api::uuid::parse(job), api::job_status::completed);
  std::vector<json> lines;
  for (const auto& o : outcomes)
    if (o["jobId"] == job) lines.push_back(o);
  auto r = report(lines, /*complete=*/true);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  auto s = summary("report.json");
  EXPECT_EQ(s["jobs"][0]["stopCode"], "EXPORT_JOB_STATUS_UNPROCESSABLE");
  EXPECT_EQ(s["jobs"][0]["reported"], 0);
  EXPECT_EQ(s["jobs"][0]["recorded"], lines.size());
  // `complete` stops at the same 422 and sends no event: the job is final in Pleo already.
  r = complete({"--job", job});
  EXPECT_EQ(r.exit_code, 1) << r.err;  // write-back still cannot finish: 422
  EXPECT_TRUE(sim_->write_back(*api::uuid::parse(job)).events.empty());
}

TEST_F(WriteBackLoop, FailJobSendsFailedOnceWithTheReasonType) {
  ASSERT_EQ(run_stage().exit_code, 0);
  const std::string job = jobs_[1];
  auto r = complete({"--job", job, "--fail-job", "accounting_system_unreachable", "--fail-reason",
                     "ERP down for maintenance"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(job_info(job).status, api::job_status::failed);
  EXPECT_EQ(sim_->write_back(*api::uuid::parse(job)).events.at("failed"), 1u);
  r = complete({"--job", job, "--fail-job", "accounting_system_unreachable"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("already failed"), std::string::npos) << r.err;
  EXPECT_EQ(sim_->write_back(*api::uuid::parse(job)).events.at("failed"), 1u);
  // Without --job, --fail-job is a usage error.
  EXPECT_EQ(complete({"--fail-job", "x"}).exit_code, 2);
}

}  // namespace
}  // namespace ei
