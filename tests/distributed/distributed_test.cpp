// A distributed batch as separate processes on loopback: the real export-items binary as a
// coordinator and three workers (fork/exec, every port 0), the simulator in this process.
// Checked against the simulator's ground truth: every in-scope item of every job exactly once
// in the coordinator's output, at its sequence in the entry_id order — also after one worker
// is SIGKILLed and another SIGSTOPped mid-batch, and when the stopped one comes back as a
// zombie (it must be fenced and emit nothing).
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "simulator/simulator.hpp"

namespace ei {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
constexpr const char* kKey = "distributed-test-key-0815";

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class temp_dir {
 public:
  temp_dir() {
    std::random_device rd;
    path_ = fs::temp_directory_path() / ("ei-dist-" + std::to_string(rd()) + std::to_string(rd()));
    fs::create_directories(path_);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

/// One export-items process; killed (and reaped) when it goes out of scope.
class process {
 public:
  process(const std::vector<std::string>& args, const fs::path& out, const fs::path& err) {
    pid_ = ::fork();
    if (pid_ == 0) {
      int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(o, 1);
      ::dup2(e, 2);
      std::string bin = EI_EXPORT_ITEMS_BIN;
      std::vector<std::string> a = args;
      std::vector<char*> argv{bin.data()};
      for (auto& s : a)
        argv.push_back(s.data());
      argv.push_back(nullptr);
      std::string key = std::string("PLEO_API_KEY=") + kKey;
      std::string path = "PATH=/usr/bin:/bin";
      // Sanitizer settings (CMakeLists.txt: the CAF middleman suppressions) reach the children.
      const char* lsan = std::getenv("LSAN_OPTIONS");
      std::string lsan_env = std::string("LSAN_OPTIONS=") + (lsan ? lsan : "");
      char* envp[] = {key.data(), path.data(), lsan ? lsan_env.data() : nullptr, nullptr};
      ::execve(bin.c_str(), argv.data(), envp);
      ::_exit(127);
    }
  }
  ~process() {
    if (pid_ > 0 && !exited_) {
      ::kill(pid_, SIGKILL);
      ::kill(pid_, SIGCONT);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
  }
  process(const process&) = delete;
  process& operator=(const process&) = delete;

  pid_t pid() const { return pid_; }
  void signal(int sig) { ::kill(pid_, sig); }

  /// The exit code (-1 killed by a signal), or nullopt when still running at the deadline.
  std::optional<int> wait(std::chrono::milliseconds limit) {
    if (exited_) return code_;
    const auto deadline = std::chrono::steady_clock::now() + limit;
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
      std::this_thread::sleep_for(20ms);
    }
    exited_ = true;
    code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return code_;
  }

 private:
  pid_t pid_ = -1;
  bool exited_ = false;
  int code_ = -1;
};

/// Polls `file` until `pred(content)` holds; false at the deadline.
template <class Pred>
bool wait_until(const fs::path& file, Pred pred, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred(slurp(file))) return true;
    std::this_thread::sleep_for(25ms);
  }
  return false;
}

std::size_t count_lines(const std::string& text) {
  return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

struct cluster {
  temp_dir dir;
  std::unique_ptr<sim::simulator> sim;
  std::vector<std::string> job_ids;
  std::vector<std::string> coordinator_args;
  std::unique_ptr<process> coordinator;
  std::vector<std::unique_ptr<process>> workers;
  std::string address;

  fs::path out() const { return dir.path() / "items.ndjson"; }
  fs::path coordinator_log() const { return dir.path() / "coordinator.err"; }
  fs::path coordinator_out() const { return dir.path() / "coordinator.out"; }

  void start(std::uint32_t jobs, std::uint32_t companies, std::uint64_t items,
             const std::string& batch_size = "25", const std::string& credit_window = "50") {
    sim::sim_config c;
    c.api_key = kKey;
    c.seed = 4242;
    c.jobs = jobs;
    c.companies = companies;
    c.items_per_job = items;
    c.all_in_progress = true;
    c.threads = 2;
    auto s = sim::simulator::start(c);
    ASSERT_TRUE(s.ok());
    sim = std::move(s.value());
    std::vector<std::string> args{"coordinator",
                                  "--listen",
                                  "127.0.0.1:0",
                                  "--base-url",
                                  sim->base_url(),
                                  "--ledger-dir",
                                  (dir.path() / "ledger").string(),
                                  "--out",
                                  out().string(),
                                  "--summary",
                                  (dir.path() / "summary.json").string(),
                                  "--expected-workers",
                                  "3",
                                  "--max-jobs-per-worker",
                                  "2",
                                  "--heartbeat-ms",
                                  "200",
                                  "--worker-timeout-ms",
                                  "4000",
                                  "--ordering",
                                  "entry_id",
                                  "--page-size",
                                  "50",
                                  "--batch-size",
                                  batch_size,
                                  "--credit-window",
                                  credit_window};
    for (const auto& j : sim->jobs()) {
      job_ids.push_back(j.id.to_string());
      args.push_back("--job");
      args.push_back(j.id.to_string());
    }
    coordinator_args = std::move(args);
    launch();
  }

  /// Starts the coordinator (port 0) and three workers; also after a coordinator crash, with
  /// the same ledger, output and worker state directories.
  void launch() {
    workers.clear();
    std::error_code ec;
    fs::remove(coordinator_out(), ec);  // its first line must be the new port
    coordinator = std::make_unique<process>(coordinator_args, coordinator_out(), coordinator_log());
    std::string listening;
    ASSERT_TRUE(wait_until(
        coordinator_out(),
        [&](const std::string& text) {
          auto nl = text.find('\n');
          if (nl == std::string::npos) return false;
          listening = text.substr(0, nl);
          return true;
        },
        60s))
        << slurp(coordinator_log());
    ASSERT_EQ(listening.rfind("listening on ", 0), 0U) << listening;
    address = listening.substr(std::string("listening on ").size());
    for (int i = 0; i < 3; ++i) {
      const auto n = std::to_string(i);
      workers.push_back(std::make_unique<process>(
          std::vector<std::string>{"worker", "--coordinator", address, "--state-dir",
                                   (dir.path() / ("worker" + n)).string()},
          dir.path() / ("worker" + n + ".out"), dir.path() / ("worker" + n + ".err")));
    }
  }

  std::string logs() const {
    std::string all = "--- coordinator\n" + slurp(coordinator_log());
    for (int i = 0; i < 3; ++i)
      all += "--- worker " + std::to_string(i) + "\n" +
             slurp(dir.path() / ("worker" + std::to_string(i) + ".err"));
    return all.size() > 20000 ? all.substr(all.size() - 20000) : all;
  }

  /// Every in-scope item of every job exactly once, at its sequence in the entry_id order.
  void expect_exact_output() const {
    std::map<std::string, std::vector<std::pair<std::uint64_t, std::string>>> got;
    std::set<std::pair<std::string, std::string>> seen;
    std::size_t duplicates = 0;
    std::ifstream in(out());
    for (std::string line; std::getline(in, line);) {
      auto j = nlohmann::json::parse(line);
      const auto job = j["jobId"].get<std::string>();
      const auto id = j["accountingEntryId"].get<std::string>();
      if (!seen.insert({job, id}).second) ++duplicates;
      got[job].emplace_back(j["sequence"].get<std::uint64_t>(), id);
    }
    EXPECT_EQ(duplicates, 0U);
    for (const auto& job : job_ids) {
      auto truth = sim->items_of(*api::uuid::parse(job));
      std::vector<api::uuid> expected;
      for (const auto& t : truth)
        if (t.status == api::item_status::pending || t.status == api::item_status::in_progress)
          expected.push_back(t.accounting_entry_id);
      std::sort(expected.begin(), expected.end());
      const auto& lines = got[job];
      ASSERT_EQ(lines.size(), expected.size()) << "job " << job;
      for (std::size_t i = 0; i < lines.size(); ++i) {
        ASSERT_EQ(lines[i].first, i + 1) << "job " << job;
        ASSERT_EQ(lines[i].second, expected[i].to_string()) << "job " << job << " seq " << i + 1;
      }
    }
  }
};

TEST(Distributed, FortyJobsOverThreeWorkersGiveTheExactOutput) {
  cluster c;
  ASSERT_NO_FATAL_FAILURE(c.start(40, 10, 300));
  auto code = c.coordinator->wait(150s);
  ASSERT_TRUE(code.has_value()) << c.logs();
  EXPECT_EQ(*code, 0) << c.logs();
  auto summary = nlohmann::json::parse(slurp(c.dir.path() / "summary.json"));
  EXPECT_EQ(summary["complete"], 40);
  EXPECT_EQ(summary["failed"], 0);
  EXPECT_EQ(summary["requeued"], 0);
  std::cerr << "40 jobs x 300 items over 3 workers: " << summary["durationSeconds"] << " s, "
            << summary["itemsWritten"] << " items, " << summary["batches"] << " batches\n";
  ASSERT_NO_FATAL_FAILURE(c.expect_exact_output());
  // Workers leave once the coordinator drains them.
  for (auto& w : c.workers) {
    auto wc = w->wait(30s);
    ASSERT_TRUE(wc.has_value());
    EXPECT_EQ(*wc, 0) << c.logs();
  }
  EXPECT_EQ(slurp(c.coordinator_log()).find(kKey), std::string::npos);
}

/// The coordinator's log lines, split into words.
std::vector<std::vector<std::string>> log_lines(const std::string& log) {
  std::vector<std::vector<std::string>> lines;
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);) {
    std::istringstream words(line);
    std::vector<std::string> w;
    for (std::string word; words >> word;)
      w.push_back(word);
    lines.push_back(std::move(w));
  }
  return lines;
}

