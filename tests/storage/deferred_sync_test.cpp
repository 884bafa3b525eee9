// The group-commit contract of the state store: a write_sync::deferred write is written and
// readable at once but NOT fsynced; one sync() fsyncs it (and everything before it); the
// default write_sync::policy keeps fsyncing as the policy says. Observed by counting the
// fdatasync calls RocksDB makes (tests/support/fdatasync_hook.hpp).
#include <gtest/gtest.h>

#include "storage/state_store.hpp"
#include "tests/support/fdatasync_hook.hpp"
#include "tests/support/temp_dir.hpp"

using namespace ei;
using namespace ei::storage;
using ei::testing::fdatasync_hook;

namespace {

api::uuid make_uuid(std::uint8_t n) {
  api::uuid u;
  u.bytes[15] = n;
  u.bytes[0] = 0x5a;
  return u;
}

job_record sample_job(const api::uuid& id, std::uint64_t order_size) {
  job_record j;
  j.job_id = id;
  j.company_id = make_uuid(200);
  j.phase = job_phase::dispatching;
  j.order_size = order_size;
  return j;
}

std::unique_ptr<state_store> open_store(const ei::testing::temp_dir& dir, sync_policy p) {
  store_options o;
  o.sync = p;
  auto s = state_store::open(dir.path(), o);
  EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.err().message);
  return s.ok() ? std::move(s.value()) : nullptr;
}

}  // namespace

TEST(DeferredSync, SyncsTableMatchesThePolicies) {
  EXPECT_FALSE(syncs(sync_policy::none, true));
  EXPECT_FALSE(syncs(sync_policy::none, false));
  EXPECT_TRUE(syncs(sync_policy::commits, true));
  EXPECT_FALSE(syncs(sync_policy::commits, false));
  EXPECT_TRUE(syncs(sync_policy::always, true));
  EXPECT_TRUE(syncs(sync_policy::always, false));
}

TEST(DeferredSync, CommitPointsAreWrittenWithoutFsyncUntilSync) {
  ei::testing::temp_dir dir;
  auto store = open_store(dir, sync_policy::commits);
  ASSERT_TRUE(store);
  const auto job = make_uuid(1);
  const auto before = fdatasync_hook::calls();

  ASSERT_TRUE(store->put_job(sample_job(job, 100), write_sync::deferred).ok());
  ASSERT_TRUE(store->finish_order(sample_job(job, 100), write_sync::deferred).ok());
  ASSERT_TRUE(store->commit_dispatch(job, 40, {}, write_sync::deferred).ok());
  const std::vector<job_progress> acks{{job, std::nullopt, 30}};
  ASSERT_TRUE(store
                  ->commit_acks(acks, std::pair<std::string, std::uint64_t>{"sink", 7},
                                write_sync::deferred)
                  .ok());
  EXPECT_EQ(fdatasync_hook::calls(), before) << "a deferred write fsynced";

  // Written and visible before the sync.
  auto w = store->load_watermarks(job);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w.value(), (watermarks{40, 30}));
  auto offset = store->load_sink_offset("sink");
  ASSERT_TRUE(offset.ok());
  EXPECT_EQ(offset.value(), std::optional<std::uint64_t>{7});

  ASSERT_TRUE(store->sync().ok());
  EXPECT_GE(fdatasync_hook::calls(), before + 1) << "sync() did not fsync the WAL";

  // The default still fsyncs every commit point before returning.
  const auto mid = fdatasync_hook::calls();
  ASSERT_TRUE(store->commit_dispatch(job, 50, {}).ok());
  EXPECT_GE(fdatasync_hook::calls(), mid + 1);
  const auto after_dispatch = fdatasync_hook::calls();
  ASSERT_TRUE(store->put_job(sample_job(job, 100)).ok());
  EXPECT_GE(fdatasync_hook::calls(), after_dispatch + 1);

  const auto before_erase = fdatasync_hook::calls();
  ASSERT_TRUE(store->erase_job(job, write_sync::deferred).ok());
  EXPECT_EQ(fdatasync_hook::calls(), before_erase);
  ASSERT_TRUE(store->sync().ok());
  auto gone = store->load_job(job);
  ASSERT_TRUE(gone.ok());
  EXPECT_FALSE(gone.value().has_value());
}

