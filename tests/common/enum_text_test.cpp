// common/enum_text.hpp: one parser for the enums with a text form.
#include "common/enum_text.hpp"

#include <gtest/gtest.h>

#include <cstdint>

namespace ei {
namespace {

enum class colour : std::uint8_t { red, green, blue };
inline constexpr std::array colours{colour::red, colour::green, colour::blue};
constexpr std::string_view to_string(colour c) noexcept {
  return c == colour::red ? "red" : c == colour::green ? "green" : "blue";
}

TEST(enum_text, parses_exactly_the_to_string_texts) {
  for (auto c : colours)
    EXPECT_EQ(parse_enum(to_string(c), colours), c);
  EXPECT_FALSE(parse_enum("Red", colours));
  EXPECT_FALSE(parse_enum("red ", colours));
  EXPECT_FALSE(parse_enum("", colours));
  static_assert(parse_enum("green", colours) == colour::green);
}

TEST(enum_text, choices_for_messages) {
  EXPECT_EQ(enum_choices(colours), "red, green or blue");
  EXPECT_EQ(enum_choices(colours, "\""), "\"red\", \"green\" or \"blue\"");
  EXPECT_EQ(enum_choices(std::array{colour::red, colour::blue}), "red or blue");
}

}  // namespace
}  // namespace ei
