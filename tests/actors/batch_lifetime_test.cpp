// The actors that live for the whole batch must not grow with it (issue 14).
// Deadlines: the batch runner's job verification and the NDJSON sink's ack commit are sent
// without a CAF request timeout (CAF 0.17 keeps every request timeout in its clock until it
// fires, also once the answer came, which made both grow with the number of jobs). A request
// that never gets an answer must still end at its deadline: the job fails with `timeout`,
// the sink stops with an error.
// The runner's table of discovered jobs: flat, every id once, each started once.
// The sink's buffer: while an ack commit is in flight, lines beyond 1 MiB are written out
// (not fsynced, not acknowledged) instead of buffering every job's credit window.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include <caf/all.hpp>

#include "actors/batch.hpp"
#include "actors/detail/listed_jobs.hpp"
#include "actors/message_types.hpp"
#include "actors/sink.hpp"
#include "actors/store.hpp"
#include "tests/support/temp_dir.hpp"

using namespace ei;
using namespace ei::actors;
using namespace std::chrono_literals;

namespace {

api::uuid make_uuid(std::uint8_t n) {
  api::uuid u;
  u.bytes[0] = 0x5d;
  u.bytes[15] = n;
  return u;
}

struct system_fixture {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  system_fixture() {
    add_message_types(cfg);
    sys = std::make_unique<caf::actor_system>(cfg);
  }
};

/// Takes requests of type (Atom, Arg) and never answers them (their promises are kept, so
/// nothing is sent back either). The unused argument: CAF 0.17 dereferences the (null) tuple
/// of a spawn without arguments, which UBSan reports.
template <class Atom, class Arg>
caf::actor spawn_silent(caf::actor_system& sys) {
  return sys.spawn(
      [](caf::stateful_actor<std::vector<caf::response_promise>>* self, int) {
        return caf::behavior{[self](Atom, const Arg&) {
          self->state.push_back(self->make_response_promise());
          return self->state.back();
        }};
      },
      0);
}

/// A state store in `dir` and, in front of it, a store actor that never answers an ack
/// commit: the sink's commits stay in flight. A null store when it cannot be opened.
std::pair<std::shared_ptr<storage::state_store>, store_actor> store_that_never_commits(
    caf::actor_system& sys, const std::filesystem::path& dir) {
  auto opened = storage::state_store::open(dir / "state", storage::store_options{});
  EXPECT_TRUE(opened.ok()) << opened.err().message;
  if (!opened.ok()) return {};
  return {std::shared_ptr<storage::state_store>(std::move(opened.value())),
          caf::actor_cast<store_actor>(spawn_silent<ack_atom, sink_acks>(sys))};
}

TEST(BatchLifetime, RunnerFailsAVerificationThatGetsNoAnswer) {
  system_fixture f;
  auto fetcher = caf::actor_cast<fetcher_actor>(spawn_silent<get_job_atom, api::uuid>(*f.sys));
  job_context base;
  base.settings.fetch_timeout = 200ms;
  auto runner = spawn_batch_runner(*f.sys, base, {fetcher}, nullptr);
  batch_request req;
  req.jobs = {make_uuid(1), make_uuid(2), make_uuid(1)};  // a repeat runs (and fails) once
  caf::scoped_actor self{*f.sys};
  bool answered = false;
  const auto t0 = std::chrono::steady_clock::now();
  self->request(runner, 30s, run_atom::value, req)
      .receive(
          [&](batch_report& rep) {
            answered = true;
            EXPECT_EQ(rep.total, 2u);
            EXPECT_EQ(rep.failed, 2u);
            EXPECT_EQ(rep.complete, 0u);
            ASSERT_EQ(rep.jobs.size(), 2u);
            for (const auto& out : rep.jobs) {
              EXPECT_EQ(out.result, job_result::failed);
              EXPECT_EQ(out.failure.code, job_errc::timeout);
              EXPECT_NE(out.reason.find("no answer within 200 ms"), std::string::npos)
                  << out.reason;
            }
          },
          [&](caf::error& err) { FAIL() << "the batch did not end: " << to_string(err); });
  EXPECT_TRUE(answered);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 200ms);  // not before the deadline
  self->send_exit(fetcher, caf::exit_reason::user_shutdown);
}

TEST(BatchLifetime, SinkStopsWhenItsAckCommitGetsNoAnswer) {
  system_fixture f;
  ei::testing::temp_dir dir;
  auto [store, writer] = store_that_never_commits(*f.sys, dir.path());
  ASSERT_NE(store, nullptr);
  ndjson_sink_options opts;
  opts.path = (dir.path() / "out.ndjson").string();
  opts.fsync = false;
  opts.commit_timeout = 200ms;
  auto sink = spawn_ndjson_sink(*f.sys, opts, store, writer);
  ASSERT_TRUE(sink.ok());
  caf::scoped_actor self{*f.sys};
  self->monitor(sink.value());
  item_batch batch;
  batch.job_id = make_uuid(7);
  delivery_item item;
  item.job_id = batch.job_id;
  item.accounting_entry_id = make_uuid(8);
  item.sequence = 1;
  batch.items.push_back(item);
  self->send(sink.value(), items_atom::value, batch,
             caf::actor_cast<ack_receiver_actor>(self->ctrl()));
  bool down = false;
  self->receive(
      [&](caf::down_msg& dm) {
        down = true;
        EXPECT_NE(to_string(dm.reason).find("no answer within 200 ms"), std::string::npos)
            << to_string(dm.reason);
      },
      [&](ack_atom, const api::uuid&, std::uint64_t, bool) {
        ADD_FAILURE() << "acknowledged without a durable ack commit";
      },
      caf::after(30s) >> [&] { ADD_FAILURE() << "the sink did not stop"; });
  EXPECT_TRUE(down);
  self->send_exit(writer, caf::exit_reason::user_shutdown);
}

