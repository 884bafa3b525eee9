// The hazard logic of the paginator, the orderer's data-layer walk and the sequencer's credit
// window, run deterministically:
// CAF 0.17's test_coordinator runs every message in this thread, one at a time, and fires a
// delayed message (a page's backoff) only when the test triggers it. The fetcher, the store
// actor, the downstream and the supervisor are scripted stand-ins; nothing sleeps, nothing
// listens on a port, and every step is awaited as a condition on what the actors did.
#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>

#include "actors/detail/job_parts.hpp"
#include "tests/support/temp_dir.hpp"

using namespace ei;
using namespace ei::actors;

namespace {

api::uuid make_uuid(std::uint8_t hi, std::uint8_t lo) {
  api::uuid u;
  u.bytes[0] = 0x7e;
  u.bytes[14] = hi;
  u.bytes[15] = lo;
  return u;
}

const api::uuid job_id = make_uuid(0xff, 1);

// --- scripted stand-ins ----------------------------------------------------------------------

/// What the stand-ins saw and what they answer.
struct world {
  // Control-layer pages by the cursor they are asked with; each cursor's replies are given in
  // turn, the last one again and again.
  std::map<std::string, std::deque<items_reply>> pages;
  std::vector<std::string> asked;  // cursors asked, in order
  // Data-layer pages, the same way.
  std::map<std::string, std::deque<dates_reply>> dates;
  std::vector<std::string> dates_asked;
  std::vector<page_commit> commits;
  std::vector<order_chunk> chunks;
  std::vector<item_batch> batches;  // handed downstream
  std::optional<listing_result> listed;
  std::optional<order_result> ordered;
  std::optional<dispatch_result> dispatched;
  std::size_t store_messages = 0;  // everything the store actor received
};

items_reply items_page(std::uint8_t first, std::size_t n, std::optional<std::string> end,
                       std::optional<std::int64_t> total = std::nullopt) {
  items_reply r;
  r.ok = true;
  r.attempts = 1;
  for (std::size_t i = 0; i < n; ++i) {
    api::export_job_item item;
    item.accounting_entry_id = make_uuid(0, static_cast<std::uint8_t>(first + i));
    item.export_job_id = job_id;
    item.status = i % 2 ? api::item_status::pending : api::item_status::successful;
    r.page.data.push_back(item);
  }
  r.page.pagination.has_next_page = end.has_value();
  r.page.pagination.end_cursor = std::move(end);
  r.page.pagination.total = total;
  return r;
}

items_reply cursor_expired() {
  items_reply r;
  r.attempts = 1;
  r.failure.code = fetch_errc::http_status;
  r.failure.http_status = 400;
  r.failure.type = "invalid_cursor";
  r.failure.message = "400 Bad Request: the cursor expired";
  r.failure.cursor_rejected = true;
  return r;
}

fetcher_actor::behavior_type scripted_fetcher(std::shared_ptr<world> w) {
  return {
      [](get_job_atom, const api::uuid&) {
        job_reply r;
        r.failure.code = fetch_errc::connection_reset;
        return r;
      },
      [](list_jobs_atom, const jobs_request&) { return jobs_reply{}; },
      [w](list_items_atom, const page_request& req) {
        w->asked.push_back(req.after);
        auto& q = w->pages[req.after];
        if (q.empty()) {
          items_reply r;
          r.failure.code = fetch_errc::connection_reset;
          r.failure.message = "no page scripted for cursor '" + req.after + "'";
          return r;
        }
        auto r = q.front();
        if (q.size() > 1) q.pop_front();
        return r;
      },
      [w](list_dates_atom, const page_request& req) {
        w->dates_asked.push_back(req.after);
        auto& q = w->dates[req.after];
        if (q.empty()) {
          dates_reply r;
          r.failure.code = fetch_errc::connection_reset;
          r.failure.message = "no data-layer page scripted for cursor '" + req.after + "'";
          return r;
        }
        auto r = q.front();
        if (q.size() > 1) q.pop_front();
        return r;
      },
  };
}

/// A data-layer page of items first..first+n-1, item i dated (100 - i) days after the epoch:
/// the chronological order is the reverse of the id order.
dates_reply dates_page(std::uint8_t first, std::size_t n, std::optional<std::string> end) {
  dates_reply r;
  r.ok = true;
  r.attempts = 1;
  for (std::size_t i = 0; i < n; ++i) {
    const auto k = static_cast<std::uint8_t>(first + i);
    r.page.data.push_back({make_uuid(0, k), std::int64_t{100 - k} * 86'400'000});
  }
  r.page.pagination.has_next_page = end.has_value();
  r.page.pagination.end_cursor = std::move(end);
  return r;
}

store_actor::behavior_type scripted_store(std::shared_ptr<world> w) {
  auto ok = [w] {
    ++w->store_messages;
    return store_reply{};
  };
  return {
      [ok](put_job_atom, const storage::job_record&) { return ok(); },
      [w, ok](page_atom, const page_commit& c) {
        w->commits.push_back(c);
        return ok();
      },
      [ok](order_atom, const storage::job_record&) { return ok(); },
      [w, ok](order_atom, const order_chunk& c) {
        w->chunks.push_back(c);
        return ok();
      },
      [w, ok](order_atom, const order_finish& f) {
        // A short order travels in the finishing write itself.
        for (const auto& c : f.chunks)
          w->chunks.push_back(order_chunk{f.job.job_id, c.chunk_no, c.entries});
        return ok();
      },
      [ok](dispatch_atom, const dispatch_mark&) { return ok(); },
      [ok](ack_atom, const std::vector<storage::job_progress>&) { return ok(); },
      [ok](ack_atom, const ack_outcomes&) { return ok(); },
      [ok](ack_atom, const sink_acks&) { return ok(); },
  };
}

downstream_actor::behavior_type holding_downstream(std::shared_ptr<world> w) {
  // Takes every batch and acknowledges nothing: the test acknowledges.
  return {
      [w](items_atom, item_batch& b, const ack_receiver_actor&) { w->batches.push_back(b); },
  };
}

job_supervisor_actor::behavior_type recording_supervisor(std::shared_ptr<world> w) {
  return {
      [](run_atom) {},
      [w](done_atom, listing_result& r) { w->listed = std::move(r); },
      [w](done_atom, order_result& r) { w->ordered = std::move(r); },
      [](done_atom, reconcile_result&) {},
      [w](done_atom, dispatch_result& r) { w->dispatched = std::move(r); },
  };
}

// --- the deterministic actor system ----------------------------------------------------------

struct deterministic : ::testing::Test {
  ei::testing::temp_dir dir;
  std::shared_ptr<storage::state_store> store;
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::scheduler::test_coordinator* sched = nullptr;
  std::shared_ptr<world> w = std::make_shared<world>();
  std::vector<caf::actor_addr> stand_ins;
  job_context ctx;
  job_supervisor_actor supervisor;

