// Running the export-items binary from the write-back tests: arguments, environment, stdin
// from a file, stdout/stderr captured, bounded in time; and the outcome lines a downstream
// would give for the stage's output.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace ei::testing {

struct cli_result {
  int exit_code = -1;  // -SIGNAL when killed by a signal
  std::string out;
  std::string err;
};

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// Runs EI_EXPORT_ITEMS_BIN with `args`; `env` is added to a minimal environment; stdin is
/// `stdin_file` (or /dev/null). Killed after `limit`.
inline cli_result run_cli(const std::vector<std::string>& args, const std::vector<std::string>& env,
                          const std::filesystem::path& dir, const std::string& stdin_file = {},
                          std::chrono::seconds limit = std::chrono::seconds(60)) {
  const auto out_path = dir / "cli-stdout.txt";
  const auto err_path = dir / "cli-stderr.txt";
  pid_t pid = ::fork();
  if (pid == 0) {
    int in = ::open(stdin_file.empty() ? "/dev/null" : stdin_file.c_str(), O_RDONLY);
    int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    std::string bin = EI_EXPORT_ITEMS_BIN;
    std::vector<std::string> a = args;
    std::vector<char*> argv{bin.data()};
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
  cli_result r;
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      ADD_FAILURE() << "export-items did not finish in time: " << args.front();
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  r.out = slurp(out_path);
  r.err = slurp(err_path);
  return r;
}

/// The outcome a downstream gives item `i` of the output: every 7th failed, else successful
/// with tracking fields.
inline nlohmann::json outcome_for(const std::string& job, const std::string& item, std::size_t i) {
  if (i % 7 == 3)
    return {{"jobId", job},
            {"accountingEntryId", item},
            {"status", "failed"},
            {"failureReason", "VAT code missing on line " + std::to_string(i)},
            {"failureReasonType", "invalid_vat_code"}};
  return {{"jobId", job},
          {"accountingEntryId", item},
          {"status", "successful"},
          {"externalId", "ERP-" + std::to_string(i)},
          {"externalUrl", "https://erp.example/e/" + std::to_string(i)},
          {"exportedAt", "2024-05-01T10:00:00Z"}};
}

/// Outcome lines for every line of the stage's NDJSON output.
inline std::vector<nlohmann::json> outcomes_for_output(const std::string& ndjson) {
  std::vector<nlohmann::json> out;
  std::istringstream in(ndjson);
  std::size_t i = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    auto d = nlohmann::json::parse(line);
    out.push_back(outcome_for(d["jobId"], d["accountingEntryId"], i++));
  }
  return out;
}

inline void write_lines(const std::filesystem::path& p, const std::vector<nlohmann::json>& lines) {
  std::ofstream o(p, std::ios::trunc);
  for (const auto& l : lines)
    o << l.dump() << "\n";
}

}  // namespace ei::testing
