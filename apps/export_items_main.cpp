// export-items: the command line of the stage.
//   export-items run   --base-url URL|embedded (--job ID ... | --jobs-file F | --discover)
//                      --state-dir DIR --out FILE|- [--ordering ...] [--page-size N] ...
//   export-items status --state-dir DIR [--job ID] [--json]            (read-only)
//   export-items state verify  --state-dir DIR                         (read-only)
//   export-items state inspect --state-dir DIR --job ID [--show N]     (read-only)
//   export-items submit ... / worker ... / batch status ...  (distributed/, through etcd)
// Exit codes: 0 every job complete; 1 one or more jobs failed; 2 usage or configuration error
// (nothing was changed); 3 interrupted by SIGTERM/SIGINT (summary written, a re-run resumes);
// 4 stopped at once by a second signal (no summary, a re-run resumes).
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include <CLI/CLI.hpp>
#include <boost/version.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/config.hpp>
#include <nlohmann/json.hpp>

#include "api/codec.hpp"
#include "api/credentials.hpp"
#include "apps/distributed_commands.hpp"
#include "apps/embedded_sim.hpp"
#include "apps/job_ids.hpp"
#include "apps/writeback_commands.hpp"
#include "common/enum_text.hpp"
#include "export_items/log.hpp"
#include "pipeline/config.hpp"
#include "pipeline/stage.hpp"
#include "storage/state_store.hpp"

namespace {

constexpr int exit_ok = 0;
constexpr int exit_jobs_failed = 1;
constexpr int exit_usage = 2;
constexpr int exit_interrupted = 3;  // a graceful stop: the summary is written; resumable
constexpr int exit_stopped = 4;      // a second signal: stopped at once; resumable

constexpr const char* exit_codes_help =
    "Exit codes: 0 every job complete; 1 one or more jobs failed (the others still complete);\n"
    "2 usage or configuration error (nothing was changed); 3 interrupted by SIGTERM/SIGINT\n"
    "(no new batches or jobs, in-flight acknowledgements drained within stop_timeout_ms, the\n"
    "summary written; run the same command again to resume); 4 stopped at once by a second\n"
    "signal (no summary; the state directory is consistent, a re-run resumes).";

/// Turns SIGTERM and SIGINT into a graceful stop of `run`: both are blocked in every thread
/// (call this before any thread is started: threads inherit the mask) and taken by sigwait()
/// on a thread of its own, so no work happens in a signal handler. The first one sets `stop`;
/// a second one ends the process at once with _exit(exit_stopped), which is safe: every
/// acknowledgement is committed in the state store before it is acted on, so a later run
/// resumes (cutting unacknowledged lines, redelivering in-flight items flagged).
void watch_stop_signals(std::shared_ptr<std::atomic<bool>> stop) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread([set, stop = std::move(stop)] {
    for (int count = 1;; ++count) {
      int sig = 0;
      if (::sigwait(&set, &sig) != 0) return;
      const std::string name = sig == SIGINT ? "SIGINT" : "SIGTERM";
      if (count == 1) {
        stop->store(true);
        std::cerr << "\nexport-items: " << name
                  << " received: stopping (no new batches or jobs; waiting for the "
                     "acknowledgements in flight). A second signal stops at once.\n"
                  << std::flush;
      } else {
        const std::string msg =
            "\nexport-items: " + name + " received again: stopping at once (a re-run resumes)\n";
        [[maybe_unused]] auto n = ::write(STDERR_FILENO, msg.data(), msg.size());
        ::_exit(exit_stopped);
      }
    }
  }).detach();
}

int usage_error(const std::string& message) {
  std::cerr << "export-items: " << message << "\n";
  return exit_usage;
}

struct run_args {
  std::string config_file;
  std::string base_url;
  std::vector<std::string> jobs;
  std::string jobs_file;
  bool discover = false;
  std::string company_id;
  std::string state_dir;
  std::string out;
  std::string ordering;
  std::string listing;
  std::uint32_t page_size = 0;
  std::uint32_t max_jobs = 0;
  std::string summary_file;
  std::string metrics_file;  // --metrics-file: OpenMetrics text (docs/operations.md)
  std::string reconcile_out;
  bool dispatch_unreconciled = false;
  bool recover_lost_state = false;
  bool quiet = false;
  std::string token_command;         // --token-command: prints a bearer token
  bool allow_insecure_http = false;  // --allow-insecure-http
  std::shared_ptr<ei::writeback::command_set>
      loop;  // --complete-jobs (apps/writeback_commands.hpp)
};

