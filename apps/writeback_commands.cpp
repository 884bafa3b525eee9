#include "apps/writeback_commands.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <thread>

#include "api/credentials.hpp"
#include "pipeline/config.hpp"
#include "writeback/writeback.hpp"

namespace ei::writeback {

struct command_set {
  CLI::App* report_cmd = nullptr;
  CLI::App* complete_cmd = nullptr;
  // shared by report and complete
  std::string state_dir;
  std::string config_file;
  std::string base_url;
  std::string summary_file;
  std::vector<std::string> jobs;
  std::size_t in_flight = 4;
  int lock_wait_seconds = 60;
  // report
  std::string outcomes;
  bool complete_jobs_after_report = false;
  // complete
  std::string fail_job;
  std::string fail_reason;
  // run --complete-jobs
  bool run_complete_jobs = false;
  std::shared_ptr<std::optional<writeback::report>> run_result =
      std::make_shared<std::optional<writeback::report>>();
  std::shared_ptr<std::string> run_failure = std::make_shared<std::string>();
};

namespace {

constexpr int exit_ok = 0;
constexpr int exit_stopped = 1;
constexpr int exit_usage = 2;

int usage(const std::string& message) {
  std::cerr << "export-items: " << message << "\n";
  return exit_usage;
}

void emit_summary(const std::string& file, const std::string& json) {
  if (file.empty()) {
    std::cerr << json << "\n";
    return;
  }
  std::ofstream out(file, std::ios::trunc);
  out << json << "\n";
  if (!out) std::cerr << "export-items: cannot write summary to '" << file << "'\n";
}

/// Opens the store, waiting up to `wait` for a lock held by another export-items (a `run`
/// still writing into the same pipe).
result<std::unique_ptr<storage::state_store>, storage::store_errc> open_store(
    const std::string& dir, int wait_seconds) {
  storage::store_options so;
  so.create_if_missing = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(wait_seconds);
  for (;;) {
    auto s = storage::state_store::open(dir, so);
    if (s || s.err().code != storage::store_errc::locked ||
        std::chrono::steady_clock::now() >= deadline)
      return s;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

result<std::unique_ptr<api::http_client>, wb_errc> make_client(const command_set& c) {
  pipeline::stage_config cfg;
  if (!c.config_file.empty()) {
    auto loaded = pipeline::load_config(c.config_file);
    if (!loaded) return make_error(wb_errc::usage, loaded.err().message);
    cfg = std::move(loaded.value());
  }
  if (!c.base_url.empty()) cfg.base_url = c.base_url;
  if (cfg.base_url == "embedded")
    return make_error(wb_errc::usage,
                      "the embedded simulator lives only inside `run`: give --base-url (the API "
                      "or a simulator's URL), or use `run --complete-jobs`");
  auto creds = api::credentials::from_env();
  if (!creds) return make_error(wb_errc::usage, creds.err().message);
  cfg.http.base_url = cfg.base_url;
  // As `run` sizes its pool to its requests in flight: --in-flight PUTs need as many
  // connections, or the extra ones only queue (measured: 16 in flight on 4 connections at
  // 50 ms per PUT were no faster than 4).
  const auto wanted = static_cast<std::uint32_t>(std::min<std::size_t>(c.in_flight, 1024));
  cfg.http.max_connections = std::max(cfg.http.max_connections, wanted);
  cfg.http.max_in_flight = std::max(cfg.http.max_in_flight, wanted);
  auto client = api::http_client::create(cfg.http, std::move(creds.value()));
  if (!client) return make_error(wb_errc::usage, client.err().message);
  return std::move(client.value());
}

bool parse_jobs(const std::vector<std::string>& in, std::vector<api::uuid>& out,
                std::string& problem) {
  for (const auto& t : in) {
    auto id = api::uuid::parse(t);
    if (!id) {
      problem = "--job: '" + t + "' is not a job id (expected a UUID)";
      return false;
    }
    out.push_back(*id);
  }
  return true;
}

/// Outcome lines, one at a time, from a file or from standard input. Standard input is first
/// spooled to an unnamed temporary file ($TMPDIR), so memory stays flat whatever its size:
/// with `run --out - | erp | export-items report --outcomes -`, `run` holds the state
/// directory until it exits, so the store can be opened only once the input has ended.
class outcome_source {
 public:
  ~outcome_source() {
    std::free(buffer_);
    if (file_ != nullptr) std::fclose(file_);
  }
  /// Empty on success, else what went wrong.
  std::string open(const std::string& path) {
    if (path != "-") {
      file_ = std::fopen(path.c_str(), "rb");
      return file_ != nullptr ? std::string{}
                              : "--outcomes: cannot read '" + path + "': " + std::strerror(errno);
    }
    file_ = std::tmpfile();
    if (file_ == nullptr)
      return std::string("--outcomes -: cannot create a temporary file to spool standard input: ") +
             std::strerror(errno);
    std::vector<char> chunk(1 << 16);
    for (;;) {
      const std::size_t n = std::fread(chunk.data(), 1, chunk.size(), stdin);
      if (n > 0 && std::fwrite(chunk.data(), 1, n, file_) != n)
        return std::string("--outcomes -: cannot spool standard input: ") + std::strerror(errno);
      if (n < chunk.size()) break;
    }
    if (std::ferror(stdin)) return "--outcomes -: reading standard input failed";
    if (std::fflush(file_) != 0 || std::fseek(file_, 0, SEEK_SET) != 0)
      return std::string("--outcomes -: cannot read back the spooled input: ") +
             std::strerror(errno);
    return {};
  }
  /// The next line without its newline, or nullopt at the end.
  std::optional<std::string_view> next() {
    const ssize_t n = ::getline(&buffer_, &capacity_, file_);
    if (n < 0) return std::nullopt;
    std::size_t len = static_cast<std::size_t>(n);
    if (len > 0 && buffer_[len - 1] == '\n') --len;
    return std::string_view(buffer_, len);
  }
  bool failed() const { return std::ferror(file_) != 0; }

 private:
  std::FILE* file_ = nullptr;
  char* buffer_ = nullptr;
  std::size_t capacity_ = 0;
};

int report_command(const command_set& c) {
  outcome_source source;
  if (auto problem = source.open(c.outcomes); !problem.empty()) return usage(problem);
  auto client = make_client(c);
  if (!client) return usage(client.err().message);
  auto store = open_store(c.state_dir, c.lock_wait_seconds);
  if (!store) return usage(store.err().message);
  outcome_recorder recorder(**store);
  std::uint64_t read = 0, recorded = 0, duplicate = 0, refused = 0;
  const std::string input_name = c.outcomes == "-" ? std::string("stdin") : c.outcomes;
  std::uint64_t line_number = 0;
  while (auto line = source.next()) {
    ++line_number;
    if (line->find_first_not_of(" \t\r") == std::string_view::npos) continue;
    ++read;
    auto where = [&] { return input_name + ":" + std::to_string(line_number) + ": "; };
    auto parsed = parse_outcome_line(*line);
    if (!parsed) {
      ++refused;
      std::cerr << "export-items: " << where() << parsed.err().message << "; line refused\n";
      continue;
    }
    std::string why;
    switch (recorder.add(std::move(parsed.value()), why)) {
      case verdict::recorded:
        ++recorded;
        break;
      case verdict::duplicate:
        ++duplicate;
        break;
      case verdict::refused:
        ++refused;
        std::cerr << "export-items: " << where() << why << "; line refused\n";
        break;
    }
    if ((recorded % 4096) == 0 && recorded > 0) {
      if (auto st = recorder.flush(); !st) return usage(st.err().message);
    }
  }
  if (source.failed()) {
    // What was read is recorded below and sent; the rest of the input never arrived.
    std::cerr << "export-items: " << input_name << ": reading failed after line " << line_number
              << "\n";
    ++refused;
  }
  if (auto st = recorder.flush(); !st) {
    std::cerr << "export-items: " << st.err().message << "\n";
    return exit_stopped;
  }
  options opts;
  opts.jobs = recorder.jobs();
  opts.complete = c.complete_jobs_after_report;
  opts.requests_in_flight = c.in_flight;
  report r;
  if (!opts.jobs.empty()) {
    auto done = write_back(**client, **store, opts);
    if (!done) return usage(done.err().message);
    r = std::move(done.value());
  }
  emit_summary(c.summary_file, summary_json(r, read, recorded, duplicate, refused));
  if (refused > 0) return exit_usage;
  return r.ok() ? exit_ok : exit_stopped;
}

int complete_command(const command_set& c) {
  options opts;
  std::string problem;
  if (!parse_jobs(c.jobs, opts.jobs, problem)) return usage(problem);
  if (!c.fail_job.empty()) {
    if (opts.jobs.empty()) return usage("--fail-job needs the jobs named with --job");
    opts.fail_reason_type = c.fail_job;
    opts.fail_reason = c.fail_reason;
  } else {
    opts.complete = true;
  }
  opts.requests_in_flight = c.in_flight;
  auto client = make_client(c);
  if (!client) return usage(client.err().message);
  auto store = open_store(c.state_dir, c.lock_wait_seconds);
  if (!store) return usage(store.err().message);
  auto done = write_back(**client, **store, opts);
  if (!done) return usage(done.err().message);
  for (const auto& j : done->jobs) {
    std::cerr << "export-items: job " << j.job_id.to_string() << ": ";
    if (j.completion == "already_recorded")
      std::cerr << "already " << j.job_status << " (recorded by an earlier run); nothing sent";
    else if (j.completion == "found_final")
      std::cerr << "found " << j.job_status << " in Pleo; recorded, nothing sent";
    else if (j.completion == "not_ready")
      std::cerr << "not ready: " << j.stop_message;
    else
      std::cerr << j.completion;
    if (!j.stop_code.empty())
      std::cerr << " (stopped: " << j.stop_code << ": " << j.stop_message << ")";
    std::cerr << "\n";
  }
  emit_summary(c.summary_file, summary_json(*done));
  return done->ok() ? exit_ok : exit_stopped;
}

void add_shared(CLI::App* cmd, command_set& c) {
  cmd->add_option("--state-dir", c.state_dir, "State directory (RocksDB)")->required();
  cmd->add_option("--config", c.config_file, "JSON configuration file (configs/*.json)");
  cmd->add_option("--base-url", c.base_url,
                  "API base URL (credentials from PLEO_API_KEY / "
                  "PLEO_ACCESS_TOKEN)");
  cmd->add_option("--summary", c.summary_file, "Write the JSON summary here (default stderr)");
  cmd->add_option("--in-flight", c.in_flight, "PUT requests in flight (default 4)");
  cmd->add_option("--lock-wait", c.lock_wait_seconds,
                  "Seconds to wait for a state directory another export-items holds (default 60)");
}

}  // namespace

std::shared_ptr<command_set> add_commands(CLI::App& app, CLI::App& run) {
  auto c = std::make_shared<command_set>();
  c->report_cmd = app.add_subcommand(
      "report", "Record item outcomes (NDJSON) and write them back to Pleo, exactly once");
  add_shared(c->report_cmd, *c);
  c->report_cmd
      ->add_option("--outcomes", c->outcomes,
                   "NDJSON outcome lines {\"jobId\",\"accountingEntryId\",\"status\",...}, or -")
      ->required();
  c->report_cmd->add_flag("--complete-jobs", c->complete_jobs_after_report,
                          "Also send the job event for jobs whose items are all reported");
  c->complete_cmd = app.add_subcommand(
      "complete", "Write back what is recorded and send the event of every job that is ready");
  add_shared(c->complete_cmd, *c);
  c->complete_cmd->add_option("--job", c->jobs, "Only this job (repeatable)");
  c->complete_cmd->add_option("--fail-job", c->fail_job,
                              "Send `failed` with this failureReasonType (e.g. "
                              "accounting_system_unreachable) for the --job jobs");
  c->complete_cmd->add_option("--fail-reason", c->fail_reason,
                              "failureReason text with --fail-job");
  run.add_flag("--complete-jobs", c->run_complete_jobs,
               "After the batch, write outcomes back and complete the ready jobs (downstream "
               "acks with outcomes; docs/write-back.md)");
  return c;
}

std::optional<int> dispatch(const command_set& c) {
  if (c.report_cmd->parsed()) return report_command(c);
  if (c.complete_cmd->parsed()) return complete_command(c);
  return std::nullopt;
}

void attach_to_run(const command_set& c, pipeline::run_options& o) {
  if (!c.run_complete_jobs) return;
  auto result = c.run_result;
  auto failure = c.run_failure;
  const std::size_t in_flight = c.in_flight;
  o.after_batch = [result, failure, in_flight](export_items::stage& stage,
                                               const actors::batch_report& batch) {
    options opts;
    opts.complete = true;
    opts.requests_in_flight = in_flight;
    opts.jobs = batch.finished;  // the jobs that did not fail (kept without the outcomes)
    if (opts.jobs.empty()) return;
    auto done = stage.write_back(opts);
    if (!done) {
      *failure = done.err().message;
      return;
    }
    *result = std::move(done.value());
  };
}

int run_exit_code(const command_set& c, int stage_rc) {
  if (!c.run_complete_jobs) return stage_rc;
  if (!c.run_failure->empty()) {
    std::cerr << "export-items: write-back: " << *c.run_failure << "\n";
    return stage_rc == exit_ok ? exit_stopped : stage_rc;
  }
  if (!*c.run_result) return stage_rc;
  std::cerr << "export-items: write-back " << summary_json(**c.run_result) << "\n";
  return (*c.run_result)->ok() || stage_rc != exit_ok ? stage_rc : exit_stopped;
}

}  // namespace ei::writeback
