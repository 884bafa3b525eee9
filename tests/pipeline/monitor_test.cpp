// pipeline/monitor.hpp: the OpenMetrics text, the atomic rewrite of the metrics file, the ETA
// and the throttled / retry_storm events. (tests/apps/operators_test.py runs the binary and
// checks the file with prometheus_client's OpenMetrics parser.)
#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "pipeline/monitor.hpp"
#include "pipeline/runtime.hpp"

namespace {

using namespace ei;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

struct temp_dir {
  fs::path path;
  temp_dir() {
    path = fs::temp_directory_path() / ("ei-monitor-" + std::to_string(::getpid()) + "-" +
                                        std::to_string(reinterpret_cast<std::uintptr_t>(this)));
    fs::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

TEST(monitor, OpenMetricsTextNamesEveryFamilyOnceAndEndsWithEof) {
  pipeline::metrics_sample m;
  m.outcomes.jobs_by_result = {{"complete", 3}, {"failed", 2}};
  m.outcomes.failures_by_reason = {{"http_404", 1}, {"odd \"reason\"\n", 1}};
  m.outcomes.job_seconds_sum = 1.5;
  m.outcomes.job_seconds_count = 5;
  m.outcomes.last_success_unix = 1796055274.25;
  m.items_handed_on = 40;
  m.items_acked = 38;
  m.http.requests = 12;
  m.http.throttled = 2;
  m.http.retries = 4;
  m.http.retry_wait_ms = 1500;
  m.http.bytes_received = 4096;
  m.http.responses_by_class[2] = 10;
  m.http.responses_by_class[4] = 2;
  m.eta_seconds = 7;
  const auto text = pipeline::render_openmetrics(m);
  ASSERT_GE(text.size(), 6u);
  EXPECT_EQ(text.substr(text.size() - 6), "# EOF\n");
  EXPECT_NE(text.find("export_items_jobs_finished_total{result=\"complete\"} 3\n"),
            std::string::npos);
  EXPECT_NE(text.find("export_items_jobs_finished_total{result=\"already_complete\"} 0\n"),
            std::string::npos);
  EXPECT_NE(text.find("export_items_job_failures_total{reason=\"http_404\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("export_items_job_failures_total{reason=\"odd \\\"reason\\\"\\n\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("export_items_items_handed_on_total 40\n"), std::string::npos);
  EXPECT_NE(text.find("export_items_items_acked_total 38\n"), std::string::npos);
  EXPECT_NE(text.find("export_items_http_responses_total{class=\"4xx\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("export_items_http_throttled_total 2\n"), std::string::npos);
  EXPECT_NE(text.find("export_items_http_retries_total 4\n"), std::string::npos);
  EXPECT_NE(text.find("export_items_http_retry_wait_seconds_total 1.500000\n"), std::string::npos);
  EXPECT_NE(text.find("export_items_http_received_bytes_total 4096\n"), std::string::npos);
  EXPECT_NE(text.find("export_items_job_duration_seconds_sum 1.500000\n"), std::string::npos);
  EXPECT_NE(text.find("export_items_last_success_timestamp_seconds 1796055274.250000\n"),
            std::string::npos);
  EXPECT_NE(text.find("export_items_eta_seconds 7\n"), std::string::npos);
  // Every family is declared once, and a counter's samples end in _total.
  std::istringstream lines(text);
  std::string line;
  std::map<std::string, std::string> types;
  while (std::getline(lines, line)) {
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream f(line.substr(7));
      std::string name, type;
      f >> name >> type;
      EXPECT_TRUE(types.emplace(name, type).second) << name << " declared twice";
    }
  }
  for (const auto& [name, type] : types) {
    if (type == "counter") {
      EXPECT_EQ(text.find("\n" + name + " "), std::string::npos) << name << " without _total";
    }
  }
}

// The distributed worker's families (monitor_options::extra) come after the run's, before the end.
TEST(monitor, ExtraFamiliesComeAfterTheRunsAndBeforeEof) {
  pipeline::metrics_sample m;
  m.items_handed_on = 5;
  const auto text = pipeline::render_openmetrics(m, [](pipeline::openmetrics_writer& e) {
    e.counter("export_items_worker_claims", "", "Jobs this worker claimed", 3);
    e.family("export_items_worker_jobs_recorded", "counter", "", "Done records, by result");
    e.sample("export_items_worker_jobs_recorded_total",
             pipeline::openmetrics_label("result", "fail\"ed"), std::uint64_t{1});
  });
  const auto run_family = text.find("# TYPE export_items_items_handed_on counter\n");
  const auto claims = text.find(
      "# TYPE export_items_worker_claims counter\n"
      "# HELP export_items_worker_claims Jobs this worker claimed\n"
      "export_items_worker_claims_total 3\n");
  // The last sample, its label escaped, then the end.
  const std::string tail =
      "export_items_worker_jobs_recorded_total{result=\"fail\\\"ed\"} 1\n# EOF\n";
  ASSERT_NE(run_family, std::string::npos) << text;
  ASSERT_NE(claims, std::string::npos) << text;
  EXPECT_LT(run_family, claims);
  ASSERT_GE(text.size(), tail.size());
  EXPECT_EQ(text.substr(text.size() - tail.size()), tail) << text;
}

TEST(monitor, TheFileIsReplacedWholeAndTheLastSuccessIsCarriedOver) {
  temp_dir d;
  const auto path = (d.path / "export_items.prom").string();
  ASSERT_TRUE(pipeline::write_file_atomically(path, "first\n"));
  ASSERT_TRUE(pipeline::write_file_atomically(path,
                                              "export_items_last_success_timestamp_seconds "
                                              "1796055274.500000\n# EOF\n"));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  EXPECT_DOUBLE_EQ(pipeline::previous_last_success(path), 1796055274.5);
  EXPECT_EQ(pipeline::previous_last_success((d.path / "missing.prom").string()), 0);
  EXPECT_FALSE(
      pipeline::write_file_atomically((d.path / "no" / "such" / "dir.prom").string(), "x"));
}

TEST(monitor, EtaOnceTheBatchIsKnownFromJobsOrItems) {
  pipeline::progress_view p;
  EXPECT_FALSE(pipeline::eta_seconds(p, 10));  // nothing known
  p.jobs_total = 4;
  EXPECT_FALSE(pipeline::eta_seconds(p, 10));  // discovery may still add jobs
  p.jobs_total_known = true;
  EXPECT_FALSE(pipeline::eta_seconds(p, 10));  // nothing done yet
  p.jobs_done = 1;                             // a quarter of the jobs in 10 s
  ASSERT_TRUE(pipeline::eta_seconds(p, 10));
  EXPECT_DOUBLE_EQ(*pipeline::eta_seconds(p, 10), 30);
  // One big job: half of its items listed in 4 s.
  pipeline::progress_view one;
  one.jobs_total = 1;
  one.jobs_total_known = true;
  one.jobs_started = 1;
  one.items_expected = 1000;
  one.items_listed = 500;
  EXPECT_DOUBLE_EQ(*pipeline::eta_seconds(one, 4), 4);
  // Jobs not started yet count at the average size: 2 of 4 started (200 items), 100 listed.
  pipeline::progress_view some;
  some.jobs_total = 4;
  some.jobs_total_known = true;
  some.jobs_started = 2;
  some.items_expected = 200;
  some.items_listed = 100;
  EXPECT_DOUBLE_EQ(*pipeline::eta_seconds(some, 6), 18);
  one.items_listed = 1000;  // everything listed: no estimate (dispatching is what is left)
  EXPECT_FALSE(pipeline::eta_seconds(one, 4));
}

TEST(monitor, ThrottledAndRetryStormAreSaidOncePerEpisode) {
  pipeline::http_watch w;
  const auto t0 = std::chrono::steady_clock::time_point{} + 1000s;
  api::client_stats s;
  EXPECT_TRUE(w.observe(t0, s).empty());
  s.attempts = 100;
  s.throttled = 1;
  auto e = w.observe(t0 + 1s, s);
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].name, "throttled");
  s.attempts = 110;
  s.throttled = 3;
  EXPECT_TRUE(w.observe(t0 + 2s, s).empty());  // the same episode: said already
  s.throttled = 4;
  e = w.observe(t0 + 33s, s);  // still throttled after `repeat`: said again
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].name, "throttled");
  e = w.observe(t0 + 44s, s);  // no 429 for `quiet`
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].name, "throttle_ended");

