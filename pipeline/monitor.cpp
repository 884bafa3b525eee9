#include "pipeline/monitor.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <ostream>

#include "common/log.hpp"
#include "pipeline/runtime.hpp"

namespace ei::pipeline {

// --- outcomes --------------------------------------------------------------------------------

void outcome_metrics::add(const actors::job_outcome& out) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++data_.jobs_by_result[std::string(actors::to_string(out.result))];
  if (out.result == actors::job_result::failed) {
    ++data_.failures_by_reason[out.reason_code.empty() ? "unknown" : out.reason_code];
  } else {
    data_.last_success_unix =
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  }
  if (!out.job_id.is_nil()) {  // batch-level failures (discovery) ran no job
    data_.job_seconds_sum += out.stats.duration_seconds;
    ++data_.job_seconds_count;
  }
}

outcome_metrics::snapshot outcome_metrics::read() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return data_;
}

// --- OpenMetrics -----------------------------------------------------------------------------

std::string openmetrics_label(std::string_view key, std::string_view value) {
  std::string out(key);
  out += "=\"";
  for (char c : value) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  out += '"';
  return out;
}

namespace {

using exposition = openmetrics_writer;

std::string label(std::string_view key, std::string_view value) {
  return openmetrics_label(key, value);
}

}  // namespace

std::string render_openmetrics(const metrics_sample& m, const extra_metrics& extra) {
  exposition e;
  e.gauge("export_items_run_in_progress", "", "1 while the run goes, 0 once it ended",
          m.in_progress ? 1.0 : 0.0);
  e.gauge("export_items_run_duration_seconds", "seconds", "Seconds since the run started",
          m.run_seconds);
  e.gauge("export_items_batch_jobs", "", "Jobs in the batch (known so far, when discovering)",
          static_cast<double>(m.jobs_in_batch));
  e.gauge("export_items_jobs_running", "", "Jobs running now", static_cast<double>(m.jobs_running));

  e.family("export_items_jobs_finished", "counter", "", "Jobs that ended in this run, by result");
  for (const char* r : {"complete", "already_complete", "failed"}) {
    auto it = m.outcomes.jobs_by_result.find(r);
    e.sample("export_items_jobs_finished_total", label("result", r),
             it == m.outcomes.jobs_by_result.end() ? std::uint64_t{0} : it->second);
  }
  e.family("export_items_job_failures", "counter", "",
           "Jobs that failed in this run, by reason code (interrupted: a re-run resumes them)");
  for (const auto& [reason, n] : m.outcomes.failures_by_reason)
    e.sample("export_items_job_failures_total", label("reason", reason), n);
  e.family("export_items_job_duration_seconds", "summary", "seconds",
           "Duration of the jobs that ended in this run");
  e.sample("export_items_job_duration_seconds_count", {}, m.outcomes.job_seconds_count);
  e.sample("export_items_job_duration_seconds_sum", {}, m.outcomes.job_seconds_sum);
  e.gauge("export_items_last_success_timestamp_seconds", "seconds",
          "Unix time a job last ended complete (carried over from the previous file; 0: never)",
          m.outcomes.last_success_unix);
  if (m.eta_seconds)
    e.gauge("export_items_eta_seconds", "seconds", "Estimated seconds until the batch is done",
            *m.eta_seconds);

  e.counter("export_items_pages", "", "Item pages listed and committed", m.pages);
  e.counter("export_items_items_listed", "", "Items the listings committed", m.items_listed);
  e.counter("export_items_items_handed_on", "", "Items handed on downstream", m.items_handed_on);
  e.counter("export_items_items_acked", "", "Items handed on and acknowledged by downstream",
            m.items_acked);

  const auto& h = m.http;
  e.counter("export_items_http_requests", "", "HTTP requests made (retries not counted)",
            h.requests);
  e.counter("export_items_http_attempts", "", "HTTP attempts sent (first tries and retries)",
            h.attempts);
  e.family("export_items_http_responses", "counter", "", "HTTP responses by status class");
  for (std::size_t c = 1; c <= 5; ++c)
    e.sample("export_items_http_responses_total", label("class", std::to_string(c) + "xx"),
             h.responses_by_class[c]);
  e.counter("export_items_http_requests_failed", "",
            "HTTP requests that failed for good (after their retries)", h.failed);
  e.counter("export_items_http_throttled", "", "HTTP 429 (Too Many Requests) responses",
            h.throttled);
  e.counter("export_items_http_retries", "", "HTTP attempts after a request's first", h.retries);
  e.family("export_items_http_retry_wait_seconds", "counter", "seconds",
           "Seconds waited before retries (backoff and Retry-After)");
  e.sample("export_items_http_retry_wait_seconds_total", {},
           static_cast<double>(h.retry_wait_ms) / 1000.0);
  e.counter("export_items_http_received_bytes", "bytes", "Response bytes received, as on the wire",
            h.bytes_received);
  e.gauge("export_items_http_rate_limit_requests_per_second", "",
          "The request rate the client keeps to after 429s (0: none discovered)",
          h.discovered_rate);
  if (extra) extra(e);
  return e.finish();
}

