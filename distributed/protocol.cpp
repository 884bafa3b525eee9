#include "distributed/protocol.hpp"

#include <charconv>

#include <caf/io/middleman.hpp>

namespace ei::distributed {

void configure_system(caf::actor_system_config& cfg, std::uint32_t heartbeat_ms,
                      std::uint32_t connection_timeout_ms, std::size_t scheduler_threads) {
  cfg.add_message_type<worker_hello>("ei_worker_hello");
  cfg.add_message_type<worker_settings>("ei_worker_settings");
  cfg.add_message_type<assignment>("ei_assignment");
  cfg.add_message_type<wire_item>("ei_wire_item");
  cfg.add_message_type<std::vector<wire_item>>("ei_wire_items");
  cfg.add_message_type<wire_batch>("ei_wire_batch");
  cfg.add_message_type<wire_outcome>("ei_wire_outcome");
  cfg.load<caf::io::middleman>();
  cfg.set("middleman.heartbeat-interval", caf::timespan{std::chrono::milliseconds(heartbeat_ms)});
  cfg.set("middleman.connection-timeout",
          caf::timespan{std::chrono::milliseconds(connection_timeout_ms)});
  cfg.set("scheduler.max-threads", scheduler_threads);
  cfg.set("logger.console", caf::atom("none"));
}

bool split_host_port(const std::string& text, std::string& host, std::uint16_t& port) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 >= text.size()) return false;
  host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  unsigned value = 0;
  const char* first = text.data() + colon + 1;
  const char* last = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(first, last, value);
  if (ec != std::errc{} || ptr != last || value > 65535) return false;
  port = static_cast<std::uint16_t>(value);
  return true;
}

}  // namespace ei::distributed
