#include "simulator/cursor.hpp"

#include "simulator/hash.hpp"

namespace ei::sim::detail {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
constexpr std::uint8_t kVersion = 1;
constexpr std::size_t kRecordSize = 14;

int value_of(char c) noexcept {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= '2' && c <= '7') return c - '2' + 26;
  return -1;
}

std::uint32_t check_of(const std::uint8_t* data, std::size_t n, std::uint64_t key) noexcept {
  std::uint64_t h = key;
  for (std::size_t i = 0; i < n; ++i)
    h = hash2(h, data[i]);
  return static_cast<std::uint32_t>(h >> 32);
}

}  // namespace

std::string base32_encode(const std::uint8_t* data, std::size_t size) {
  std::string out;
  out.reserve((size + 4) / 5 * 8);
  std::uint32_t buffer = 0;
  int bits = 0;
  for (std::size_t i = 0; i < size; ++i) {
    buffer = (buffer << 8) | data[i];
    bits += 8;
    while (bits >= 5) {
      out.push_back(kAlphabet[(buffer >> (bits - 5)) & 31]);
      bits -= 5;
    }
  }
  if (bits > 0) out.push_back(kAlphabet[(buffer << (5 - bits)) & 31]);
  while (out.size() % 8 != 0)
    out.push_back('=');
  return out;
}

std::optional<std::vector<std::uint8_t>> base32_decode(std::string_view text) {
  while (!text.empty() && text.back() == '=')
    text.remove_suffix(1);
  std::vector<std::uint8_t> out;
  std::uint32_t buffer = 0;
  int bits = 0;
  for (char c : text) {
    const int v = value_of(c);
    if (v < 0) return std::nullopt;
    buffer = (buffer << 5) | static_cast<std::uint32_t>(v);
    bits += 5;
    if (bits >= 8) {
      out.push_back(static_cast<std::uint8_t>(buffer >> (bits - 8)));
      bits -= 8;
    }
  }
  return out;
}

bool in_cursor_alphabet(std::string_view text) noexcept {
  if (text.empty()) return false;
  for (char c : text)
    if (value_of(c) < 0 && c != '=' && c != '~') return false;
  return true;
}

std::string encode_cursor(std::uint32_t tag, std::uint64_t position, std::uint64_t key,
                          std::uint8_t salt) {
  std::uint8_t rec[kRecordSize];
  // The version is the low nibble; the high nibble is a salt the decoder ignores.
  rec[0] = static_cast<std::uint8_t>(kVersion | ((salt & 0x0f) << 4));
  for (int i = 0; i < 4; ++i)
    rec[1 + i] = static_cast<std::uint8_t>(tag >> (24 - 8 * i));
  for (int i = 0; i < 5; ++i)
    rec[5 + i] = static_cast<std::uint8_t>(position >> (32 - 8 * i));
  const std::uint32_t check = check_of(rec, 10, key);
  for (int i = 0; i < 4; ++i)
    rec[10 + i] = static_cast<std::uint8_t>(check >> (24 - 8 * i));
  return base32_encode(rec, kRecordSize);
}

decoded_cursor decode_cursor(std::string_view text, std::uint32_t tag, std::uint64_t key) {
  decoded_cursor out;
  if (!in_cursor_alphabet(text)) {
    out.problem = cursor_problem::alphabet;
    return out;
  }
  auto bytes = base32_decode(text);
  if (!bytes || bytes->size() != kRecordSize || ((*bytes)[0] & 0x0f) != kVersion) return out;
  const std::uint8_t* rec = bytes->data();
  std::uint32_t check = 0;
  for (int i = 0; i < 4; ++i)
    check = (check << 8) | rec[10 + i];
  if (check != check_of(rec, 10, key)) return out;
  std::uint32_t got_tag = 0;
  for (int i = 0; i < 4; ++i)
    got_tag = (got_tag << 8) | rec[1 + i];
  if (got_tag != tag) {
    out.problem = cursor_problem::foreign;
    return out;
  }
  std::uint64_t pos = 0;
  for (int i = 0; i < 5; ++i)
    pos = (pos << 8) | rec[5 + i];
  out.position = pos;
  return out;
}

}  // namespace ei::sim::detail
