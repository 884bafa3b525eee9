// Outcome and completion records of the write-back (storage/outcomes.cpp): round trips,
// commit_acks with outcomes in one write, argument checks, verify(), and opening a store made
// before the `outcomes` column family existed.
#include <filesystem>
#include <memory>

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include "storage/state_store.hpp"

namespace fs = std::filesystem;
using namespace ei;
using namespace ei::storage;

namespace {

api::uuid make_uuid(std::uint64_t n, std::uint8_t salt = 0) {
  api::uuid u;
  u.bytes[0] = salt;
  for (int i = 0; i < 8; ++i)
    u.bytes[15 - i] = static_cast<std::uint8_t>(n >> (8 * i));
  return u;
}

class OutcomesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("ei-outcomes-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<state_store> open() {
    auto s = state_store::open(dir_);
    EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.err().message);
    return std::move(s.value());
  }

  /// A job with a finished order of `n` items (ids make_uuid(1..n, 7)), all dispatched.
  api::uuid make_job(state_store& s, std::uint64_t n) {
    const auto id = make_uuid(42, 0x10);
    job_record j;
    j.job_id = id;
    j.phase = job_phase::dispatching;
    j.order_size = n;
    j.counters.in_scope = n;
    j.listing_complete = true;
    std::vector<order_entry> entries;
    for (std::uint64_t i = 1; i <= n; ++i)
      entries.push_back({make_uuid(i, 7), api::item_status::pending, false, false, false});
    EXPECT_TRUE(s.write_order_chunk(id, 0, entries).ok());
    EXPECT_TRUE(s.finish_order(j).ok());
    EXPECT_TRUE(s.commit_dispatch(id, n, {}).ok());
    return id;
  }

  fs::path dir_;
};

item_outcome success(std::uint64_t seq) {
  item_outcome o;
  o.item = make_uuid(seq, 7);
  o.seq = seq;
  o.status = api::item_status::successful;
  o.fields.external_id = "ERP-" + std::to_string(seq);
  o.fields.exported_at = "2024-05-01T10:00:00Z";
  return o;
}

TEST_F(OutcomesTest, RoundTripAndStates) {
  auto s = open();
  const auto job = make_job(*s, 3);
  auto a = success(1);
  item_outcome b;
  b.item = make_uuid(2, 7);
  b.seq = 2;
  b.status = api::item_status::failed;
  b.fields.failure_reason = "VAT code missing";
  b.fields.failure_reason_type = "invalid_vat";
  ASSERT_TRUE(s->put_outcomes(job, std::vector<item_outcome>{a, b}).ok());
  auto got = s->load_outcome(job, a.item);
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ(**got, a);
  b.state = outcome_state::rejected;
  b.rejections = 1;
  b.error_type = "ACCOUNTING_ENTRY_DOES_NOT_EXIST";
  b.error_message = "element 0: not part of the job";
  ASSERT_TRUE(s->put_outcomes(job, std::vector<item_outcome>{b}).ok());
  std::vector<item_outcome> all;
  ASSERT_TRUE(s->for_each_outcome(job, [&](item_outcome&& o) {
                 all.push_back(std::move(o));
                 return true;
               }).ok());
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0], a);
  EXPECT_EQ(all[1], b);
  auto none = s->load_outcome(job, make_uuid(3, 7));
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  auto problems = s->verify();
  ASSERT_TRUE(problems.ok());
  EXPECT_TRUE(problems->empty()) << (problems->empty() ? "" : problems->front());
}

TEST_F(OutcomesTest, RefusesNonFinalStatusAndZeroSeq) {
  auto s = open();
  const auto job = make_job(*s, 2);
  auto o = success(1);
  o.status = api::item_status::pending;
  auto st = s->put_outcomes(job, std::vector<item_outcome>{o});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.err().code, store_errc::invalid_argument);
  EXPECT_NE(st.err().message.find("not final"), std::string::npos);
  o = success(1);
  o.seq = 0;
  EXPECT_FALSE(s->put_outcomes(job, std::vector<item_outcome>{o}).ok());
  auto got = s->load_outcome(job, o.item);
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(got->has_value());
}

