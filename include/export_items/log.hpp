// export-items logs: where the library's log lines go, and which ones.
//
// Every component logs through one logger (spdlog, asynchronous: an actor never writes to a
// stream itself). By default lines go to stderr as text at level warn; a host changes that:
//
//   export_items::log::set_format(export_items::log::format::json);   // one JSON object a line
//   export_items::log::set_handler([](export_items::log::level lvl, std::string_view line) {
//     my_host_log(lvl, line);                                          // on the logging thread
//   });
//
// A line carries a UTC timestamp, the level, an event name (job_started, phase_changed,
// throttled, retry_storm, job_failed, job_completed, output_stopped, ...) and, where there is one,
// the job id and company id (`jobId`, `companyId`). Credentials never appear in a line. Embedded,
// the level is warn until the host sets another (the `export-items` CLI: info). Self-contained: the
// standard library only.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>

namespace export_items::log {

enum class level : std::uint8_t { trace, debug, info, warn, error, off };
enum class format : std::uint8_t {
  text,  // 2026-11-30T16:00:00.123Z info  job_started jobId=… companyId=… message
  json,  // {"time":"2026-11-30T16:00:00.123Z","level":"info","event":"job_started",…}
};

/// "trace", "debug", "info", "warn" (or "warning"), "error", "off"; nullopt for anything else.
std::optional<level> parse_level(std::string_view text) noexcept;
/// "text" or "json"; nullopt for anything else.
std::optional<format> parse_format(std::string_view text) noexcept;
std::string_view to_string(level l) noexcept;

/// Lines below this level are dropped (default warn; the CLI's default is info). Thread-safe.
void set_level(level l);
level current_level() noexcept;
/// The format of the lines logged from now on (default text). Thread-safe.
void set_format(format f);

/// Where lines go from now on: `handler` gets each line (without its newline) and its level,
/// one at a time on the logging thread; it must not throw. An empty handler restores stderr.
using handler = std::function<void(level, std::string_view line)>;
void set_handler(handler h);

/// Blocks (at most `timeout_ms`) until every line logged before the call reached the handler
/// or stderr. True when it did.
bool flush(unsigned timeout_ms = 5000);

}  // namespace export_items::log
