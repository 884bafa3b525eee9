// The knobs the actor graph runs with. Filled from the pipeline configuration (configs/*.json
// and the command line); defaults are what ships.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "export_items/config.hpp"  // listing_mode, stage_settings
#include "storage/state_store.hpp"

namespace ei::actors {

/// `listing_mode` values and their text, for parse_enum (common/enum_text.hpp).
inline constexpr std::array listing_modes{listing_mode::cursor, listing_mode::parallel};
constexpr std::string_view to_string(listing_mode m) noexcept {
  return m == listing_mode::cursor ? "cursor" : "parallel";
}

/// The wait before attempt `failures + 1` of a page that failed `failures` (>= 1) times in a
/// row: `page_retry_backoff` doubled per failure, capped at 5 s; nullopt once `page_attempts`
/// are used up. One rule for the item listing and the data-layer walk.
inline std::optional<std::chrono::milliseconds> page_retry_delay(const stage_settings& s,
                                                                 std::uint32_t failures) {
  if (failures >= (s.page_attempts > 0 ? s.page_attempts : 1)) return std::nullopt;
  const std::uint32_t shift = failures - 1 < 16 ? failures - 1 : 16;
  const auto delay = s.page_retry_backoff * (1U << shift);
  return delay < std::chrono::milliseconds(5000) ? delay : std::chrono::milliseconds(5000);
}

}  // namespace ei::actors
