#include "simulator/admission.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>

#include "api/http_date.hpp"
#include "simulator/hash.hpp"

namespace ei::sim {

admission::admission(double rate, double burst, std::uint64_t seed)
    : rate_(rate), burst_(std::max(1.0, burst)), seed_(seed) {}

admission::verdict admission::admit(std::string_view credential,
                                    std::chrono::steady_clock::time_point now,
                                    std::chrono::system_clock::time_point wall_now) {
  if (rate_ <= 0) return {};
  std::lock_guard lock(mutex_);
  auto [it, fresh] = buckets_.try_emplace(std::string(credential));
  bucket& b = it->second;
  if (fresh) {
    b.tokens = burst_;
  } else {
    b.tokens =
        std::min(burst_, b.tokens + std::chrono::duration<double>(now - b.last).count() * rate_);
  }
  b.last = now;
  if (b.tokens >= 1.0) {
    b.tokens -= 1.0;
    return {};
  }
  // Whole seconds until the next token, at least 1 (what a real limiter would say).
  double until = (1.0 - b.tokens) / rate_;
  auto secs = static_cast<std::int64_t>(std::max(1.0, std::ceil(until)));
  verdict v;
  v.admitted = false;
  if (detail::hash2(seed_ ^ 0x7a11u, throttled_++) & 1u) {
    // A date: the next whole second at least `secs` ahead.
    auto when = std::chrono::ceil<std::chrono::seconds>(wall_now) + std::chrono::seconds{secs};
    v.retry_after = api::format_http_date(when);
  } else {
    v.retry_after = std::to_string(secs);
  }
  return v;
}

std::uint64_t admission::throttled() const {
  std::lock_guard lock(mutex_);
  return throttled_;
}

token_issuer::token_issuer(std::chrono::milliseconds lifetime, std::string file, std::uint64_t seed,
                           std::chrono::steady_clock::time_point start)
    : lifetime_(lifetime), file_(std::move(file)), seed_(seed), start_(start) {}

std::uint64_t token_issuer::index_at(std::chrono::steady_clock::time_point now) const {
  if (now <= start_) return 0;
  return static_cast<std::uint64_t>((now - start_) / lifetime_);
}

std::string token_issuer::token_of(std::uint64_t k) const {
  char buf[48];
  std::snprintf(buf, sizeof buf, "simtok-%llu-%016llx", static_cast<unsigned long long>(k),
                static_cast<unsigned long long>(detail::hash2(seed_ ^ 0x70c3u, k)));
  return buf;
}

std::string token_issuer::current(std::chrono::steady_clock::time_point now) {
  return token_of(index_at(now));
}

bool token_issuer::valid(std::string_view token, std::chrono::steady_clock::time_point now) {
  auto k = index_at(now);
  if (token == token_of(k)) return true;
  // The previous token stays valid for a quarter of a lifetime after its successor is issued,
  // as a real token lives on a little after its refresh: a client that read the file just
  // before the rotation is not refused at once.
  return k > 0 && token == token_of(k - 1) && now < start_ + lifetime_ * k + lifetime_ / 4;
}

bool token_issuer::write_file(std::string& error) {
  if (file_.empty()) return true;
  auto k = index_at(std::chrono::steady_clock::now());
  std::lock_guard lock(mutex_);
  if (written_ && *written_ >= k) return true;
  std::string tmp = file_ + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << token_of(k) << '\n';
    if (!out.flush()) {
      error = "cannot write token file '" + tmp + "'";
      return false;
    }
  }
  if (std::rename(tmp.c_str(), file_.c_str()) != 0) {
    error = "cannot rename '" + tmp + "' to '" + file_ + "'";
    return false;
  }
  written_ = k;
  return true;
}

std::chrono::steady_clock::time_point token_issuer::next_rotation(
    std::chrono::steady_clock::time_point now) const {
  return start_ + lifetime_ * (index_at(now) + 1);
}

std::uint64_t token_issuer::issued() const {
  std::lock_guard lock(mutex_);
  return written_ ? *written_ + 1 : 0;
}

}  // namespace ei::sim