  deterministic() {
    auto s = storage::state_store::open(dir.path(), {});
    EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.err().message);
    if (s.ok()) store = std::shared_ptr<storage::state_store>(std::move(s.value()));
    cfg.set("scheduler.policy", caf::atom("testing"));
    cfg.set("logger.file-verbosity", caf::atom("quiet"));
    cfg.set("logger.console-verbosity", caf::atom("quiet"));
    sys = std::make_unique<caf::actor_system>(cfg);
    sched = &dynamic_cast<caf::scheduler::test_coordinator&>(sys->scheduler());
    ctx.settings.listing = listing_mode::cursor;
    ctx.settings.page_size = 10;
    ctx.store = store;
    ctx.fetcher = keep(sys->spawn(scripted_fetcher, w));
    ctx.store_writer = keep(sys->spawn(scripted_store, w));
    ctx.downstream = keep(sys->spawn(holding_downstream, w));
    supervisor = keep(sys->spawn(recording_supervisor, w));
  }

  ~deterministic() override {
    // The stand-ins live until told otherwise: stop them, then let the system wind down.
    for (auto& a : stand_ins)
      if (auto h = caf::actor_cast<caf::actor>(a)) caf::anon_send_exit(h, caf::exit_reason::kill);
    sched->run();
    sched->trigger_timeouts();
    sched->run();
  }

  template <class Handle>
  Handle keep(Handle h) {
    stand_ins.push_back(h.address());
    return h;
  }

