// The JSON summary of a run, written as the jobs finish: each job's entry is formatted when its
// outcome arrives and appended to a spool file, so the summary of 100,000 jobs needs no more
// memory than that of one. `write` then puts out the document (the same text, key order and
// indentation as one nlohmann dump(2) of the whole summary would give).
#pragma once

#include <cstdint>
#include <cstdio>
#include <iosfwd>
#include <memory>
#include <string>

#include "actors/job.hpp"
#include "api/http_client.hpp"

namespace ei::pipeline {

/// What the summary says about the whole run besides its jobs.
struct summary_header {
  std::string base_url;
  std::string out;
  std::string reconcile_out;  // empty: null
  double duration_seconds = 0;
  api::client_stats http;
};

class summary_spool {
 public:
  /// Entries go to an anonymous temporary file (removed when the spool is destroyed).
  summary_spool();
  ~summary_spool();
  summary_spool(const summary_spool&) = delete;
  summary_spool& operator=(const summary_spool&) = delete;

  /// Formats the job's entry and appends it; updates the totals. Not thread-safe: one writer.
  void add(const actors::job_outcome& job);
  /// The whole document: header fields, every entry added so far, the totals.
  void write(std::ostream& out, const summary_header& header) const;
  std::uint64_t jobs() const { return jobs_; }
  /// False once a write to the spool failed (the summary would be incomplete).
  bool ok() const { return ok_; }

 private:
  std::FILE* file_ = nullptr;
  std::string memory_;  // used only when no temporary file could be created
  bool ok_ = true;
  std::uint64_t jobs_ = 0, complete_ = 0, already_ = 0, failed_ = 0, interrupted_ = 0, emitted_ = 0;
  api::contract_deviations deviations_;
};

}  // namespace ei::pipeline
