// Retry timing for the HTTP client: Retry-After and HTTP-date parsing, capped exponential
// backoff with full jitter, and the clock the client waits on. The functions are pure and
// thread-safe; the client applies them (api/http_client.hpp).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <string_view>

namespace ei::api {

/// Parses an HTTP-date in any of the three forms RFC 9110 §5.6.7 requires a recipient to
/// accept: IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), the obsolete RFC 850 form
/// ("Sunday, 06-Nov-94 08:49:37 GMT") and asctime ("Sun Nov  6 08:49:37 1994"). A two-digit
/// RFC 850 year is read as the most recent year with those digits that is not more than 50
/// years after `now` (RFC 9110 §5.6.7). nullopt for anything else.
std::optional<std::chrono::system_clock::time_point> parse_http_date(
    std::string_view value, std::chrono::system_clock::time_point now);

/// Parses a Retry-After header value: delta-seconds ("120") or an HTTP-date in any of the
/// three forms of parse_http_date. A date in the past gives 0. Returns nullopt for anything
/// else (the caller then falls back to backoff). Not clamped: the caller clamps.
std::optional<std::chrono::milliseconds> parse_retry_after(
    std::string_view value, std::chrono::system_clock::time_point now);

/// The time the HTTP client waits on: the wall clock HTTP dates are read against, a monotonic
/// clock, and timers. The client's default is the real clocks (with its own Asio timers); a
/// test injects a manual clock (`client_config::clock`) so that a Retry-After of minutes is
/// honoured without waiting for it. Implementations must be thread-safe.
class wait_clock {
 public:
  virtual ~wait_clock() = default;
  virtual std::chrono::system_clock::time_point wall_now() const = 0;
  virtual std::chrono::steady_clock::time_point now() const = 0;
  /// Calls `fn` once, on any thread, when `delay` has passed on this clock. `fn` must not
  /// block. A clock destroyed first never calls it.
  virtual void after(std::chrono::milliseconds delay, std::function<void()> fn) = 0;
};

/// The upper bound of the wait before retry number `retry` (1-based):
/// min(cap, base * 2^(retry-1)), overflow-safe.
std::chrono::milliseconds backoff_ceiling(std::uint32_t retry, std::chrono::milliseconds base,
                                          std::chrono::milliseconds cap);

/// Full jitter: uniform in [0, backoff_ceiling(retry, base, cap)].
std::chrono::milliseconds full_jitter(std::uint32_t retry, std::chrono::milliseconds base,
                                      std::chrono::milliseconds cap, std::mt19937_64& rng);

}  // namespace ei::api
