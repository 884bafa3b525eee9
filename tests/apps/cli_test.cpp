// The export-items binary as a user runs it: exit codes, summary, output, the status
// command, and that credentials never appear in anything it prints.
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include "tests/support/child_process.hpp"
#include "tests/support/temp_dir.hpp"

#include "simulator/simulator.hpp"

namespace ei {
namespace {

namespace fs = std::filesystem;
constexpr const char* kKey = "cli-test-secret-key-4711";

using run_result = ei::testing::child_result;

using ei::testing::temp_dir;

using ei::testing::slurp;

/// Starts `bin` with `args` and `env` (added to a minimal environment); stdout and stderr go
/// to dir/stdout.txt and dir/stderr.txt.
pid_t start(const std::string& bin, const std::vector<std::string>& args,
            const std::vector<std::string>& env, const fs::path& dir) {
  return ei::testing::start_child(bin, args, env, {dir / "stdout.txt", dir / "stderr.txt", {}});
}

/// Waits for `pid` (SIGKILLed after `limit`); its exit code (-SIGNAL when a signal ended it).
int wait_for(pid_t pid, std::chrono::seconds limit = std::chrono::seconds(120)) {
  return ei::testing::wait_child(pid, limit, "export-items");
}

/// Runs `bin` with `args` and `env` (added to a minimal environment), bounded in time.
run_result run_bin(const std::string& bin, const std::vector<std::string>& args,
                   const std::vector<std::string>& env, const fs::path& dir) {
  return ei::testing::run_child(bin, args, env, {dir / "stdout.txt", dir / "stderr.txt", {}},
                                std::chrono::seconds(120), "export-items");
}

/// The binary users run.
run_result run(const std::vector<std::string>& args, const std::vector<std::string>& env,
               const fs::path& dir) {
  return run_bin(EI_EXPORT_ITEMS_BIN, args, env, dir);
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

TEST(Cli, VersionNamesOursAndTheLibrariesThatDecideBehaviour) {
  temp_dir dir;
  auto r = run({"--version"}, {}, dir.path());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  for (const char* want : {"export-items 0.", "CAF 0.17.", "RocksDB 7.", "simdjson 3.", "Boost 1."})
    EXPECT_NE(r.out.find(want), std::string::npos) << want << " in " << r.out;
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
  auto crashed =
      run_bin(EI_EXPORT_ITEMS_CRASHPOINTS_BIN, args,
              {std::string("PLEO_API_KEY=") + kKey, "EI_CRASH_AT=after_page_commit:4"}, dir.path());
  ASSERT_EQ(crashed.exit_code, -SIGKILL) << "expected SIGKILL at the crash point: " << crashed.err;
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

// -- operators cannot destroy or duplicate data ------------------------------------------------

/// Names, sizes, modification times and contents (hashed) of `dir` and everything below it.
std::map<std::string, std::string> snapshot(const fs::path& dir) {
  std::map<std::string, std::string> out;
  const auto stamp = [](const fs::path& p) {
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0) return std::string("absent");
    return std::to_string(st.st_size) + "@" + std::to_string(st.st_mtim.tv_sec) + "." +
           std::to_string(st.st_mtim.tv_nsec);
  };
  out["."] = stamp(dir);
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    auto& v = out[fs::relative(e.path(), dir).string()];
    v = stamp(e.path());
    if (e.is_regular_file()) v += ":" + std::to_string(std::hash<std::string>{}(slurp(e.path())));
  }
  return out;
}

std::vector<std::string> run_args(const sim::simulator& s, const fs::path& state,
                                  const std::string& out, bool only_in_progress = true) {
  std::vector<std::string> a{"run",          "--base-url", s.base_url(), "--state-dir",
                             state.string(), "--out",      out,          "--quiet"};
  for (auto& j : job_args(s, only_in_progress))
    a.push_back(j);
  return a;
}

// `run --out - | head`: the reader goes away. The command must not die by SIGPIPE (no summary,
// no word of what happened): the write fails, the sink stops, the jobs end failed with the
// reason, and the exit code and summary say so. Nothing acknowledged was lost: the sink
// acknowledges only what it wrote.
TEST(Cli, AClosedStdoutEndsTheRunWithAnErrorNotBySigpipe) {
  auto s = start_sim(3, true);
  ASSERT_TRUE(s);
  temp_dir dir;
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ::close(fds[0]);  // nobody will ever read
  const auto err_path = dir.path() / "stderr.txt";
  const pid_t pid = ei::testing::start_child(
      EI_EXPORT_ITEMS_BIN, run_args(*s, dir.path() / "state", "-"),
      {std::string("PLEO_API_KEY=") + kKey}, {dir.path() / "unused.txt", err_path, {}, fds[1]});
  ::close(fds[1]);
  const int code = wait_for(pid, std::chrono::seconds(60));
  const auto err = slurp(err_path);
  EXPECT_NE(code, -SIGPIPE) << err;
  EXPECT_EQ(code, 1) << err;
  EXPECT_NE(err.find("Broken pipe"), std::string::npos) << err;
  const auto at = err.find('{');
  ASSERT_NE(at, std::string::npos) << "no summary: " << err;
  auto summary = nlohmann::json::parse(err.substr(at), nullptr, false);
  ASSERT_FALSE(summary.is_discarded()) << err;
  EXPECT_GT(summary["totals"]["failed"].get<int>(), 0) << err;
}

TEST(Cli, ReadOnlyCommandsChangeNothing) {
  temp_dir dir;
  // A directory that is not a state store: a user's logs.
  const auto logs = dir.path() / "logs";
  fs::create_directories(logs);
  std::ofstream(logs / "app.log") << "application log\n";
  std::ofstream(logs / "LOG.old") << "older log\n";
  const auto with_dir = [](std::vector<std::string> c, const fs::path& d) {
    c.push_back("--state-dir");
    c.push_back(d.string());
    return c;
  };
  const std::string nil_job = "00000000-0000-4000-8000-000000000000";
  const auto before = snapshot(logs);
  for (const auto& c :
       std::vector<std::vector<std::string>>{{"status"},
                                             {"status", "--json"},
                                             {"state", "verify"},
                                             {"state", "inspect", "--job", nil_job}}) {
    auto r = run(with_dir(c, logs), {}, dir.path());
    EXPECT_EQ(r.exit_code, 2) << c[0] << ": " << r.err;
    EXPECT_NE(r.err.find("'" + logs.string() + "'"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("holds no export-items state store"), std::string::npos) << r.err;
    EXPECT_EQ(snapshot(logs), before) << c[0] << " changed " << logs;
  }
  auto missing = run(with_dir({"status"}, dir.path() / "missing"), {}, dir.path());
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("does not exist"), std::string::npos) << missing.err;
  EXPECT_FALSE(fs::exists(dir.path() / "missing"));

  // A real store: every read-only command works and leaves it exactly as it was.
  auto s = start_sim(1, true);
  ASSERT_TRUE(s);
  const auto state = dir.path() / "state";
  ASSERT_EQ(run(run_args(*s, state, (dir.path() / "items.ndjson").string()),
                {std::string("PLEO_API_KEY=") + kKey}, dir.path())
                .exit_code,
            0);
  const auto job = s->jobs().front().id.to_string();
  const auto store_before = snapshot(state);
  for (const auto& c : std::vector<std::vector<std::string>>{{"status"},
                                                             {"status", "--json"},
                                                             {"state", "verify"},
                                                             {"state", "inspect", "--job", job}}) {
    auto r = run(with_dir(c, state), {}, dir.path());
    EXPECT_EQ(r.exit_code, 0) << c[0] << ": " << r.err;
    EXPECT_EQ(snapshot(state), store_before) << c[0] << " changed the state directory";
  }
}

std::uint64_t committed_offset(const fs::path& out) {
  const auto text = slurp(fs::path(out.string() + ".committed"));
  EXPECT_TRUE(!text.empty() && text.back() == '\n') << "'" << text << "'";
  return text.empty() ? ~std::uint64_t{0} : std::stoull(text);
}

TEST(Cli, AnOutputFileIsBoundToItsStateDirectory) {
  auto s = start_sim(2, true);
  ASSERT_TRUE(s);
  temp_dir dir;
  const std::vector<std::string> env{std::string("PLEO_API_KEY=") + kKey};
  const auto outdir = dir.path() / "out";
  fs::create_directories(outdir);
  const auto out = outdir / "items.ndjson";
  const auto state1 = dir.path() / "state1";
  auto first = run(run_args(*s, state1, out.string()), env, dir.path());
  ASSERT_EQ(first.exit_code, 0) << first.err;
  ASSERT_GT(fs::file_size(out), 0U);
  // The commit file says how far the output is acknowledged: all of it, now.
  EXPECT_EQ(committed_offset(out), fs::file_size(out));

  // A fresh state directory with the same (non-empty) output: refused, nothing touched.
  const auto out_before = snapshot(outdir);
  const auto out_text = slurp(out);
  const auto state2 = dir.path() / "state2";
  auto again = run(run_args(*s, state2, out.string()), env, dir.path());
  EXPECT_EQ(again.exit_code, 2) << again.err;
  EXPECT_NE(again.err.find(state2.string()), std::string::npos) << again.err;
  EXPECT_NE(again.err.find(out.string()), std::string::npos) << again.err;
  EXPECT_NE(again.err.find("move the file away"), std::string::npos) << again.err;
  EXPECT_EQ(snapshot(outdir), out_before);
  EXPECT_FALSE(fs::exists(state2));

  // The state directory that wrote it with another output file, or stdout: refused too.
  const auto state1_before = snapshot(state1);
  const auto other = outdir / "other.ndjson";
  auto moved = run(run_args(*s, state1, other.string()), env, dir.path());
  EXPECT_EQ(moved.exit_code, 2) << moved.err;
  EXPECT_NE(moved.err.find(state1.string()), std::string::npos) << moved.err;
  EXPECT_NE(moved.err.find(out.string()), std::string::npos) << moved.err;
  EXPECT_NE(moved.err.find(other.string()), std::string::npos) << moved.err;
  EXPECT_FALSE(fs::exists(other));
  auto to_stdout = run(run_args(*s, state1, "-"), env, dir.path());
  EXPECT_EQ(to_stdout.exit_code, 2) << to_stdout.err;
  EXPECT_TRUE(to_stdout.out.empty());
  EXPECT_EQ(snapshot(state1), state1_before);
  EXPECT_EQ(snapshot(outdir), out_before);

  // An output that cannot be created is refused before the state directory is.
  const auto state3 = dir.path() / "state3";
  auto no_dir =
      run(run_args(*s, state3, (dir.path() / "missing" / "x.ndjson").string()), env, dir.path());
  EXPECT_EQ(no_dir.exit_code, 2) << no_dir.err;
  EXPECT_NE(no_dir.err.find("does not exist"), std::string::npos) << no_dir.err;
  EXPECT_FALSE(fs::exists(state3));

  // Another path to the same file (a symlink) is the same file: accepted, nothing duplicated.
  const auto link = dir.path() / "link.ndjson";
  fs::create_symlink(out, link);
  auto via_link = run(run_args(*s, state1, link.string()), env, dir.path());
  EXPECT_EQ(via_link.exit_code, 0) << via_link.err;
  EXPECT_EQ(slurp(out), out_text);
}

TEST(Cli, ASecondWriterOfTheOutputIsRefused) {
  auto s = start_sim(1, true);
  ASSERT_TRUE(s);
  temp_dir dir;
  const std::vector<std::string> env{std::string("PLEO_API_KEY=") + kKey};
  const auto out = dir.path() / "items.ndjson";
  const int holder = ::open(out.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(holder, 0);
  ASSERT_EQ(::flock(holder, LOCK_EX | LOCK_NB), 0);  // as another export-items would
  const auto state = dir.path() / "state";
  auto r = run(run_args(*s, state, out.string()), env, dir.path());
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("locked"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(out.string()), std::string::npos) << r.err;
  EXPECT_EQ(fs::file_size(out), 0U);
  EXPECT_FALSE(fs::exists(state));
  ::close(holder);
  auto after = run(run_args(*s, state, out.string()), env, dir.path());
  EXPECT_EQ(after.exit_code, 0) << after.err;
}

TEST(Cli, TheUserBinaryIgnoresCrashPoints) {
  auto s = start_sim(1, true);
  ASSERT_TRUE(s);
  temp_dir dir;
  const std::vector<std::string> env{std::string("PLEO_API_KEY=") + kKey,
                                     "EI_CRASH_AT=after_page_commit"};
  auto user =
      run(run_args(*s, dir.path() / "state", (dir.path() / "a.ndjson").string()), env, dir.path());
  EXPECT_EQ(user.exit_code, 0) << user.err;
  // The test build's binary does stop there (so the environment above was meaningful).
  auto test_build = run_bin(EI_EXPORT_ITEMS_CRASHPOINTS_BIN,
                            run_args(*s, dir.path() / "state2", (dir.path() / "b.ndjson").string()),
                            env, dir.path());
  EXPECT_EQ(test_build.exit_code, -SIGKILL) << test_build.err;
}

struct out_line {
  std::string job;
  std::string id;
  bool redelivery = false;
  std::uint64_t attempt = 0;
};

std::vector<out_line> parse_output(const fs::path& out) {
  std::vector<out_line> lines;
  std::ifstream in(out);
  for (std::string l; std::getline(in, l);) {
    auto j = nlohmann::json::parse(l);
    lines.push_back({j["jobId"], j["accountingEntryId"], j["redelivery"], j["attempt"]});
  }
  return lines;
}

/// A run that is still at work when it is signalled: a small job handing on one item at a
/// time (window 1) while a big one is still listing slowly (latency on every page).
struct slow_run {
  std::unique_ptr<sim::simulator> sim;
  temp_dir dir;
  fs::path out = dir.path() / "items.ndjson";
  fs::path state = dir.path() / "state";
  fs::path config = dir.path() / "slow.json";
  std::vector<std::string> env{std::string("PLEO_API_KEY=") + kKey};

  slow_run() {
    sim::sim_config c;
    c.api_key = kKey;
    c.seed = 77;
    c.jobs = 0;
    c.extra_jobs.push_back({});
    c.extra_jobs.back().items = 1500;
    c.extra_jobs.push_back({});
    c.extra_jobs.back().items = 6000;
    auto started = sim::simulator::start(c);
    EXPECT_TRUE(started.ok());
    if (started.ok()) sim = std::move(started.value());
    std::ofstream(config) << R"({"batch_size": 1, "credit_window": 1, "stop_timeout_ms": 20000})";
  }
  /// `slow`: one item per batch and in flight; otherwise the defaults (for the resumed run).
  std::vector<std::string> args(bool slow = true) const {
    auto a = run_args(*sim, state, out.string());
    a.insert(a.end(), {"--page-size", "200", "--listing", "cursor", "--ordering", "entry_id",
                       "--summary", (dir.path() / "summary.json").string()});
    if (slow) a.insert(a.end(), {"--config", config.string()});
    return a;
  }
  /// Waits until the output holds a whole line; false after `limit`.
  bool wait_for_lines(pid_t pid, std::chrono::seconds limit) const {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      if (slurp(out).find('\n') != std::string::npos) return true;
      if (::waitpid(pid, nullptr, WNOHANG) != 0) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
  }
  /// After the resumed run: every in-scope item exactly once; redeliveries flagged.
  void expect_every_item_exactly_once(bool allow_redeliveries) const {
    std::map<std::string, int> seen;
    for (const auto& l : parse_output(out)) {
      ++seen[l.job + "/" + l.id];
      if (l.redelivery) {
        EXPECT_TRUE(allow_redeliveries) << l.id;
        EXPECT_GE(l.attempt, 2U);
      } else {
        EXPECT_EQ(l.attempt, 1U);
      }
    }
    std::size_t expected = 0;
    for (const auto& j : sim->jobs())
      for (const auto& i : sim->items_of(j.id)) {
        if (i.status != api::item_status::pending && i.status != api::item_status::in_progress)
          continue;
        ++expected;
        EXPECT_EQ(seen[j.id.to_string() + "/" + i.accounting_entry_id.to_string()], 1)
            << i.accounting_entry_id.to_string();
      }
    EXPECT_EQ(seen.size(), expected);
  }
};

TEST(Cli, SigtermStopsGracefullyAndARerunResumes) {
  slow_run f;
  ASSERT_TRUE(f.sim);
  f.sim->set_latency(std::chrono::milliseconds(100));
  const pid_t pid = start(EI_EXPORT_ITEMS_BIN, f.args(), f.env, f.dir.path());
  ASSERT_TRUE(f.wait_for_lines(pid, std::chrono::seconds(60)))
      << slurp(f.dir.path() / "stderr.txt");
  ASSERT_EQ(::kill(pid, SIGTERM), 0);
  const auto signalled = std::chrono::steady_clock::now();
  const int code = wait_for(pid, std::chrono::seconds(60));
  const auto err = slurp(f.dir.path() / "stderr.txt");
  EXPECT_EQ(code, 3) << err;
  EXPECT_LT(std::chrono::steady_clock::now() - signalled, std::chrono::seconds(25));
  EXPECT_NE(err.find("SIGTERM received"), std::string::npos) << err;
  auto summary = nlohmann::json::parse(slurp(f.dir.path() / "summary.json"));
  EXPECT_GE(summary["totals"]["interrupted"].get<int>(), 1) << summary.dump(2);
  EXPECT_EQ(summary["totals"]["failed"].get<int>(), 0) << summary.dump(2);
  // Only whole lines, every one of them acknowledged: the drain left nothing in flight.
  const auto text = slurp(f.out);
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  EXPECT_EQ(committed_offset(f.out), text.size());
  const auto first_lines = parse_output(f.out);
  for (const auto& l : first_lines)
    EXPECT_FALSE(l.redelivery);

  f.sim->set_latency(std::chrono::milliseconds(0));
  auto resumed = run(f.args(false), f.env, f.dir.path());
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(committed_offset(f.out), fs::file_size(f.out));
  // What the first run wrote is still there, unchanged, at the start.
  EXPECT_EQ(slurp(f.out).substr(0, text.size()), text);
  f.expect_every_item_exactly_once(false);
}

// With `base_url: "embedded"` the simulator's threads run in the process too: they must not
// take SIGTERM either (it would end the process instead of stopping it gracefully).
TEST(Cli, SigtermStopsGracefullyWithTheEmbeddedSimulatorToo) {
  temp_dir dir;
  const auto out = dir.path() / "items.ndjson";
  const auto config = dir.path() / "embedded-slow.json";
  std::ofstream(config) << R"({"base_url": "embedded", "batch_size": 1, "credit_window": 1,
      "stop_timeout_ms": 20000, "embedded": {"seed": 7, "companies": 1, "jobs": 1,
      "items_per_job": 5000, "all_in_progress": true}})";
  const pid_t pid = start(
      EI_EXPORT_ITEMS_BIN,
      {"run", "--config", config.string(), "--discover", "--state-dir",
       (dir.path() / "state").string(), "--out", out.string(), "--quiet", "--ordering", "entry_id"},
      {}, dir.path());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (slurp(out).find('\n') == std::string::npos && ::waitpid(pid, nullptr, WNOHANG) == 0 &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_NE(slurp(out).find('\n'), std::string::npos) << slurp(dir.path() / "stderr.txt");
  ASSERT_EQ(::kill(pid, SIGTERM), 0);
  const int code = wait_for(pid, std::chrono::seconds(60));
  const auto err = slurp(dir.path() / "stderr.txt");
  EXPECT_EQ(code, 3) << err;
  EXPECT_NE(err.find("SIGTERM received"), std::string::npos) << err;
  const auto text = slurp(out);
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  EXPECT_EQ(committed_offset(out), text.size());
}

TEST(Cli, ASecondSignalStopsAtOnceAndARerunResumes) {
  slow_run f;
  ASSERT_TRUE(f.sim);
  f.sim->set_latency(std::chrono::milliseconds(100));
  const pid_t pid = start(EI_EXPORT_ITEMS_BIN, f.args(), f.env, f.dir.path());
  ASSERT_TRUE(f.wait_for_lines(pid, std::chrono::seconds(60)))
      << slurp(f.dir.path() / "stderr.txt");
  ASSERT_EQ(::kill(pid, SIGTERM), 0);
  // The second signal once the first was taken (the big job is still listing, slowly).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (slurp(f.dir.path() / "stderr.txt").find("SIGTERM received") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  ASSERT_EQ(::kill(pid, SIGINT), 0);
  const auto signalled = std::chrono::steady_clock::now();
  const int code = wait_for(pid, std::chrono::seconds(30));
  const auto err = slurp(f.dir.path() / "stderr.txt");
  EXPECT_EQ(code, 4) << err;
  EXPECT_LT(std::chrono::steady_clock::now() - signalled, std::chrono::seconds(3));
  EXPECT_NE(err.find("stopping at once"), std::string::npos) << err;
  EXPECT_LE(committed_offset(f.out), fs::file_size(f.out));

  f.sim->set_latency(std::chrono::milliseconds(0));
  auto resumed = run(f.args(false), f.env, f.dir.path());
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  const auto text = slurp(f.out);
  EXPECT_EQ(text.back(), '\n');
  EXPECT_EQ(committed_offset(f.out), text.size());
  f.expect_every_item_exactly_once(true);
}

}  // namespace
}  // namespace ei
