// Resume after an interrupted run, in process: a downstream that stops acknowledging leaves a
// job with items in flight; the next run with the same state directory re-lists, reconciles
// and continues. Proves: acked items never come again, in-flight items come again flagged with
// the next attempt number, nothing is lost, changed remote statuses are applied by the table,
// and lost state turns in_progress items into reported reconciliation cases.
#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>

#include <gtest/gtest.h>
#include <caf/all.hpp>

#include <nlohmann/json.hpp>
#include "tests/support/temp_dir.hpp"

#include "actors/sink.hpp"
#include "pipeline/stage.hpp"
#include "simulator/simulator.hpp"

namespace ei {
namespace {

namespace fs = std::filesystem;
constexpr const char* kKey = "resume-test-key";

using ei::testing::temp_dir;

/// Collects what downstream receives; acknowledges only the first `ack_limit` items.
struct collector {
  std::mutex mutex;
  std::vector<actors::delivery_item> items;
  std::size_t ack_limit = SIZE_MAX;
  std::size_t acked = 0;

  std::function<actors::downstream_actor(caf::actor_system&)> factory() {
    return [this](caf::actor_system& sys) {
      return actors::spawn_callback_downstream(sys, [this](const actors::item_batch& b) {
        std::lock_guard<std::mutex> lock(mutex);
        for (auto& i : b.items)
          items.push_back(i);
        if (acked + b.items.size() > ack_limit) return false;
        acked += b.items.size();
        return true;
      });
    };
  }
};

struct fixture {
  std::unique_ptr<sim::simulator> sim;
  api::uuid job;
  temp_dir dir;

  explicit fixture(std::uint64_t items, std::uint64_t seed = 17) {
    sim::sim_config c;
    c.api_key = kKey;
    c.seed = seed;
    c.jobs = 1;
    c.items_per_job = items;
    c.all_in_progress = true;
    auto s = sim::simulator::start(c);
    EXPECT_TRUE(s.ok());
    sim = std::move(s.value());
    job = sim->jobs().front().id;
  }

  pipeline::stage_config config(std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    pipeline::stage_config cfg;
    cfg.base_url = sim->base_url();
    cfg.settings.page_size = 100;
    cfg.settings.batch_size = 100;
    cfg.settings.credit_window = 300;
    cfg.settings.ordering = storage::ordering_mode::entry_id;
    cfg.settings.request_timeout = timeout;
    cfg.store.sync = storage::sync_policy::none;
    // Small sorted runs: the orderer and the reconciler spill and merge (the in-memory path
    // is what the stage tests take).
    cfg.settings.sort_run_items = 64;
    return cfg;
  }

  pipeline::run_options options(collector& c) {
    pipeline::run_options o;
    o.state_dir = (dir.path() / "state").string();
    o.out = (dir.path() / "out.ndjson").string();
    o.batch.jobs = {job};
    o.credentials = api::credentials::from_api_key(kKey).value();
    o.downstream_factory = c.factory();
    return o;
  }