/// "coordinator: assigned job J epoch E to worker W (pid P) resuming after R"
struct assigned_line {
  std::string job;
  std::uint64_t epoch = 0;
  std::string worker;
  std::string pid;
};
std::vector<assigned_line> assignments_in(const std::string& log) {
  std::vector<assigned_line> out;
  for (const auto& w : log_lines(log))
    if (w.size() >= 11 && w[1] == "assigned" && w[2] == "job" && w[4] == "epoch")
      out.push_back({w[3], std::stoull(w[5]), w[8], w[10].substr(0, w[10].size() - 1)});
  return out;
}

TEST(Distributed, KilledAndStoppedWorkersLoseNothingAndTheZombieIsFenced) {
  cluster c;
  ASSERT_NO_FATAL_FAILURE(c.start(40, 10, 300, "10", "20"));
  c.sim->set_latency(5ms);  // stretches the batch so that the signals land mid-job
  std::map<std::string, std::size_t> in_scope;
  for (const auto& job : c.job_ids)
    for (const auto& t : c.sim->items_of(*api::uuid::parse(job)))
      in_scope[job] +=
          t.status == api::item_status::pending || t.status == api::item_status::in_progress;
  // Kill when a job of the first worker is part-way through the output (so that its resume
  // starts after acknowledged items); after a while, mid-batch is good enough.
  const auto victim = std::to_string(c.workers[0]->pid());
  const bool mid_job = wait_until(
      c.out(),
      [&](const std::string& out) {
        const auto log = slurp(c.coordinator_log());
        std::map<std::string, std::string> owner;
        for (const auto& a : assignments_in(log))
          owner[a.job] = a.pid;
        std::map<std::string, std::size_t> lines;
        for (std::size_t pos = out.find("{\"jobId\":\""); pos != std::string::npos;
             pos = out.find("{\"jobId\":\"", pos + 1))
          ++lines[out.substr(pos + 10, 36)];
        for (const auto& [job, n] : lines)
          if (owner[job] == victim && n > 0 && n < in_scope[job]) return true;
        return false;
      },
      20s);
  ASSERT_TRUE(wait_until(
      c.out(), [](const std::string& t) { return count_lines(t) >= 1; }, 120s))
      << c.logs();
  auto& killed = *c.workers[0];
  auto& zombie = *c.workers[1];
  killed.signal(SIGKILL);
  zombie.signal(SIGSTOP);
  // Slow responses keep the reassigned jobs running until the zombie is back.
  c.sim->set_latency(200ms);
  // The stopped worker is declared dead by the heartbeat deadline (its TCP connection stays
  // up) and its jobs go elsewhere with a higher epoch; only then it comes back.
  const std::string zombie_pid = std::to_string(zombie.pid());
  std::string zombie_id;
  ASSERT_TRUE(wait_until(
      c.coordinator_log(),
      [&](const std::string& t) {
        // "coordinator: worker W (pid P) declared dead: ..."
        for (const auto& w : log_lines(t))
          if (w.size() >= 6 && w[1] == "worker" && w[4] == zombie_pid + ")" && w[5] == "declared") {
            zombie_id = w[2];
            return true;
          }
        return false;
      },
      60s))
      << c.logs();
  const bool reassigned = wait_until(
      c.coordinator_log(),
      [&](const std::string& t) {
        // "coordinator: job J requeued (worker W ..."
        std::set<std::string> requeued;
        for (const auto& w : log_lines(t))
          if (w.size() >= 6 && w[1] == "job" && w[3] == "requeued" && w[5] == zombie_id)
            requeued.insert(w[2]);
        if (requeued.empty()) return true;  // it had no job running: nothing to reassign
        for (const auto& a : assignments_in(t))
          if (requeued.count(a.job) > 0 && a.epoch > 1) return true;
        return false;
      },
      60s);
  EXPECT_TRUE(reassigned) << "the stopped worker's jobs were not reassigned\n" << c.logs();
  zombie.signal(SIGCONT);
  // The zombie's first act is a heartbeat (or a batch of its old epoch): refused.
  EXPECT_TRUE(wait_until(
      c.coordinator_log(),
      [&](const std::string& t) {
        return t.find("fenced heartbeat from worker " + zombie_id) != std::string::npos ||
               t.find("from worker " + zombie_id + ": worker is not alive") != std::string::npos ||
               t.find("from worker " + zombie_id + ": stale epoch") != std::string::npos;
      },
      60s))
      << c.logs();
  c.sim->set_latency(0ms);

  // The zombie learns it was fenced and leaves on its own.
  auto zombie_code = zombie.wait(60s);
  ASSERT_TRUE(zombie_code.has_value()) << c.logs();
  EXPECT_EQ(*zombie_code, 3) << c.logs();

  auto code = c.coordinator->wait(150s);
  ASSERT_TRUE(code.has_value()) << c.logs();
  EXPECT_EQ(*code, 0) << c.logs();
  auto summary = nlohmann::json::parse(slurp(c.dir.path() / "summary.json"));
  EXPECT_EQ(summary["complete"], 40);
  EXPECT_GE(summary["requeued"].get<int>(), 1);
  const auto fenced = summary["fencedBatches"].get<int>() + summary["fencedOutcomes"].get<int>() +
                      summary["fencedHeartbeats"].get<int>();
  EXPECT_GE(fenced, 1) << summary.dump(2);
  std::uint64_t resumed_mid_job = 0;
  for (const auto& j : summary["jobs"])
    for (const auto& a : j["assignments"])
      if (a["epoch"].get<int>() > 1 && a["resumeFrom"].get<int>() > 0) ++resumed_mid_job;
  std::cerr << "killed mid-job " << mid_job << ", requeued " << summary["requeued"]
            << ", resumed mid-job " << resumed_mid_job << ", fenced batches "
            << summary["fencedBatches"] << " outcomes " << summary["fencedOutcomes"]
            << " heartbeats " << summary["fencedHeartbeats"] << ", duplicates skipped "
            << summary["itemsSkipped"] << ", " << summary["durationSeconds"] << " s\n";
  // Zero duplicates, zero losses: the output is exactly what one clean run gives.
  ASSERT_NO_FATAL_FAILURE(c.expect_exact_output());
  auto survivor = c.workers[2]->wait(30s);
  ASSERT_TRUE(survivor.has_value());
  EXPECT_EQ(*survivor, 0);
}

