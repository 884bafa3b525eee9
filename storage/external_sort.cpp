#include "storage/external_sort.hpp"

#include <algorithm>
#include <cstring>
#include <string>

namespace ei::storage {

namespace {

/// The first 8 bytes as a big-endian number: byte order of the prefix = numeric order.
inline std::uint64_t prefix_key(const std::uint8_t* p) noexcept {
  std::uint64_t x = 0;
  std::memcpy(&x, p, 8);
  return __builtin_bswap64(x);
}

}  // namespace

struct external_sorter::run_cursor {
  std::uint32_t run = 0;
  std::uint32_t segment = 0;  // the next segment to load
  std::string data;           // records of the loaded segment
  std::size_t pos = 0;        // byte offset of the current record in `data`
  std::uint64_t key = 0;      // prefix_key of the current record
  const std::uint8_t* current() const noexcept {
    return reinterpret_cast<const std::uint8_t*>(data.data()) + pos;
  }
  void refresh_key() noexcept {
    if (pos < data.size()) key = prefix_key(current());
  }
};

external_sorter::external_sorter(state_store& store, const api::uuid& job, std::uint8_t space,
                                 std::uint8_t width, std::size_t run_records)
    : store_(store),
      job_(job),
      space_(space),
      width_(std::clamp<std::uint8_t>(width, 8, max_width)),
      run_records_(std::max<std::size_t>(run_records, 1)) {}

external_sorter::~external_sorter() = default;

bool external_sorter::less(const std::uint8_t* a, const std::uint8_t* b) const noexcept {
  const auto x = prefix_key(a);
  const auto y = prefix_key(b);
  if (x != y) return x < y;
  return std::memcmp(a + 8, b + 8, width_ - 8U) < 0;
}

void external_sorter::sort_buffer() {
  // Most comparisons are decided by the first 8 bytes (random ids, dates): sort (prefix,
  // index) pairs, which move 16 bytes instead of a whole record, then gather the records.
  std::vector<std::pair<std::uint64_t, std::uint32_t>> keys(buffer_.size());
  for (std::size_t i = 0; i < buffer_.size(); ++i)
    keys[i] = {prefix_key(buffer_[i].data()), static_cast<std::uint32_t>(i)};
  std::sort(keys.begin(), keys.end(), [this](const auto& a, const auto& b) {
    if (a.first != b.first) return a.first < b.first;
    return std::memcmp(buffer_[a.second].data() + 8, buffer_[b.second].data() + 8, width_ - 8U) < 0;
  });
  std::vector<record> sorted(buffer_.size());
  for (std::size_t i = 0; i < keys.size(); ++i)
    sorted[i] = buffer_[keys[i].second];
  buffer_.swap(sorted);
}

store_status external_sorter::add(const std::uint8_t* rec) {
  if (sealed_) return make_error(store_errc::invalid_argument, "external_sorter: add after seal");
  if (buffer_.size() == run_records_) {
    if (auto st = spill(); !st) return st;
  }
  record r{};
  std::memcpy(r.data(), rec, width_);
  buffer_.push_back(r);
  ++added_;
  return ok_v;
}

store_status external_sorter::spill() {
  sort_buffer();
  std::vector<std::uint8_t> packed;
  packed.reserve(std::min(buffer_.size(), segment_records) * width_);
  std::uint32_t segment = 0;
  for (std::size_t start = 0; start < buffer_.size(); start += segment_records, ++segment) {
    packed.clear();
    const auto end = std::min(buffer_.size(), start + segment_records);
    for (std::size_t i = start; i < end; ++i)
      packed.insert(packed.end(), buffer_[i].begin(), buffer_[i].begin() + width_);
    if (auto st = store_.put_scratch(job_, space_, runs_, segment, width_, packed); !st) return st;
  }
  ++runs_;
  buffer_.clear();
  return ok_v;
}

store_status external_sorter::load_segment(run_cursor& c) {
  auto seg = store_.get_scratch(job_, space_, c.run, c.segment, width_);
  if (!seg) return std::move(seg).err();
  ++c.segment;
  c.pos = 0;
  if (*seg)
    c.data = std::move(**seg);
  else
    c.data.clear();  // past the run's last segment
  c.refresh_key();
  return ok_v;
}

store_status external_sorter::seal() {
  if (sealed_) return ok_v;
  sealed_ = true;
  mem_pos_ = 0;
  if (runs_ == 0) {
    sort_buffer();
    return ok_v;
  }
  if (!buffer_.empty()) {
    if (auto st = spill(); !st) return st;
  }
  buffer_ = {};  // release the run buffer: merging needs one segment per run
  return open_cursors();
}

store_status external_sorter::rewind() {
  if (!sealed_)
    return make_error(store_errc::invalid_argument, "external_sorter: rewind before seal");
  mem_pos_ = 0;
  return runs_ == 0 ? ok_v : open_cursors();
}

store_status external_sorter::open_cursors() {
  cursors_.clear();
  heap_.clear();
  auto greater = [this](const run_cursor* a, const run_cursor* b) {
    if (a->key != b->key) return a->key > b->key;
    return less(b->current(), a->current());
  };
  for (std::uint32_t r = 0; r < runs_; ++r) {
    auto c = std::make_unique<run_cursor>();
    c->run = r;
    if (auto st = load_segment(*c); !st) return st;
    if (!c->data.empty()) heap_.push_back(c.get());
    cursors_.push_back(std::move(c));
  }
  std::make_heap(heap_.begin(), heap_.end(), greater);
  return ok_v;
}

store_result<const std::uint8_t*> external_sorter::next() {
  if (!sealed_)
    return make_error(store_errc::invalid_argument, "external_sorter: next before seal");
  if (runs_ == 0) {
    if (mem_pos_ == buffer_.size()) return static_cast<const std::uint8_t*>(nullptr);
    return static_cast<const std::uint8_t*>(buffer_[mem_pos_++].data());
  }
  if (heap_.empty()) return static_cast<const std::uint8_t*>(nullptr);
  auto greater = [this](const run_cursor* a, const run_cursor* b) {
    if (a->key != b->key) return a->key > b->key;
    return less(b->current(), a->current());
  };
  std::pop_heap(heap_.begin(), heap_.end(), greater);
  run_cursor* c = heap_.back();
  std::memcpy(out_.data(), c->current(), width_);
  c->pos += width_;
  if (c->pos == c->data.size()) {
    if (auto st = load_segment(*c); !st) return std::move(st).err();
  } else {
    c->refresh_key();
  }
  if (c->data.empty())
    heap_.pop_back();
  else
    std::push_heap(heap_.begin(), heap_.end(), greater);
  return static_cast<const std::uint8_t*>(out_.data());
}

store_status external_sorter::reset() {
  buffer_.clear();
  cursors_.clear();
  heap_.clear();
  added_ = 0;
  mem_pos_ = 0;
  sealed_ = false;
  if (runs_ == 0) return ok_v;
  runs_ = 0;
  return store_.drop_scratch(job_, space_);
}

}  // namespace ei::storage