int run_command(const run_args& a) {
  ei::pipeline::stage_config cfg;
  if (!a.config_file.empty()) {
    auto loaded = ei::pipeline::load_config(a.config_file);
    if (!loaded) return usage_error(loaded.err().message);
    cfg = std::move(loaded.value());
  }
  if (!a.base_url.empty()) cfg.base_url = a.base_url;
  if (!a.ordering.empty()) {
    auto o = ei::parse_enum(a.ordering, ei::storage::ordering_modes);
    if (!o)
      return usage_error("--ordering: expected " + ei::enum_choices(ei::storage::ordering_modes) +
                         ", got '" + a.ordering + "'");
    cfg.settings.ordering = *o;
  }
  if (!a.listing.empty()) {
    auto l = ei::parse_enum(a.listing, ei::actors::listing_modes);
    if (!l)
      return usage_error("--listing: expected " + ei::enum_choices(ei::actors::listing_modes) +
                         ", got '" + a.listing + "'");
    cfg.settings.listing = *l;
  }
  if (a.page_size != 0) cfg.settings.page_size = a.page_size;
  if (a.max_jobs != 0) cfg.settings.max_jobs = a.max_jobs;
  if (a.allow_insecure_http) cfg.http.allow_insecure_http = true;
  if (a.dispatch_unreconciled) cfg.settings.dispatch_unreconciled = true;
  if (a.recover_lost_state) cfg.settings.recover_lost_state = true;

  ei::pipeline::run_options opts;
  opts.state_dir = a.state_dir;
  opts.out = a.out.empty() ? "-" : a.out;
  opts.reconcile_out = a.reconcile_out;
  opts.metrics_file = a.metrics_file;
  auto ids = ei::apps::job_ids(a.jobs, a.jobs_file);
  if (!ids) return usage_error(ids.err());
  opts.batch.jobs = std::move(ids.value());
  opts.batch.discover = a.discover;
  if (!a.company_id.empty()) {
    auto c = ei::api::uuid::parse(a.company_id);
    if (!c) return usage_error("--company-id: '" + a.company_id + "' is not a UUID");
    opts.batch.company_id = *c;
  }
  if (opts.batch.jobs.empty() && !opts.batch.discover)
    return usage_error("no jobs: give --job ID, --jobs-file FILE or --discover");

  // SIGTERM/SIGINT are blocked before any thread starts (the embedded simulator's included),
  // so that only the watcher takes them.
  opts.stop = std::make_shared<std::atomic<bool>>(false);
  watch_stop_signals(opts.stop);
  // `base_url: "embedded"`: the simulator, in this process, for as long as the run lasts.
  std::optional<ei::apps::embedded_api> embedded;
  if (cfg.base_url == "embedded") {
    if (auto st = ei::pipeline::validate(cfg); !st.ok()) return usage_error(st.err().message);
    if (opts.state_dir.empty()) return usage_error("--state-dir is required");
    auto started = ei::apps::start_embedded(cfg.embedded);
    if (!started) return usage_error(started.err().message);
    embedded = std::move(started.value());
    cfg.base_url = embedded->base_url;
    opts.credentials = std::move(embedded->credentials);
    opts.api_label = "embedded simulator at " + embedded->base_url;
  } else {
    auto creds = ei::api::credentials::from_env(a.token_command);
    if (!creds) return usage_error(creds.err().message);
    opts.credentials = std::move(creds.value());
  }
  if (!a.quiet) {
    opts.progress = &std::cerr;
    opts.live_progress = ::isatty(STDERR_FILENO) != 0;
  }
  if (a.loop) ei::writeback::attach_to_run(*a.loop, opts);
  opts.keep_outcomes = false;  // the summary is spooled: memory flat in the number of jobs
  // The stage runs in this actor system (configured scheduler threads) through the public
  // API (export_items::stage, via run_stage); it is gone before the summary is written.
  std::optional<ei::result<ei::pipeline::run_report, ei::pipeline::run_errc>> ran;
  {
    caf::actor_system_config sys_cfg;
    ei::pipeline::configure_actor_system(sys_cfg, cfg);
    caf::actor_system sys{sys_cfg};
    ran.emplace(ei::pipeline::run_stage(sys, cfg, opts));
  }
  auto& report = *ran;
  if (!report) {
    std::cerr << "export-items: " << report.err().message << "\n";
    const auto code = report.err().code;
    return code == ei::pipeline::run_errc::interrupted ? exit_jobs_failed : exit_usage;
  }
  // Streamed from the spool the jobs' entries were written to as they finished.
  if (!a.summary_file.empty()) {
    std::ofstream out(a.summary_file, std::ios::trunc);
    ei::pipeline::write_summary(out, report.value());
    out << "\n";
    if (!out) std::cerr << "export-items: cannot write summary to '" << a.summary_file << "'\n";
  } else {
    ei::pipeline::write_summary(std::cerr, report.value());
    std::cerr << "\n";
  }
  if (report->summary && !report->summary->ok())
    std::cerr << "export-items: the summary is incomplete: writing its temporary file failed\n";
  if (!a.quiet && opts.out != "-")
    std::cerr << "export-items: items written to " << opts.out << "\n";
  if (report->interrupted()) {
    std::cerr << "export-items: interrupted; run the same command again to resume\n";
    return exit_interrupted;
  }
  const int rc = report->all_complete() ? exit_ok : exit_jobs_failed;
  return a.loop ? ei::writeback::run_exit_code(*a.loop, rc) : rc;
}

