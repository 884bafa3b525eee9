// Internal to the job family: the fixed-width records the orderer and the reconciler sort
// with storage::external_sorter, and the reader that collapses a listing to one entry per id.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>

#include "storage/external_sort.hpp"

namespace ei::actors::detail {

inline void put_be(std::uint8_t* p, std::uint64_t v, int bytes) noexcept {
  for (int i = bytes - 1; i >= 0; --i, v >>= 8)
    p[i] = static_cast<std::uint8_t>(v & 0xff);
}

inline std::uint64_t get_be(const std::uint8_t* p, int bytes) noexcept {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i)
    v = (v << 8) | p[i];
  return v;
}

inline api::uuid uuid_at(const std::uint8_t* p) noexcept {
  api::uuid u;
  std::memcpy(u.bytes.data(), p, 16);
  return u;
}

/// A listed item: id (16) | arrival u32 BE | status u8 | flags u8 (bit0: has tracking).
/// Sorted by (id, arrival), so the last record of an id is its latest listing.
inline constexpr std::uint8_t scope_width = 22;

/// Adds a listed page's entries, numbering them from `arrival` on (advanced).
storage::store_status add_scope_records(storage::external_sorter& sorter,
                                        std::span<const storage::order_entry> entries,
                                        std::uint32_t& arrival);

/// Reads a sealed sorter of scope records back in id order, one entry per id: its latest
/// listing. Records passed over for an id listed again are counted as duplicates.
class latest_listing {
 public:
  explicit latest_listing(storage::external_sorter& sorter) : sorter_(sorter) {}
  /// The next id's latest entry, or nullopt after the last.
  storage::store_result<std::optional<storage::order_entry>> next();
  std::uint64_t duplicates() const noexcept { return duplicates_; }

 private:
  storage::store_result<bool> read_ahead();

  storage::external_sorter& sorter_;
  std::array<std::uint8_t, scope_width> ahead_{};
  bool have_ahead_ = false;
  bool started_ = false;
  std::uint64_t duplicates_ = 0;
};

}  // namespace ei::actors::detail
