// Runs a batch of export jobs end to end on the public API (export_items::stage, the one
// place that wires the stage's actors): starts the stage in an actor system (the caller's, or
// one of its own with the configured scheduler threads) with the NDJSON file downstream or
// the caller's, the reconciliation report and the stop flag; adds what a host adds around it
// (the spooled summary listener, progress lines and the metrics file from stage::stats());
// waits for the report; shuts the stage down with all state committed.
// This is what the `export-items run` command and the pipeline tests call.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "actors/batch.hpp"
#include "api/credentials.hpp"
#include "api/http_client.hpp"
#include "common/result.hpp"
#include "export_items/stage.hpp"
#include "pipeline/config.hpp"
#include "pipeline/summary.hpp"

namespace ei::pipeline {

enum class run_errc : std::uint8_t {
  invalid_config,  // the configuration or the command line is unusable
  state_dir,       // the state directory is locked, corrupt or from another schema
  output,          // the output file cannot be opened or is inconsistent with the state
  simulator,       // the embedded simulator failed to start (or base_url is "embedded")
  http_client,     // the HTTP client could not be created (bad URL, CA file, ...)
  interrupted,     // the batch did not finish within its deadline
};
std::string_view to_string(run_errc c) noexcept;

struct run_options {
  std::string state_dir;
  std::string out = "-";
  /// Items reported for reconciliation (NDJSON, appended). Empty: `<out>.reconcile.ndjson`,
  /// or `<state_dir>/reconcile.ndjson` when `out` is stdout.
  std::string reconcile_out;
  actors::batch_request batch;
  /// Credentials (required).
  std::optional<api::credentials> credentials;
  /// How the summary names the API (`base_url`); empty: the base URL. The command line says
  /// "embedded simulator at URL" for the simulator it started.
  std::string api_label;
  /// Progress lines go here (nullptr: none). `live` rewrites one line (a terminal).
  std::ostream* progress = nullptr;
  bool live_progress = false;
  std::chrono::seconds progress_interval{2};
  /// `--metrics-file`: OpenMetrics text (pipeline/monitor.hpp, docs/operations.md) rewritten
  /// atomically every `metrics_interval` and once more when the batch ended. Empty: none.
  std::string metrics_file;
  std::chrono::milliseconds metrics_interval{5000};
  /// When set, items go to the downstream this returns (spawned in the stage's actor system)
  /// instead of the NDJSON sink (export_items::ndjson_file); `out` is then ignored. For
  /// embedders and tests. run_stage stops it after the batch.
  std::function<actors::downstream_actor(caf::actor_system&)> downstream_factory;
  /// Called on the calling thread once the batch has reported, while the stage (its HTTP
  /// client, with its rate budget, and its state store) is still open: `run --complete-jobs`
  /// writes outcomes back and completes jobs here (export_items::stage::write_back).
  std::function<void(export_items::stage&, const actors::batch_report&)> after_batch;
  /// A graceful stop (set it from another thread, e.g. a signal watcher): no new job starts,
  /// no new batch is handed on, in-flight batches are acknowledged, and the batch ends with
  /// the unfinished jobs' reason code `interrupted` (resumable) within
  /// `stage_settings::stop_timeout`. Null: not stoppable.
  std::shared_ptr<std::atomic<bool>> stop;
  /// false: `run_report::batch.jobs` stays empty, so a batch of any number of jobs runs in
  /// bounded memory; the summary is spooled as the jobs finish either way, and the report's
  /// counters (all_complete, interrupted, batch.finished) are kept. The `run` command sets it.
  bool keep_outcomes = true;
};

struct run_report {
  actors::batch_report batch;
  api::client_stats http;
  std::string base_url;  // what was talked to (never credentials)
  std::string out;
  std::string reconcile_out;  // empty when nothing was reported
  /// Every job's summary entry, written as the job finished (set by run_stage).
  std::shared_ptr<summary_spool> summary;
  bool all_complete() const;
  /// A graceful stop ended at least one job before it finished (reason code `interrupted`).
  bool interrupted() const;
};

/// Sets `sys_cfg` up for a stage: `cfg.scheduler_threads` CAF workers, CAF's own logger quiet,
/// the message types registered (actors/message_types.hpp).
void configure_actor_system(caf::actor_system_config& sys_cfg, const stage_config& cfg);

/// Runs the batch on a stage started in `sys` (set up with configure_actor_system; the
/// caller owns it and may destroy it once this returned).
result<run_report, run_errc> run_stage(caf::actor_system& sys, const stage_config& cfg,
                                       const run_options& options);
/// The same in an actor system of its own, destroyed before it returns.
result<run_report, run_errc> run_stage(const stage_config& cfg, const run_options& options);

/// The JSON summary of a run (per job: listed, in scope, out of scope by status, emitted,
/// redelivered, pages, retries, duration, result, reason), streamed to `out` from the spool.
void write_summary(std::ostream& out, const run_report& report);
/// The same as a string (small batches, tests).
std::string summary_json(const run_report& report);

}  // namespace ei::pipeline
