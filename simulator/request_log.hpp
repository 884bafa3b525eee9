// The request log as a file (`sim_config::request_log_file`, `export-items-sim --request-log`):
// one NDJSON line per answered request, for a check made outside the process (the benchmark's
// per-company rule, benchmarks/harness.py). Lines are gathered in a buffer and written in
// blocks of ~1 MiB, the rest when the simulator stops, so 300,000 lines cost the serving
// threads an append each and a write per ~6,000 lines. No secrets: no credentials, no target.
#pragma once

#include <mutex>
#include <string>

#include "simulator/simulator.hpp"

namespace ei::sim::detail {

class request_log_file {
 public:
  /// Creates (or truncates) `path`; empty on success, else a message naming the path.
  std::string open(const std::string& path);
  bool is_open() const noexcept { return fd_ >= 0; }

  /// Appends the record's line: {"seq","endpoint","method","jobId","companyId",
  /// "receivedUs","finishedUs","status"} (ids null when the request names no known job;
  /// times are steady_clock, i.e. CLOCK_MONOTONIC, in microseconds).
  void append(const request_record& r);

  /// Writes what is buffered and closes the file; idempotent. The first write error (naming
  /// the path) is kept in error().
  void close();
  std::string error() const;

  ~request_log_file();

  /// The line of one record, newline included (exposed for the tests).
  static void format(const request_record& r, std::string& out);

 private:
  void write_locked(const std::string& block);

  mutable std::mutex mutex_;
  std::string buffer_;
  std::string path_;
  std::string error_;
  int fd_ = -1;
};

}  // namespace ei::sim::detail
