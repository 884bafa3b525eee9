// One parser for every enum with a text form: the enum has `to_string(E) -> std::string_view`
// (found by argument-dependent lookup) and its header lists its values in a std::array, e.g.
//
//   enum class sync_policy : std::uint8_t { none, commits, always };
//   inline constexpr std::array sync_policies{sync_policy::none, sync_policy::commits, ...};
//   std::optional<sync_policy> p = parse_enum(text, sync_policies);
//   "expected " + enum_choices(sync_policies, "\"")  // expected "none", "commits" or "always"
//
// The text of a value is its to_string, exactly (case and all): no second spelling to drift.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace ei {

/// The value of `values` whose to_string is `text`; nullopt for any other text.
template <class E, std::size_t N>
constexpr std::optional<E> parse_enum(std::string_view text,
                                      const std::array<E, N>& values) noexcept {
  for (const E v : values)
    if (to_string(v) == text) return v;
  return std::nullopt;
}

/// The texts of `values` for an error message, each in `quote`: "a or b", "a, b or c".
template <class E, std::size_t N>
std::string enum_choices(const std::array<E, N>& values, std::string_view quote = {}) {
  std::string out;
  for (std::size_t i = 0; i < N; ++i) {
    if (i > 0) out += i + 1 == N ? " or " : ", ";
    out += quote;
    out += to_string(values[i]);
    out += quote;
  }
  return out;
}

}  // namespace ei