TEST_F(OutcomesTest, CommitAcksWritesOutcomesInTheSameBatch) {
  auto s = open();
  const auto job = make_job(*s, 4);
  std::vector<job_progress> progress{{job, std::nullopt, 2}};
  std::vector<job_item_outcome> outs{{job, success(1)}, {job, success(2)}};
  ASSERT_TRUE(s->commit_acks(progress, std::nullopt, outs).ok());
  EXPECT_EQ(s->load_watermarks(job)->acked_through, 2u);
  EXPECT_TRUE(s->load_outcome(job, make_uuid(2, 7))->has_value());
  // A bad outcome refuses the whole write: neither the ack nor the outcomes move.
  std::vector<job_progress> more{{job, std::nullopt, 4}};
  auto bad = success(4);
  bad.status = api::item_status::in_progress;
  std::vector<job_item_outcome> outs2{{job, success(3)}, {job, bad}};
  EXPECT_FALSE(s->commit_acks(more, std::nullopt, outs2).ok());
  EXPECT_EQ(s->load_watermarks(job)->acked_through, 2u);
  EXPECT_FALSE(s->load_outcome(job, make_uuid(3, 7))->has_value());
}

TEST_F(OutcomesTest, CompletionRoundTripAndEraseJob) {
  auto s = open();
  const auto job = make_job(*s, 1);
  EXPECT_FALSE(s->load_completion(job)->has_value());
  completion_record c;
  c.status = api::job_status::completed_with_errors;
  c.sent = true;
  c.at_ms = 1'700'000'000'000;
  ASSERT_TRUE(s->put_completion(job, c).ok());
  EXPECT_EQ(*s->load_completion(job).value(), c);
  ASSERT_TRUE(s->put_outcomes(job, std::vector<item_outcome>{success(1)}).ok());
  EXPECT_TRUE(s->verify()->empty());
  ASSERT_TRUE(s->erase_job(job).ok());
  EXPECT_FALSE(s->load_completion(job)->has_value());
  EXPECT_FALSE(s->load_outcome(job, make_uuid(1, 7))->has_value());
}

TEST_F(OutcomesTest, VerifyReportsAnOutcomeAtTheWrongSeqAndOrphans) {
  auto s = open();
  const auto job = make_job(*s, 3);
  auto o = success(1);
  o.seq = 2;  // seq 2 holds another item
  ASSERT_TRUE(s->put_outcomes(job, std::vector<item_outcome>{o}).ok());
  ASSERT_TRUE(s->put_outcomes(make_uuid(5, 0x55), std::vector<item_outcome>{success(1)}).ok());
  auto problems = s->verify();
  ASSERT_TRUE(problems.ok());
  ASSERT_EQ(problems->size(), 2u);
  std::string all = (*problems)[0] + "\n" + (*problems)[1];
  EXPECT_NE(all.find("not that item in the order"), std::string::npos) << all;
  EXPECT_NE(all.find("orphan"), std::string::npos) << all;
}

TEST_F(OutcomesTest, OpensAStoreMadeBeforeTheOutcomesColumnFamily) {
  {
    auto s = open();
    make_job(*s, 2);
  }
  {
    // Drop the column family, as a store written by an older export-items lacks it.
    rocksdb::DBOptions o;
    std::vector<std::string> names;
    ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(o, dir_.string(), &names).ok());
    std::vector<rocksdb::ColumnFamilyDescriptor> descs;
    for (const auto& n : names)
      descs.emplace_back(n, rocksdb::ColumnFamilyOptions{});
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(o, dir_.string(), descs, &handles, &db).ok());
    for (std::size_t i = 0; i < names.size(); ++i)
      if (names[i] == "outcomes") {
        ASSERT_TRUE(db->DropColumnFamily(handles[i]).ok());
      }
    for (auto* h : handles)
      db->DestroyColumnFamilyHandle(h);
    delete db;
  }
  auto s = open();
  const auto job = make_uuid(42, 0x10);
  ASSERT_TRUE(s->put_outcomes(job, std::vector<item_outcome>{success(1)}).ok());
  EXPECT_TRUE(s->verify()->empty());
}

}  // namespace
