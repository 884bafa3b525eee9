// A batch coordinated through etcd, as separate processes on loopback: a three-member etcd
// cluster (TLS with client certificates, a CA made here with openssl), four export-items
// workers, the simulator in this process and a downstream thread that reads the workers'
// outputs and reports outcomes back (item statuses change while the batch runs). Two workers
// and one etcd member are killed with SIGKILL at random moments, one worker is SIGSTOPped past
// its lease and resumed (its etcd writes must be refused, it must exit 3).
//
// Oracle: every item in scope at the start reaches a downstream (some worker's output);
// nothing reaches a downstream twice without the redelivery flag; no two jobs of one company
// overlap in the simulator's request log; every job is recorded complete exactly once.
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#include <tuple>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "simulator/simulator.hpp"

namespace ei {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
constexpr const char* kKey = "etcd-test-key-4711";
constexpr int kTtl = 2;  // worker lease TTL, seconds

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
    path_ = fs::temp_directory_path() / ("ei-etcd-" + std::to_string(rd()) + std::to_string(rd()));
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

/// One child process; killed (and reaped) when it goes out of scope.
class process {
 public:
  process(const std::string& bin, const std::vector<std::string>& args, const fs::path& out,
          const fs::path& err) {
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the test
      int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(o, 1);
      ::dup2(e, 2);
      std::string b = bin;
      std::vector<std::string> a = args;
      std::vector<char*> argv{b.data()};
      for (auto& s : a)
        argv.push_back(s.data());
      argv.push_back(nullptr);
      std::string key = std::string("PLEO_API_KEY=") + kKey;
      std::string path = "PATH=/usr/bin:/bin";
      const char* asan = std::getenv("ASAN_OPTIONS");
      std::string asan_env = std::string("ASAN_OPTIONS=") + (asan ? asan : "");
      char* envp[] = {key.data(), path.data(), asan ? asan_env.data() : nullptr, nullptr};
      ::execve(b.c_str(), argv.data(), envp);
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

  void signal(int sig) const { ::kill(pid_, sig); }
  bool running() {
    if (exited_) return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      exited_ = true;
      code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    return !exited_;
  }
  /// The exit code (-1 killed by a signal), or nullopt when still running at the deadline.
  std::optional<int> wait(std::chrono::milliseconds limit) {
    const auto deadline = clock_type::now() + limit;
    while (running()) {
      if (clock_type::now() > deadline) return std::nullopt;
      std::this_thread::sleep_for(20ms);
    }
    return code_;
  }

 private:
  pid_t pid_ = -1;
  bool exited_ = false;
  int code_ = -1;
};

std::uint16_t free_port() {
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(s);
  return ntohs(a.sin_port);
}

int sh(const std::string& cmd) {
  return std::system(cmd.c_str());
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl.
bool make_certs(const fs::path& d) {
  const std::string q = "'" + d.string() + "'";
  std::string cmd = "cd " + q +
                    " && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem "
                    "-days 1 -subj /CN=ei-test-ca >/dev/null 2>&1";
  for (const char* n : {"server", "client"}) {
    const std::string s = n;
    cmd += " && openssl req -newkey rsa:2048 -nodes -keyout " + s + ".key -out " + s +
           ".csr -subj /CN=" + s +
           " >/dev/null 2>&1 && printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage="
           "serverAuth,clientAuth\\n' > " +
           s + ".ext && openssl x509 -req -in " + s + ".csr -CA ca.pem -CAkey ca.key " +
           "-CAcreateserial -out " + s + ".pem -days 1 -extfile " + s + ".ext >/dev/null 2>&1";
  }
  return sh(cmd) == 0;
}

struct delivery {
  std::string job, item;
  bool redelivery = false;
  int worker = 0;   // whose output file
  int attempt = 1;  // the claim it was handed on under
};

class etcd_cluster_test : public ::testing::Test {
 protected:
  temp_dir dir;
  std::unique_ptr<sim::simulator> sim;
  std::vector<std::unique_ptr<process>> members;
  std::vector<std::string> client_urls;
  std::vector<std::unique_ptr<process>> workers;

  fs::path p(const std::string& name) const { return dir.path() / name; }

  std::vector<std::string> etcd_args() const {
    std::vector<std::string> a{"--etcd"};
    a.insert(a.end(), client_urls.begin(), client_urls.end());
    for (const auto& s : std::vector<std::string>{"--etcd-ca", p("ca.pem").string(), "--etcd-cert",
                                                  p("client.pem").string(), "--etcd-key",
                                                  p("client.key").string(), "--prefix", "/t/"})
      a.push_back(s);
    return a;
  }

  void start_etcd() {
    std::vector<std::uint16_t> peer;
    std::string initial;
    for (int i = 0; i < 3; ++i) {
      client_urls.push_back("https://127.0.0.1:" + std::to_string(free_port()));
      peer.push_back(free_port());
      initial += (i ? "," : "") + std::string("m") + std::to_string(i) +
                 "=https://127.0.0.1:" + std::to_string(peer.back());
    }
    for (int i = 0; i < 3; ++i) {
      const std::string n = "m" + std::to_string(i);
      const std::string peer_url = "https://127.0.0.1:" + std::to_string(peer[i]);
      std::vector<std::string> a{"--name",
                                 n,
                                 "--data-dir",
                                 p(n).string(),
                                 "--listen-client-urls",
                                 client_urls[i],
                                 "--advertise-client-urls",
                                 client_urls[i],
                                 "--listen-peer-urls",
                                 peer_url,
                                 "--initial-advertise-peer-urls",
                                 peer_url,
                                 "--initial-cluster",
                                 initial,
                                 "--initial-cluster-state",
                                 "new",
                                 "--initial-cluster-token",
                                 "ei-test",
                                 "--heartbeat-interval",
                                 "50",
                                 "--election-timeout",
                                 "500",
                                 "--cert-file",
                                 p("server.pem").string(),
                                 "--key-file",
                                 p("server.key").string(),
                                 "--client-cert-auth",
                                 "--trusted-ca-file",
                                 p("ca.pem").string(),
                                 "--peer-cert-file",
                                 p("server.pem").string(),
                                 "--peer-key-file",
                                 p("server.key").string(),
                                 "--peer-client-cert-auth",
                                 "--peer-trusted-ca-file",
                                 p("ca.pem").string(),
                                 "--log-level",
                                 "warn"};
      members.push_back(std::make_unique<process>(EI_ETCD_BIN, a, p(n + ".out"), p(n + ".err")));
    }
  }

  int run_cli(const std::vector<std::string>& args, const std::string& tag) {
    process proc(EI_EXPORT_ITEMS_BIN, args, p(tag + ".out"), p(tag + ".err"));
    auto code = proc.wait(30s);
    return code ? *code : -2;
  }

  std::string worker_log(int i) const { return slurp(p("w" + std::to_string(i) + ".err")); }
  /// A worker's log events (it runs with --log-format json: one object a line); a line cut by
  /// SIGKILL is no event.
  std::vector<nlohmann::json> worker_events(int i) const {
    std::vector<nlohmann::json> events;
    std::istringstream in(worker_log(i));
    std::string line;
    while (std::getline(in, line)) {
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_object() && j.contains("event")) events.push_back(std::move(j));
    }
    return events;
  }
  std::string logs() const {
    std::string all;
    for (int i = 0; i < 4; ++i)
      all += "--- worker " + std::to_string(i) + "\n" + worker_log(i).substr(0, 6000);
    return all;
  }
};

TEST_F(etcd_cluster_test, kills_and_a_paused_worker_lose_nothing_and_overlap_nothing) {
  ASSERT_TRUE(fs::exists(EI_ETCD_BIN))
      << EI_ETCD_BIN << " is missing: scripts/install-deps.sh installs etcd-server";
  ASSERT_TRUE(make_certs(dir.path())) << "openssl could not make the test CA";
  const auto t_start = clock_type::now();
  std::mt19937_64 rng(std::random_device{}());
  std::cerr << "seed-free random moments; temp dir " << dir.path() << "\n";

  sim::sim_config sc;
  sc.api_key = kKey;
  sc.jobs = 200;
  sc.companies = 40;
  sc.items_per_job = 150;
  sc.all_in_progress = true;
  sc.threads = 2;
  sc.seed = 15;
  auto started = sim::simulator::start(sc);
  ASSERT_TRUE(started.ok());
  sim = std::move(started.value());

  // Ground truth: what is in scope before anything runs.
  std::map<std::string, std::set<std::string>> in_scope;  // job -> items
  std::map<std::string, std::string> company_of;
  std::map<std::string, std::pair<std::int64_t, std::string>> order_key;  // item -> (date, id)
  std::size_t total_in_scope = 0;
  {
    std::ofstream jobs_file(p("jobs.txt"));
    jobs_file << "# the batch\n";
    for (const auto& j : sim->jobs()) {
      jobs_file << j.id.to_string() << "\n";
      company_of[j.id.to_string()] = j.company_id.to_string();
      for (const auto& it : sim->items_of(j.id)) {
        order_key[it.accounting_entry_id.to_string()] = {it.date_ms,
                                                         it.accounting_entry_id.to_string()};
        if (it.status == api::item_status::pending || it.status == api::item_status::in_progress) {
          in_scope[j.id.to_string()].insert(it.accounting_entry_id.to_string());
          ++total_in_scope;
        }
      }
    }
  }

  start_etcd();
  // Submit (retried until the cluster has a leader).
  std::vector<std::string> submit{"submit"};
  auto ea = etcd_args();
  submit.insert(submit.end(), ea.begin(), ea.end());
  for (const auto& s : {"--jobs-file", "JOBS", "--base-url", "URL"})
    submit.push_back(s);
  submit[submit.size() - 3] = p("jobs.txt").string();
  submit.back() = sim->base_url();
  int rc = -1;
  for (int i = 0; i < 50 && rc != 0; ++i) {
    rc = run_cli(submit, "submit");
    if (rc != 0) std::this_thread::sleep_for(200ms);
  }
  ASSERT_EQ(rc, 0) << slurp(p("submit.err")) << slurp(p("m0.err"));
  EXPECT_NE(slurp(p("submit.err")).find("submitted 200 jobs"), std::string::npos)
      << slurp(p("submit.err"));
  sim->clear_request_log();  // submit's GETs are not part of any job's run

  for (int i = 0; i < 4; ++i) {
    const std::string n = "w" + std::to_string(i);
    std::vector<std::string> a{"worker"};
    a.insert(a.end(), ea.begin(), ea.end());
    for (const auto& s : std::vector<std::string>{
             "--state-dir", p(n + "-state").string(), "--out", p(n + ".ndjson").string(),
             "--base-url", sim->base_url(), "--name", n, "--lease-ttl", std::to_string(kTtl),
             "--max-jobs", "2", "--page-size", "100", "--log-format", "json", "--metrics-file",
             p(n + ".prom").string()})
      a.push_back(s);
    workers.push_back(
        std::make_unique<process>(EI_EXPORT_ITEMS_BIN, a, p(n + ".out"), p(n + ".err")));
  }

  // The downstream: reads every worker's output, reports most items back (successful or
  // failed), so statuses change under the workers' feet.
  std::mutex mu;
  std::vector<delivery> deliveries;
  std::atomic<bool> stop_reader{false};
  std::thread reader([&] {
    std::vector<std::size_t> offsets(4, 0);
    std::mt19937 r(7);
    auto pass = [&] {
      for (int i = 0; i < 4; ++i) {
        const auto text = slurp(p("w" + std::to_string(i) + ".ndjson"));
        const auto end = text.rfind('\n');
        if (end == std::string::npos || end + 1 <= offsets[i]) continue;
        std::istringstream in(text.substr(offsets[i], end + 1 - offsets[i]));
        offsets[i] = end + 1;
        std::string line;
        while (std::getline(in, line)) {
          auto j = nlohmann::json::parse(line, nullptr, false);
          if (j.is_discarded()) continue;
          delivery d{j.value("jobId", ""), j.value("accountingEntryId", ""),
                     j.value("redelivery", false), i, j.value("attempt", 1)};
          if (r() % 10 < 7) {
            auto job = api::uuid::parse(d.job);
            auto item = api::uuid::parse(d.item);
            if (job && item)
              sim->set_item_status(
                  *job, *item,
                  r() % 5 == 0 ? api::item_status::failed : api::item_status::successful);
          }
          std::lock_guard<std::mutex> lk(mu);
          deliveries.push_back(std::move(d));
        }
      }
    };
    while (!stop_reader) {
      pass();
      std::this_thread::sleep_for(30ms);
    }
    pass();
  });
  auto delivered = [&] {
    std::lock_guard<std::mutex> lk(mu);
    return deliveries.size();
  };
  auto held_claims = [&](int i) {
    std::set<std::string> held;
    for (const auto& e : worker_events(i)) {
      const auto event = e.value("event", "");
      if (event == "job_claimed")
        held.insert(e.value("jobId", ""));
      else if (event == "job_recorded" || event == "job_released")
        held.erase(e.value("jobId", ""));
    }
    return !held.empty();
  };
  auto wait_delivered = [&](double fraction) {
    const auto deadline = clock_type::now() + 60s;
    while (delivered() < static_cast<std::size_t>(fraction * total_in_scope) &&
           clock_type::now() < deadline)
      std::this_thread::sleep_for(10ms);
  };
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::vector<std::int64_t> ended_at(4, INT64_MAX);  // when this test killed or stopped a worker
  auto now_ns = [] {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               clock_type::now().time_since_epoch())
        .count();
  };

