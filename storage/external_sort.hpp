// Sorting in bounded memory: fixed-width byte records, ordered by their bytes (memcmp), spilled
// as sorted runs into the store's scratch space and merged back. The orderer uses it so that
// fixing the order of a job takes the same memory at 1 M items as at 100 k.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "api/model.hpp"
#include "storage/state_store.hpp"

namespace ei::storage {

/// Sorts records of `width` bytes (<= max_width) by their bytes. Callers lay out the sort key
/// big-endian at the front, so byte order is the order they want (equal records are
/// interchangeable, so there is no stability question).
///
/// Memory: at most `run_records` records are buffered; beyond that the buffer is sorted and
/// written to the store as one run (segments of `segment_records`). Merging holds one
/// segment per run. A sorter that never filled its buffer never touches the store.
///
/// Not thread-safe; every call may block on the store (run it where blocking is allowed).
/// The scratch space (`space`, per job) is the caller's to choose; two sorters of one job
/// must use different spaces. Crash: runs are scratch (never fsynced); start over after
/// drop_scratch.
class external_sorter {
 public:
  static constexpr std::size_t max_width = 32;
  static constexpr std::size_t segment_records = 4096;

  external_sorter(state_store& store, const api::uuid& job, std::uint8_t space, std::uint8_t width,
                  std::size_t run_records = 65536);
  ~external_sorter();
  external_sorter(const external_sorter&) = delete;
  external_sorter& operator=(const external_sorter&) = delete;

  /// Adds one record of exactly `width` bytes. Input phase only.
  store_status add(const std::uint8_t* record);
  /// Ends the input; next() then yields every record added, in ascending byte order.
  store_status seal();
  /// The next record in order, or nullptr after the last. The pointer stays valid until the
  /// next call. After seal() only.
  store_result<const std::uint8_t*> next();
  /// Starts next() over from the first record (after seal() only).
  store_status rewind();
  /// Forgets everything added and drops the runs written: back to the input phase.
  store_status reset();

  std::uint64_t added() const noexcept { return added_; }
  /// Runs written to the store so far (0: everything stayed in memory).
  std::uint32_t runs() const noexcept { return runs_; }

 private:
  using record = std::array<std::uint8_t, max_width>;
  struct run_cursor;

  store_status spill();
  store_status open_cursors();
  store_status load_segment(run_cursor& c);
  bool less(const std::uint8_t* a, const std::uint8_t* b) const noexcept;
  void sort_buffer();

  state_store& store_;
  api::uuid job_;
  std::uint8_t space_;
  std::uint8_t width_;
  std::size_t run_records_;
  std::vector<record> buffer_;
  std::uint64_t added_ = 0;
  std::uint32_t runs_ = 0;
  bool sealed_ = false;
  std::size_t mem_pos_ = 0;  // next buffered record when everything stayed in memory
  std::vector<std::unique_ptr<run_cursor>> cursors_;
  std::vector<run_cursor*> heap_;
  record out_{};
};

}  // namespace ei::storage