  // 30 of 60 attempts in the window are retries: a storm; then it calms down.
  s.attempts = 170;
  s.retries = 30;
  e = w.observe(t0 + 45s, s);
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].name, "retry_storm");
  EXPECT_NE(e[0].message.find("30 of 60"), std::string::npos) << e[0].message;
  s.attempts = 1000;
  e = w.observe(t0 + 60s, s);
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].name, "retry_storm_ended");
}

TEST(monitor, RewritesTheMetricsFileWhileRunningAndOnceMoreAtStop) {
  temp_dir d;
  const auto path = d.path / "export_items.prom";
  auto progress = std::make_shared<actors::batch_progress>();
  auto outcomes = std::make_shared<pipeline::outcome_metrics>();
  pipeline::monitor_options o;
  o.metrics_file = path.string();
  o.metrics_interval = 20ms;
  pipeline::run_monitor mon(
      o, [progress] { return pipeline::stats_of(*progress, api::client_stats{}); }, outcomes);
  ASSERT_NE(slurp(path).find("export_items_run_in_progress 1\n"), std::string::npos);
  progress->items_emitted = 5;
  // A later rewrite shows the new count (bounded wait for the condition).
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (slurp(path).find("export_items_items_handed_on_total 5\n") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  EXPECT_NE(slurp(path).find("export_items_items_handed_on_total 5\n"), std::string::npos);
  actors::job_outcome done;
  done.job_id = *api::uuid::parse("f3389fe8-201e-45e2-b711-a5596c3f2cd5");
  done.result = actors::job_result::complete;
  outcomes->add(done);
  mon.stop();
  const auto text = slurp(path);
  EXPECT_NE(text.find("export_items_run_in_progress 0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("export_items_jobs_finished_total{result=\"complete\"} 1\n"),
            std::string::npos);
  EXPECT_EQ(text.find("export_items_last_success_timestamp_seconds 0\n"), std::string::npos);
  EXPECT_FALSE(mon.metrics_failed());
}

}  // namespace
