#include "pipeline/stage.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <ostream>
#include <sstream>
#include <thread>

#include <caf/all.hpp>

#include "actors/message_types.hpp"
#include "actors/sink.hpp"
#include "actors/store.hpp"
#include "common/log.hpp"
#include "pipeline/monitor.hpp"
#include "pipeline/runtime.hpp"

namespace ei::pipeline {

std::string_view to_string(run_errc c) noexcept {
  switch (c) {
    case run_errc::invalid_config:
      return "invalid_config";
    case run_errc::state_dir:
      return "state_dir";
    case run_errc::output:
      return "output";
    case run_errc::simulator:
      return "simulator";
    case run_errc::http_client:
      return "http_client";
    case run_errc::interrupted:
      return "interrupted";
  }
  return "unknown";
}

bool run_report::all_complete() const {
  if (batch.failed > 0) return false;
  for (const auto& j : batch.jobs)
    if (j.result == actors::job_result::failed) return false;
  return true;
}

bool run_report::interrupted() const {
  if (batch.interrupted > 0) return true;
  for (const auto& j : batch.jobs)
    if (actors::is_interrupted(j)) return true;
  return false;
}

namespace {

/// Appends each job's summary entry to the spool as the job ends (detached: file writes),
/// counts it for the metrics, and hands the outcome on to the caller's own listener, if any.
actors::outcome_receiver_actor spawn_summary_listener(
    caf::actor_system& sys, std::shared_ptr<summary_spool> spool,
    std::shared_ptr<outcome_metrics> metrics,
    std::optional<actors::outcome_receiver_actor> forward) {
  using impl =
      actors::outcome_receiver_actor::extend<caf::replies_to<actors::sync_atom>::with<bool>>;
  auto behavior = [](impl::pointer self, std::shared_ptr<summary_spool> sp,
                     std::shared_ptr<outcome_metrics> om,
                     std::optional<actors::outcome_receiver_actor> fw) -> impl::behavior_type {
    return {
        [self, sp, om, fw](actors::outcome_atom, actors::job_outcome& out) {
          sp->add(out);
          om->add(out);
          if (fw) self->send(*fw, actors::outcome_atom::value, std::move(out));
        },
        [sp](actors::sync_atom) { return sp->ok(); },
    };
  };
  return caf::actor_cast<actors::outcome_receiver_actor>(
      sys.spawn<caf::detached>(behavior, std::move(spool), std::move(metrics), std::move(forward)));
}

/// Where reported items go: `--reconcile-out`, else next to the output (or in the state
/// directory when the output is stdout).
std::string reconciliation_path(const run_options& options) {
  if (!options.reconcile_out.empty()) return options.reconcile_out;
  return options.out == "-" ? options.state_dir + "/reconcile.ndjson"
                            : options.out + ".reconcile.ndjson";
}

/// Before anything is opened for writing: the state directory (read-only, when it holds a
/// store) must accept `--out` (actors::plan_output), so that a refused run changes nothing:
/// not the output file, not the state directory.
status<run_errc> check_output_binding(const run_options& options) {
  std::vector<storage::sink_record> sinks;
  {
    storage::store_options ro;
    ro.read_only = true;
    auto existing = storage::state_store::open(options.state_dir, ro);
    if (existing) {
      auto loaded = (*existing)->load_sinks();
      if (!loaded) return make_error(run_errc::state_dir, loaded.err().message);
      sinks = std::move(loaded.value());
    } else if (existing.err().code != storage::store_errc::not_found) {
      return make_error(run_errc::state_dir, existing.err().message);
    }
  }
  auto checked = actors::check_output(options.out, sinks, options.state_dir);
  if (!checked.ok()) return make_error(run_errc::output, checked.err().message);
  return ok_v;
}

}  // namespace

result<run_report, run_errc> run_stage(const stage_config& cfg_in, const run_options& options) {
  stage_config cfg = cfg_in;
  if (auto st = validate(cfg); !st.ok())
    return make_error(run_errc::invalid_config, st.err().message);
  if (options.state_dir.empty())
    return make_error(run_errc::invalid_config, "--state-dir is required");

  // The simulator behind `base_url: "embedded"` is the command line's (apps/embedded_sim.hpp):
  // the library never links it, so it is started before this and its URL given here.
  if (cfg.base_url == "embedded")
    return make_error(run_errc::simulator,
                      "base_url \"embedded\": the embedded simulator is started by the "
                      "export-items command, not by the library; give the API's URL");
  cfg.http.base_url = cfg.base_url;
  const std::optional<api::credentials>& creds = options.credentials;
  if (!creds)
    return make_error(run_errc::invalid_config,
                      "no credentials: set PLEO_API_KEY (API key) or PLEO_ACCESS_TOKEN (OAuth)");

  if (!options.downstream_factory) {
    if (auto bound = check_output_binding(options); !bound.ok()) return std::move(bound).err();
  }
  auto res = open_resources(cfg, *creds, options.state_dir);
  if (!res) return std::move(res).err();
  auto http = res->http;
  auto store = res->store;

  run_report report;
  report.base_url = options.api_label.empty() ? cfg.base_url : options.api_label;
  report.out = options.out;
  {
    caf::actor_system_config sys_cfg;
    sys_cfg.set("scheduler.max-threads", static_cast<std::size_t>(cfg.scheduler_threads));
    sys_cfg.set("logger.verbosity", caf::atom("quiet"));
    actors::add_message_types(sys_cfg);
    caf::actor_system sys{sys_cfg};

    // The store actor first: the NDJSON sink commits its acks through it.
    auto writer = actors::spawn_store_actor(sys, store);
    actors::downstream_actor downstream;
    if (options.downstream_factory) {
      downstream = options.downstream_factory(sys);
    } else {
      actors::ndjson_sink_options sink_opts;
      sink_opts.path = options.out;
      sink_opts.commit_timeout = cfg.settings.request_timeout;
      auto sink = actors::spawn_ndjson_sink(sys, sink_opts, store, writer);
      if (!sink) {
        anon_send_exit(writer, caf::exit_reason::user_shutdown);
        return make_error(run_errc::output, sink.err().message);
      }
      downstream = sink.value();
    }

    auto shared = spawn_stage_actors(sys, cfg, res.value(), downstream, writer);
    // Job supervisors write their reported items through it before recording a job complete.
    const auto report_path = reconciliation_path(options);
    auto reported_any = std::make_shared<std::atomic<bool>>(false);
    shared.base.report_writer = actors::spawn_report_writer(sys, report_path, reported_any);
    const auto& base = shared.base;
    const auto& fetchers = shared.fetchers;
    auto progress = std::make_shared<actors::batch_progress>();
    progress->stop = options.stop;
    auto runner = actors::spawn_batch_runner(sys, base, fetchers, progress);
    report.summary = std::make_shared<summary_spool>();
    auto metrics = std::make_shared<outcome_metrics>();
    auto summary_listener =
        spawn_summary_listener(sys, report.summary, metrics, options.batch.listener);
    actors::batch_request batch = options.batch;
    batch.listener = summary_listener;
    batch.collect_outcomes = options.keep_outcomes;

    monitor_options mon;
    mon.progress = options.progress;
    mon.live = options.live_progress;
    mon.progress_interval = options.progress_interval;
    mon.metrics_file = options.metrics_file;
    mon.metrics_interval = options.metrics_interval;
    run_monitor monitor(std::move(mon), progress, http.get(), metrics);
    caf::scoped_actor self{sys};
    std::optional<actors::batch_report> got;
    std::string failure;
    self->request(runner, caf::infinite, actors::run_atom::value, std::move(batch))
        .receive([&](actors::batch_report& r) { got = std::move(r); },
                 [&](caf::error& err) { failure = to_string(err); });
    // The runner sent every outcome to the listener before it replied: once the listener
    // answers this, every entry is in the spool.
    self->request(caf::actor_cast<caf::actor>(summary_listener), caf::infinite,
                  actors::sync_atom::value)
        .receive([](bool) {}, [](caf::error&) {});
    self->send_exit(summary_listener, caf::exit_reason::user_shutdown);
    monitor.stop();  // the last progress line and the final metrics file
    // The sink before the store actor it commits through.
    self->send_exit(base.downstream, caf::exit_reason::user_shutdown);
    stop_stage_actors(sys, shared);
    self->send_exit(base.report_writer, caf::exit_reason::user_shutdown);
    if (*reported_any) report.reconcile_out = report_path;
    if (!got) return make_error(run_errc::interrupted, "the batch did not finish: " + failure);
    report.batch = std::move(*got);
    if (options.after_batch) options.after_batch(*http, *store, report.batch);
  }
  http->stop();
  report.http = http->stats();
  log::flush();  // every line of the run is out before the caller writes its summary
  return report;
}

void write_summary(std::ostream& out, const run_report& report) {
  summary_header h;
  h.base_url = report.base_url;
  h.out = report.out;
  h.reconcile_out = report.reconcile_out;
  h.duration_seconds = report.batch.duration_seconds;
  h.http = report.http;
  if (report.summary) return report.summary->write(out, h);
  summary_spool spool;  // a report put together by hand: its collected outcomes
  for (const auto& j : report.batch.jobs)
    spool.add(j);
  spool.write(out, h);
}

std::string summary_json(const run_report& report) {
  std::ostringstream out;
  write_summary(out, report);
  return out.str();
}

}  // namespace ei::pipeline