/// status, state verify, state inspect: never create, repair, rotate or delete anything.
ei::storage::store_result<std::unique_ptr<ei::storage::state_store>> open_read_only(
    const std::string& state_dir) {
  ei::storage::store_options so;
  so.read_only = true;
  return ei::storage::state_store::open(state_dir, so);
}

/// One job's status entry (the keys of `status --json`).
nlohmann::json status_entry(ei::storage::state_store& store, const ei::storage::job_record& r) {
  auto wm = store.load_watermarks(r.job_id);
  return nlohmann::json{
      {"jobId", r.job_id.to_string()},
      {"companyId", r.company_id.to_string()},
      {"phase", std::string(ei::storage::to_string(r.phase))},
      {"ordering", std::string(ei::storage::to_string(r.ordering))},
      {"runs", r.runs},
      {"listed", r.counters.listed},
      {"pages", r.counters.pages},
      {"inScope", r.counters.in_scope},
      {"duplicates", r.counters.duplicates},
      {"orderSize", r.order_size},
      {"dispatchedThrough", wm ? wm->dispatched_through : 0},
      {"ackedThrough", wm ? wm->acked_through : 0},
      {"lastError", r.failure_code.empty()
                        ? nlohmann::json(nullptr)
                        : nlohmann::json(r.failure_code + ": " + r.failure_message)}};
}

void print_status_line(const nlohmann::json& j) {
  std::cout << j["jobId"].get<std::string>() << "  " << j["phase"].get<std::string>() << "  listed "
            << j["listed"] << ", in scope " << j["inScope"] << ", acked " << j["ackedThrough"]
            << "/" << j["orderSize"];
  if (!j["lastError"].is_null()) std::cout << "  last error: " << j["lastError"].get<std::string>();
  std::cout << "\n";
}

/// Streams one job at a time from the store, so 100,000 jobs need no more memory than one;
/// the JSON is the array one dump(2) of all entries would give.
int status_command(const std::string& state_dir, const std::string& job, bool as_json) {
  auto store = open_read_only(state_dir);
  if (!store) return usage_error(store.err().message);
  if (!job.empty()) {
    auto id = ei::api::uuid::parse(job);
    std::optional<ei::storage::job_record> rec;
    if (id) {
      auto loaded = (*store)->load_job(*id);
      if (!loaded) return usage_error(loaded.err().message);
      rec = std::move(loaded.value());
    }
    if (!rec) {
      std::cerr << "export-items: no job " << job << " in " << state_dir << "\n";
      return exit_jobs_failed;
    }
    rec->job_id = *id;
    const auto entry = status_entry(**store, *rec);
    if (as_json)
      std::cout << nlohmann::json::array({entry}).dump(2) << "\n";
    else
      print_status_line(entry);
    return exit_ok;
  }
  std::size_t count = 0;
  auto walked = (*store)->for_each_job([&](ei::storage::job_record&& r) {
    const auto entry = status_entry(**store, r);
    if (!as_json) {
      print_status_line(entry);
    } else {
      std::string text = entry.dump(2);
      std::string nested;
      nested.reserve(text.size() + 64);
      for (char c : text) {
        nested.push_back(c);
        if (c == '\n') nested.append("  ");
      }
      std::cout << (count == 0 ? "[\n  " : ",\n  ") << nested;
    }
    ++count;
    return true;
  });
  if (as_json) std::cout << (count == 0 ? "[]" : "\n]") << "\n";
  if (!walked) return usage_error(walked.err().message);  // as before: a store it cannot read
  return exit_ok;
}