  // Chaos at random moments (as fractions of the expected deliveries).
  wait_delivered(0.05 + 0.1 * u(rng));
  workers[1]->signal(SIGKILL);
  ended_at[1] = now_ns();
  std::cerr << "killed worker 1 at " << delivered() << " deliveries\n";
  wait_delivered(0.15 + 0.1 * u(rng));
  const int victim = static_cast<int>(rng() % 3);
  members[victim]->signal(SIGKILL);
  std::cerr << "killed etcd member " << victim << " at " << delivered() << " deliveries\n";
  wait_delivered(0.25 + 0.1 * u(rng));
  workers[2]->signal(SIGKILL);
  ended_at[2] = now_ns();
  std::cerr << "killed worker 2 at " << delivered() << " deliveries\n";
  wait_delivered(0.35 + 0.1 * u(rng));
  {
    const auto deadline = clock_type::now() + 20s;
    while (!held_claims(3) && clock_type::now() < deadline)
      std::this_thread::sleep_for(2ms);
  }
  ASSERT_TRUE(held_claims(3)) << "worker 3 never held a claim to be paused with\n" << logs();
  workers[3]->signal(SIGSTOP);
  ended_at[3] = now_ns();
  std::cerr << "stopped worker 3 at " << delivered() << " deliveries\n";
  std::this_thread::sleep_for(std::chrono::seconds(kTtl) + 2500ms);  // past its lease, on purpose
  workers[3]->signal(SIGCONT);
  auto zombie = workers[3]->wait(15s);
  ASSERT_TRUE(zombie.has_value()) << "the resumed worker did not stop\n" << logs();
  EXPECT_EQ(*zombie, 3) << logs();
  {
    const auto events = worker_events(3);
    EXPECT_TRUE(std::any_of(
        events.begin(), events.end(),
        [](const nlohmann::json& e) { return e.value("event", "") == "progress_refused"; }))
        << "the resumed worker did not log that etcd refused its progress write\n"
        << logs();
    // Its last metrics file, written on the way out, says so too.
    const auto prom = slurp(p("w3.prom"));
    EXPECT_NE(prom.find("\nexport_items_worker_fenced 1\n"), std::string::npos) << prom;
    EXPECT_NE(prom.find("\nexport_items_run_in_progress 0\n"), std::string::npos) << prom;
  }

