// Tests of storage::external_sorter: byte order over many runs, small inputs that never touch
// the store, reset dropping the runs, scratch records removed by finish_order, and verify()
// reporting runs left behind by a finished order.
#include "storage/external_sort.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include "tests/support/temp_dir.hpp"

using namespace ei;
using namespace ei::storage;

namespace {

constexpr std::uint8_t width = 22;
using rec = std::array<std::uint8_t, width>;

api::uuid job_id(std::uint8_t n) {
  api::uuid u;
  u.bytes[0] = n;
  u.bytes[15] = 1;
  return u;
}

std::vector<rec> random_records(std::size_t n, std::uint32_t seed) {
  std::mt19937 gen{seed};
  std::vector<rec> out(n);
  for (auto& r : out)
    for (auto& b : r)
      b = static_cast<std::uint8_t>(gen() & 0x0f);  // few values: many ties in the prefix
  return out;
}

std::vector<rec> drain(external_sorter& s) {
  std::vector<rec> out;
  for (;;) {
    auto r = s.next();
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.err().message);
    if (!r.ok() || *r == nullptr) return out;
    rec x{};
    std::memcpy(x.data(), *r, width);
    out.push_back(x);
  }
}

std::size_t scratch_segments(state_store& store, const api::uuid& job, std::uint8_t space,
                             std::uint32_t runs) {
  std::size_t n = 0;
  for (std::uint32_t run = 0; run < runs; ++run)
    for (std::uint32_t seg = 0;; ++seg) {
      auto s = store.get_scratch(job, space, run, seg, width);
      EXPECT_TRUE(s.ok());
      if (!s.ok() || !*s) break;
      ++n;
    }
  return n;
}

class external_sort_test : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = state_store::open(dir_.path());
    ASSERT_TRUE(opened.ok()) << opened.err().message;
    store_ = std::move(opened.value());
  }
  ei::testing::temp_dir dir_{"ei-xsort-"};
  std::unique_ptr<state_store> store_;
};