TEST(Distributed, ACrashedCoordinatorResumesFromItsLedger) {
  cluster c;
  ASSERT_NO_FATAL_FAILURE(c.start(40, 10, 300, "10", "20"));
  c.sim->set_latency(5ms);
  ASSERT_TRUE(wait_until(
      c.out(), [](const std::string& t) { return count_lines(t) >= 3000; }, 120s))
      << c.logs();
  c.coordinator->signal(SIGKILL);
  ASSERT_TRUE(c.coordinator->wait(30s).has_value());
  // Workers notice the coordinator is gone and leave (4), keeping their state directories.
  for (auto& w : c.workers) {
    auto code = w->wait(60s);
    ASSERT_TRUE(code.has_value()) << c.logs();
    EXPECT_EQ(*code, 4) << c.logs();
  }
  const auto lines_at_crash = count_lines(slurp(c.out()));
  c.sim->set_latency(0ms);
  ASSERT_NO_FATAL_FAILURE(c.launch());
  auto code = c.coordinator->wait(150s);
  ASSERT_TRUE(code.has_value()) << c.logs();
  EXPECT_EQ(*code, 0) << c.logs();
  auto summary = nlohmann::json::parse(slurp(c.dir.path() / "summary.json"));
  EXPECT_EQ(summary["complete"], 40);
  std::size_t already = 0;
  for (const auto& j : summary["jobs"])
    already += j["result"] == "already_complete";
  std::cerr << "coordinator killed at " << lines_at_crash << " lines; after the restart " << already
            << " job(s) already complete, " << summary["itemsWritten"] << " items written, "
            << summary["itemsSkipped"] << " skipped by the watermark\n";
  // The output was cut back to the ledger's offset, and the rest written once.
  ASSERT_NO_FATAL_FAILURE(c.expect_exact_output());
}

