#include "apps/embedded_sim.hpp"

#include "pipeline/sim_config.hpp"

namespace ei::apps {

result<embedded_api, pipeline::run_errc> start_embedded(const pipeline::embedded_simulator& e) {
  sim::sim_config sc = pipeline::to_sim(e);
  sc.host = "127.0.0.1";
  sc.port = 0;
  sc.api_key = e.api_key;
  // The embedded simulator only knows its own key: credentials from the environment are
  // meant for the real API and are not used here.
  auto key = api::credentials::from_api_key(e.api_key);
  if (!key)
    return make_error(pipeline::run_errc::invalid_config, "embedded.api_key: " + key.err().message);
  auto started = sim::simulator::start(sc);
  if (!started) return make_error(pipeline::run_errc::simulator, started.err().message);
  embedded_api out;
  out.simulator = std::move(started.value());
  out.base_url = out.simulator->base_url();
  out.credentials = std::move(key.value());
  return out;
}

}  // namespace ei::apps
