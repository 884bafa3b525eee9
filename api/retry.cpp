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

using sys_time = std::chrono::system_clock::time_point;

constexpr std::array<std::string_view, 12> months = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

std::optional<unsigned> month_of(std::string_view s) {
  auto it = std::find(months.begin(), months.end(), s);
  if (it == months.end()) return std::nullopt;
  return static_cast<unsigned>(it - months.begin() + 1);
}

/// "hh:mm:ss" at the start of `s`.
bool parse_time_of_day(std::string_view s, int& hh, int& mm, int& ss) {
  if (s.size() < 8 || s[2] != ':' || s[5] != ':') return false;
  if (!parse_uint(s.substr(0, 2), hh) || !parse_uint(s.substr(3, 2), mm) ||
      !parse_uint(s.substr(6, 2), ss))
    return false;
  return hh <= 23 && mm <= 59 && ss <= 60;
}

std::optional<sys_time> make_time(int y, unsigned mon, int d, int hh, int mm, int ss) {
  using namespace std::chrono;
  if (d < 1) return std::nullopt;
  year_month_day ymd{year{y}, month{mon}, day{static_cast<unsigned>(d)}};
  if (!ymd.ok()) return std::nullopt;
  return sys_days{ymd} + hours{hh} + minutes{mm} + seconds{ss};
}

bool is_day_name(std::string_view s, bool long_form) {
  static constexpr std::array<std::string_view, 7> short_days = {"Mon", "Tue", "Wed", "Thu",
                                                                 "Fri", "Sat", "Sun"};
  static constexpr std::array<std::string_view, 7> long_days = {
      "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"};
  const auto& names = long_form ? long_days : short_days;
  return std::find(names.begin(), names.end(), s) != names.end();
}

// IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT", exactly 29 characters.
std::optional<sys_time> parse_imf_fixdate(std::string_view s) {
  if (s.size() != 29 || s.substr(3, 2) != ", " || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' ||
      s.substr(25) != " GMT" || !is_day_name(s.substr(0, 3), false))
    return std::nullopt;
  auto mon = month_of(s.substr(8, 3));
  int d = 0, y = 0, hh = 0, mm = 0, ss = 0;
  if (!mon || !parse_uint(s.substr(5, 2), d) || !parse_uint(s.substr(12, 4), y) ||
      !parse_time_of_day(s.substr(17, 8), hh, mm, ss))
    return std::nullopt;
  return make_time(y, *mon, d, hh, mm, ss);
}

// Obsolete RFC 850 form: "Sunday, 06-Nov-94 08:49:37 GMT".
std::optional<sys_time> parse_rfc850(std::string_view s, sys_time now) {
  using namespace std::chrono;
  auto comma = s.find(", ");
  if (comma == std::string_view::npos || !is_day_name(s.substr(0, comma), true))
    return std::nullopt;
  s.remove_prefix(comma + 2);
  // "06-Nov-94 08:49:37 GMT"
  if (s.size() != 22 || s[2] != '-' || s[6] != '-' || s[9] != ' ' || s.substr(18) != " GMT")
    return std::nullopt;
  auto mon = month_of(s.substr(3, 3));
  int d = 0, yy = 0, hh = 0, mm = 0, ss = 0;
  if (!mon || !parse_uint(s.substr(0, 2), d) || !parse_uint(s.substr(7, 2), yy) ||
      !parse_time_of_day(s.substr(10, 8), hh, mm, ss))
    return std::nullopt;
  // RFC 9110: a two-digit year more than 50 years in the future is the most recent past year
  // with the same last two digits.
  int this_year = static_cast<int>(year_month_day{floor<days>(now)}.year());
  int y = this_year - this_year % 100 + yy;
  if (y > this_year + 50) y -= 100;
  return make_time(y, *mon, d, hh, mm, ss);
}

// asctime: "Sun Nov  6 08:49:37 1994" (day of month space-padded), exactly 24 characters.
std::optional<sys_time> parse_asctime(std::string_view s) {
  if (s.size() != 24 || s[3] != ' ' || s[7] != ' ' || s[10] != ' ' || s[19] != ' ' ||
      !is_day_name(s.substr(0, 3), false))
    return std::nullopt;
  auto mon = month_of(s.substr(4, 3));
  auto day_text = s.substr(8, 2);
  if (day_text[0] == ' ') day_text.remove_prefix(1);
  int d = 0, y = 0, hh = 0, mm = 0, ss = 0;
  if (!mon || !parse_uint(day_text, d) || !parse_time_of_day(s.substr(11, 8), hh, mm, ss) ||
      !parse_uint(s.substr(20, 4), y))
    return std::nullopt;
  return make_time(y, *mon, d, hh, mm, ss);
}

}  // namespace

std::optional<std::chrono::system_clock::time_point> parse_http_date(
    std::string_view value, std::chrono::system_clock::time_point now) {
  value = trim(value);
  if (auto t = parse_imf_fixdate(value)) return t;
  if (auto t = parse_rfc850(value, now)) return t;
  return parse_asctime(value);
}

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
  auto when = parse_http_date(value, now);
  if (!when) return std::nullopt;
  if (*when <= now) return milliseconds{0};
  return ceil<milliseconds>(*when - now);
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