  auto last = workers[0]->wait(
      80s - std::chrono::duration_cast<std::chrono::seconds>(clock_type::now() - t_start));
  stop_reader = true;
  reader.join();
  ASSERT_TRUE(last.has_value()) << "worker 0 did not finish the batch in time\n" << logs();
  ASSERT_EQ(*last, 0) << logs();

  // Every job recorded complete exactly once.
  std::vector<std::string> status{"batch", "status"};
  status.insert(status.end(), ea.begin(), ea.end());
  status.push_back("--json");
  ASSERT_EQ(run_cli(status, "status"), 0) << slurp(p("status.err"));
  auto st = nlohmann::json::parse(slurp(p("status.out")), nullptr, false);
  ASSERT_FALSE(st.is_discarded()) << slurp(p("status.out"));
  EXPECT_EQ(st["byState"].value("complete", 0), 200) << st["byState"].dump();
  std::map<std::string, int> recorded;
  for (int i = 0; i < 4; ++i)
    for (const auto& e : worker_events(i))
      if (e.value("event", "") == "job_recorded" && e.value("result", "") == "complete")
        ++recorded[e.value("jobId", "")];
  // At most one completion logged per job, and exactly the one etcd names — unless etcd names
  // a worker this test killed (it may have died between its txn and its log line).
  for (const auto& [job, n] : recorded)
    EXPECT_EQ(n, 1) << "job " << job << " recorded complete " << n << " times";
  for (const auto& row : st["jobs"]) {
    const auto job = row.value("jobId", "");
    const auto by = row.value("worker", "");
    if (by != "w1" && by != "w2") {
      EXPECT_EQ(recorded.count(job), 1U) << "job " << job << " done by " << by << " never logged";
    }
  }

