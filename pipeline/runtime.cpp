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
}

}  // namespace ei::pipeline
