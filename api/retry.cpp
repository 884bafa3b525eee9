#include "api/retry.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <limits>

namespace ei::api {

namespace {

bool parse_uint(std::string_view s, int& out) {
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc{} && end == s.data() + s.size();
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

// IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" (RFC 9110 §5.6.7), exactly 29 characters.
std::optional<std::chrono::system_clock::time_point> parse_imf_fixdate(std::string_view s) {
  using namespace std::chrono;
  static constexpr std::array<std::string_view, 7> days = {"Mon", "Tue", "Wed", "Thu",
                                                           "Fri", "Sat", "Sun"};
  static constexpr std::array<std::string_view, 12> months = {
      "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  if (s.size() != 29 || s.substr(3, 2) != ", " || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' ||
      s[19] != ':' || s[22] != ':' || s.substr(25) != " GMT")
    return std::nullopt;
  if (std::find(days.begin(), days.end(), s.substr(0, 3)) == days.end()) return std::nullopt;
  auto mon = std::find(months.begin(), months.end(), s.substr(8, 3));
  if (mon == months.end()) return std::nullopt;
  int d = 0, y = 0, hh = 0, mm = 0, ss = 0;
  if (!parse_uint(s.substr(5, 2), d) || !parse_uint(s.substr(12, 4), y) ||
      !parse_uint(s.substr(17, 2), hh) || !parse_uint(s.substr(20, 2), mm) ||
      !parse_uint(s.substr(23, 2), ss))
    return std::nullopt;
  if (hh > 23 || mm > 59 || ss > 60) return std::nullopt;
  year_month_day ymd{year{y}, month{static_cast<unsigned>(mon - months.begin() + 1)},
                     day{static_cast<unsigned>(d)}};
  if (!ymd.ok()) return std::nullopt;
  return sys_days{ymd} + hours{hh} + minutes{mm} + seconds{ss};
}

}  // namespace

std::optional<std::chrono::milliseconds> parse_retry_after(
    std::string_view value, std::chrono::system_clock::time_point now) {
  using namespace std::chrono;
  value = trim(value);
  if (value.empty()) return std::nullopt;
  if (value.find_first_not_of("0123456789") == std::string_view::npos) {
    // Anything beyond a day is as good as "too long"; cap before converting to avoid overflow.
    if (value.size() > 9) return milliseconds{seconds{86400 * 365}};
    int secs = 0;
    if (!parse_uint(value, secs)) return std::nullopt;
    return duration_cast<milliseconds>(seconds{secs});
  }
  auto when = parse_imf_fixdate(value);
  if (!when) return std::nullopt;
  if (*when <= now) return milliseconds{0};
  return duration_cast<milliseconds>(*when - now);
}

std::chrono::milliseconds backoff_ceiling(std::uint32_t retry, std::chrono::milliseconds base,
                                          std::chrono::milliseconds cap) {
  if (base.count() <= 0 || cap.count() <= 0) return std::chrono::milliseconds{0};
  auto b = base.count();
  std::uint32_t shift = retry == 0 ? 0 : retry - 1;
  // Doubling past the cap is pointless and could overflow.
  for (std::uint32_t i = 0; i < shift && b < cap.count(); ++i) {
    if (b > std::numeric_limits<decltype(b)>::max() / 2) {
      b = cap.count();
      break;
    }
    b *= 2;
  }
  return std::chrono::milliseconds{std::min(b, cap.count())};
}

std::chrono::milliseconds full_jitter(std::uint32_t retry, std::chrono::milliseconds base,
                                      std::chrono::milliseconds cap, std::mt19937_64& rng) {
  auto hi = backoff_ceiling(retry, base, cap).count();
  std::uniform_int_distribution<std::int64_t> dist(0, hi);
  return std::chrono::milliseconds{dist(rng)};
}

}  // namespace ei::api
