// Where the orderer runs (issue 14): a small job whose sorts stay in memory is ordered on the
// shared scheduler, everything else on a thread of its own (its sorts may block on the store).
#include <gtest/gtest.h>

#include "actors/detail/job_parts.hpp"

using namespace ei;
using ei::actors::detail::orders_in_memory;

namespace {

storage::job_record small_job(storage::ordering_mode ordering, std::uint64_t listed) {
  storage::job_record job;
  job.ordering = ordering;
  job.counters.listed = listed;
  job.counters.by_remote_status[static_cast<std::size_t>(api::item_status::pending)] = listed;
  return job;
}

TEST(OrdererPlacement, SmallEntryIdJobRunsOnTheSharedScheduler) {
  actors::stage_settings s;
  EXPECT_TRUE(orders_in_memory(s, small_job(storage::ordering_mode::entry_id, 0)));
  EXPECT_TRUE(orders_in_memory(s, small_job(storage::ordering_mode::entry_id, 10)));
  EXPECT_TRUE(orders_in_memory(
      s, small_job(storage::ordering_mode::entry_id, storage::state_store::order_chunk_size)));
}

TEST(OrdererPlacement, MoreThanOneChunkOrOneRunIsDetached) {
  actors::stage_settings s;
  EXPECT_FALSE(orders_in_memory(
      s, small_job(storage::ordering_mode::entry_id, storage::state_store::order_chunk_size + 1)));
  s.sort_run_items = 64;  // the sort would spill runs to the store
  EXPECT_TRUE(orders_in_memory(s, small_job(storage::ordering_mode::entry_id, 64)));
  EXPECT_FALSE(orders_in_memory(s, small_job(storage::ordering_mode::entry_id, 65)));
}

TEST(OrdererPlacement, LaterEpochIsDetached) {
  // Its earlier epochs' pages are dropped once the order is official: a store write.
  actors::stage_settings s;
  auto job = small_job(storage::ordering_mode::entry_id, 10);
  job.listing_epoch = 1;
  EXPECT_FALSE(orders_in_memory(s, job));
}

TEST(OrdererPlacement, ChronologicalRunsInMemoryOnlyWithNothingInScope) {
  actors::stage_settings s;
  // Items in scope: the data layer's dates are a second sort, sized by the API.
  EXPECT_FALSE(orders_in_memory(s, small_job(storage::ordering_mode::chronological, 10)));
  auto job = small_job(storage::ordering_mode::chronological, 0);
  job.counters.listed = 10;
  job.counters.by_remote_status[static_cast<std::size_t>(api::item_status::successful)] = 7;
  job.counters.by_remote_status[static_cast<std::size_t>(api::item_status::failed)] = 3;
  EXPECT_TRUE(orders_in_memory(s, job));
  job.counters.by_remote_status[static_cast<std::size_t>(api::item_status::in_progress)] = 1;
  EXPECT_FALSE(orders_in_memory(s, job));
}

}  // namespace