  std::vector<std::string> in_scope_by_id() const {
    std::vector<api::uuid> ids;
    for (auto& i : sim->items_of(job))
      if (i.status == api::item_status::pending || i.status == api::item_status::in_progress)
        ids.push_back(i.accounting_entry_id);
    std::sort(ids.begin(), ids.end());
    std::vector<std::string> out;
    for (auto& id : ids)
      out.push_back(id.to_string());
    return out;
  }
};

const actors::job_outcome& only(const pipeline::run_report& r) {
  return r.batch.jobs.front();
}

TEST(Resume, AckedNeverAgainInFlightRedeliveredFlaggedNothingLost) {
  fixture f(1200);
  const auto expected = f.in_scope_by_id();
  collector first;
  first.ack_limit = 300;
  auto r1 = pipeline::run_stage(f.config(std::chrono::milliseconds(500)), f.options(first));
  ASSERT_TRUE(r1.ok());
  EXPECT_EQ(only(r1.value()).reason_code, "downstream_timeout");
  ASSERT_EQ(first.acked, 300U);
  ASSERT_EQ(first.items.size(), 600U);  // 300 acked + a window of 300 in flight

  collector second;
  auto r2 = pipeline::run_stage(f.config(), f.options(second));
  ASSERT_TRUE(r2.ok());
  ASSERT_EQ(only(r2.value()).result, actors::job_result::complete) << only(r2.value()).reason;
  EXPECT_EQ(only(r2.value()).stats.redelivered, 300U);

  std::set<std::string> acked_first;
  for (std::size_t i = 0; i < 300; ++i)
    acked_first.insert(first.items[i].accounting_entry_id.to_string());
  std::vector<std::string> all;
  for (std::size_t i = 0; i < 300; ++i)
    all.push_back(first.items[i].accounting_entry_id.to_string());
  for (auto& item : second.items) {
    const auto id = item.accounting_entry_id.to_string();
    EXPECT_EQ(acked_first.count(id), 0U) << "acked item " << id << " handed on again";
    if (item.sequence <= 600) {
      EXPECT_TRUE(item.redelivery) << item.sequence;
      EXPECT_EQ(item.attempt, 2U);
    } else {
      EXPECT_FALSE(item.redelivery) << item.sequence;
      EXPECT_EQ(item.attempt, 1U);
    }
    all.push_back(id);
  }
  EXPECT_EQ(all, expected);  // nothing lost, nothing twice, order kept
  EXPECT_EQ(second.items.front().sequence, 301U);

  // A third interrupted run and a fourth: attempts keep counting.
  collector third;
  auto r3 = pipeline::run_stage(f.config(), f.options(third));
  ASSERT_TRUE(r3.ok());
  EXPECT_EQ(only(r3.value()).result, actors::job_result::already_complete);
  EXPECT_TRUE(third.items.empty());
}

TEST(Resume, AttemptsKeepCountingAcrossSeveralInterruptions) {
  fixture f(800);
  collector a;
  a.ack_limit = 100;
  ASSERT_TRUE(pipeline::run_stage(f.config(std::chrono::milliseconds(400)), f.options(a)).ok());
  collector b;
  b.ack_limit = 0;  // takes the redelivery, acknowledges nothing
  ASSERT_TRUE(pipeline::run_stage(f.config(std::chrono::milliseconds(400)), f.options(b)).ok());
  ASSERT_FALSE(b.items.empty());
  EXPECT_EQ(b.items.front().sequence, 101U);
  EXPECT_EQ(b.items.front().attempt, 2U);
  collector c;
  auto r = pipeline::run_stage(f.config(), f.options(c));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(only(r.value()).result, actors::job_result::complete);
  EXPECT_EQ(c.items.front().sequence, 101U);
  EXPECT_EQ(c.items.front().attempt, 3U);
  EXPECT_TRUE(c.items.front().redelivery);
}

TEST(Resume, RemoteChangesAreReconciledWithThePersistedOrder) {
  fixture f(1000);
  collector first;
  first.ack_limit = 200;
  ASSERT_TRUE(pipeline::run_stage(f.config(std::chrono::milliseconds(400)), f.options(first)).ok());
  ASSERT_EQ(first.items.size(), 500U);
  // While the stage was down: an item in flight was exported by someone (successful), a
  // not-yet-dispatched item failed, and an acked item changed too (must not matter).
  const auto in_flight = first.items[250].accounting_entry_id;
  const auto acked = first.items[10].accounting_entry_id;
  f.sim->set_item_status(f.job, in_flight, api::item_status::successful);
  f.sim->set_item_status(f.job, acked, api::item_status::failed);
  // find a scoped, never dispatched item: any in-scope id not among the first 500 handed on
  std::set<std::string> handed;
  for (auto& i : first.items)
    handed.insert(i.accounting_entry_id.to_string());
  api::uuid scoped{};
  for (auto& id : f.in_scope_by_id())
    if (handed.count(id) == 0) {
      scoped = api::uuid::parse(id).value();
      break;
    }
  ASSERT_FALSE(scoped.is_nil());
  f.sim->set_item_status(f.job, scoped, api::item_status::failed);

  collector second;
  auto opts = f.options(second);
  auto r = pipeline::run_stage(f.config(), opts);
  ASSERT_TRUE(r.ok());
  const auto& o = only(r.value());
  ASSERT_EQ(o.result, actors::job_result::complete) << o.reason;
  for (auto& item : second.items) {
    EXPECT_NE(item.accounting_entry_id, in_flight);
    EXPECT_NE(item.accounting_entry_id, scoped);
    EXPECT_NE(item.accounting_entry_id, acked);
  }
  EXPECT_EQ(o.stats.out_of_scope_reported, 1U);
  EXPECT_EQ(o.stats.skipped_out_of_scope, 2U);
  // Over both runs: everything in scope was acked, skipped (finalised before it was handed
  // on) or reported (handed on, final before its ack).
  EXPECT_EQ(o.stats.skipped_final_remotely, 1U);
  EXPECT_EQ(o.stats.reported, 1U);
  EXPECT_EQ(o.stats.absent, 0U);
  // In scope at the first listing: what is in scope now plus the three that changed; of
  // those, the acked one stays acked.
  EXPECT_EQ(o.stats.acked, f.in_scope_by_id().size() + 1);
  EXPECT_EQ(o.stats.acked + o.stats.skipped_final_remotely + o.stats.reported, o.stats.in_scope);
  ASSERT_EQ(o.reported.size(), 1U);
  EXPECT_EQ(o.reported.front().accounting_entry_id, in_flight);
  EXPECT_EQ(o.reported.front().action, "out_of_scope_reported");
  // The report file lists it, and the store verifies clean.
  std::ifstream rep(r->reconcile_out);
  std::string line;
  ASSERT_TRUE(std::getline(rep, line)) << r->reconcile_out;
  EXPECT_NE(line.find(in_flight.to_string()), std::string::npos);
  auto store = storage::state_store::open(opts.state_dir, {});
  ASSERT_TRUE(store.ok());
  auto problems = (*store)->verify();
  ASSERT_TRUE(problems.ok());
  EXPECT_TRUE(problems->empty()) << problems->front();
}

TEST(Resume, LostStateReportsInProgressItemsInsteadOfHandingThemOn) {
  fixture f(600, 23);
  std::size_t in_progress = 0;
  for (auto& i : f.sim->items_of(f.job))
    if (i.status == api::item_status::in_progress) ++in_progress;
  ASSERT_GT(in_progress, 0U);
  collector c;
  auto cfg = f.config();
  cfg.settings.recover_lost_state = true;
  auto r = pipeline::run_stage(cfg, f.options(c));
  ASSERT_TRUE(r.ok());
  const auto& o = only(r.value());
  EXPECT_EQ(o.result, actors::job_result::complete);
  EXPECT_EQ(o.stats.needs_reconciliation, in_progress);
  EXPECT_EQ(o.reported.size(), in_progress);
  for (auto& item : c.items)
    EXPECT_EQ(item.status, api::item_status::pending);
  EXPECT_EQ(c.items.size(), f.in_scope_by_id().size() - in_progress);

  // The operator decides to hand them on after all.
  fixture g(600, 23);
  collector d;
  auto cfg2 = g.config();
  cfg2.settings.recover_lost_state = true;
  cfg2.settings.dispatch_unreconciled = true;
  auto r2 = pipeline::run_stage(cfg2, g.options(d));
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(d.items.size(), g.in_scope_by_id().size());
  EXPECT_EQ(only(r2.value()).reported.size(), in_progress);
}

/// Opens the state store of a finished run (the stage has closed it).
std::unique_ptr<storage::state_store> open_store(const std::string& dir) {
  auto store = storage::state_store::open(dir, {});
  EXPECT_TRUE(store.ok()) << (store.ok() ? "" : store.err().message);
  return store.ok() ? std::move(store.value()) : nullptr;
}

void expect_verified(storage::state_store& store) {
  auto problems = store.verify();
  ASSERT_TRUE(problems.ok());
  EXPECT_TRUE(problems->empty()) << problems->front();
}

std::set<std::string> ids_of(const collector& c) {
  std::set<std::string> out;
  for (const auto& i : c.items)
    out.insert(i.accounting_entry_id.to_string());
  return out;
}

// A reconciliation appends items the order lacks to its last chunk and is killed before
// finish_order: the longer chunk is on disk, the job record still has the old order size.
// The next reconciliation must not take the extra entries for ordered ones (they would never
// be dispatched while the job reported complete).
TEST(Resume, ItemsAppendedByAnInterruptedReconciliationAreNotLost) {
  fixture f(1200);
  const auto expected = f.in_scope_by_id();
  collector first;
  first.ack_limit = 300;
  auto opts = f.options(first);
  ASSERT_TRUE(pipeline::run_stage(f.config(std::chrono::milliseconds(400)), opts).ok());
  ASSERT_EQ(first.acked, 300U);

  // k pending items of the last chunk (an in_progress item the order lacks would need a
  // person instead: the reconciliation table for lost state).
  constexpr std::size_t k = 5;
  std::vector<storage::order_entry> appended;
  {
    auto store = open_store(opts.state_dir);
    ASSERT_TRUE(store);
    auto job = store->load_job(f.job).value().value();
    const auto dispatched = store->load_watermarks(f.job).value().dispatched_through;
    const std::size_t cs = storage::state_store::order_chunk_size;
    const auto last_first = (job.order_size - 1) / cs * cs + 1;
    auto tail = store->read_order(f.job, last_first, cs).value();
    std::vector<storage::order_entry> shorter;
    for (std::size_t i = 0; i < tail.size(); ++i) {
      const bool pick = appended.size() < k && last_first + i > dispatched &&
                        tail[i].remote_status == api::item_status::pending;
      (pick ? appended : shorter).push_back(tail[i]);
    }
    ASSERT_EQ(appended.size(), k);
    const auto chunk_no = static_cast<std::uint32_t>((last_first - 1) / cs);
    // The order as a first listing that had not seen those k items would have left it ...
    ASSERT_TRUE(store->write_order_chunk(f.job, chunk_no, shorter).ok());
    job.order_size -= k;
    job.counters.in_scope -= k;
    job.phase = storage::job_phase::reconciling;
    ASSERT_TRUE(store->finish_order(job).ok());
    ASSERT_GE(job.order_size, dispatched);
    // ... and the reconciliation that found them appended them, then died before finish_order.
    auto longer = shorter;
    longer.insert(longer.end(), appended.begin(), appended.end());
    ASSERT_TRUE(store->write_order_chunk(f.job, chunk_no, longer).ok());
    EXPECT_EQ(store->read_order(f.job, last_first, cs).value().size(), shorter.size())
        << "entries beyond the order size are not part of the order";
  }

  collector second;
  auto r = pipeline::run_stage(f.config(), f.options(second));
  ASSERT_TRUE(r.ok());
  const auto& o = only(r.value());
  ASSERT_EQ(o.result, actors::job_result::complete) << o.reason;
  auto got = ids_of(first);
  for (const auto& id : ids_of(second))
    got.insert(id);
  for (const auto& e : appended)
    EXPECT_EQ(got.count(e.id.to_string()), 1U) << "appended item lost";
  EXPECT_EQ(got, std::set<std::string>(expected.begin(), expected.end()));
  EXPECT_EQ(o.stats.in_scope, expected.size());
  auto store = open_store(f.options(second).state_dir);
  ASSERT_TRUE(store);
  expect_verified(*store);
}

// A listing that fails for good after some pages were committed leaves the job record as the
// store has it: the cursor, the page count and the counters of the committed pages (the
// paginator's copy from the start of the listing would roll them back).
TEST(Resume, AFailedListingKeepsTheCommittedCursorAndPages) {
  fixture f(1000);
  ASSERT_TRUE(f.sim->set_faults("items:status=403@nth=6").ok());
  collector c;
  auto cfg = f.config();
  cfg.settings.listing = actors::listing_mode::cursor;
  auto opts = f.options(c);
  auto r = pipeline::run_stage(cfg, opts);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(only(r.value()).result, actors::job_result::failed);
  EXPECT_EQ(only(r.value()).reason_code, "http_403") << only(r.value()).reason;
  {
    auto store = open_store(opts.state_dir);
    ASSERT_TRUE(store);
    auto job = store->load_job(f.job).value().value();
    EXPECT_EQ(job.phase, storage::job_phase::listing);
    EXPECT_EQ(job.pages_committed, 5U);
    EXPECT_EQ(job.counters.listed, 500U);
    EXPECT_FALSE(job.next_cursor.empty());
    auto pages = store->load_pages(f.job, job.listing_epoch).value();
    ASSERT_EQ(pages.size(), 5U);
    EXPECT_EQ(job.next_cursor, pages.back().next_cursor);
    expect_verified(*store);
  }
  // The next run resumes from that cursor and completes.
  ASSERT_TRUE(f.sim->set_faults("").ok());
  f.sim->clear_request_log();
  collector d;
  auto r2 = pipeline::run_stage(cfg, f.options(d));
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(only(r2.value()).result, actors::job_result::complete) << only(r2.value()).reason;
  EXPECT_EQ(ids_of(d), [&] {
    auto v = f.in_scope_by_id();
    return std::set<std::string>(v.begin(), v.end());
  }());
  std::size_t first_pages = 0;
  for (const auto& rec : f.sim->request_log())
    if (rec.endpoint == "items" && rec.target.find("after=") == std::string::npos) ++first_pages;
  EXPECT_EQ(first_pages, 0U) << "the listing started over instead of resuming";
}

// Killed between the last acknowledgement and recording `complete`; meanwhile the job was
// completed in Pleo. The next run finds every item acknowledged: the job is done.
TEST(Resume, AJobCompletedInPleoAfterTheLastAckIsComplete) {
  fixture f(700);
  collector first;
  auto opts = f.options(first);
  ASSERT_TRUE(pipeline::run_stage(f.config(), opts).ok());
  ASSERT_EQ(first.items.size(), f.in_scope_by_id().size());
  {
    // What a kill at `before_complete` leaves: every item acked, the phase still dispatching.
    auto store = open_store(opts.state_dir);
    ASSERT_TRUE(store);
    auto job = store->load_job(f.job).value().value();
    ASSERT_EQ(job.phase, storage::job_phase::complete);
    job.phase = storage::job_phase::dispatching;
    ASSERT_TRUE(store->put_job(job).ok());
  }
  f.sim->set_job_status(f.job, api::job_status::completed);
  collector second;
  auto r = pipeline::run_stage(f.config(), f.options(second));
  ASSERT_TRUE(r.ok());
  const auto& o = only(r.value());
  EXPECT_EQ(o.result, actors::job_result::complete) << o.reason_code << ": " << o.reason;
  EXPECT_NE(o.reason.find("completed in Pleo"), std::string::npos) << o.reason;
  EXPECT_TRUE(second.items.empty());
  EXPECT_EQ(o.stats.acked, first.items.size());

  // Not every item acknowledged: that job did not finish here, and says so.
  fixture g(700);
  collector part;
  part.ack_limit = 100;
  auto gopts = g.options(part);
  ASSERT_TRUE(pipeline::run_stage(g.config(std::chrono::milliseconds(400)), gopts).ok());
  g.sim->set_job_status(g.job, api::job_status::completed);
  collector none;
  auto r2 = pipeline::run_stage(g.config(), g.options(none));
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(only(r2.value()).result, actors::job_result::failed);
  EXPECT_EQ(only(r2.value()).reason_code, "job_not_in_progress");
  EXPECT_TRUE(none.items.empty());
}

// An order entry the re-listing no longer has is counted, reported and not handed on.
TEST(Resume, ItemsAbsentFromTheReListingAreCountedAndReported) {
  fixture f(900);
  collector first;
  first.ack_limit = 200;
  auto opts = f.options(first);
  ASSERT_TRUE(pipeline::run_stage(f.config(std::chrono::milliseconds(400)), opts).ok());
  const auto ghost = api::uuid::parse("0badf00d-0000-4000-8000-000000000001").value();
  {
    auto store = open_store(opts.state_dir);
    ASSERT_TRUE(store);
    auto job = store->load_job(f.job).value().value();
    const std::size_t cs = storage::state_store::order_chunk_size;
    const auto last_first = (job.order_size - 1) / cs * cs + 1;
    auto tail = store->read_order(f.job, last_first, cs).value();
    ASSERT_LT(tail.size(), cs);
    tail.push_back({ghost, api::item_status::pending, false});
    job.order_size += 1;
    job.counters.in_scope += 1;
    const std::vector<storage::order_chunk_write> chunks{
        {static_cast<std::uint32_t>((last_first - 1) / cs), tail}};
    ASSERT_TRUE(store->finish_order(job, chunks).ok());
  }
  collector second;
  auto r = pipeline::run_stage(f.config(), f.options(second));
  ASSERT_TRUE(r.ok());
  const auto& o = only(r.value());
  ASSERT_EQ(o.result, actors::job_result::complete) << o.reason;
  EXPECT_EQ(ids_of(second).count(ghost.to_string()), 0U);
  EXPECT_EQ(o.stats.absent, 1U);
  EXPECT_EQ(o.stats.reported, 1U);
  EXPECT_EQ(o.stats.acked + o.stats.skipped_final_remotely + o.stats.reported, o.stats.in_scope);
  ASSERT_EQ(o.reported.size(), 1U);
  EXPECT_EQ(o.reported.front().accounting_entry_id, ghost);
  EXPECT_EQ(o.reported.front().action, "absent");
  std::ifstream rep(r->reconcile_out);
  std::string line;
  ASSERT_TRUE(std::getline(rep, line)) << r->reconcile_out;
  EXPECT_NE(line.find(ghost.to_string()), std::string::npos);
  EXPECT_NE(line.find("\"absent\""), std::string::npos);
}

/// A downstream that acknowledges its first batch and then goes away.
actors::downstream_actor::behavior_type dying_downstream(
    actors::downstream_actor::pointer self, std::shared_ptr<std::atomic<std::size_t>> received) {
  return {
      [self, received](actors::items_atom, const actors::item_batch& b,
                       const actors::ack_receiver_actor& stage) {
        if (received->fetch_add(b.items.size()) == 0) {
          self->send(stage, actors::ack_atom::value, b.job_id, b.items.back().sequence, false);
        } else {
          self->quit(caf::make_error(caf::sec::runtime_error, "downstream crashed"));
        }
      },
  };
}

TEST(Resume, ADownstreamThatStopsFailsTheJobAndTheNextRunRedelivers) {
  fixture f(900);
  auto received = std::make_shared<std::atomic<std::size_t>>(0);
  collector unused;
  auto opts = f.options(unused);
  opts.downstream_factory = [received](caf::actor_system& sys) {
    // Arguments go to spawn, not into a capture: CAF 0.17 dereferences a null argument tuple
    // when a function is spawned with none (UBSan reports it).
    return sys.spawn(dying_downstream, received);
  };
  auto r1 = pipeline::run_stage(f.config(), opts);
  ASSERT_TRUE(r1.ok());
  EXPECT_EQ(only(r1.value()).reason_code, "downstream_down") << only(r1.value()).reason;

  collector second;
  auto r2 = pipeline::run_stage(f.config(), f.options(second));
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(only(r2.value()).result, actors::job_result::complete);
  ASSERT_FALSE(second.items.empty());
  EXPECT_EQ(second.items.front().sequence, 101U);  // the acknowledged first batch never again
  EXPECT_TRUE(second.items.front().redelivery);
}

}  // namespace
}  // namespace ei
