// The export-items-sim binary: first line, SIGTERM exit code, --print-jobs, --help, config,
// --request-log.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "tests/simulator/test_client.hpp"
#include "tests/support/temp_dir.hpp"

extern char** environ;

namespace {

struct child {
  pid_t pid = -1;
  int out = -1;  // read end of the child's stdout
};

/// Runs the simulator with `args`; its stdout (and stderr too with `with_stderr`) is `out`.
child spawn(std::vector<std::string> args, const std::vector<std::string>& env_extra = {},
            bool with_stderr = false) {
  args.insert(args.begin(), EI_SIM_BINARY);
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_store;
  for (char** e = environ; *e != nullptr; ++e)
    if (std::string_view(*e).rfind("PLEO_API_KEY=", 0) != 0) env_store.emplace_back(*e);
  for (const auto& e : env_extra)
    env_store.push_back(e);
  std::vector<char*> envp;
  for (auto& e : env_store)
    envp.push_back(e.data());
  envp.push_back(nullptr);
  int fds[2];
  EXPECT_EQ(pipe(fds), 0);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  if (with_stderr) posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
  posix_spawn_file_actions_addclose(&fa, fds[0]);
  child c;
  EXPECT_EQ(posix_spawn(&c.pid, EI_SIM_BINARY, &fa, nullptr, argv.data(), envp.data()), 0);
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  c.out = fds[0];
  return c;
}

/// Reads until EOF or `stop_at_newline` (bounded by a 20 s poll timeout).
std::string read_out(int fd, bool stop_at_newline) {
  std::string s;
  char ch[4096];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 20000) <= 0) break;
    const ssize_t n = read(fd, ch, stop_at_newline ? 1 : sizeof ch);
    if (n <= 0) break;
    s.append(ch, static_cast<std::size_t>(n));
    if (stop_at_newline && s.back() == '\n') break;
  }
  return s;
}

