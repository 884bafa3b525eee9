// The store actor's group commit: a write the sync policy fsyncs is replied to only after
// the fsync that covers it, many such writes share one fsync, and the state read back
// afterwards is the last one written. fsyncs are observed (and held) through
// tests/support/fdatasync_hook.hpp.
#include <gtest/gtest.h>

#include <caf/all.hpp>

#include "actors/store.hpp"
#include "tests/support/fdatasync_hook.hpp"
#include "tests/support/temp_dir.hpp"

using namespace ei;
using namespace ei::actors;
using ei::testing::fdatasync_hook;

namespace {

constexpr std::size_t requests = 64;

api::uuid make_uuid(std::uint8_t n) {
  api::uuid u;
  u.bytes[15] = n;
  u.bytes[0] = 0x3c;
  return u;
}

struct fixture {
  ei::testing::temp_dir dir;
  std::shared_ptr<storage::state_store> store;
  api::uuid job = make_uuid(1);

  explicit fixture(storage::sync_policy policy) {
    storage::store_options o;
    o.sync = policy;
    auto s = storage::state_store::open(dir.path(), o);
    EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.err().message);
    if (!s.ok()) return;
    store = std::shared_ptr<storage::state_store>(std::move(s.value()));
    storage::job_record rec;
    rec.job_id = job;
    rec.phase = storage::job_phase::dispatching;
    rec.order_size = 10 * requests;
    EXPECT_TRUE(store->put_job(rec).ok());
  }
};

using reply_handle = decltype(std::declval<caf::scoped_actor&>()->request(
    std::declval<store_actor&>(), caf::infinite, ack_atom::value,
    std::vector<storage::job_progress>{}));

/// Sends `requests` dispatch marks, each followed by an ack up to it, without waiting.
std::vector<reply_handle> send_marks(caf::scoped_actor& self, const store_actor& writer,
                                     const api::uuid& job) {
  std::vector<reply_handle> out;
  for (std::size_t i = 1; i <= requests; ++i) {
    out.push_back(
        self->request(writer, caf::infinite, dispatch_atom::value, dispatch_mark{job, 10 * i, {}}));
    out.push_back(self->request(writer, caf::infinite, ack_atom::value,
                                std::vector<storage::job_progress>{{job, std::nullopt, 10 * i}}));
  }
  return out;
}

/// An actor system running the store actor over `store`, and a scoped actor to talk to it;
/// the store actor is stopped on every exit path (the system waits for it on destruction).
struct running_writer {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  store_actor writer;
  std::unique_ptr<caf::scoped_actor> self;

  explicit running_writer(std::shared_ptr<storage::state_store> store) {
    cfg.set("scheduler.max-threads", std::size_t{2});
    sys = std::make_unique<caf::actor_system>(cfg);
    writer = spawn_store_actor(*sys, std::move(store));
    self = std::make_unique<caf::scoped_actor>(*sys);
  }
  ~running_writer() {
    (*self)->send_exit(writer, caf::exit_reason::user_shutdown);
    self.reset();
    writer = nullptr;  // the system waits for every actor a handle still keeps alive
    sys.reset();
  }
};

std::size_t count_ok(std::vector<reply_handle>& handles) {
  std::size_t ok = 0;
  for (auto& h : handles)
    h.receive(
        [&](const store_reply& r) {
          EXPECT_TRUE(r.ok) << r.message;
          ok += r.ok ? 1 : 0;
        },
        [](const caf::error& e) { ADD_FAILURE() << "request failed: " << caf::to_string(e); });
  return ok;
}

}  // namespace

TEST(StoreActor, RepliesToCommitsOnlyAfterOneSharedFsync) {
  fixture f{storage::sync_policy::commits};
  ASSERT_TRUE(f.store);
  running_writer run{f.store};
  auto& self = *run.self;
  const auto& writer = run.writer;
  {
    fdatasync_hook::release_guard guard;
    const auto before = fdatasync_hook::calls();
    fdatasync_hook::hold();
    auto handles = send_marks(self, writer, f.job);
    // The store thread is now inside the first group's fsync. A reply it had sent before
    // would already be in our mailbox (enqueued before the fsync began): there must be none.
    ASSERT_TRUE(fdatasync_hook::wait_until_blocked()) << "no fsync was made";
    EXPECT_TRUE(self->mailbox().empty()) << "a commit was replied to before its fsync";
    fdatasync_hook::release();

    EXPECT_EQ(count_ok(handles), 2 * requests);
    // Everything sent before the first sync message shares it; the rest, queued while that
    // fsync was held, share a second one.
    const auto fsyncs = fdatasync_hook::calls() - before;
    EXPECT_GE(fsyncs, 1U);
    EXPECT_LE(fsyncs, 2U) << "expected group commit, got one fsync per few requests";
  }
  auto w = f.store->load_watermarks(f.job);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w.value(), (storage::watermarks{10 * requests, 10 * requests}));
}

TEST(StoreActor, RejectedWriteIsRepliedAtOnceAndOthersStillCommit) {
  fixture f{storage::sync_policy::commits};
  ASSERT_TRUE(f.store);
  running_writer run{f.store};
  auto& self = *run.self;
  const auto& writer = run.writer;
  auto good =
      self->request(writer, caf::infinite, dispatch_atom::value, dispatch_mark{f.job, 7, {}});
  auto bad = self->request(writer, caf::infinite, dispatch_atom::value,
                           dispatch_mark{f.job, 10 * requests + 1, {}});
  bool bad_failed = false;
  bad.receive([&](const store_reply& r) { bad_failed = !r.ok && !r.message.empty(); },
              [](const caf::error& e) { ADD_FAILURE() << caf::to_string(e); });
  EXPECT_TRUE(bad_failed);
  bool good_ok = false;
  good.receive([&](const store_reply& r) { good_ok = r.ok; },
               [](const caf::error& e) { ADD_FAILURE() << caf::to_string(e); });
  EXPECT_TRUE(good_ok);
  auto w = f.store->load_watermarks(f.job);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w.value().dispatched_through, 7U);
}

TEST(StoreActor, NonePolicyNeverFsyncs) {
  fixture f{storage::sync_policy::none};
  ASSERT_TRUE(f.store);
  running_writer run{f.store};
  auto& self = *run.self;
  const auto& writer = run.writer;
  const auto before = fdatasync_hook::calls();
  auto handles = send_marks(self, writer, f.job);
  EXPECT_EQ(count_ok(handles), 2 * requests);
  EXPECT_EQ(fdatasync_hook::calls(), before);
  auto w = f.store->load_watermarks(f.job);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w.value(), (storage::watermarks{10 * requests, 10 * requests}));
}
