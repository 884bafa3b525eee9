#include "common/crash_point.hpp"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <string>

namespace ei {
namespace {

struct crash_config {
  bool armed = false;
  std::string name;
  long hit = 1;
  std::atomic<long> seen{0};
};

crash_config& config() {
  static crash_config* cfg = [] {
    auto* c = new crash_config;  // never destroyed: crash points may run during shutdown
    const char* env = std::getenv("EI_CRASH_AT");
    if (env == nullptr || *env == '\0') return c;
    std::string spec(env);
    auto colon = spec.find(':');
    c->name = spec.substr(0, colon);
    if (colon != std::string::npos) c->hit = std::max(1L, std::atol(spec.c_str() + colon + 1));
    c->armed = true;
    return c;
  }();
  return *cfg;
}

}  // namespace

void crash_point(std::string_view name) noexcept {
  auto& cfg = config();
  if (!cfg.armed || name != cfg.name) return;
  if (cfg.seen.fetch_add(1) + 1 == cfg.hit) ::kill(::getpid(), SIGKILL);
}

const std::vector<std::string_view>& crash_points() noexcept {
  static const std::vector<std::string_view> names{
      "after_page_commit",      // a listing page and its cursor are committed
      "after_order_chunk",      // one chunk of the order is written, ordering not finished
      "before_finish_order",    // every chunk is written, the order is not yet official
      "after_dispatch_commit",  // a dispatch mark is durable, the batch has not left
      "after_batch_sent",       // a batch was handed to downstream
      "after_output_write",     // NDJSON lines written, not yet fsynced
      "after_output_fsync",     // lines fsynced, acks not yet committed
      "after_ack_commit",       // acks and the output offset committed
      "after_relist_page",      // a reconciliation re-listing page is committed
      "before_complete",        // every item acked, the job not yet marked complete
  };
  return names;
}

}  // namespace ei
