// The export-items binary as a user runs it: exit codes, summary, output, the status
// command, and that credentials never appear in anything it prints.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include "tests/support/temp_dir.hpp"

#include "simulator/simulator.hpp"

namespace ei {
namespace {

namespace fs = std::filesystem;
constexpr const char* kKey = "cli-test-secret-key-4711";

struct run_result {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

using ei::testing::temp_dir;

/// Runs the binary with `args` and `env` (added to a minimal environment), bounded in time.
run_result run(const std::vector<std::string>& args, const std::vector<std::string>& env,
               const fs::path& dir) {
  const auto out_path = dir / "stdout.txt";
  const auto err_path = dir / "stderr.txt";
  pid_t pid = ::fork();
  if (pid == 0) {
    int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(out, 1);
    ::dup2(err, 2);
    std::vector<char*> argv;
    std::string bin = EI_EXPORT_ITEMS_BIN;
    argv.push_back(bin.data());
    std::vector<std::string> a = args;
    for (auto& s : a)
      argv.push_back(s.data());
    argv.push_back(nullptr);
    std::vector<std::string> e = env;
    e.push_back("PATH=/usr/bin:/bin");
    std::vector<char*> envp;
    for (auto& s : e)
      envp.push_back(s.data());
    envp.push_back(nullptr);
    ::execve(bin.c_str(), argv.data(), envp.data());
    ::_exit(127);
  }
  run_result r;
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      ADD_FAILURE() << "export-items did not finish in time";
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = slurp(out_path);
  r.err = slurp(err_path);
  return r;
}

std::unique_ptr<sim::simulator> start_sim(std::uint32_t jobs, bool all_in_progress) {
  sim::sim_config c;
  c.api_key = kKey;
  c.seed = 31;
  c.jobs = jobs;
  c.companies = 3;
  c.items_per_job = 600;
  c.all_in_progress = all_in_progress;
  auto s = sim::simulator::start(c);
  EXPECT_TRUE(s.ok());
  return s.ok() ? std::move(s.value()) : nullptr;
}

std::vector<std::string> job_args(const sim::simulator& s, bool only_in_progress) {
  std::vector<std::string> a;
  for (auto& j : s.jobs()) {
    if (only_in_progress && j.status != api::job_status::in_progress) continue;
    a.push_back("--job");
    a.push_back(j.id.to_string());
  }
  return a;
}

TEST(Cli, CompletesJobsWritesSummaryAndStatusReflectsTheStore) {
  auto s = start_sim(3, true);
  ASSERT_TRUE(s);
  temp_dir dir;
  std::vector<std::string> args{"run",
                                "--base-url",
                                s->base_url(),
                                "--state-dir",
                                (dir.path() / "state").string(),
                                "--out",
                                (dir.path() / "items.ndjson").string(),
                                "--summary",
                                (dir.path() / "summary.json").string(),
                                "--page-size",
                                "100"};
  for (auto& a : job_args(*s, true))
    args.push_back(a);
  auto r = run(args, {std::string("PLEO_API_KEY=") + kKey}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto summary = nlohmann::json::parse(slurp(dir.path() / "summary.json"));
  EXPECT_EQ(summary["totals"]["complete"], 3);
  std::size_t lines = 0;
  std::ifstream in(dir.path() / "items.ndjson");
  for (std::string l; std::getline(in, l);)
    ++lines;
  EXPECT_EQ(lines, summary["totals"]["emitted"].get<std::size_t>());
  EXPECT_EQ(r.err.find(kKey), std::string::npos);

  auto st =
      run({"status", "--state-dir", (dir.path() / "state").string(), "--json"}, {}, dir.path());
  ASSERT_EQ(st.exit_code, 0) << st.err;
  auto jobs = nlohmann::json::parse(st.out);
  ASSERT_EQ(jobs.size(), 3U);
  for (auto& j : jobs) {
    EXPECT_EQ(j["phase"], "complete");
    EXPECT_EQ(j["ackedThrough"], j["orderSize"]);
    EXPECT_TRUE(j["lastError"].is_null());
  }
  auto text = run({"status", "--state-dir", (dir.path() / "state").string()}, {}, dir.path());
  EXPECT_EQ(text.exit_code, 0);
  EXPECT_NE(text.out.find("complete"), std::string::npos);
}

TEST(Cli, FailedJobGivesExitOneWhileOthersComplete) {
  auto s = start_sim(6, false);
  ASSERT_TRUE(s);
  temp_dir dir;
  std::vector<std::string> args{"run",
                                "--base-url",
                                s->base_url(),
                                "--state-dir",
                                (dir.path() / "state").string(),
                                "--out",
                                (dir.path() / "items.ndjson").string(),
                                "--quiet"};
  for (auto& a : job_args(*s, false))
    args.push_back(a);
  auto r = run(args, {std::string("PLEO_API_KEY=") + kKey}, dir.path());
  EXPECT_EQ(r.exit_code, 1) << r.err;
  auto summary = nlohmann::json::parse(r.err.substr(r.err.find('{')));
  EXPECT_GT(summary["totals"]["complete"].get<int>(), 0);
  EXPECT_GT(summary["totals"]["failed"].get<int>(), 0);
  for (auto& j : summary["jobs"]) {
    if (j["result"] == "failed") {
      EXPECT_EQ(j["reasonCode"], "job_not_in_progress");
    }
  }
}

TEST(Cli, UsageAndConfigurationErrorsExitTwoWithAClearMessage) {
  temp_dir dir;
  const std::string state = (dir.path() / "state").string();
  auto r = run({"run", "--state-dir", state, "--base-url", "embedded"}, {}, dir.path());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("no jobs"), std::string::npos) << r.err;

  r = run({"run", "--state-dir", state, "--discover", "--ordering", "random"}, {}, dir.path());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--ordering"), std::string::npos) << r.err;

  r = run({"run", "--state-dir", state, "--job", "not-a-uuid"}, {}, dir.path());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("not-a-uuid"), std::string::npos) << r.err;

