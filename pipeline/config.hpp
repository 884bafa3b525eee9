// The stage's configuration: one JSON file (configs/*.json) overridden by the command line.
// Every key is documented in configs/README.md; unknown keys and wrong types are errors that
// name the key and the file.
#pragma once

#include <cstdint>
#include <string>

#include "actors/settings.hpp"
#include "api/http_client.hpp"
#include "common/result.hpp"
#include "simulator/simulator.hpp"
#include "storage/state_store.hpp"

namespace ei::pipeline {

enum class config_errc : std::uint8_t { unreadable, malformed, invalid_value, unknown_key };
std::string_view to_string(config_errc c) noexcept;

struct stage_config {
  std::string base_url = "embedded";  // "embedded": the simulator, in this process
  api::client_config http;            // base_url is filled from `base_url` at run time
  actors::stage_settings settings;
  storage::store_options store;
  std::uint32_t scheduler_threads = 2;  // CAF worker threads (default CAF oversubscribes)
  std::uint32_t fetchers = 2;           // fetcher actors shared by all jobs
  sim::sim_config embedded;             // the embedded simulator, when base_url == "embedded"
  std::string embedded_api_key = "embedded-demo-key";
};

/// Reads and validates a config file; missing keys keep their defaults.
result<stage_config, config_errc> load_config(const std::string& path);
/// Validates and applies a JSON document (the file's content) to `cfg`; `origin` names it.
status<config_errc> apply_config_json(stage_config& cfg, std::string_view json,
                                      const std::string& origin);
/// Cross-field checks after the command line was applied.
status<config_errc> validate(const stage_config& cfg);

}  // namespace ei::pipeline
