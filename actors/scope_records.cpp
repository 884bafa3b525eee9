#include "actors/detail/scope_records.hpp"

namespace ei::actors::detail {

storage::store_status add_scope_records(storage::external_sorter& sorter,
                                        std::span<const storage::order_entry> entries,
                                        std::uint32_t& arrival) {
  std::array<std::uint8_t, scope_width> rec{};
  for (const auto& e : entries) {
    std::memcpy(rec.data(), e.id.bytes.data(), 16);
    put_be(rec.data() + 16, arrival++, 4);
    rec[20] = static_cast<std::uint8_t>(e.remote_status);
    rec[21] = e.has_tracking ? 1 : 0;
    if (auto st = sorter.add(rec.data()); !st) return st;
  }
  return ok_v;
}

storage::store_result<bool> latest_listing::read_ahead() {
  auto r = sorter_.next();
  if (!r) return std::move(r).err();
  have_ahead_ = *r != nullptr;
  if (have_ahead_) std::memcpy(ahead_.data(), *r, scope_width);
  return have_ahead_;
}

storage::store_result<std::optional<storage::order_entry>> latest_listing::next() {
  if (!started_) {
    started_ = true;
    if (auto r = read_ahead(); !r) return std::move(r).err();
  }
  if (!have_ahead_) return std::optional<storage::order_entry>{};
  auto current = ahead_;
  for (;;) {
    auto more = read_ahead();
    if (!more) return std::move(more).err();
    if (!*more || std::memcmp(ahead_.data(), current.data(), 16) != 0) break;
    ++duplicates_;  // a later listing of the same item supersedes this one
    current = ahead_;
  }
  return std::optional<storage::order_entry>{storage::order_entry{
      uuid_at(current.data()), static_cast<api::item_status>(current[20]), (current[21] & 1) != 0}};
}

}  // namespace ei::actors::detail