  // Every in-scope item reached a downstream; nothing twice without the flag.
  std::map<std::pair<std::string, std::string>, std::pair<int, int>> seen;  // plain, flagged
  for (const auto& d : deliveries)
    (d.redelivery ? seen[{d.job, d.item}].second : seen[{d.job, d.item}].first) += 1;
  std::size_t missing = 0, unflagged_twice = 0, flagged = 0;
  for (const auto& [job, items] : in_scope)
    for (const auto& item : items)
      if (seen.count({job, item}) == 0) ++missing;
  for (const auto& [key, n] : seen) {
    if (n.first > 1) ++unflagged_twice;
    flagged += static_cast<std::size_t>(n.second);
  }
  EXPECT_EQ(missing, 0U) << "of " << total_in_scope << " in-scope items";
  EXPECT_EQ(unflagged_twice, 0U);
  EXPECT_GT(flagged, 0U) << "no takeover happened: the kills landed after the work";

  // Workers hand on in chronological order (the default): within one claim of one job, a
  // worker's lines ascend by (date, accountingEntryId), whatever statuses changed meanwhile.
  std::size_t out_of_order = 0;
  {
    std::map<std::tuple<int, std::string, int>, std::pair<std::int64_t, std::string>> last_key;
    for (const auto& d : deliveries) {
      auto key = order_key.find(d.item);
      if (key == order_key.end()) continue;  // not one of the batch's items: counted above
      auto [it, fresh] = last_key.try_emplace({d.worker, d.job, d.attempt}, key->second);
      if (!fresh) {
        if (key->second < it->second) ++out_of_order;
        it->second = key->second;
      }
    }
  }
  EXPECT_EQ(out_of_order, 0U) << "lines out of chronological order within one claim";

