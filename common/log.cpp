// The structured log: one asynchronous spdlog logger, one sink that writes to stderr or hands
// each line to the host's handler (include/export_items/log.hpp).
#include "common/log.hpp"

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>

#include <spdlog/async_logger.h>
#include <spdlog/details/thread_pool.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>

#include "common/json_text.hpp"

namespace export_items::log {
namespace {

/// Writes each formatted line to stderr, or hands it to the host's handler.
class dispatch_sink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  void set_handler(handler h) {
    std::lock_guard<std::mutex> lock(mutex_);
    handler_ = std::move(h);
  }
  std::uint64_t flushes() {
    std::lock_guard<std::mutex> lock(flush_mutex_);
    return flushes_;
  }
  bool wait_flushes_beyond(std::uint64_t seen, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(flush_mutex_);
    return flushed_.wait_for(lock, timeout, [&] { return flushes_ > seen; });
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t buf;
    formatter_->format(msg, buf);
    if (!handler_) {
      std::fwrite(buf.data(), 1, buf.size(), stderr);
      return;
    }
    std::string_view line(buf.data(), buf.size());
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r'))
      line.remove_suffix(1);
    try {
      handler_(from_spdlog(msg.level), line);
    } catch (...) {  // a host's handler must not throw; if it does, the line is lost
    }
  }
  void flush_() override {
    if (!handler_) std::fflush(stderr);
    {
      std::lock_guard<std::mutex> lock(flush_mutex_);
      ++flushes_;
    }
    flushed_.notify_all();
  }

 private:
  static ::export_items::log::level from_spdlog(spdlog::level::level_enum l) {
    switch (l) {
      case spdlog::level::trace:
        return ::export_items::log::level::trace;
      case spdlog::level::debug:
        return ::export_items::log::level::debug;
      case spdlog::level::info:
        return ::export_items::log::level::info;
      case spdlog::level::warn:
        return ::export_items::log::level::warn;
      case spdlog::level::err:
      case spdlog::level::critical:
        return ::export_items::log::level::error;
      default:
        return ::export_items::log::level::off;
    }
  }

  handler handler_;
  std::mutex flush_mutex_;
  std::condition_variable flushed_;
  std::uint64_t flushes_ = 0;
};

spdlog::level::level_enum to_spdlog(level l) {
  switch (l) {
    case level::trace:
      return spdlog::level::trace;
    case level::debug:
      return spdlog::level::debug;
    case level::info:
      return spdlog::level::info;
    case level::warn:
      return spdlog::level::warn;
    case level::error:
      return spdlog::level::err;
    case level::off:
      return spdlog::level::off;
  }
  return spdlog::level::off;
}

/// The timestamp (UTC, milliseconds) comes from spdlog; the level, event and fields are the
/// payload (ei::log::write renders them in the format's syntax).
std::unique_ptr<spdlog::formatter> make_formatter(format f) {
  const char* pattern =
      f == format::json ? "{\"time\":\"%Y-%m-%dT%H:%M:%S.%eZ\",%v}" : "%Y-%m-%dT%H:%M:%S.%eZ %v";
  return std::make_unique<spdlog::pattern_formatter>(pattern, spdlog::pattern_time_type::utc);
}

struct logging {
  // Declared first, destroyed last: the logger's queue drains into the sink at exit.
  // The logging thread takes no signals: a process that waits for SIGTERM with sigwait (the
  // CLI's run) blocks them in its threads, and this one may start before it does.
  std::shared_ptr<spdlog::details::thread_pool> pool =
      std::make_shared<spdlog::details::thread_pool>(8192, 1, [] {
        sigset_t all;
        sigfillset(&all);
        ::pthread_sigmask(SIG_BLOCK, &all, nullptr);
      });
  std::shared_ptr<dispatch_sink> sink = std::make_shared<dispatch_sink>();
  std::shared_ptr<spdlog::async_logger> logger = std::make_shared<spdlog::async_logger>(
      "export-items", sink, pool, spdlog::async_overflow_policy::overrun_oldest);
  std::atomic<level> threshold{level::warn};  // embedded default; the CLI sets info
  std::atomic<format> style{format::text};
  std::mutex flush_mutex;  // one flush() at a time, so each waits for its own marker

  logging() {
    logger->set_level(spdlog::level::trace);  // the threshold is checked before queueing
    logger->set_formatter(make_formatter(format::text));
  }
};

logging& state() {
  static logging l;
  return l;
}

}  // namespace

std::optional<level> parse_level(std::string_view text) noexcept {
  if (text == "trace") return level::trace;
  if (text == "debug") return level::debug;
  if (text == "info") return level::info;
  if (text == "warn" || text == "warning") return level::warn;
  if (text == "error") return level::error;
  if (text == "off") return level::off;
  return std::nullopt;
}

std::optional<format> parse_format(std::string_view text) noexcept {
  if (text == "text") return format::text;
  if (text == "json") return format::json;
  return std::nullopt;
}

std::string_view to_string(level l) noexcept {
  switch (l) {
    case level::trace:
      return "trace";
    case level::debug:
      return "debug";
    case level::info:
      return "info";
    case level::warn:
      return "warn";
    case level::error:
      return "error";
    case level::off:
      return "off";
  }
  return "off";
}

void set_level(level l) {
  state().threshold.store(l);
}

level current_level() noexcept {
  return state().threshold.load();
}

void set_format(format f) {
  auto& s = state();
  s.style.store(f);
  s.logger->set_formatter(make_formatter(f));
}

void set_handler(handler h) {
  state().sink->set_handler(std::move(h));
}

bool flush(unsigned timeout_ms) {
  auto& s = state();
  std::lock_guard<std::mutex> lock(s.flush_mutex);
  const auto seen = s.sink->flushes();
  s.logger->flush();  // queued behind every line logged before
  return s.sink->wait_flushes_beyond(seen, std::chrono::milliseconds(timeout_ms));
}

}  // namespace export_items::log

namespace ei::log {
namespace {

bool needs_quotes(std::string_view v) {
  if (v.empty()) return true;
  for (char c : v)
    if (c == ' ' || c == '"' || c == '=' || static_cast<unsigned char>(c) < 0x20) return true;
  return false;
}

}  // namespace

bool enabled(level l) noexcept {
  return l != level::off && l >= export_items::log::current_level();
}

void write(level l, std::string_view event, std::string_view message,
           std::initializer_list<field> fields) {
  if (!enabled(l)) return;
  auto& s = export_items::log::state();
  std::string payload;
  payload.reserve(96 + message.size());
  const auto level_name = export_items::log::to_string(l);
  if (s.style.load() == format::json) {
    payload += "\"level\":";
    append_json_string(payload, level_name);
    payload += ",\"event\":";
    append_json_string(payload, event);
    for (const auto& f : fields) {
      payload += ',';
      append_json_string(payload, f.key);
      payload += ':';
      append_json_string(payload, f.value);
    }
    payload += ",\"message\":";
    append_json_string(payload, message);
  } else {
    payload += level_name;
    payload.append(6 - level_name.size(), ' ');
    payload += event;
    for (const auto& f : fields) {
      payload += ' ';
      payload += f.key;
      payload += '=';
      if (needs_quotes(f.value))
        append_json_string(payload, f.value);
      else
        payload += f.value;
    }
    payload += ' ';
    payload += message;
  }
  s.logger->log(export_items::log::to_spdlog(l),
                spdlog::string_view_t(payload.data(), payload.size()));
}

}  // namespace ei::log
