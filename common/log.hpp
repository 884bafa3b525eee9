// The library's structured log (the host-facing part is include/export_items/log.hpp):
//
//   ei::log::info("job_started", "job started", {{"jobId", id}, {"companyId", company}});
//
// Lines are queued to one logging thread (spdlog's asynchronous logger), so logging never
// blocks an actor on a stream; a full queue drops the oldest line rather than wait. Keep
// messages free of credentials: pass only text that was already redacted.
#pragma once

#include <initializer_list>
#include <string_view>

#include "export_items/log.hpp"

namespace ei::log {

using export_items::log::flush;
using export_items::log::format;
using export_items::log::level;

/// One key=value of a line (`jobId`, `companyId`, `phase`, `reason`, ...).
struct field {
  std::string_view key;
  std::string_view value;
};

/// Whether a line at `l` would be written (cheap; check before building costly text).
bool enabled(level l) noexcept;

/// Logs one event: `event` is a stable snake_case name, `message` is for people.
void write(level l, std::string_view event, std::string_view message,
           std::initializer_list<field> fields = {});

inline void debug(std::string_view event, std::string_view message,
                  std::initializer_list<field> fields = {}) {
  write(level::debug, event, message, fields);
}
inline void info(std::string_view event, std::string_view message,
                 std::initializer_list<field> fields = {}) {
  write(level::info, event, message, fields);
}
inline void warn(std::string_view event, std::string_view message,
                 std::initializer_list<field> fields = {}) {
  write(level::warn, event, message, fields);
}
inline void error(std::string_view event, std::string_view message,
                  std::initializer_list<field> fields = {}) {
  write(level::error, event, message, fields);
}

}  // namespace ei::log