  std::ofstream(dir.path() / "bad.json") << R"({"page_size": 10, "pagesize": 3})";
  r = run(
      {"run", "--state-dir", state, "--discover", "--config", (dir.path() / "bad.json").string()},
      {}, dir.path());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("'pagesize'"), std::string::npos) << r.err;

  r = run({"run", "--state-dir", state, "--discover", "--base-url", "http://127.0.0.1:9"}, {},
          dir.path());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("PLEO_API_KEY"), std::string::npos) << r.err;

  r = run({"run", "--discover"}, {}, dir.path());
  EXPECT_EQ(r.exit_code, 2);
}

TEST(Cli, WrongCredentialsFailTheJobWithoutEchoingTheSecret) {
  auto s = start_sim(1, true);
  ASSERT_TRUE(s);
  temp_dir dir;
  const std::string wrong = "wrong-secret-key-0815";
  std::vector<std::string> args{"run",
                                "--base-url",
                                s->base_url(),
                                "--state-dir",
                                (dir.path() / "state").string(),
                                "--out",
                                (dir.path() / "items.ndjson").string()};
  for (auto& a : job_args(*s, true))
    args.push_back(a);
  auto r = run(args, {"PLEO_API_KEY=" + wrong}, dir.path());
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("http_401"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find(wrong), std::string::npos);
  EXPECT_EQ(r.out.find(wrong), std::string::npos);
  r = run(args, {"PLEO_ACCESS_TOKEN=" + wrong}, dir.path());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err.find(wrong), std::string::npos);
}

TEST(Cli, EmbeddedDefaultRunsWithTheShippedConfig) {
  temp_dir dir;
  auto r = run({"run", "--config", std::string(EI_CONFIGS_DIR) + "/embedded.json", "--discover",
                "--state-dir", (dir.path() / "state").string(), "--out",
                (dir.path() / "items.ndjson").string(), "--quiet", "--ordering", "entry_id"},
               {}, dir.path());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  auto summary = nlohmann::json::parse(r.err.substr(r.err.find('{')));
  EXPECT_GE(summary["totals"]["complete"].get<int>(), 2);
}

