// Retry timing for the HTTP client: Retry-After parsing and capped exponential backoff with
// full jitter. Pure functions, thread-safe; the client applies them (api/http_client.hpp).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <random>
#include <string_view>

namespace ei::api {

/// Parses a Retry-After header value: delta-seconds ("120") or an HTTP-date in IMF-fixdate
/// form ("Sun, 06 Nov 1994 08:49:37 GMT"). A date in the past gives 0. Returns nullopt for
/// anything else (the caller then falls back to backoff). Not clamped: the caller clamps.
std::optional<std::chrono::milliseconds> parse_retry_after(
    std::string_view value, std::chrono::system_clock::time_point now);

/// The upper bound of the wait before retry number `retry` (1-based):
/// min(cap, base * 2^(retry-1)), overflow-safe.
std::chrono::milliseconds backoff_ceiling(std::uint32_t retry, std::chrono::milliseconds base,
                                          std::chrono::milliseconds cap);

/// Full jitter: uniform in [0, backoff_ceiling(retry, base, cap)].
std::chrono::milliseconds full_jitter(std::uint32_t retry, std::chrono::milliseconds base,
                                      std::chrono::milliseconds cap, std::mt19937_64& rng);

}  // namespace ei::api