std::string local_state_of(std::uint64_t seq, const ei::storage::watermarks& wm) {
  if (seq <= wm.acked_through) return "acked";
  if (seq <= wm.dispatched_through) return "dispatched";
  return "scoped";
}

int state_verify_command(const std::string& state_dir) {
  auto store = open_read_only(state_dir);
  if (!store) return usage_error(store.err().message);
  auto problems = (*store)->verify();
  if (!problems) {
    std::cerr << "export-items: " << problems.err().message << "\n";
    return exit_jobs_failed;
  }
  auto jobs = (*store)->load_jobs();
  for (const auto& p : problems.value())
    std::cout << "problem: " << p << "\n";
  if (!problems->empty()) {
    std::cout << problems->size() << " problem(s) in " << state_dir << "\n";
    return exit_jobs_failed;
  }
  std::cout << "ok: " << (jobs ? jobs->size() : 0) << " job(s), schema "
            << ei::storage::state_store::schema_version << ", no problems\n";
  return exit_ok;
}

int state_inspect_command(const std::string& state_dir, const std::string& job_text,
                          std::size_t show) {
  auto job = ei::api::uuid::parse(job_text);
  if (!job) return usage_error("--job: '" + job_text + "' is not a UUID");
  auto store = open_read_only(state_dir);
  if (!store) return usage_error(store.err().message);
  auto rec = (*store)->load_job(*job);
  if (!rec) return usage_error(rec.err().message);
  if (!rec.value()) {
    std::cerr << "export-items: no job " << job_text << " in " << state_dir << "\n";
    return exit_jobs_failed;
  }
  const auto& r = *rec.value();
  auto wm = (*store)->load_watermarks(*job);
  if (!wm) return usage_error(wm.err().message);
  std::cout << "job           " << r.job_id.to_string() << "\n"
            << "company       " << r.company_id.to_string() << "\n"
            << "phase         " << ei::storage::to_string(r.phase) << "\n"
            << "ordering      " << ei::storage::to_string(r.ordering) << "\n"
            << "runs          " << r.runs << "\n"
            << "listing       epoch " << r.listing_epoch << ", " << r.pages_committed
            << " page(s), " << (r.listing_complete ? "complete" : "incomplete")
            << (r.next_cursor.empty() ? "" : ", next cursor " + r.next_cursor) << "\n"
            << "listed        " << r.counters.listed << " (duplicates " << r.counters.duplicates
            << ")\n"
            << "by status    ";
  for (auto st : {ei::api::item_status::pending, ei::api::item_status::in_progress,
                  ei::api::item_status::successful, ei::api::item_status::failed,
                  ei::api::item_status::abandoned, ei::api::item_status::unknown})
    std::cout << " " << ei::api::to_string(st) << "="
              << r.counters.by_remote_status[static_cast<std::size_t>(st)];
  std::cout << "\n"
            << "in scope      " << r.counters.in_scope << " (needs reconciliation "
            << r.counters.needs_reconciliation << ")\n"
            << "order         " << r.order_size << " item(s)\n"
            << "dispatched    through " << wm->dispatched_through << "\n"
            << "acked         through " << wm->acked_through << "\n";
  if (!r.failure_code.empty())
    std::cout << "last error    " << r.failure_code << ": " << r.failure_message << "\n";
  if (r.order_size > 0) {
    // The first items, and the ones around the ack watermark (where a resume starts).
    auto print_range = [&](std::uint64_t first, std::size_t n) {
      auto entries = (*store)->read_order(*job, first, n);
      if (!entries) return;
      std::uint64_t seq = first;
      for (const auto& e : entries.value()) {
        std::cout << "  #" << seq << "  " << e.id.to_string() << "  "
                  << ei::api::to_string(e.remote_status) << "  " << local_state_of(seq, *wm)
                  << "\n";
        ++seq;
      }
    };
    std::cout << "order, first " << std::min<std::uint64_t>(show, r.order_size) << ":\n";
    print_range(1, show);
    if (wm->acked_through > show && wm->acked_through < r.order_size) {
      std::cout << "order, from the ack watermark:\n";
      print_range(wm->acked_through + 1, show);
    }
  }
  return exit_ok;
}