TEST(DeferredSync, DeferredWatermarksStayMonotonicAndValidated) {
  ei::testing::temp_dir dir;
  auto store = open_store(dir, sync_policy::commits);
  ASSERT_TRUE(store);
  const auto job = make_uuid(2);
  ASSERT_TRUE(store->put_job(sample_job(job, 100)).ok());

  ASSERT_TRUE(store->commit_dispatch(job, 60, {}, write_sync::deferred).ok());
  ASSERT_TRUE(store->commit_dispatch(job, 20, {}, write_sync::deferred).ok());
  auto too_far = store->commit_dispatch(job, 101, {}, write_sync::deferred);
  ASSERT_FALSE(too_far.ok());
  EXPECT_EQ(too_far.err().code, store_errc::invalid_argument);
  const std::vector<job_progress> beyond{{job, std::nullopt, 61}};
  auto bad_ack = store->commit_acks(beyond, std::nullopt, write_sync::deferred);
  ASSERT_FALSE(bad_ack.ok());
  EXPECT_EQ(bad_ack.err().code, store_errc::invalid_argument);
  const std::vector<job_progress> acks{{job, std::nullopt, 60}, {job, std::nullopt, 10}};
  ASSERT_TRUE(store->commit_acks(acks, std::nullopt, write_sync::deferred).ok());
  ASSERT_TRUE(store->sync().ok());

  auto w = store->load_watermarks(job);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w.value(), (watermarks{60, 60}));
}

TEST(DeferredSync, AlwaysPolicyDefersEveryWrite) {
  ei::testing::temp_dir dir;
  auto store = open_store(dir, sync_policy::always);
  ASSERT_TRUE(store);
  const auto job = make_uuid(3);
  auto rec = sample_job(job, 0);
  rec.phase = job_phase::listing;
  page_record page;
  page.page_no = 0;
  page.next_cursor = "c1";
  page.has_next = true;
  page.items.push_back(listed_item{make_uuid(9), api::item_status::pending, "", {}});

  const auto before = fdatasync_hook::calls();
  ASSERT_TRUE(store->commit_page(rec, 0, page, write_sync::deferred).ok());
  const std::vector<order_entry> chunk{{make_uuid(9), api::item_status::pending, false}};
  ASSERT_TRUE(store->write_order_chunk(job, 0, chunk, write_sync::deferred).ok());
  ASSERT_TRUE(store->drop_pages(job, 0, write_sync::deferred).ok());
  EXPECT_EQ(fdatasync_hook::calls(), before);
  ASSERT_TRUE(store->sync().ok());
  EXPECT_GE(fdatasync_hook::calls(), before + 1);

  const auto mid = fdatasync_hook::calls();
  ASSERT_TRUE(store->commit_page(rec, 0, page).ok());
  EXPECT_GE(fdatasync_hook::calls(), mid + 1) << "`always` must fsync a page by default";
}

TEST(DeferredSync, SyncIsANoOpUnderNone) {
  ei::testing::temp_dir dir;
  auto store = open_store(dir, sync_policy::none);
  ASSERT_TRUE(store);
  const auto job = make_uuid(4);
  const auto before = fdatasync_hook::calls();
  ASSERT_TRUE(store->put_job(sample_job(job, 10)).ok());
  ASSERT_TRUE(store->commit_dispatch(job, 5, {}, write_sync::deferred).ok());
  ASSERT_TRUE(store->sync().ok());
  EXPECT_EQ(fdatasync_hook::calls(), before);
}