  /// Runs every message there is; while `done()` is false and only delayed messages are
  /// left, fires the earliest one (a backoff) and goes on. False if it never gets there.
  template <class Done>
  bool run_until(Done done) {
    for (int fired = 0; fired < 100; ++fired) {
      sched->run();
      if (done()) return true;
      if (!sched->has_pending_timeout()) return false;
      sched->trigger_timeout();
    }
    return false;
  }

  storage::job_record listing_job() const {
    storage::job_record job;
    job.job_id = job_id;
    job.phase = storage::job_phase::listing;
    return job;
  }

  bool list(storage::job_record job) {
    auto p = detail::spawn_paginator_scheduled(*sys, ctx, std::move(job), supervisor);
    caf::anon_send(p, run_atom::value);
    return run_until([this] { return w->listed.has_value(); });
  }
};

// --- the paginator ---------------------------------------------------------------------------

using Paginator = deterministic;

TEST_F(Paginator, CommitsEveryPageInOneRoundTripToTheStore) {
  w->pages[""] = {items_page(0, 10, "c1")};
  w->pages["c1"] = {items_page(10, 10, "c2")};
  w->pages["c2"] = {items_page(20, 5, std::nullopt, 25)};
  ctx.expected_items = 25;
  ASSERT_TRUE(list(listing_job()));
  ASSERT_TRUE(w->listed->ok) << w->listed->failure.text() << ": " << w->listed->message;
  EXPECT_EQ(w->asked, (std::vector<std::string>{"", "c1", "c2"}));
  ASSERT_EQ(w->commits.size(), 3u);
  EXPECT_EQ(w->store_messages, 3u) << "one store write per page, nothing else";
  for (std::uint32_t i = 0; i < 3; ++i) {
    EXPECT_EQ(w->commits[i].page.page_no, i);
    EXPECT_EQ(w->commits[i].job.pages_committed, i + 1);
  }
  EXPECT_EQ(w->commits[1].page.request_cursor, "c1");
  EXPECT_EQ(w->commits[1].job.next_cursor, "c2");
  const auto& job = w->listed->job;
  EXPECT_TRUE(job.listing_complete);
  EXPECT_EQ(job.counters.listed, 25u);
  EXPECT_EQ(job.counters.in_scope, 12u) << "odd items are pending";
  EXPECT_EQ(job.counters.pages, 3u);
  EXPECT_EQ(job, w->commits.back().job) << "the result is the record the last commit wrote";
}

TEST_F(Paginator, ACursorThatExpiresMidListingEndsItWithTheCommittedRecord) {
  w->pages[""] = {items_page(0, 10, "c1")};
  w->pages["c1"] = {items_page(10, 10, "c2")};
  w->pages["c2"] = {cursor_expired()};
  ASSERT_TRUE(list(listing_job()));
  EXPECT_FALSE(w->listed->ok);
  EXPECT_EQ(w->listed->failure.code, job_errc::cursor_rejected);
  EXPECT_NE(w->listed->message.find("listing page 2"), std::string::npos) << w->listed->message;
  // Not the copy the paginator started with: the supervisor writes this record back, and the
  // two committed pages must stay counted.
  EXPECT_EQ(w->commits.size(), 2u);
  EXPECT_EQ(w->listed->job.pages_committed, 2u);
  EXPECT_EQ(w->listed->job.next_cursor, "c2");
  EXPECT_EQ(w->listed->job.counters.listed, 20u);
  EXPECT_FALSE(w->listed->job.listing_complete);
}

TEST_F(Paginator, RepeatedItemsUnderChangingCursorTextAreACycle) {
  // c2 leads back to the page c1 gave, under a new text each time: no cursor repeats.
  w->pages[""] = {items_page(0, 10, "c1")};
  w->pages["c1"] = {items_page(10, 10, "c2")};
  w->pages["c2"] = {items_page(10, 10, "c3")};
  ASSERT_TRUE(list(listing_job()));
  EXPECT_FALSE(w->listed->ok);
  EXPECT_EQ(w->listed->failure.code, job_errc::cursor_cycle);
  EXPECT_NE(w->listed->message.find("already started an earlier page"), std::string::npos)
      << w->listed->message;
  EXPECT_EQ(w->commits.size(), 2u) << "the repeated page is never committed";
}