int wait_exit(pid_t pid) {
  int status = 0;
  for (int i = 0; i < 200; ++i) {
    if (waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    usleep(50000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return -2;
}

std::uint16_t port_of(const std::string& line) {
  const std::string prefix = "listening on 127.0.0.1:";
  EXPECT_EQ(line.rfind(prefix, 0), 0u) << line;
  return static_cast<std::uint16_t>(std::stoi(line.substr(prefix.size())));
}

TEST(SimulatorCli, ServesUntilSigtermAndExitsZero) {
  child c = spawn({"--port", "0", "--api-key", "cli-secret", "--seed", "9", "--jobs", "3",
                   "--items", "1000000", "--faults", "jobs:latency=1ms"});
  const std::string line = read_out(c.out, true);
  const std::uint16_t port = port_of(line);
  ei::sim::testing::test_client client(port, ei::sim::testing::basic("cli-secret"));
  auto r = client.get("/v3/export-jobs");
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(r.json()["data"].size(), 3u);
  EXPECT_EQ(client
                .get("/v3/export-jobs/" + r.json()["data"][0]["id"].get<std::string>() +
                     "/items?limit=500&offset=900000")
                .json()["data"]
                .size(),
            500u);
  kill(c.pid, SIGTERM);
  const std::string rest = read_out(c.out, false);
  EXPECT_EQ(wait_exit(c.pid), 0);
  EXPECT_EQ((line + rest).find("cli-secret"), std::string::npos);
  close(c.out);
}

TEST(SimulatorCli, ApiKeyFromEnvironment) {
  child c = spawn({"--port", "0"}, {"PLEO_API_KEY=env-secret"});
  const std::uint16_t port = port_of(read_out(c.out, true));
  ei::sim::testing::test_client ok(port, ei::sim::testing::basic("env-secret"));
  EXPECT_EQ(ok.get("/v3/export-jobs").status, 200u);
  ei::sim::testing::test_client bad(port, ei::sim::testing::basic("other"));
  EXPECT_EQ(bad.get("/v3/export-jobs").status, 401u);
  kill(c.pid, SIGINT);
  EXPECT_EQ(wait_exit(c.pid), 0);
  close(c.out);
}

TEST(SimulatorCli, PrintJobsParsesAndConfigFileApplies) {
  const auto dir = std::filesystem::temp_directory_path() / ("sim-cli-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const auto cfg = dir / "sim.json";
  std::ofstream(cfg) << R"({"jobs": 4, "items": 12, "companies": 2, "seed": 5})";
  child c = spawn({"--config", cfg.string(), "--items", "30", "--print-jobs"});
  const std::string out = read_out(c.out, false);
  EXPECT_EQ(wait_exit(c.pid), 0);
  close(c.out);
  const auto js = nlohmann::json::parse(out);
  ASSERT_EQ(js.size(), 4u);
  for (const auto& j : js) {
    EXPECT_EQ(j["numberOfItems"], 30);  // the command line overrides the file
    EXPECT_TRUE(j.contains("id"));
    EXPECT_TRUE(j.contains("companyId"));
    EXPECT_TRUE(j.contains("status"));
  }
  std::ofstream(cfg) << R"({"jobz": 4})";
  child bad = spawn({"--config", cfg.string(), "--print-jobs"});
  read_out(bad.out, false);
  EXPECT_NE(wait_exit(bad.pid), 0);
  close(bad.out);
  std::filesystem::remove_all(dir);
}

TEST(SimulatorCli, HelpDocumentsOptionsAndFaultGrammar) {
  child c = spawn({"--help"});
  const std::string out = read_out(c.out, false);
  EXPECT_EQ(wait_exit(c.pid), 0);
  close(c.out);
  for (const char* s :
       {"--port", "--api-key", "--seed", "--jobs", "--items", "--companies", "--faults", "--config",
        "--access-token", "--threads", "--tls-cert", "--tls-key", "--print-jobs", "--loose",
        "reset_mid_body", "expired_cursor", "html", "complete_job", "@rate"})
    EXPECT_NE(out.find(s), std::string::npos) << s;
}

TEST(SimulatorCli, InvalidFaultsFailFast) {
  child c = spawn({"--faults", "items:boom"});
  read_out(c.out, false);
  EXPECT_EQ(wait_exit(c.pid), 2);
  close(c.out);
}

TEST(SimulatorCli, RequestLogHoldsEveryAnsweredRequestAsNdjson) {
  ei::testing::temp_dir dir("sim-cli-log-");
  const std::string path = (dir.path() / "requests.ndjson").string();
  child c =
      spawn({"--port", "0", "--api-key", "log-secret", "--seed", "3", "--jobs", "4", "--items",
             "30", "--companies", "2", "--all-in-progress", "--request-log", path});
  const std::uint16_t port = port_of(read_out(c.out, true));
  ei::sim::testing::test_client client(port, ei::sim::testing::basic("log-secret"));
  const auto jobs = client.get("/v3/export-jobs").json()["data"];
  ASSERT_EQ(jobs.size(), 4u);
  // What was asked, in order: the listing above, then per job its check and one items page,
  // then an unknown job and a request without credentials.
  struct asked {
    std::string endpoint;
    nlohmann::json job, company;
    unsigned status;
  };
  std::vector<asked> want{{"jobs", nullptr, nullptr, 200}};
  for (const auto& j : jobs) {
    const std::string id = j["id"].get<std::string>();
    EXPECT_EQ(client.get("/v3/export-jobs/" + id).status, 200u);
    EXPECT_EQ(client.get("/v3/export-jobs/" + id + "/items?limit=10").status, 200u);
    want.push_back({"job", id, j["companyId"], 200});
    want.push_back({"items", id, j["companyId"], 200});
  }
  const std::string unknown = "00000000-0000-4000-8000-0000000000ff";
  EXPECT_EQ(client.get("/v3/export-jobs/" + unknown).status, 404u);
  want.push_back({"job", unknown, nullptr, 404});
  ei::sim::testing::test_client anonymous(port, "");
  EXPECT_EQ(anonymous.get("/v3/export-jobs").status, 401u);
  want.push_back({"jobs", nullptr, nullptr, 401});

  kill(c.pid, SIGTERM);  // the log is complete once the process has exited
  read_out(c.out, false);
  EXPECT_EQ(wait_exit(c.pid), 0);
  close(c.out);

  std::ifstream in(path);
  ASSERT_TRUE(in) << path;
  std::stringstream all;
  all << in.rdbuf();
  EXPECT_EQ(all.str().find("log-secret"), std::string::npos);
  std::istringstream lines(all.str());
  std::string line;
  std::size_t n = 0;
  while (std::getline(lines, line)) {
    const auto rec = nlohmann::json::parse(line, nullptr, false);
    ASSERT_TRUE(rec.is_object()) << "line " << n + 1 << " is not JSON: " << line;
    ASSERT_LT(n, want.size()) << "more lines than requests: " << line;
    const asked& w = want[n];
    EXPECT_EQ(rec["seq"], n + 1) << line;
    EXPECT_EQ(rec["endpoint"], w.endpoint) << line;
    EXPECT_EQ(rec["method"], "GET") << line;
    EXPECT_EQ(rec["jobId"], w.job) << line;
    EXPECT_EQ(rec["companyId"], w.company) << line;
    EXPECT_EQ(rec["status"], w.status) << line;
    ASSERT_TRUE(rec["receivedUs"].is_number_unsigned()) << line;
    EXPECT_LE(rec["receivedUs"].get<std::uint64_t>(), rec["finishedUs"].get<std::uint64_t>())
        << line;
    ++n;
  }
  EXPECT_EQ(n, want.size());
}

TEST(SimulatorCli, RequestLogThatCannotBeOpenedFailsNamingIt) {
  ei::testing::temp_dir dir("sim-cli-log-");
  const std::string path = (dir.path() / "missing-dir" / "requests.ndjson").string();
  child c = spawn({"--port", "0", "--request-log", path}, {}, true);
  const std::string out = read_out(c.out, false);
  EXPECT_EQ(out.find("listening"), std::string::npos) << out;
  EXPECT_NE(out.find("cannot open '" + path + "'"), std::string::npos) << out;
  EXPECT_EQ(wait_exit(c.pid), 2);
  close(c.out);
}

}  // namespace
