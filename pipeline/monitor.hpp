// What an operator sees while a run goes: the progress line (with an ETA once the batch's
// size is known), the `--metrics-file` (OpenMetrics text for node_exporter's textfile
// collector, rewritten atomically every few seconds and at the end), and the `throttled` and
// `retry_storm` log events read off the HTTP client's counters. One thread does all three, from
// snapshots of the stage's counters (export_items::stage::stats()).
// The metric names and what they count: docs/operations.md.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "actors/job.hpp"
#include "api/http_client.hpp"
#include "export_items/stage.hpp"

namespace ei::pipeline {

/// What only the jobs' outcomes tell: jobs by result, failures by reason code, job durations
/// and the last success. Fed by the stage's outcome listener; thread-safe.
class outcome_metrics {
 public:
  struct snapshot {
    std::map<std::string, std::uint64_t> jobs_by_result;      // complete, already_complete, failed
    std::map<std::string, std::uint64_t> failures_by_reason;  // reason code -> jobs
    double job_seconds_sum = 0;
    std::uint64_t job_seconds_count = 0;
    double last_success_unix = 0;  // when a job last ended complete; 0: none in this run
  };
  void add(const actors::job_outcome& out);
  snapshot read() const;

 private:
  mutable std::mutex mutex_;
  snapshot data_;
};

/// One sample of everything `--metrics-file` shows.
struct metrics_sample {
  outcome_metrics::snapshot outcomes;
  std::uint64_t jobs_in_batch = 0;
  std::uint64_t jobs_running = 0;
  std::uint64_t pages = 0;
  std::uint64_t items_listed = 0;
  std::uint64_t items_handed_on = 0;
  std::uint64_t items_acked = 0;
  api::client_stats http;
  double run_seconds = 0;
  std::optional<double> eta_seconds;
  bool in_progress = true;
};

/// OpenMetrics text, family by family (what render_openmetrics writes with; the worker,
/// distributed/, adds its own families with it).
class openmetrics_writer {
 public:
  /// A family's metadata; `unit` (may be empty) must end the name.
  void family(std::string_view name, std::string_view type, std::string_view unit,
              std::string_view help) {
    out_ += "# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
    if (!unit.empty()) {
      out_ += "# UNIT ";
      out_ += name;
      out_ += ' ';
      out_ += unit;
      out_ += '\n';
    }
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += '\n';
  }
  void sample(std::string_view name, std::string_view labels, double value) {
    out_ += name;
    if (!labels.empty()) {
      out_ += '{';
      out_ += labels;
      out_ += '}';
    }
    char text[64];
    if (value == static_cast<double>(static_cast<std::int64_t>(value)) && value < 9e15 &&
        value > -9e15)
      std::snprintf(text, sizeof text, " %lld\n", static_cast<long long>(value));
    else
      std::snprintf(text, sizeof text, " %.6f\n", value);
    out_ += text;
  }
  void sample(std::string_view name, std::string_view labels, std::uint64_t value) {
    out_ += name;
    if (!labels.empty()) {
      out_ += '{';
      out_ += labels;
      out_ += '}';
    }
    out_ += ' ';
    out_ += std::to_string(value);
    out_ += '\n';
  }
  /// A counter of one sample (`<name>_total`).
  void counter(std::string_view name, std::string_view unit, std::string_view help,
               std::uint64_t value) {
    family(name, "counter", unit, help);
    sample(std::string(name) + "_total", {}, value);
  }
  void gauge(std::string_view name, std::string_view unit, std::string_view help, double value) {
    family(name, "gauge", unit, help);
    sample(name, {}, value);
  }
  std::string finish() {
    out_ += "# EOF\n";
    return std::move(out_);
  }

