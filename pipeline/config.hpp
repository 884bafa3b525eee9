// The stage's configuration: one JSON file (configs/*.json) overridden by the command line.
// Every key is documented in configs/README.md; unknown keys and wrong types are errors that
// name the key and the file. What an embedder sets (embed_config: base URL, HTTP, settings,
// store, fetchers) is public, include/export_items/config.hpp; the command line adds the
// scheduler threads and the embedded simulator's keys.
#pragma once

#include <cstdint>
#include <string>

#include "actors/settings.hpp"
#include "api/http_client.hpp"
#include "common/result.hpp"
#include "export_items/config.hpp"  // embed_config
#include "storage/state_store.hpp"

namespace ei::pipeline {

enum class config_errc : std::uint8_t { unreadable, malformed, invalid_value, unknown_key };
std::string_view to_string(config_errc c) noexcept;

/// The `embedded` keys: the simulator `base_url: "embedded"` starts in the process. Only the
/// command line starts it (apps/embedded_sim.hpp); the library never links the simulator.
struct embedded_simulator {
  std::uint64_t seed = 1;
  std::uint64_t server_order_seed = 0;  // 0: derived from `seed`
  std::uint32_t companies = 3;
  std::uint32_t jobs = 6;
  std::uint64_t items_per_job = 1000;
  bool all_in_progress = false;
  std::string faults;  // the fault plan (export-items-sim --help)
  std::uint32_t default_limit = 100;
  std::uint32_t threads = 1;
  bool loose = false;
  std::string api_key = "embedded-demo-key";
};

struct stage_config : embed_config {
  stage_config() { base_url = "embedded"; }  // "embedded": the simulator, in this process
  std::uint32_t scheduler_threads = 2;       // CAF worker threads (default CAF oversubscribes)
  embedded_simulator embedded;               // when base_url == "embedded"
};

/// Reads and validates a config file; missing keys keep their defaults.
result<stage_config, config_errc> load_config(const std::string& path);
/// Validates and applies a JSON document (the file's content) to `cfg`; `origin` names it.
status<config_errc> apply_config_json(stage_config& cfg, std::string_view json,
                                      const std::string& origin);
/// Cross-field checks after the command line was applied (also of an embedder's config).
status<config_errc> validate(const embed_config& cfg);

}  // namespace ei::pipeline