TEST(Cli, StateVerifyAndInspect) {
  auto s = start_sim(2, true);
  ASSERT_TRUE(s);
  temp_dir dir;
  const auto state = (dir.path() / "state").string();
  std::vector<std::string> args{"run",
                                "--base-url",
                                s->base_url(),
                                "--state-dir",
                                state,
                                "--out",
                                (dir.path() / "items.ndjson").string(),
                                "--quiet"};
  for (auto& a : job_args(*s, true))
    args.push_back(a);
  ASSERT_EQ(run(args, {std::string("PLEO_API_KEY=") + kKey}, dir.path()).exit_code, 0);

  auto v = run({"state", "verify", "--state-dir", state}, {}, dir.path());
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
  EXPECT_NE(v.out.find("ok: 2 job(s)"), std::string::npos) << v.out;

  const auto job = s->jobs().front().id.to_string();
  auto i =
      run({"state", "inspect", "--state-dir", state, "--job", job, "--show", "3"}, {}, dir.path());
  EXPECT_EQ(i.exit_code, 0) << i.err;
  EXPECT_NE(i.out.find("phase         complete"), std::string::npos) << i.out;
  EXPECT_NE(i.out.find("#3  "), std::string::npos) << i.out;
  EXPECT_EQ(i.out.find("#4  "), std::string::npos) << i.out;

  auto unknown = run(
      {"state", "inspect", "--state-dir", state, "--job", "00000000-0000-4000-8000-000000000000"},
      {}, dir.path());
  EXPECT_EQ(unknown.exit_code, 1);

  // A directory that is not a state store is refused, clearly, and left alone.
  fs::create_directories(dir.path() / "not-a-store");
  std::ofstream(dir.path() / "not-a-store" / "notes.txt") << "hello";
  auto bad = run({"state", "verify", "--state-dir", (dir.path() / "not-a-store").string()}, {},
                 dir.path());
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("not-a-store"), std::string::npos) << bad.err;
  EXPECT_EQ(slurp(dir.path() / "not-a-store" / "notes.txt"), "hello");
}

TEST(Cli, ACrashDuringListingResumesFromTheLastCommittedCursor) {
  auto s = start_sim(1, true);
  ASSERT_TRUE(s);
  temp_dir dir;
  std::vector<std::string> args{"run",
                                "--base-url",
                                s->base_url(),
                                "--state-dir",
                                (dir.path() / "state").string(),
                                "--out",
                                (dir.path() / "items.ndjson").string(),
                                "--quiet",
                                "--page-size",
                                "50",
                                "--ordering",
                                "entry_id",
                                "--listing",
                                "cursor"};
  for (auto& a : job_args(*s, true))
    args.push_back(a);
  auto crashed = run(args, {std::string("PLEO_API_KEY=") + kKey, "EI_CRASH_AT=after_page_commit:4"},
                     dir.path());
  ASSERT_EQ(crashed.exit_code, -1) << "expected SIGKILL at the crash point: " << crashed.err;
  std::size_t first_run_pages = 0;
  for (auto& r : s->request_log())
    if (r.endpoint == "items") ++first_run_pages;
  EXPECT_GE(first_run_pages, 4U);
  s->clear_request_log();
  auto resumed = run(args, {std::string("PLEO_API_KEY=") + kKey}, dir.path());
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  std::vector<std::string> targets;
  for (auto& r : s->request_log())
    if (r.endpoint == "items") targets.push_back(r.target);
  ASSERT_FALSE(targets.empty());
  // The first listing request of the resumed run continues after page 4, not from the start.
  EXPECT_NE(targets.front().find("after="), std::string::npos) << targets.front();
  std::size_t from_start = 0;
  for (auto& t : targets)
    from_start += t.find("after=") == std::string::npos;
  EXPECT_EQ(from_start, 0U);
  EXPECT_EQ(targets.size(), 600U / 50U - 4U);
}

}  // namespace
}  // namespace ei