bool write_file_atomically(const std::string& path, std::string_view text) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  std::size_t done = 0;
  while (done < text.size()) {
    const auto n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int saved = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      errno = saved;
      return false;
    }
    done += static_cast<std::size_t>(n);
  }
  if (::close(fd) != 0 || ::rename(tmp.c_str(), path.c_str()) != 0) {
    const int saved = errno;
    ::unlink(tmp.c_str());
    errno = saved;
    return false;
  }
  return true;
}

double previous_last_success(const std::string& path) {
  std::ifstream in(path);
  constexpr std::string_view key = "export_items_last_success_timestamp_seconds ";
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, key.size(), key) != 0) continue;
    try {
      const double v = std::stod(line.substr(key.size()));
      return v > 0 ? v : 0;
    } catch (...) {
      return 0;
    }
  }
  return 0;
}

// --- ETA -------------------------------------------------------------------------------------

progress_view progress_of(const export_items::stage_stats& s) {
  progress_view v;
  v.jobs_total = s.jobs_total;
  v.jobs_total_known = s.jobs_total_known;
  v.jobs_done = s.jobs_done;
  v.jobs_started = s.jobs_started;
  v.items_expected = s.items_expected;
  v.items_listed = s.items_listed;
  return v;
}

std::optional<double> eta_seconds(const progress_view& p, double elapsed) {
  if (!p.jobs_total_known || p.jobs_total == 0 || elapsed <= 0) return std::nullopt;
  double done =
      static_cast<double>(std::min(p.jobs_done, p.jobs_total)) / static_cast<double>(p.jobs_total);
  if (p.jobs_started > 0 && p.items_expected > 0) {
    const double average =
        static_cast<double>(p.items_expected) / static_cast<double>(p.jobs_started);
    const double waiting =
        p.jobs_total > p.jobs_started ? static_cast<double>(p.jobs_total - p.jobs_started) : 0.0;
    const double items = static_cast<double>(p.items_expected) + average * waiting;
    done = std::max(done, std::min(1.0, static_cast<double>(p.items_listed) / items));
  }
  if (done <= 0 || done >= 1) return std::nullopt;
  return elapsed * (1 - done) / done;
}

// --- HTTP events -----------------------------------------------------------------------------

std::vector<http_watch::event> http_watch::observe(std::chrono::steady_clock::time_point now,
                                                   const api::client_stats& s) {
  std::vector<event> events;
  const std::uint64_t before_429 = history_.empty() ? 0 : history_.back().throttled;
  history_.push_back({now, s.attempts, s.retries, s.throttled});
  while (history_.size() > 1 && now - history_.front().at > window)
    history_.erase(history_.begin());
  const auto& first = history_.front();

  if (s.throttled > before_429) last_429_ = now;
  if (s.throttled > before_429 && (!throttled_ || now - throttle_said_ >= repeat)) {
    char text[200];
    std::snprintf(text, sizeof text,
                  "HTTP 429: %llu throttled response(s) so far; the client keeps to %.1f "
                  "requests/s",
                  static_cast<unsigned long long>(s.throttled), s.discovered_rate);
    events.push_back({"throttled", text});
    throttled_ = true;
    throttle_said_ = now;
    throttled_at_report_ = s.throttled;
  } else if (throttled_ && now - last_429_ >= quiet) {
    throttled_ = false;
    events.push_back({"throttle_ended", "no HTTP 429 for " + std::to_string(quiet.count()) +
                                            " s (" +
                                            std::to_string(s.throttled - throttled_at_report_) +
                                            " more since the last report)"});
  }

  const std::uint64_t retries = s.retries - first.retries;
  const std::uint64_t attempts = s.attempts - first.attempts;
  const bool storm = retries >= storm_min_retries &&
                     static_cast<double>(retries) >= storm_share * static_cast<double>(attempts);
  if (storm && (!storm_ || now - storm_said_ >= repeat)) {
    events.push_back({"retry_storm", std::to_string(retries) + " of " + std::to_string(attempts) +
                                         " HTTP attempts in the last " +
                                         std::to_string(window.count()) + " s were retries"});
    storm_ = true;
    storm_said_ = now;
  } else if (!storm && storm_) {
    storm_ = false;
    events.push_back({"retry_storm_ended", "retries are back below " +
                                               std::to_string(static_cast<int>(storm_share * 100)) +
                                               " % of the HTTP attempts"});
  }
  return events;
}

