#include "pipeline/runtime.hpp"

#include <algorithm>

#include <caf/all.hpp>

#include "actors/fetcher.hpp"
#include "actors/store.hpp"

namespace ei::pipeline {

result<stage_resources, run_errc> open_resources(const embed_config& cfg,
                                                 const api::credentials& creds,
                                                 const std::string& state_dir) {
  if (state_dir.empty())
    return make_error(run_errc::invalid_config, "a state directory is required");
  auto http_cfg = cfg.http;
  if (cfg.settings.listing == actors::listing_mode::parallel) {
    // Offset pages in flight need connections to travel on; otherwise they queue in the pool.
    http_cfg.max_connections = std::max(http_cfg.max_connections, cfg.settings.parallel_requests);
    http_cfg.max_in_flight = std::max(http_cfg.max_in_flight, cfg.settings.parallel_requests);
  }
  auto client = api::http_client::create(http_cfg, creds);
  if (!client) return make_error(run_errc::http_client, client.err().message);
  stage_resources res;
  res.http = std::shared_ptr<api::http_client>(std::move(client.value()));
  auto opened = storage::state_store::open(state_dir, cfg.store);
  if (!opened) {
    res.http->stop();
    return make_error(run_errc::state_dir, opened.err().message);
  }
  auto closed = std::make_shared<std::promise<void>>();
  res.store_closed = closed->get_future().share();
  res.store = std::shared_ptr<storage::state_store>(opened.value().release(),
                                                    [closed](storage::state_store* s) {
                                                      delete s;
                                                      closed->set_value();
                                                    });
  return res;
}

std::chrono::milliseconds fetch_timeout_for(const embed_config& cfg) {
  const auto attempts = std::max<std::uint32_t>(1, cfg.http.max_attempts);
  const auto client_bound =
      cfg.http.request_timeout + cfg.http.retry_after_cap * attempts + std::chrono::seconds(30);
  return std::max(cfg.settings.request_timeout, client_bound);
}

stage_actors spawn_stage_actors(caf::actor_system& sys, const embed_config& cfg,
                                const stage_resources& res, actors::downstream_actor downstream,
                                actors::store_actor writer) {
  stage_actors out;
  out.base.settings = cfg.settings;
  out.base.settings.fetch_timeout = fetch_timeout_for(cfg);
  out.base.store = res.store;
  out.base.store_writer = writer ? std::move(writer) : actors::spawn_store_actor(sys, res.store);
  out.base.downstream = std::move(downstream);
  for (std::uint32_t i = 0; i < std::max<std::uint32_t>(1, cfg.fetchers); ++i)
    out.fetchers.push_back(actors::spawn_fetcher(sys, res.http));
  out.base.fetcher = out.fetchers.front();
  return out;
}

void stop_stage_actors(caf::actor_system& sys, const stage_actors& a) {
  caf::scoped_actor self{sys};
  for (const auto& f : a.fetchers)
    self->send_exit(f, caf::exit_reason::user_shutdown);
  self->send_exit(a.base.store_writer, caf::exit_reason::user_shutdown);
  if (a.base.report_writer) self->send_exit(a.base.report_writer, caf::exit_reason::user_shutdown);
}

export_items::stage_stats stats_of(const actors::batch_progress& p, const api::client_stats& http) {
  export_items::stage_stats out;
  out.jobs_total = p.jobs_total.load();
  out.jobs_running = p.jobs_running.load();
  out.jobs_done = p.jobs_done.load();
  out.jobs_failed = p.jobs_failed.load();
  out.jobs_total_known = p.jobs_total_known.load();
  out.jobs_started = p.jobs_started.load();
  out.items_expected = p.items_expected.load();
  out.items_listed = p.items_listed.load();
  out.pages = p.pages.load();
  out.items_handed_on = p.items_emitted.load();
  out.items_acked = p.items_acked.load();
  out.http_requests = http.requests;
  out.http_succeeded = http.succeeded;
  out.http_failed = http.failed;
  out.http_attempts = http.attempts;
  out.http_retries = http.retries;
  out.http_retry_wait_ms = http.retry_wait_ms;
  out.http_throttled = http.throttled;
  out.http_bytes_received = http.bytes_received;
  out.http_connections_opened = http.connections_opened;
  out.http_discovered_rate = http.discovered_rate;
  out.http_responses_by_class = http.responses_by_class;
  return out;
}

api::client_stats http_stats_of(const export_items::stage_stats& s) {
  api::client_stats out;
  out.requests = s.http_requests;
  out.succeeded = s.http_succeeded;
  out.failed = s.http_failed;
  out.attempts = s.http_attempts;
  out.retries = s.http_retries;
  out.retry_wait_ms = s.http_retry_wait_ms;
  out.throttled = s.http_throttled;
  out.bytes_received = s.http_bytes_received;
  out.connections_opened = s.http_connections_opened;
  out.discovered_rate = s.http_discovered_rate;
  out.responses_by_class = s.http_responses_by_class;
  return out;
}

}  // namespace ei::pipeline