TEST(Distributed, UsageErrorsAndAnUnreachableCoordinatorExitTwo) {
  temp_dir dir;
  auto run = [&](std::vector<std::string> args) {
    process p(args, dir.path() / "out", dir.path() / "err");
    auto code = p.wait(60s);
    EXPECT_TRUE(code.has_value());
    return std::make_pair(code.value_or(-2), slurp(dir.path() / "err"));
  };
  auto [no_jobs, no_jobs_err] =
      run({"coordinator", "--listen", "127.0.0.1:0", "--base-url", "http://127.0.0.1:1",
           "--ledger-dir", (dir.path() / "l").string(), "--out", (dir.path() / "o").string()});
  EXPECT_EQ(no_jobs, 2);
  EXPECT_NE(no_jobs_err.find("no jobs"), std::string::npos) << no_jobs_err;
  auto [bad_listen, bad_listen_err] =
      run({"coordinator", "--listen", "localhost", "--discover", "--base-url", "http://127.0.0.1:1",
           "--ledger-dir", (dir.path() / "l").string(), "--out", (dir.path() / "o").string()});
  EXPECT_EQ(bad_listen, 2);
  EXPECT_NE(bad_listen_err.find("--listen"), std::string::npos) << bad_listen_err;
  auto [bad_address, bad_address_err] =
      run({"worker", "--coordinator", "nowhere", "--state-dir", (dir.path() / "w").string()});
  EXPECT_EQ(bad_address, 2);
  EXPECT_NE(bad_address_err.find("HOST:PORT"), std::string::npos) << bad_address_err;
  auto [unreachable, unreachable_err] =
      run({"worker", "--coordinator", "127.0.0.1:1", "--state-dir", (dir.path() / "w").string(),
           "--connect-timeout-ms", "300"});
  EXPECT_EQ(unreachable, 2);
  EXPECT_NE(unreachable_err.find("cannot reach the coordinator"), std::string::npos)
      << unreachable_err;
  EXPECT_EQ(unreachable_err.find(kKey), std::string::npos);
}

}  // namespace
}  // namespace ei
