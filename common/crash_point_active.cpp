// The ACTIVE crash points: EI_CRASH_AT=<name>[:<n>] kills the process with SIGKILL at the
// n-th time crash_point("<name>") runs. Linked only into test builds (the ei_crash_points
// object library, and the export-items-crashpoints binary); every other binary gets the inert
// crash_point.cpp from ei_common, which never reads EI_CRASH_AT.
#include "common/crash_point.hpp"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
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

}  // namespace ei