// --- the monitor thread ----------------------------------------------------------------------

run_monitor::run_monitor(monitor_options options, stats_source stats,
                         std::shared_ptr<outcome_metrics> outcomes)
    : options_(std::move(options)), stats_(std::move(stats)), outcomes_(std::move(outcomes)) {
  if (!options_.metrics_file.empty()) {
    carried_last_success_ = previous_last_success(options_.metrics_file);
    write_metrics(true);
  }
  thread_ = std::thread([this] { loop(); });
}

run_monitor::~run_monitor() {
  stop();
}

void run_monitor::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopped_) return;
    stopped_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (options_.progress != nullptr && options_.live) *options_.progress << "\n" << std::flush;
  if (!options_.metrics_file.empty()) write_metrics(false);
}

metrics_sample run_monitor::sample(bool in_progress) const {
  metrics_sample m;
  if (outcomes_) m.outcomes = outcomes_->read();
  m.outcomes.last_success_unix = std::max(m.outcomes.last_success_unix, carried_last_success_);
  const auto s = stats_();
  m.jobs_in_batch = s.jobs_total;
  m.jobs_running = s.jobs_running;
  m.pages = s.pages;
  m.items_listed = s.items_listed;
  m.items_handed_on = s.items_handed_on;
  m.items_acked = s.items_acked;
  m.http = http_stats_of(s);
  m.run_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  if (in_progress) m.eta_seconds = eta_seconds(progress_of(s), m.run_seconds);
  m.in_progress = in_progress;
  return m;
}

void run_monitor::write_metrics(bool in_progress) {
  if (write_file_atomically(options_.metrics_file,
                            render_openmetrics(sample(in_progress), options_.extra))) {
    if (!in_progress) metrics_failed_ = false;
    return;
  }
  if (!in_progress) metrics_failed_ = true;
  if (!metrics_warned_) {  // once: the run goes on without it
    metrics_warned_ = true;
    log::error("metrics_file",
               std::string("cannot write the metrics file: ") + std::strerror(errno),
               {{"path", options_.metrics_file}});
  }
}

void run_monitor::print_progress() {
  const auto s = stats_();
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const auto items = s.items_handed_on;
  char line[400];
  int n = std::snprintf(
      line, sizeof line,
      "export-items: jobs %llu/%llu done (%llu running), pages %llu, items %llu "
      "(%.0f/s), requests %llu, retries %llu, %.0f s",
      static_cast<unsigned long long>(s.jobs_done), static_cast<unsigned long long>(s.jobs_total),
      static_cast<unsigned long long>(s.jobs_running), static_cast<unsigned long long>(s.pages),
      static_cast<unsigned long long>(items), secs > 0 ? items / secs : 0.0,
      static_cast<unsigned long long>(s.http_requests),
      static_cast<unsigned long long>(s.http_retries), secs);
  if (auto eta = eta_seconds(progress_of(s), secs);
      eta && n > 0 && n < static_cast<int>(sizeof line))
    std::snprintf(line + n, sizeof line - static_cast<std::size_t>(n), ", ETA %.0f s", *eta);
  auto& out = *options_.progress;
  if (options_.live)
    out << "\r" << line << "\x1b[K" << std::flush;
  else
    out << line << "\n" << std::flush;
}

void run_monitor::loop() {
  using clock = std::chrono::steady_clock;
  auto next_progress =
      clock::now() +
      (options_.live ? std::chrono::seconds(1) : std::chrono::seconds(options_.progress_interval));
  auto next_metrics = clock::now() + options_.metrics_interval;
  auto next_watch = clock::now() + std::chrono::seconds(1);
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    auto wake = next_watch;
    if (options_.progress != nullptr) wake = std::min(wake, next_progress);
    if (!options_.metrics_file.empty()) wake = std::min(wake, next_metrics);
    if (cv_.wait_until(lock, wake, [this] { return stopped_; })) return;
    const auto now = clock::now();
    lock.unlock();
    if (now >= next_watch) {
      next_watch = now + std::chrono::seconds(1);
      for (auto& e : watch_.observe(now, http_stats_of(stats_())))
        log::write(
            e.name == "throttled" || e.name == "retry_storm" ? log::level::warn : log::level::info,
            e.name, e.message);
    }
    if (options_.progress != nullptr && now >= next_progress) {
      next_progress = now + (options_.live ? std::chrono::seconds(1) : options_.progress_interval);
      print_progress();
    }
    if (!options_.metrics_file.empty() && now >= next_metrics) {
      next_metrics = now + options_.metrics_interval;
      write_metrics(true);
    }
    lock.lock();
  }
}

}  // namespace ei::pipeline