 private:
  std::string out_;
};

/// `key="value"` with the value escaped as OpenMetrics wants (\\, \", \n).
std::string openmetrics_label(std::string_view key, std::string_view value);

/// More families for the metrics file (the distributed worker's own), written after the run's
/// and before `# EOF`. Called on the monitor's thread (and the stopping one).
using extra_metrics = std::function<void(openmetrics_writer&)>;

/// The OpenMetrics text exposition of a sample (and `extra`'s families), ending with `# EOF`.
std::string render_openmetrics(const metrics_sample& m, const extra_metrics& extra = {});

/// Writes `text` to `<path>.tmp` and renames it over `path`, so a reader sees the old file or
/// the new one, never a part. False (errno set) when it could not.
bool write_file_atomically(const std::string& path, std::string_view text);

/// The `export_items_last_success_timestamp_seconds` value of an earlier metrics file at
/// `path` (carried over, so a run without a success does not forget the last one); 0 when
/// there is none.
double previous_last_success(const std::string& path);

/// What the ETA is estimated from (a stats snapshot's jobs and items).
struct progress_view {
  std::uint64_t jobs_total = 0;
  bool jobs_total_known = false;
  std::uint64_t jobs_done = 0;
  std::uint64_t jobs_started = 0;
  std::uint64_t items_expected = 0;  // numberOfItems of the jobs started
  std::uint64_t items_listed = 0;
};
progress_view progress_of(const export_items::stage_stats& s);

/// Seconds left, from the share of the work done: the larger of the jobs done out of the
/// batch and the items listed out of the batch's items (jobs not started yet counted at the
/// started ones' average numberOfItems). nullopt until the batch's size is known and some
/// work is done, and once the estimate says everything is (what is left then is dispatching).
std::optional<double> eta_seconds(const progress_view& p, double elapsed_seconds);

/// Reads the HTTP client's counters once a second and tells when requests get throttled
/// (429s) or retried in bulk. An event is raised when an episode starts and again every
/// `repeat` while it lasts; the episode ends after `quiet` without 429s / below the storm rate.
class http_watch {
 public:
  struct event {
    std::string name;  // throttled, throttle_ended, retry_storm, retry_storm_ended
    std::string message;
  };
  /// Retries in the last `window` at least `storm_min_retries` and at least
  /// `storm_share` of the attempts: a retry storm.
  std::chrono::seconds window{10};
  std::chrono::seconds repeat{30};
  std::chrono::seconds quiet{10};
  std::uint64_t storm_min_retries = 20;
  double storm_share = 0.25;

  std::vector<event> observe(std::chrono::steady_clock::time_point now,
                             const api::client_stats& stats);

 private:
  struct point {
    std::chrono::steady_clock::time_point at;
    std::uint64_t attempts, retries, throttled;
  };
  std::vector<point> history_;
  bool throttled_ = false;
  bool storm_ = false;
  std::uint64_t throttled_at_report_ = 0;
  std::chrono::steady_clock::time_point last_429_, throttle_said_, storm_said_;
};

struct monitor_options {
  std::ostream* progress = nullptr;  // progress lines (nullptr: none)
  bool live = false;                 // rewrite one line (a terminal)
  std::chrono::seconds progress_interval{2};
  std::string metrics_file;  // empty: none
  std::chrono::milliseconds metrics_interval{5000};
  extra_metrics extra;  // more families for the metrics file (none: the run's only)
};

/// The thread behind progress, metrics and the HTTP events; stop() ends it and writes the
/// metrics file once more (with `in_progress` 0).
class run_monitor {
 public:
  /// `stats` is called on the monitor's thread (and on the constructing and stopping ones)
  /// for each sample: export_items::stage::stats() of the stage being watched.
  using stats_source = std::function<export_items::stage_stats()>;
  run_monitor(monitor_options options, stats_source stats,
              std::shared_ptr<outcome_metrics> outcomes);
  ~run_monitor();
  run_monitor(const run_monitor&) = delete;
  run_monitor& operator=(const run_monitor&) = delete;
  void stop();
  /// The final metrics write failed (the run goes on; the error is logged).
  bool metrics_failed() const { return metrics_failed_; }

 private:
  void loop();
  metrics_sample sample(bool in_progress) const;
  void write_metrics(bool in_progress);
  void print_progress();

  monitor_options options_;
  stats_source stats_;
  std::shared_ptr<outcome_metrics> outcomes_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  double carried_last_success_ = 0;
  http_watch watch_;
  bool metrics_failed_ = false;
  bool metrics_warned_ = false;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stopped_ = false;
  std::thread thread_;
};

}  // namespace ei::pipeline