TEST_F(Paginator, ACursorThatComesBackIsACycle) {
  w->pages[""] = {items_page(0, 10, "c1")};
  w->pages["c1"] = {items_page(10, 10, "c2")};
  w->pages["c2"] = {items_page(20, 10, "c1")};
  ASSERT_TRUE(list(listing_job()));
  EXPECT_EQ(w->listed->failure.code, job_errc::cursor_cycle);
  EXPECT_NE(w->listed->message.find("points back to cursor c1"), std::string::npos)
      << w->listed->message;
}

TEST_F(Paginator, APageWithoutEndCursorIsAskedAgainAfterItsBackoff) {
  auto broken = items_page(10, 10, "x");
  broken.page.pagination.end_cursor.reset();
  w->pages[""] = {items_page(0, 10, "c1")};
  w->pages["c1"] = {broken, items_page(10, 10, std::nullopt)};
  ASSERT_TRUE(list(listing_job()));
  ASSERT_TRUE(w->listed->ok) << w->listed->failure.text() << ": " << w->listed->message;
  EXPECT_EQ(w->asked, (std::vector<std::string>{"", "c1", "c1"}));
  EXPECT_EQ(w->listed->retries, 1u);
  EXPECT_EQ(w->commits.size(), 2u);
}

TEST_F(Paginator, APageThatNeverGetsItsEndCursorFailsAfterItsAttempts) {
  auto broken = items_page(10, 10, "x");
  broken.page.pagination.end_cursor.reset();
  w->pages[""] = {items_page(0, 10, "c1")};
  w->pages["c1"] = {broken};
  ASSERT_TRUE(list(listing_job()));
  EXPECT_EQ(w->listed->failure.code, job_errc::missing_end_cursor);
  EXPECT_EQ(static_cast<std::size_t>(std::count(w->asked.begin(), w->asked.end(), "c1")),
            std::size_t{ctx.settings.page_attempts});
}

TEST_F(Paginator, EmptyPagesOnTheirOwnCursorAreAskedAgainThenGivenUp) {
  w->pages[""] = {items_page(0, 10, "c1")};
  w->pages["c1"] = {items_page(0, 0, "c1")};
  ASSERT_TRUE(list(listing_job()));
  EXPECT_EQ(w->listed->failure.code, job_errc::empty_pages);
  EXPECT_EQ(static_cast<std::size_t>(std::count(w->asked.begin(), w->asked.end(), "c1")),
            std::size_t{ctx.settings.max_empty_pages} + 1);
}

TEST_F(Paginator, AListingThatEndsShortIsNeverComplete) {
  w->pages[""] = {items_page(0, 10, "c1")};
  w->pages["c1"] = {items_page(10, 5, std::nullopt)};
  ctx.expected_items = 30;
  ASSERT_TRUE(list(listing_job()));
  EXPECT_EQ(w->listed->failure.code, job_errc::short_listing);
  EXPECT_EQ(w->commits.size(), 1u) << "the last page is not committed";
  EXPECT_FALSE(w->listed->job.listing_complete);
}

TEST_F(Paginator, AResumedListingKnowsTheCursorsOfItsCommittedPages) {
  // A first run committed pages "" and c1 (to the real store), then stopped.
  auto job = listing_job();
  for (std::uint32_t i = 0; i < 2; ++i) {
    storage::page_record p;
    p.page_no = i;
    p.request_cursor = i == 0 ? "" : "c1";
    p.has_next = true;
    p.next_cursor = i == 0 ? "c1" : "c2";
    job.pages_committed = i + 1;
    job.next_cursor = p.next_cursor;
    job.counters.listed += 10;
    ASSERT_TRUE(store->commit_page(job, job.listing_epoch, p).ok());
  }
  w->pages["c2"] = {items_page(20, 10, "c1")};  // back to c1, visited by the first run
  ASSERT_TRUE(list(job));
  EXPECT_EQ(w->asked, (std::vector<std::string>{"c2"}));
  EXPECT_EQ(w->listed->failure.code, job_errc::cursor_cycle);
}

// --- the orderer's data-layer walk ----------------------------------------------------------
// The same guard as the listing's (detail/cursor_walk.hpp): the orderer runs here on the
// deterministic scheduler (spawn_orderer_scheduled) over a listing committed to a real store.

