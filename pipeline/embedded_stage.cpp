#include "export_items/stage.hpp"

#include <chrono>
#include <vector>

#include <caf/all.hpp>

#include "actors/batch.hpp"
#include "actors/report.hpp"
#include "actors/sink.hpp"
#include "actors/store.hpp"
#include "api/http_client.hpp"
#include "pipeline/config.hpp"
#include "pipeline/runtime.hpp"
#include "writeback/writeback.hpp"

namespace export_items {

std::string_view to_string(failure_kind k) noexcept {
  switch (k) {
    case failure_kind::none:
      return "none";
    case failure_kind::job_not_in_progress:
      return "job_not_in_progress";
    case failure_kind::unknown_job:
      return "unknown_job";
    case failure_kind::unauthorized:
      return "unauthorized";
    case failure_kind::api:
      return "api";
    case failure_kind::listing:
      return "listing";
    case failure_kind::decode:
      return "decode";
    case failure_kind::downstream:
      return "downstream";
    case failure_kind::state:
      return "state";
    case failure_kind::internal:
      return "internal";
  }
  return "internal";
}

failure_kind failure_of(const job_outcome& o) noexcept {
  if (o.result != job_result::failed) return failure_kind::none;
  using ei::actors::job_errc;
  switch (o.failure.code) {
    case job_errc::job_not_in_progress:
    case job_errc::job_expired:
    case job_errc::job_finished_elsewhere:
      return failure_kind::job_not_in_progress;
    case job_errc::http_status:
      switch (o.failure.http_status) {
        case 404:
          return failure_kind::unknown_job;
        case 401:
        case 403:
          return failure_kind::unauthorized;
        default:
          return failure_kind::api;
      }
    case job_errc::invalid_url:
    case job_errc::invalid_config:
    case job_errc::connect_failed:
    case job_errc::tls_failed:
    case job_errc::timeout:
    case job_errc::connection_reset:
    case job_errc::truncated_body:
    case job_errc::response_too_large:
    case job_errc::retries_exhausted:
    case job_errc::cancelled:
    case job_errc::discovery_failed:
      return failure_kind::api;
    case job_errc::cursor_rejected:
    case job_errc::limit_rejected:
    case job_errc::cursor_cycle:
    case job_errc::empty_pages:
    case job_errc::missing_end_cursor:
    case job_errc::parallel_listing_mismatch:
    case job_errc::short_listing:
    case job_errc::item_of_another_job:
      return failure_kind::listing;
    case job_errc::decode:
    case job_errc::bad_encoding:
      return failure_kind::decode;
    case job_errc::downstream_timeout:
    case job_errc::downstream_protocol:
    case job_errc::downstream_down:
      return failure_kind::downstream;
    case job_errc::store:
    case job_errc::report:
      return failure_kind::state;
    case job_errc::internal:
    case job_errc::interrupted:
      return failure_kind::internal;
  }
  return failure_kind::internal;  // not reached: every code is listed above
}

std::string_view to_string(stage_errc c) noexcept {
  switch (c) {
    case stage_errc::invalid_config:
      return "invalid_config";
    case stage_errc::state_dir:
      return "state_dir";
    case stage_errc::http_client:
      return "http_client";
    case stage_errc::stopped:
      return "stopped";
    case stage_errc::output:
      return "output";
  }
  return "unknown";
}

namespace {

/// Before anything is opened for writing: the state directory (read-only, when it holds a
/// store) must accept the output (actors::plan_output), so that a refused start changes
/// nothing: not the output file, not the state directory.
ei::status<stage_errc> check_output_binding(const std::string& path, const std::string& state_dir) {
  std::vector<ei::storage::sink_record> sinks;
  {
    ei::storage::store_options ro;
    ro.read_only = true;
    auto existing = ei::storage::state_store::open(state_dir, ro);
    if (existing) {
      auto loaded = (*existing)->load_sinks();
      if (!loaded) return ei::make_error(stage_errc::state_dir, loaded.err().message);
      sinks = std::move(loaded.value());
    } else if (existing.err().code != ei::storage::store_errc::not_found) {
      return ei::make_error(stage_errc::state_dir, existing.err().message);
    }
  }
  auto checked = ei::actors::check_output(path, sinks, state_dir);
  if (!checked.ok()) return ei::make_error(stage_errc::output, checked.err().message);
  return ei::ok_v;
}

stage_errc stage_errc_of(ei::pipeline::run_errc c) {
  switch (c) {
    case ei::pipeline::run_errc::state_dir:
      return stage_errc::state_dir;
    case ei::pipeline::run_errc::invalid_config:
      return stage_errc::invalid_config;
    case ei::pipeline::run_errc::output:
      return stage_errc::output;
    case ei::pipeline::run_errc::simulator:
    case ei::pipeline::run_errc::http_client:
      return stage_errc::http_client;
    case ei::pipeline::run_errc::interrupted:
      return stage_errc::stopped;
  }
  return stage_errc::http_client;
}

}  // namespace

struct stage::impl {
  caf::actor_system* host = nullptr;
  stage_config config;
  ei::pipeline::stage_resources resources;
  ei::pipeline::stage_actors actors;
  /// The NDJSON sink, when the stage made its downstream (ndjson_file): stopped with it.
  downstream_actor own_downstream;
  /// Set by the report writer once it appended anything (stats().reconciliation_written).
  std::shared_ptr<std::atomic<bool>> reconciliation_written =
      std::make_shared<std::atomic<bool>>(false);
  /// Shared by every batch runner of this stage: stats() reads it; its `stop` is the
  /// stage's stop flag.
  std::shared_ptr<ei::actors::batch_progress> progress =
      std::make_shared<ei::actors::batch_progress>();
  std::shared_ptr<std::atomic<bool>> stop;
  bool stopped = false;
};

stage::stage(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

stage::~stage() {
  shutdown();
}

ei::result<std::unique_ptr<stage>, stage_errc> stage::start(
    caf::actor_system& host, stage_config config, const credentials& creds,
    const std::string& state_dir, downstream_actor downstream, stage_options options) {
  if (!downstream) return ei::make_error(stage_errc::invalid_config, "no downstream actor");
  return start_with(host, std::move(config), creds, state_dir, std::move(downstream), std::nullopt,
                    std::move(options));
}

ei::result<std::unique_ptr<stage>, stage_errc> stage::start(
    caf::actor_system& host, stage_config config, const credentials& creds,
    const std::string& state_dir, ndjson_file output, stage_options options) {
  if (output.path.empty())
    return ei::make_error(stage_errc::invalid_config, "ndjson_file: the path is empty");
  return start_with(host, std::move(config), creds, state_dir, {}, std::move(output),
                    std::move(options));
}

ei::result<std::unique_ptr<stage>, stage_errc> stage::start_with(
    caf::actor_system& host, stage_config config, const credentials& creds,
    const std::string& state_dir, downstream_actor downstream, std::optional<ndjson_file> output,
    stage_options options) {
  if (auto st = ei::pipeline::validate(config); !st.ok())
    return ei::make_error(stage_errc::invalid_config, st.err().message);
  if (config.base_url == "embedded" || config.base_url.empty())
    return ei::make_error(stage_errc::invalid_config,
                          "base_url must be the API's URL when the stage is embedded");
  config.http.base_url = config.base_url;
  if (output && !state_dir.empty()) {
    if (auto bound = check_output_binding(output->path, state_dir); !bound.ok())
      return std::move(bound).err();
  }
  auto res = ei::pipeline::open_resources(config, creds, state_dir);
  if (!res) return ei::make_error(stage_errc_of(res.err().code), res.err().message);
  auto p = std::make_unique<impl>();
  p->host = &host;
  p->config = std::move(config);
  p->resources = std::move(res.value());
  p->stop = options.stop ? std::move(options.stop) : std::make_shared<std::atomic<bool>>(false);
  p->progress->stop = p->stop;

  // The store actor first: the NDJSON sink commits its acks through it.
  auto writer = ei::actors::spawn_store_actor(host, p->resources.store);
  if (output) {
    ei::actors::ndjson_sink_options sink_opts;
    sink_opts.path = output->path;
    sink_opts.commit_timeout = p->config.settings.request_timeout;
    auto sink = ei::actors::spawn_ndjson_sink(host, sink_opts, p->resources.store, writer);
    if (!sink) {
      caf::anon_send_exit(writer, caf::exit_reason::user_shutdown);
      p->resources.http->stop();
      return ei::make_error(stage_errc::output, sink.err().message);
    }
    downstream = sink.value();
    p->own_downstream = downstream;
  }
  p->actors = ei::pipeline::spawn_stage_actors(host, p->config, p->resources, std::move(downstream),
                                               std::move(writer));
  // Job supervisors write their reported items through it before recording a job complete.
  if (!options.reconcile_path.empty())
    p->actors.base.report_writer = ei::actors::spawn_report_writer(
        host, std::move(options.reconcile_path), p->reconciliation_written);
  return std::unique_ptr<stage>(new stage(std::move(p)));
}

batch_runner_actor stage::batch_runner() {
  return ei::actors::spawn_batch_runner(*impl_->host, impl_->actors.base, impl_->actors.fetchers,
                                        impl_->progress);
}

stage_stats stage::stats() const {
  auto out = ei::pipeline::stats_of(*impl_->progress, impl_->resources.http->stats());
  out.reconciliation_written = impl_->reconciliation_written->load();
  return out;
}

void stage::request_stop() noexcept {
  impl_->stop->store(true);
}

ei::result<batch_report, stage_errc> stage::run(const batch_request& batch) {
  if (impl_->stopped) return ei::make_error(stage_errc::stopped, "the stage was shut down");
  caf::scoped_actor self{*impl_->host};
  std::optional<batch_report> got;
  std::string failure;
  self->request(batch_runner(), caf::infinite, run_atom::value, batch)
      .receive([&](batch_report& r) { got = std::move(r); },
               [&](caf::error& err) { failure = caf::to_string(err); });
  if (!got) return ei::make_error(stage_errc::stopped, "the batch did not finish: " + failure);
  return std::move(*got);
}

ei::result<write_back_report, stage_errc> stage::write_back(const write_back_options& options) {
  if (impl_->stopped) return ei::make_error(stage_errc::stopped, "the stage was shut down");
  auto done = ei::writeback::write_back(*impl_->resources.http, *impl_->resources.store, options);
  if (!done)
    return ei::make_error(done.err().code == ei::writeback::wb_errc::store
                              ? stage_errc::state_dir
                              : stage_errc::invalid_config,
                          done.err().message);
  return std::move(done.value());
}

void stage::shutdown() {
  if (!impl_ || impl_->stopped) return;
  impl_->stopped = true;
  // The sink before the store actor it commits through.
  if (impl_->own_downstream)
    caf::anon_send_exit(impl_->own_downstream, caf::exit_reason::user_shutdown);
  impl_->own_downstream = downstream_actor{};
  ei::pipeline::stop_stage_actors(*impl_->host, impl_->actors);
  impl_->resources.http->stop();
  // The store closes (and its directory lock goes) when the last actor holding it is gone:
  // release ours, then wait for theirs, so that the promise "store closed" holds on return
  // (detached actors finish their cleanup on their own threads, a moment after they quit).
  impl_->actors.base.store.reset();
  impl_->resources.store.reset();
  impl_->resources.store_closed.wait_for(std::chrono::seconds(30));
}

}  // namespace export_items