TEST(BatchLifetime, SinkWritesLinesOutWhileACommitIsInFlightButDoesNotAcknowledgeThem) {
  system_fixture f;
  ei::testing::temp_dir dir;
  auto [store, writer] = store_that_never_commits(*f.sys, dir.path());
  ASSERT_NE(store, nullptr);
  ndjson_sink_options opts;
  const auto out = dir.path() / "out.ndjson";
  opts.path = out.string();
  opts.fsync = false;
  opts.flush_items = 1u << 20;  // only the first batch's flush starts a commit
  opts.commit_timeout = 60s;    // the commit stays in flight for the whole test
  auto sink = spawn_ndjson_sink(*f.sys, opts, store, writer);
  ASSERT_TRUE(sink.ok());
  caf::scoped_actor self{*f.sys};
  auto batch_of = [](std::uint64_t first, std::size_t n) {
    item_batch b;
    b.job_id = make_uuid(7);
    for (std::size_t i = 0; i < n; ++i) {
      delivery_item item;
      item.job_id = b.job_id;
      item.accounting_entry_id = make_uuid(static_cast<std::uint8_t>(i));
      item.sequence = first + i;
      b.items.push_back(item);
    }
    return b;
  };
  const auto receiver = caf::actor_cast<ack_receiver_actor>(self->ctrl());
  // The first batch is flushed at once (nothing else queued) and its commit never returns.
  self->send(sink.value(), items_atom::value, batch_of(1, 10), receiver);
  // Then 6 batches of 2,048 lines (~3.5 MB): they must not all wait in memory.
  std::uint64_t next = 11;
  for (int i = 0; i < 6; ++i, next += 2048)
    self->send(sink.value(), items_atom::value, batch_of(next, 2048), receiver);
  // The sink handles its mailbox in order: once it has answered nothing and the file holds
  // more than the first batch plus 1 MiB, lines were written out while the commit waited.
  std::uintmax_t size = 0;
  const auto until = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < until) {
    std::error_code ec;
    size = std::filesystem::file_size(out, ec);
    if (!ec && size > (std::uintmax_t{1} << 21)) break;
    self->receive([&](ack_atom, const api::uuid&, std::uint64_t,
                      bool) { ADD_FAILURE() << "acknowledged without a durable ack commit"; },
                  caf::after(20ms) >> [] {});
  }
  EXPECT_GT(size, std::uintmax_t{1} << 21) << "the lines stayed in the sink's buffer";
  // Whole lines only, and none of them acknowledged.
  std::ifstream in(out);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  self->receive([&](ack_atom, const api::uuid&, std::uint64_t,
                    bool) { ADD_FAILURE() << "acknowledged without a durable ack commit"; },
                caf::after(50ms) >> [] {});
  self->send_exit(sink.value(), caf::exit_reason::user_shutdown);
  self->send_exit(writer, caf::exit_reason::user_shutdown);
}

TEST(BatchLifetime, DiscoveredJobsAreListedAndStartedOnce) {
  actors::detail::listed_jobs t;
  // Ids that differ only in their last bytes (as sequential ids do) and random-looking ones.
  auto id_of = [](std::uint32_t n) {
    api::uuid u;
    u.bytes[6] = 0x40;
    u.bytes[8] = 0x80;
    u.bytes[12] = static_cast<std::uint8_t>(n >> 24);
    u.bytes[13] = static_cast<std::uint8_t>(n >> 16);
    u.bytes[14] = static_cast<std::uint8_t>(n >> 8);
    u.bytes[15] = static_cast<std::uint8_t>(n);
    return u;
  };
  constexpr std::uint32_t n = 100000;
  for (std::uint32_t i = 0; i < n; ++i)
    ASSERT_TRUE(t.list(id_of(i))) << i;
  EXPECT_EQ(t.size(), n);
  for (std::uint32_t i = 0; i < n; i += 7)
    EXPECT_FALSE(t.list(id_of(i))) << "listed twice: " << i;
  for (std::uint32_t i = 0; i < n; i += 2)
    EXPECT_TRUE(t.start(id_of(i))) << i;
  for (std::uint32_t i = 0; i < n; ++i)
    EXPECT_EQ(t.start(id_of(i)), i % 2 == 1) << "started twice: " << i;
  // Starting a job never listed lists it too.
  EXPECT_TRUE(t.start(id_of(n)));
  EXPECT_FALSE(t.list(id_of(n)));
  EXPECT_EQ(t.size(), n + 1);
  EXPECT_TRUE(t.list(api::uuid{}));  // the nil id is an id like any other
  EXPECT_FALSE(t.list(api::uuid{}));
}

}  // namespace