/// `export-items --version`: ours and the versions of the libraries that decide behaviour.
std::string version_text() {
  return "export-items " EI_VERSION "\n" + std::string("CAF ") +
         std::to_string(CAF_VERSION / 10000) + "." + std::to_string(CAF_VERSION / 100 % 100) + "." +
         std::to_string(CAF_VERSION % 100) + "\n" + ei::storage::engine_version() + "\n" +
         ei::api::parser_version() + "\nBoost " + std::to_string(BOOST_VERSION / 100000) + "." +
         std::to_string(BOOST_VERSION / 100 % 1000) + "." + std::to_string(BOOST_VERSION % 100);
}

}  // namespace

int main(int argc, char** argv) {
  // A handful of threads (CAF workers, the io thread, detached store/sink/orderer actors) each
  // got a malloc arena of its own that keeps what it freed: two arenas keep the peak RSS of a
  // 1 M-item job within a few MiB of a 100 k one at no measurable cost in speed.
  mallopt(M_ARENA_MAX, 2);
  // `run --out - | head`: when the reader goes away, a write must fail (EPIPE: the sink stops,
  // the jobs end failed with the reason, the summary says so) instead of the signal killing
  // the process without a word. The library leaves this to its host; the CLI is one. A
  // handler that does nothing rather than SIG_IGN: exec resets a handled signal to its
  // default, so a `--token-command` pipeline still gets the SIGPIPE it expects.
  struct sigaction on_pipe {};
  on_pipe.sa_handler = [](int) {};
  sigemptyset(&on_pipe.sa_mask);
  on_pipe.sa_flags = SA_RESTART;
  ::sigaction(SIGPIPE, &on_pipe, nullptr);
  CLI::App app{"export-items: retrieve, scope, order and hand on Pleo Export API v3 job items"};
  app.set_version_flag("--version", version_text());
  app.require_subcommand(1);
  // Logs (common/log.hpp): for every subcommand, before or after its name.
  app.fallthrough();
  std::string log_format = "text";
  std::string log_level;
  app.add_option("--log-format", log_format,
                 "Log lines as text (default) or json (one JSON object a line) on stderr");
  app.add_option("--log-level", log_level,
                 "trace, debug, info (default; warn with run --quiet), warn, error or off");
  app.footer(exit_codes_help);

  run_args ra;
  auto* run = app.add_subcommand(
      "run",
      "Run export jobs through the stage (re-run with the same --state-dir and --out to "
      "resume; SIGTERM/SIGINT stop gracefully, exit 3)");
  run->footer(
      "The output file is bound to its state directory: a fresh state directory refuses a "
      "non-empty --out, and a state directory refuses any other file (or -). Consumers that "
      "follow the file read lines only up to the byte offset in <out>.committed.\n" +
      std::string(exit_codes_help));
  run->add_option("--config", ra.config_file, "JSON configuration file (configs/*.json)");
  run->add_option("--base-url", ra.base_url,
                  "API base URL, or 'embedded' for the built-in simulator (default: config)");
  run->add_option("--job", ra.jobs, "Export job id (repeatable)");
  run->add_option("--jobs-file", ra.jobs_file, "File with one job id per line");
  run->add_flag("--discover", ra.discover, "Run every in_progress job the API lists");
  run->add_option("--company-id", ra.company_id, "With --discover: only this company");
  run->add_option("--state-dir", ra.state_dir,
                  "State directory (RocksDB); created if missing, or an empty directory")
      ->required();
  run->add_option("--out", ra.out,
                  "NDJSON output file (appended, locked, bound to --state-dir; "
                  "<out>.committed tells followers what is acknowledged), or - for stdout "
                  "(default -; a pipe: at-least-once across a crash)");
  run->add_option("--ordering", ra.ordering, "chronological (default) or entry_id");
  run->add_option("--page-size", ra.page_size, "Items per page (limit)");
  run->add_option("--listing", ra.listing,
                  "parallel (default: offset pages in flight, verified against total, "
                  "falling back to cursor) or cursor (endCursor page by page)");
  run->add_option("--max-jobs", ra.max_jobs, "Jobs run at once");
  run->add_option("--token-command", ra.token_command,
                  "Command printing a bearer token; run at start and after a 401");
  run->add_flag("--allow-insecure-http", ra.allow_insecure_http,
                "Allow plain http:// to a host other than loopback (credentials in clear text)");
  run->add_option("--summary", ra.summary_file, "Write the JSON summary here (default stderr)");
  run->add_flag("--quiet", ra.quiet, "No progress output, and logs from level warn on");
  run->add_option("--metrics-file", ra.metrics_file,
                  "Write OpenMetrics text here (node_exporter textfile collector: name it "
                  "*.prom), rewritten atomically every 5 s and at the end");
  run->add_option("--reconcile-out", ra.reconcile_out,
                  "Where items needing reconciliation are listed (default <out>.reconcile.ndjson)");
  run->add_flag("--dispatch-unreconciled", ra.dispatch_unreconciled,
                "Also hand on in_progress items that have no local record after state loss");
  run->add_flag("--recover-lost-state", ra.recover_lost_state,
                "This state directory lost its records: in_progress items without a record "
                "need reconciliation instead of being handed on");

  std::string status_dir;
  std::string status_job;
  bool status_json = false;
  auto* status = app.add_subcommand(
      "status", "Show what a state directory knows (read-only: changes nothing)");
  status->add_option("--state-dir", status_dir, "State directory")->required();
  status->add_option("--job", status_job, "Only this job");
  status->add_flag("--json", status_json, "JSON output");

  auto* state = app.add_subcommand(
      "state", "Offline tools for a state directory (read-only: change nothing)");
  state->require_subcommand(1);
  std::string state_dir;
  std::string inspect_job;
  std::size_t inspect_show = 10;
  auto* verify = state->add_subcommand(
      "verify", "Integrity check; exit 1 on any problem, 2 when there is no store (read-only)");
  verify->add_option("--state-dir", state_dir, "State directory")->required();
  auto* inspect = state->add_subcommand("inspect", "A readable dump of one job (read-only)");
  inspect->add_option("--state-dir", state_dir, "State directory")->required();
  inspect->add_option("--job", inspect_job, "Job id")->required();
  inspect->add_option("--show", inspect_show, "Order entries to show (default 10)");

  auto distributed = ei::distributed::add_commands(app);
  // Write-back to Pleo: `report`, `complete`, `run --complete-jobs` (apps/writeback_commands.hpp).
  auto loop = ei::writeback::add_commands(app, *run);
  ra.loop = loop;

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? exit_ok : exit_usage;
  }
  if (auto f = export_items::log::parse_format(log_format))
    export_items::log::set_format(*f);
  else
    return usage_error("--log-format: expected text or json, got '" + log_format + "'");
  if (!log_level.empty()) {
    auto l = export_items::log::parse_level(log_level);
    if (!l)
      return usage_error("--log-level: expected trace, debug, info, warn, error or off, got '" +
                         log_level + "'");
    export_items::log::set_level(*l);
  } else {
    export_items::log::set_level(run->parsed() && ra.quiet ? export_items::log::level::warn
                                                           : export_items::log::level::info);
  }
  if (auto rc = ei::distributed::dispatch(*distributed)) return *rc;
  if (auto rc = ei::writeback::dispatch(*loop)) return *rc;
  if (run->parsed()) return run_command(ra);
  if (status->parsed()) return status_command(status_dir, status_job, status_json);
  if (verify->parsed()) return state_verify_command(state_dir);
  if (inspect->parsed()) return state_inspect_command(state_dir, inspect_job, inspect_show);
  return exit_usage;
}
