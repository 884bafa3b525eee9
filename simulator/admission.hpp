// Request admission of the simulator, before routing: credentials that expire and rotate, and
// a rate limit per credential. Kept apart from the handlers (router.cpp calls admit() once
// per request, after parsing and before any fault or handler).
//
// Rate limit: a token bucket per credential (the Authorization header value): `rate` tokens
// per second, at most `burst` banked; a request without a token gets 429 TOO_MANY_REQUESTS
// with a Retry-After of the whole seconds until the next token (at least 1), sometimes as
// delta-seconds and sometimes as an IMF-fixdate (which one is a pure function of the seed and
// the 429's number).
//
// Rotating tokens: with a lifetime L, the simulator issues token k at start + k·L; it is valid
// until start + (k+1)·L + L/4 (a quarter lifetime of overlap with its successor). The current token
// is written to `token_file` (replaced atomically: written beside it, then renamed) when it is
// issued, so a client reading the file (or a token command that reads it) can follow the rotation;
// a request with an expired or unknown token gets 401 like any other bad credential.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace ei::sim {

class admission {
 public:
  struct verdict {
    bool admitted = true;
    std::string retry_after;  // for a 429: "3" or "Sun, 06 Nov 1994 08:49:37 GMT"
  };

  admission(double rate, double burst, std::uint64_t seed);

  /// Takes a token of the credential's bucket; a refusal carries the Retry-After value.
  verdict admit(std::string_view credential, std::chrono::steady_clock::time_point now,
                std::chrono::system_clock::time_point wall_now);
  bool limiting() const noexcept { return rate_ > 0; }
  std::uint64_t throttled() const;

 private:
  struct bucket {
    double tokens = 0;
    std::chrono::steady_clock::time_point last;
  };
  double rate_;
  double burst_;
  std::uint64_t seed_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, bucket> buckets_;
  std::uint64_t throttled_ = 0;
};

/// Tokens with a lifetime, rotated into a file.
class token_issuer {
 public:
  token_issuer(std::chrono::milliseconds lifetime, std::string file, std::uint64_t seed,
               std::chrono::steady_clock::time_point start);
  /// The token valid at `now` (issuing it, and writing the file, when its time has come).
  std::string current(std::chrono::steady_clock::time_point now);
  /// True when `token` is the one valid at `now`.
  bool valid(std::string_view token, std::chrono::steady_clock::time_point now);
  /// Writes the token valid now to the file; false with `error` set when it cannot.
  bool write_file(std::string& error);
  /// When the next token is issued.
  std::chrono::steady_clock::time_point next_rotation(
      std::chrono::steady_clock::time_point now) const;
  std::uint64_t issued() const;

 private:
  std::uint64_t index_at(std::chrono::steady_clock::time_point now) const;
  std::string token_of(std::uint64_t k) const;
  std::chrono::milliseconds lifetime_;
  std::string file_;
  std::uint64_t seed_;
  std::chrono::steady_clock::time_point start_;
  mutable std::mutex mutex_;
  std::optional<std::uint64_t> written_;
};

}  // namespace ei::sim
