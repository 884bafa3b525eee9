// The parts of pipeline/config.hpp that ei_pipeline itself needs (the embedded stage validates
// its embed_config); reading config files (config.cpp) is ei_stage_config's, which links the
// simulator for the `embedded` section's keys.
#include <string>

#include "pipeline/config.hpp"

namespace ei::pipeline {

std::string_view to_string(config_errc c) noexcept {
  switch (c) {
    case config_errc::unreadable:
      return "unreadable";
    case config_errc::malformed:
      return "malformed";
    case config_errc::invalid_value:
      return "invalid_value";
    case config_errc::unknown_key:
      return "unknown_key";
  }
  return "unknown";
}

status<config_errc> validate(const embed_config& cfg) {
  if (cfg.base_url.empty())
    return make_error(config_errc::invalid_value, "base_url: must not be empty");
  if (cfg.settings.batch_size > cfg.settings.credit_window)
    return make_error(config_errc::invalid_value,
                      "batch_size (" + std::to_string(cfg.settings.batch_size) +
                          ") must not exceed credit_window (" +
                          std::to_string(cfg.settings.credit_window) + ")");
  return ok_v;
}

}  // namespace ei::pipeline