struct Orderer : deterministic {
  /// A committed listing of items 0..n-1, all pending, in one page.
  storage::job_record listed_job(std::uint8_t n) {
    auto job = listing_job();
    storage::page_record p;
    for (std::uint8_t i = 0; i < n; ++i)
      p.items.push_back({make_uuid(0, i), api::item_status::pending, {}, {}});
    job.pages_committed = 1;
    job.listing_complete = true;
    job.counters.listed = n;
    job.phase = storage::job_phase::ordering;
    EXPECT_TRUE(store->commit_page(job, job.listing_epoch, p).ok());
    return job;
  }

  bool order(storage::job_record job) {
    auto o = detail::spawn_orderer_scheduled(*sys, ctx, std::move(job), supervisor);
    caf::anon_send(o, run_atom::value);
    return run_until([this] { return w->ordered.has_value(); });
  }

  std::vector<api::uuid> ordered_ids() const {
    std::vector<api::uuid> out;
    for (const auto& c : w->chunks)
      for (const auto& e : c.entries)
        out.push_back(e.id);
    return out;
  }
};

TEST_F(Orderer, OrdersByTheDataLayersDates) {
  w->dates[""] = {dates_page(0, 5, "d1")};
  w->dates["d1"] = {dates_page(5, 5, std::nullopt)};
  ASSERT_TRUE(order(listed_job(10)));
  ASSERT_TRUE(w->ordered->ok) << w->ordered->failure.text() << ": " << w->ordered->message;
  std::vector<api::uuid> expected;
  for (int i = 9; i >= 0; --i)
    expected.push_back(make_uuid(0, static_cast<std::uint8_t>(i)));
  EXPECT_EQ(ordered_ids(), expected);
  EXPECT_EQ(w->ordered->undated, 0u);
}

TEST_F(Orderer, ADataLayerPageWithoutEndCursorIsAskedAgainAfterItsBackoff) {
  auto broken = dates_page(0, 5, "x");
  broken.page.pagination.end_cursor.reset();
  w->dates[""] = {broken, dates_page(0, 5, "d1")};
  w->dates["d1"] = {dates_page(5, 5, std::nullopt)};
  ASSERT_TRUE(order(listed_job(10)));
  ASSERT_TRUE(w->ordered->ok) << w->ordered->failure.text() << ": " << w->ordered->message;
  EXPECT_EQ(w->dates_asked, (std::vector<std::string>{"", "", "d1"}));
  EXPECT_EQ(w->ordered->retries, 1u);
  EXPECT_EQ(ordered_ids().size(), 10u);
  EXPECT_EQ(w->ordered->undated, 0u);
}

TEST_F(Orderer, RepeatedDataLayerItemsUnderChangingCursorTextAreACycle) {
  // d1 gives the first page again under a new cursor: walked again from the start 3 times,
  // then the job fails (the walk would otherwise never end).
  w->dates[""] = {dates_page(0, 5, "d1")};
  w->dates["d1"] = {dates_page(0, 5, "d2")};
  ASSERT_TRUE(order(listed_job(10)));
  EXPECT_FALSE(w->ordered->ok);
  EXPECT_EQ(w->ordered->failure.code, job_errc::cursor_cycle);
  EXPECT_NE(w->ordered->message.find("data layer page 1"), std::string::npos)
      << w->ordered->message;
  std::vector<std::string> walks;
  for (int i = 0; i < 4; ++i)
    walks.insert(walks.end(), {"", "d1"});
  EXPECT_EQ(w->dates_asked, walks);
  EXPECT_TRUE(w->chunks.empty()) << "no order is written";
}

TEST_F(Orderer, ADataLayerCursorThatExpiresIsWalkedAgainFromTheStart) {
  dates_reply expired;
  expired.attempts = 1;
  expired.failure.code = fetch_errc::http_status;
  expired.failure.http_status = 400;
  expired.failure.message = "400 Bad Request: the cursor expired";
  expired.failure.cursor_rejected = true;
  w->dates[""] = {dates_page(0, 5, "d1")};
  w->dates["d1"] = {expired, dates_page(5, 5, std::nullopt)};
  ASSERT_TRUE(order(listed_job(10)));
  ASSERT_TRUE(w->ordered->ok) << w->ordered->failure.text() << ": " << w->ordered->message;
  EXPECT_EQ(w->dates_asked, (std::vector<std::string>{"", "d1", "", "d1"}));
  EXPECT_EQ(ordered_ids().size(), 10u);
  EXPECT_EQ(w->ordered->undated, 0u) << "the dates of the abandoned walk are not counted twice";
}