TEST_F(external_sort_test, many_runs_merge_into_byte_order) {
  auto input = random_records(50'000, 1);
  external_sorter s{*store_, job_id(1), 0, width, 4'000};  // 13 runs, several segments each
  for (const auto& r : input)
    ASSERT_TRUE(s.add(r.data()).ok());
  ASSERT_TRUE(s.seal().ok());
  EXPECT_EQ(s.runs(), 13u);
  EXPECT_EQ(s.added(), input.size());
  EXPECT_GT(scratch_segments(*store_, job_id(1), 0, s.runs()), 0u);
  auto sorted = input;
  std::sort(sorted.begin(), sorted.end());  // std::array compares bytes lexicographically
  EXPECT_EQ(drain(s), sorted);
  auto again = s.next();  // stays at the end
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, nullptr);
  ASSERT_TRUE(s.rewind().ok());  // and reads it all again
  EXPECT_EQ(drain(s), sorted);
}

TEST_F(external_sort_test, input_that_fits_the_buffer_never_touches_the_store) {
  auto input = random_records(1'000, 2);
  external_sorter s{*store_, job_id(2), 0, width, 4'000};
  for (const auto& r : input)
    ASSERT_TRUE(s.add(r.data()).ok());
  ASSERT_TRUE(s.seal().ok());
  EXPECT_EQ(s.runs(), 0u);
  EXPECT_EQ(scratch_segments(*store_, job_id(2), 0, 1), 0u);
  auto sorted = input;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(drain(s), sorted);
  ASSERT_TRUE(s.rewind().ok());
  EXPECT_EQ(drain(s), sorted);
}

TEST_F(external_sort_test, empty_input_yields_nothing) {
  external_sorter s{*store_, job_id(3), 0, width};
  ASSERT_TRUE(s.seal().ok());
  EXPECT_TRUE(drain(s).empty());
}

TEST_F(external_sort_test, reset_drops_runs_and_starts_over) {
  external_sorter s{*store_, job_id(4), 1, width, 1'000};
  for (const auto& r : random_records(5'000, 3))
    ASSERT_TRUE(s.add(r.data()).ok());
  EXPECT_EQ(s.runs(), 4u);  // the fifth run is still buffered
  ASSERT_TRUE(s.reset().ok());
  EXPECT_EQ(scratch_segments(*store_, job_id(4), 1, 4), 0u);
  auto input = random_records(2'500, 4);
  for (const auto& r : input)
    ASSERT_TRUE(s.add(r.data()).ok());
  ASSERT_TRUE(s.seal().ok());
  auto sorted = input;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(drain(s), sorted);
}

TEST_F(external_sort_test, spaces_of_one_job_are_independent) {
  external_sorter a{*store_, job_id(5), 0, width, 100};
  external_sorter b{*store_, job_id(5), 1, width, 100};
  auto in_a = random_records(1'000, 5);
  auto in_b = random_records(700, 6);
  for (const auto& r : in_a)
    ASSERT_TRUE(a.add(r.data()).ok());
  for (const auto& r : in_b)
    ASSERT_TRUE(b.add(r.data()).ok());
  ASSERT_TRUE(a.seal().ok());
  ASSERT_TRUE(b.seal().ok());
  std::sort(in_a.begin(), in_a.end());
  std::sort(in_b.begin(), in_b.end());
  EXPECT_EQ(drain(a), in_a);
  EXPECT_EQ(drain(b), in_b);
}

TEST_F(external_sort_test, misuse_is_an_error_not_a_crash) {
  external_sorter s{*store_, job_id(6), 0, width};
  EXPECT_FALSE(s.next().ok());  // before seal
  ASSERT_TRUE(s.seal().ok());
  rec r{};
  EXPECT_FALSE(s.add(r.data()).ok());  // after seal
  std::vector<std::uint8_t> ragged(width + 1);
  EXPECT_EQ(store_->put_scratch(job_id(6), 0, 0, 0, width, ragged).err().code,
            store_errc::invalid_argument);
}

TEST_F(external_sort_test, finish_order_removes_the_runs_and_verify_sees_leftovers) {
  job_record job;
  job.job_id = job_id(7);
  job.phase = job_phase::ordering;
  ASSERT_TRUE(store_->put_job(job).ok());
  external_sorter s{*store_, job.job_id, 2, width, 100};
  for (const auto& r : random_records(1'000, 7))
    ASSERT_TRUE(s.add(r.data()).ok());
  ASSERT_TRUE(s.seal().ok());
  auto problems = store_->verify();
  ASSERT_TRUE(problems.ok());
  EXPECT_TRUE(problems->empty()) << problems->front();  // runs of an ordering in progress

  job.phase = job_phase::dispatching;
  ASSERT_TRUE(store_->finish_order(job).ok());
  EXPECT_EQ(scratch_segments(*store_, job.job_id, 2, s.runs()), 0u);
  problems = store_->verify();
  ASSERT_TRUE(problems.ok());
  EXPECT_TRUE(problems->empty());

  // Runs written after the order was finished are a leftover verify() names.
  ASSERT_TRUE(
      store_->put_scratch(job.job_id, 2, 0, 0, width, std::vector<std::uint8_t>(width)).ok());
  problems = store_->verify();
  ASSERT_TRUE(problems.ok());
  ASSERT_EQ(problems->size(), 1u);
  EXPECT_NE(problems->front().find("sorted runs left behind"), std::string::npos)
      << problems->front();
  ASSERT_TRUE(store_->erase_job(job.job_id).ok());
  EXPECT_EQ(scratch_segments(*store_, job.job_id, 2, 1), 0u);
}

TEST_F(external_sort_test, a_store_without_the_scratch_family_is_opened_and_completed) {
  // Stores created before the scratch column family existed are not corrupt: open() adds it.
  store_.reset();
  {
    std::vector<rocksdb::ColumnFamilyDescriptor> descs;
    for (const char* n : {"default", "meta", "jobs", "pages", "order", "tracking", "attempts",
                          "outcomes", "scratch"})
      descs.emplace_back(n, rocksdb::ColumnFamilyOptions{});
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::DBOptions{}, dir_.str(), descs, &handles, &raw).ok());
    std::unique_ptr<rocksdb::DB> db{raw};
    ASSERT_TRUE(db->DropColumnFamily(handles.back()).ok());
    for (auto* h : handles)
      ASSERT_TRUE(db->DestroyColumnFamilyHandle(h).ok());
    std::vector<std::string> names;
    ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions{}, dir_.str(), &names).ok());
    ASSERT_EQ(std::count(names.begin(), names.end(), "scratch"), 0);
  }
  auto reopened = state_store::open(dir_.path());
  ASSERT_TRUE(reopened.ok()) << reopened.err().message;
  EXPECT_TRUE(reopened.value()
                  ->put_scratch(job_id(8), 0, 0, 0, width, std::vector<std::uint8_t>(width))
                  .ok());
  auto problems = reopened.value()->verify();
  ASSERT_TRUE(problems.ok());
  ASSERT_EQ(problems->size(), 1u);  // the scratch record of a job that does not exist
  EXPECT_NE(problems->front().find("orphan"), std::string::npos) << problems->front();
}

}  // namespace