  // No two jobs of one company overlap. Each claim is a window: from the worker's job_claimed
  // line to its job_run_ended/job_released line (each on stderr before etcd hears of it, their
  // `mono` field the monotonic clock when it was logged), or to the
  // moment this test killed or stopped it (the monotonic clock is shared by every process here).
  // Every request the simulator received for a job must lie in a window of that job, and windows of
  // one company's jobs must not overlap.
  struct window {
    std::int64_t from = 0, to = INT64_MAX;
    std::string job;
    int worker = 0;
  };
  std::map<std::string, std::vector<window>> windows;  // job -> windows
  for (int i = 0; i < 4; ++i) {
    std::map<std::string, window> open;
    for (const auto& e : worker_events(i)) {
      const auto event = e.value("event", "");
      const auto job = e.value("jobId", "");
      const auto mono = e.value("mono", "");
      if (mono.empty()) continue;
      if (event == "job_claimed") {
        open[job] = window{std::stoll(mono), INT64_MAX, job, i};
      } else if (event == "job_run_ended" || event == "job_released") {
        if (auto it = open.find(job); it != open.end()) {
          // A stopped worker's line after its resume does not extend the window: what it
          // did after the stop is judged by its requests (they must lie in some window).
          it->second.to = std::min<std::int64_t>(std::stoll(mono), ended_at[i]);
          windows[job].push_back(it->second);
          open.erase(it);
        }
      }
    }
    for (auto& [job, w] : open) {
      w.to = ended_at[i];
      windows[job].push_back(w);
    }
  }
  std::size_t stray = 0;
  for (const auto& r : sim->request_log()) {
    if (!r.job_id) continue;
    const auto t =
        std::chrono::duration_cast<std::chrono::nanoseconds>(r.received.time_since_epoch()).count();
    bool inside = false;
    for (const auto& w : windows[r.job_id->to_string()])
      inside = inside || (t >= w.from && t <= w.to + 100'000'000);  // + 100 ms on the wire
    if (!inside && ++stray <= 5)
      ADD_FAILURE() << r.method << " " << r.target << " received outside every claim of its job";
  }
  EXPECT_EQ(stray, 0U);
  std::map<std::string, std::vector<window>> by_company;
  for (const auto& [job, ws] : windows)
    for (const auto& w : ws)
      by_company[company_of[job]].push_back(w);
  std::size_t overlaps = 0;
  for (auto& [company, v] : by_company) {
    std::sort(v.begin(), v.end(), [](const window& a, const window& b) { return a.from < b.from; });
    for (std::size_t i = 1; i < v.size(); ++i)
      if (v[i].from <= v[i - 1].to && ++overlaps <= 5)
        ADD_FAILURE() << "company " << company << ": job " << v[i].job << " claimed by worker "
                      << v[i].worker << " at " << v[i].from << " while job " << v[i - 1].job
                      << " still ran on worker " << v[i - 1].worker << " (" << v[i - 1].from
                      << " .. " << v[i - 1].to << "); kills/stop at " << ended_at[1] << " "
                      << ended_at[2] << " " << ended_at[3];
  }
  EXPECT_EQ(overlaps, 0U);
  if (HasFailure() && std::getenv("EI_KEEP_FAILED") != nullptr) {
    std::error_code ec;
    fs::copy(dir.path(), std::string(std::getenv("EI_KEEP_FAILED")), fs::copy_options::recursive,
             ec);
  }
  std::cerr
      << "in scope " << total_in_scope << ", deliveries " << deliveries.size() << " (flagged "
      << flagged << "), wall "
      << std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - t_start).count()
      << " ms\n";
}

}  // namespace
}  // namespace ei
