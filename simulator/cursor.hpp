// Opaque page cursors in the API's alphabet ^[A-Z2-7=~]+$: RFC 4648 base32 (with `=`
// padding) of a 14-byte record
//   version (1) | listing tag (4) | position (5, big endian) | check (4)
// The tag binds a cursor to one listing (job + endpoint + filter); the check is a keyed hash
// over the first 10 bytes, so edited or foreign cursors are rejected instead of misread.
// `position` counts the items of the unfiltered server order that lie before the cursor.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ei::sim::detail {

std::string base32_encode(const std::uint8_t* data, std::size_t size);
std::optional<std::vector<std::uint8_t>> base32_decode(std::string_view text);

/// True when every character is in [A-Z2-7=~] and the text is not empty.
bool in_cursor_alphabet(std::string_view text) noexcept;

/// `salt` (0..15) gives the same position another text (the cycle_fresh fault).
std::string encode_cursor(std::uint32_t tag, std::uint64_t position, std::uint64_t key,
                          std::uint8_t salt = 0);

enum class cursor_problem { alphabet, undecodable, foreign };

struct decoded_cursor {
  std::optional<std::uint64_t> position;
  cursor_problem problem = cursor_problem::undecodable;
};

/// Decodes a cursor made by encode_cursor with the same tag and key.
decoded_cursor decode_cursor(std::string_view text, std::uint32_t tag, std::uint64_t key);

}  // namespace ei::sim::detail
