// The jobs a discovery listed, for the batch runner: a job listed twice runs once, and pages
// that list no job not seen before end a cycling listing. Every listed id is kept for the
// whole batch, so the table is flat (open addressing, linear probing, at most 3/4 full): ~23
// bytes a job instead of the ~130 of two std::set<uuid> (issue 14: 100,000 discovered jobs).
#pragma once

#include <cstdint>
#include <vector>

#include "api/model.hpp"

namespace ei::actors::detail {

class listed_jobs {
 public:
  /// Records `id` as listed; true when it was not listed before.
  bool list(const api::uuid& id) { return find_or_add(id) == added; }

  /// Records that `id` (listed or not) was handed to the batch; true the first time.
  bool start(const api::uuid& id) {
    auto& s = state_[slot_of(id)];
    if (s == started) return false;
    s = started;
    return true;
  }

  std::size_t size() const noexcept { return size_; }

 private:
  static constexpr std::uint8_t empty = 0, listed = 1, started = 2, added = 3;

  /// All 128 bits mixed into the low ones the mask keeps (ids that differ only in their high
  /// bytes, as sequential test ids do, must not pile up in one run of slots).
  static std::size_t hash(const api::uuid& id) noexcept {
    std::uint64_t h = api::uuid_hash{}(id);
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ULL;
    h ^= h >> 32;
    return static_cast<std::size_t>(h);
  }

  /// The slot of `id`, added (listed) when absent.
  std::size_t slot_of(const api::uuid& id) {
    find_or_add(id);
    return last_;
  }

  /// `added` when `id` was absent (now listed), else its state; its slot in last_.
  std::uint8_t find_or_add(const api::uuid& id) {
    if ((size_ + 1) * 4 > ids_.size() * 3) grow();
    const std::size_t mask = ids_.size() - 1;
    for (std::size_t i = hash(id) & mask;; i = (i + 1) & mask) {
      if (state_[i] == empty) {
        ids_[i] = id;
        state_[i] = listed;
        ++size_;
        last_ = i;
        return added;
      }
      if (ids_[i] == id) {
        last_ = i;
        return state_[i];
      }
    }
  }

  void grow() {
    std::vector<api::uuid> ids(ids_.empty() ? 64 : ids_.size() * 2);
    std::vector<std::uint8_t> state(ids.size(), empty);
    const std::size_t mask = ids.size() - 1;
    for (std::size_t j = 0; j < ids_.size(); ++j) {
      if (state_[j] == empty) continue;
      std::size_t i = hash(ids_[j]) & mask;
      while (state[i] != empty)
        i = (i + 1) & mask;
      ids[i] = ids_[j];
      state[i] = state_[j];
    }
    ids_ = std::move(ids);
    state_ = std::move(state);
  }

  std::vector<api::uuid> ids_;
  std::vector<std::uint8_t> state_;
  std::size_t size_ = 0;
  std::size_t last_ = 0;
};

}  // namespace ei::actors::detail
