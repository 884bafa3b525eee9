#include "pipeline/stage.hpp"

#include <chrono>
#include <ostream>
#include <sstream>

#include <caf/all.hpp>

#include "actors/message_types.hpp"
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

run_errc run_errc_of(export_items::stage_errc c) {
  switch (c) {
    case export_items::stage_errc::invalid_config:
      return run_errc::invalid_config;
    case export_items::stage_errc::state_dir:
      return run_errc::state_dir;
    case export_items::stage_errc::http_client:
      return run_errc::http_client;
    case export_items::stage_errc::output:
      return run_errc::output;
    case export_items::stage_errc::stopped:
      return run_errc::interrupted;
  }
  return run_errc::interrupted;
}

}  // namespace

void configure_actor_system(caf::actor_system_config& sys_cfg, const stage_config& cfg) {
  sys_cfg.set("scheduler.max-threads", static_cast<std::size_t>(cfg.scheduler_threads));
  sys_cfg.set("logger.verbosity", caf::atom("quiet"));
  actors::add_message_types(sys_cfg);
}

result<run_report, run_errc> run_stage(const stage_config& cfg, const run_options& options) {
  caf::actor_system_config sys_cfg;
  configure_actor_system(sys_cfg, cfg);
  caf::actor_system sys{sys_cfg};
  return run_stage(sys, cfg, options);
}

result<run_report, run_errc> run_stage(caf::actor_system& sys, const stage_config& cfg_in,
                                       const run_options& options) {
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
  const std::optional<api::credentials>& creds = options.credentials;
  if (!creds)
    return make_error(run_errc::invalid_config,
                      "no credentials: set PLEO_API_KEY (API key) or PLEO_ACCESS_TOKEN (OAuth)");

  // The stage: the NDJSON file (bound to the state directory, checked before anything is
  // opened for writing) or the caller's downstream; the reconciliation report; the stop flag.
  export_items::stage_options stage_opts;
  stage_opts.reconcile_path = reconciliation_path(options);
  stage_opts.stop = options.stop;
  actors::downstream_actor own_downstream;
  auto started = [&] {
    if (!options.downstream_factory)
      return export_items::stage::start(sys, cfg, *creds, options.state_dir,
                                        export_items::ndjson_file{options.out}, stage_opts);
    own_downstream = options.downstream_factory(sys);
    return export_items::stage::start(sys, cfg, *creds, options.state_dir, own_downstream,
                                      stage_opts);
  }();
  if (!started) {
    if (own_downstream) caf::anon_send_exit(own_downstream, caf::exit_reason::user_shutdown);
    return make_error(run_errc_of(started.err().code), started.err().message);
  }
  auto& stage = *started.value();

  run_report report;
  report.base_url = options.api_label.empty() ? cfg.base_url : options.api_label;
  report.out = options.out;
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
  run_monitor monitor(
      std::move(mon), [&stage] { return stage.stats(); }, metrics);
  auto got = stage.run(batch);
  {
    // The runner sent every outcome to the listener before it replied: once the listener
    // answers this, every entry is in the spool.
    caf::scoped_actor self{sys};
    self->request(caf::actor_cast<caf::actor>(summary_listener), caf::infinite,
                  actors::sync_atom::value)
        .receive([](bool) {}, [](caf::error&) {});
    self->send_exit(summary_listener, caf::exit_reason::user_shutdown);
  }
  monitor.stop();  // the last progress line and the final metrics file
  if (got && options.after_batch) options.after_batch(stage, got.value());
  // The caller's downstream before the stage's store actor, as the stage does with its sink.
  if (own_downstream) caf::anon_send_exit(own_downstream, caf::exit_reason::user_shutdown);
  stage.shutdown();
  const auto stats = stage.stats();
  if (stats.reconciliation_written) report.reconcile_out = stage_opts.reconcile_path;
  if (!got) return make_error(run_errc::interrupted, got.err().message);
  report.batch = std::move(got.value());
  report.http = http_stats_of(stats);
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
