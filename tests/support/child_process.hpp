// Running a program from a test: arguments, an environment added to a minimal one, stdin from
// a file, stdout/stderr to files; waited for in bounded time (SIGKILLed past it).
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

namespace ei::testing {

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct child_io {
  std::filesystem::path stdout_path;
  std::filesystem::path stderr_path;
  std::string stdin_file;  // empty: /dev/null
  int stdout_fd = -1;      // when set: stdout is this descriptor (a pipe), not stdout_path
};

/// Starts `bin` with `args`; `env` is added to `PATH=/usr/bin:/bin` (nothing else of the
/// test's environment leaks in: no credentials by accident).
inline pid_t start_child(std::string bin, const std::vector<std::string>& args,
                         const std::vector<std::string>& env, const child_io& io) {
  pid_t pid = ::fork();
  if (pid == 0) {
    int in = ::open(io.stdin_file.empty() ? "/dev/null" : io.stdin_file.c_str(), O_RDONLY);
    int out = io.stdout_fd >= 0
                  ? io.stdout_fd
                  : ::open(io.stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = ::open(io.stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
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
  return pid;
}

/// Waits for `pid`; SIGKILLs it (and fails the test, naming `what`) after `limit`. Its exit
/// code, or -SIGNAL when a signal ended it.
inline int wait_child(pid_t pid, std::chrono::seconds limit, const std::string& what) {
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      ADD_FAILURE() << what << " did not finish in time";
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

struct child_result {
  int exit_code = -1;  // -SIGNAL when a signal ended it
  std::string out;
  std::string err;
};

/// Runs `bin` to its end (start_child, then wait_child), its stdout and stderr read back.
inline child_result run_child(const std::string& bin, const std::vector<std::string>& args,
                              const std::vector<std::string>& env, const child_io& io,
                              std::chrono::seconds limit, const std::string& what) {
  child_result r;
  r.exit_code = wait_child(start_child(bin, args, env, io), limit, what);
  r.out = slurp(io.stdout_path);
  r.err = slurp(io.stderr_path);
  return r;
}

}  // namespace ei::testing
