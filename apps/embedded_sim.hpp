// `base_url: "embedded"` (configs/embedded.json, `make demo`): the command line starts the
// Export API simulator in its own process, on loopback and a port the OS picks, and runs the
// stage against it. Here and not in pipeline/, so that the library (and every embedder) does
// not link the simulator.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "api/credentials.hpp"
#include "common/result.hpp"
#include "pipeline/config.hpp"
#include "pipeline/stage.hpp"
#include "simulator/simulator.hpp"

namespace ei::apps {

struct embedded_api {
  std::unique_ptr<sim::simulator> simulator;    // serves until destroyed
  std::string base_url;                         // http://127.0.0.1:PORT
  std::optional<api::credentials> credentials;  // the simulator's own key (embedded.api_key)
};

/// Starts the simulator `embedded` describes. Errors: run_errc::simulator (it did not start),
/// run_errc::invalid_config (embedded.api_key is unusable; the message does not repeat it).
result<embedded_api, pipeline::run_errc> start_embedded(const pipeline::embedded_simulator& e);

}  // namespace ei::apps