// --- the sequencer's credit window -----------------------------------------------------------

using Sequencer = deterministic;

TEST_F(Sequencer, HandsOnNoMoreThanItsCreditAndRefillsAsAcksComeIn) {
  ctx.settings.credit_window = 4;
  ctx.settings.batch_size = 2;
  auto job = listing_job();
  job.phase = storage::job_phase::dispatching;
  job.order_size = 10;
  std::vector<storage::order_entry> order;
  for (std::uint8_t i = 0; i < 10; ++i)
    order.push_back({make_uuid(0, i), api::item_status::pending, false});
  ASSERT_TRUE(store->write_order_chunk(job_id, 0, order).ok());
  ASSERT_TRUE(store->finish_order(job).ok());

  auto seq = detail::spawn_sequencer(*sys, ctx, job, supervisor);
  caf::anon_send(seq, run_atom::value);
  auto items_out = [this] {
    std::size_t n = 0;
    for (const auto& b : w->batches)
      n += b.items.size();
    return n;
  };
  auto last_sent = [this] { return w->batches.back().items.back().sequence; };
  // The window is used up by two batches; nothing more leaves without an ack.
  sched->run();
  ASSERT_EQ(w->batches.size(), 2u);
  EXPECT_EQ(items_out(), 4u);
  EXPECT_EQ(last_sent(), 4u);
  // An ack of 2 frees exactly 2 credits: one batch of 2.
  caf::anon_send(caf::actor_cast<caf::actor>(seq), ack_atom::value, job_id, std::uint64_t{2}, true);
  sched->run();
  EXPECT_EQ(w->batches.size(), 3u);
  EXPECT_EQ(last_sent(), 6u);
  // An ack of 1 (behind what is known) frees nothing.
  caf::anon_send(caf::actor_cast<caf::actor>(seq), ack_atom::value, job_id, std::uint64_t{1}, true);
  sched->run();
  EXPECT_EQ(w->batches.size(), 3u);
  // Everything acknowledged: the rest leaves, then the phase ends.
  caf::anon_send(caf::actor_cast<caf::actor>(seq), ack_atom::value, job_id, std::uint64_t{6}, true);
  sched->run();
  EXPECT_EQ(last_sent(), 10u);
  EXPECT_FALSE(w->dispatched.has_value());
  caf::anon_send(caf::actor_cast<caf::actor>(seq), ack_atom::value, job_id, std::uint64_t{10},
                 true);
  ASSERT_TRUE(run_until([this] { return w->dispatched.has_value(); }));
  EXPECT_TRUE(w->dispatched->ok) << w->dispatched->failure.text() << ": " << w->dispatched->message;
  EXPECT_EQ(w->dispatched->emitted, 10u);
  EXPECT_EQ(w->dispatched->acked_through, 10u);
  std::uint64_t expected = 1;
  for (const auto& b : w->batches)
    for (const auto& item : b.items)
      EXPECT_EQ(item.sequence, expected++) << "in order, each once";
}

TEST_F(Sequencer, AnAckBeyondWhatWasHandedOnFailsTheJob) {
  ctx.settings.credit_window = 4;
  ctx.settings.batch_size = 2;
  auto job = listing_job();
  job.phase = storage::job_phase::dispatching;
  job.order_size = 10;
  std::vector<storage::order_entry> order;
  for (std::uint8_t i = 0; i < 10; ++i)
    order.push_back({make_uuid(0, i), api::item_status::pending, false});
  ASSERT_TRUE(store->write_order_chunk(job_id, 0, order).ok());
  ASSERT_TRUE(store->finish_order(job).ok());
  auto seq = detail::spawn_sequencer(*sys, ctx, job, supervisor);
  caf::anon_send(seq, run_atom::value);
  sched->run();
  caf::anon_send(caf::actor_cast<caf::actor>(seq), ack_atom::value, job_id, std::uint64_t{5}, true);
  ASSERT_TRUE(run_until([this] { return w->dispatched.has_value(); }));
  EXPECT_FALSE(w->dispatched->ok);
  EXPECT_EQ(w->dispatched->failure.code, job_errc::downstream_protocol);
}

}  // namespace
