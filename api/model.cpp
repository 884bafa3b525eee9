#include "api/model.hpp"

#include <array>
#include <cstdio>
#include <cstring>

#include "common/enum_text.hpp"

namespace ei::api {
namespace {

// Hex digit values; 0x100 marks a byte that is not a hex digit, so that OR-ing the values of
// a whole id tells in one test whether any was invalid (ids are parsed once per listed item).
constexpr std::array<std::uint16_t, 256> kHexValue = [] {
  std::array<std::uint16_t, 256> t{};
  for (auto& v : t)
    v = 0x100;
  for (int c = '0'; c <= '9'; ++c)
    t[static_cast<std::size_t>(c)] = static_cast<std::uint16_t>(c - '0');
  for (int c = 'a'; c <= 'f'; ++c)
    t[static_cast<std::size_t>(c)] = static_cast<std::uint16_t>(c - 'a' + 10);
  for (int c = 'A'; c <= 'F'; ++c)
    t[static_cast<std::size_t>(c)] = static_cast<std::uint16_t>(c - 'A' + 10);
  return t;
}();

// Where the two hex digits of each byte start in the 8-4-4-4-12 text form.
constexpr std::array<std::uint8_t, 16> kByteAt{0,  2,  4,  6,  9,  11, 14, 16,
                                               19, 21, 24, 26, 28, 30, 32, 34};

constexpr char kHex[] = "0123456789abcdef";

// Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (Howard Hinnant's
// days_from_civil).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) noexcept {
  y -= m <= 2 ? 1 : 0;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

void civil_from_days(std::int64_t z, std::int64_t& y, unsigned& m, unsigned& d) noexcept {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  y = static_cast<std::int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y += m <= 2 ? 1 : 0;
}

bool read_digits(std::string_view s, std::size_t pos, std::size_t n, int& out) noexcept {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  out = v;
  return true;
}

}  // namespace

std::optional<uuid> uuid::parse(std::string_view text) noexcept {
  if (text.size() != 36 || text[8] != '-' || text[13] != '-' || text[18] != '-' || text[23] != '-')
    return std::nullopt;
  uuid out;
  std::uint16_t invalid = 0;
  for (std::size_t b = 0; b < 16; ++b) {
    const auto hi = kHexValue[static_cast<unsigned char>(text[kByteAt[b]])];
    const auto lo = kHexValue[static_cast<unsigned char>(text[kByteAt[b] + 1U])];
    invalid |= hi | lo;
    out.bytes[b] = static_cast<std::uint8_t>((hi << 4) | (lo & 0x0f));
  }
  if (invalid & 0x100) return std::nullopt;
  return out;
}

void uuid::format_to(char* out) const noexcept {
  std::size_t pos = 0;
  for (std::size_t b = 0; b < 16; ++b) {
    if (b == 4 || b == 6 || b == 8 || b == 10) out[pos++] = '-';
    out[pos++] = kHex[bytes[b] >> 4];
    out[pos++] = kHex[bytes[b] & 0x0f];
  }
}

std::string uuid::to_string() const {
  std::string s(36, '\0');
  format_to(s.data());
  return s;
}

bool uuid::is_nil() const noexcept {
  for (auto b : bytes)
    if (b != 0) return false;
  return true;
}

std::size_t uuid_hash::operator()(const uuid& u) const noexcept {
  std::uint64_t a = 0;
  std::uint64_t b = 0;
  std::memcpy(&a, u.bytes.data(), 8);
  std::memcpy(&b, u.bytes.data() + 8, 8);
  return static_cast<std::size_t>(a ^ (b * 0x9E3779B97F4A7C15ULL));
}

std::string_view to_string(job_status s) noexcept {
  switch (s) {
    case job_status::pending:
      return "pending";
    case job_status::in_progress:
      return "in_progress";
    case job_status::failed:
      return "failed";
    case job_status::completed:
      return "completed";
    case job_status::completed_with_errors:
      return "completed_with_errors";
    case job_status::unknown:
      break;
  }
  return "unknown";
}

std::string_view to_string(item_status s) noexcept {
  switch (s) {
    case item_status::pending:
      return "pending";
    case item_status::in_progress:
      return "in_progress";
    case item_status::failed:
      return "failed";
    case item_status::successful:
      return "successful";
    case item_status::abandoned:
      return "abandoned";
    case item_status::unknown:
      break;
  }
  return "unknown";
}

job_status parse_job_status(std::string_view t) noexcept {
  return parse_enum(t, job_statuses).value_or(job_status::unknown);
}

item_status parse_item_status(std::string_view t) noexcept {
  return parse_enum(t, item_statuses).value_or(item_status::unknown);
}

void contract_deviations::add(std::string_view path, std::string_view example, std::uint64_t n) {
  // Kept sorted by path, so that two decoders that meet the same deviations in another order
  // of fields agree.
  auto it = by_path.begin();
  while (it != by_path.end() && it->path < path)
    ++it;
  if (it != by_path.end() && it->path == path) {
    it->count += n;
    return;
  }
  by_path.insert(it, deviation_count{std::string(path), n, std::string(example)});
}

void contract_deviations::merge(const contract_deviations& other) {
  for (const auto& d : other.by_path)
    add(d.path, d.example, d.count);
}

std::uint64_t contract_deviations::total() const noexcept {
  std::uint64_t n = 0;
  for (const auto& d : by_path)
    n += d.count;
  return n;
}

lenient_date parse_date_lenient(std::string_view text) noexcept {
  if (auto ms = parse_timestamp_ms(text)) return {ms, date_form::rfc3339};
  // A date alone: midnight UTC. A date-time without a zone: UTC.
  char buf[40];
  if (text.size() == 10) {
    std::memcpy(buf, text.data(), 10);
    std::memcpy(buf + 10, "T00:00:00Z", 10);
    if (auto ms = parse_timestamp_ms(std::string_view(buf, 20))) return {ms, date_form::date_only};
  } else if (text.size() >= 19 && text.size() + 1 <= sizeof buf) {
    std::memcpy(buf, text.data(), text.size());
    buf[text.size()] = 'Z';
    if (auto ms = parse_timestamp_ms(std::string_view(buf, text.size() + 1)))
      return {ms, date_form::zoneless};
  }
  return {std::nullopt, date_form::unparsable};
}

std::optional<std::int64_t> parse_timestamp_ms(std::string_view s) noexcept {
  // YYYY-MM-DDTHH:MM:SS[.fff...](Z|+hh:mm|-hh:mm)
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!read_digits(s, 0, 4, year) || s.size() < 20 || s[4] != '-' || !read_digits(s, 5, 2, month) ||
      s[7] != '-' || !read_digits(s, 8, 2, day) || (s[10] != 'T' && s[10] != 't') ||
      !read_digits(s, 11, 2, hour) || s[13] != ':' || !read_digits(s, 14, 2, minute) ||
      s[16] != ':' || !read_digits(s, 17, 2, second))
    return std::nullopt;
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60)
    return std::nullopt;
  std::size_t pos = 19;
  std::int64_t millis = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    int digits = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (digits < 3) millis = millis * 10 + (s[pos] - '0');
      ++digits;
      ++pos;
    }
    if (digits == 0) return std::nullopt;
    for (int i = digits; i < 3; ++i)
      millis *= 10;
  }
  std::int64_t offset_minutes = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int oh = 0, om = 0;
    if (!read_digits(s, pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !read_digits(s, pos + 4, 2, om) || oh > 23 || om > 59)
      return std::nullopt;
    offset_minutes = (s[pos] == '+' ? 1 : -1) * (oh * 60 + om);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  const std::int64_t days =
      days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  const std::int64_t secs = days * 86400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
  return secs * 1000 + millis;
}

std::string format_timestamp(std::int64_t epoch_ms) {
  std::int64_t secs = epoch_ms / 1000;
  if (epoch_ms % 1000 < 0) --secs;
  std::int64_t days = secs / 86400;
  std::int64_t rem = secs % 86400;
  if (rem < 0) {
    rem += 86400;
    --days;
  }
  std::int64_t y = 0;
  unsigned m = 0, d = 0;
  civil_from_days(days, y, m, d);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02lld:%02lld:%02lldZ",
                static_cast<long long>(y), m, d, static_cast<long long>(rem / 3600),
                static_cast<long long>((rem % 3600) / 60), static_cast<long long>(rem % 60));
  return buf;
}

}  // namespace ei::api
