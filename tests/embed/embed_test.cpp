// The embedding API as a host uses it: the stage inside the host's actor system, the host's own
// downstream actor acknowledging by sequence, per-job outcomes streamed to a listener, typed
// failures, and a clean shutdown after which the same state directory resumes.
// docs/embedding.md quotes this file.
#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include <caf/all.hpp>
#include "tests/support/temp_dir.hpp"

#include "export_items/stage.hpp"
#include "simulator/simulator.hpp"

namespace {

namespace fs = std::filesystem;
namespace xi = export_items;
constexpr const char* kKey = "embed-test-key";

// --- what a host writes -------------------------------------------------------------------

/// What the host's downstream has made safe (its own "ERP"), shared with the test.
struct ledger {
  std::mutex mutex;
  std::map<std::string, std::vector<std::uint64_t>> sequences;  // per job, in arrival order
  std::size_t redeliveries = 0;
};

/// The host's downstream: writes each item to its ledger, then acknowledges the batch by its
/// last sequence number. A real host would write to its ERP before acknowledging.
xi::downstream_actor::behavior_type host_downstream(std::shared_ptr<ledger> book) {
  return {
      [book](xi::items_atom, const xi::item_batch& batch, const xi::ack_receiver_actor& stage) {
        {
          std::lock_guard<std::mutex> lock(book->mutex);
          for (const auto& item : batch.items) {
            book->sequences[item.job_id.to_string()].push_back(item.sequence);
            if (item.redelivery) ++book->redeliveries;
          }
        }
        caf::anon_send(stage, xi::ack_atom::value, batch.job_id, batch.items.back().sequence,
                       false);
      },
  };
}

/// The host's listener: one message per job as soon as the job ends.
xi::outcome_receiver_actor::behavior_type host_listener(
    std::shared_ptr<std::vector<xi::job_outcome>> seen, std::shared_ptr<std::mutex> mutex) {
  return {
      [seen, mutex](xi::outcome_atom, const xi::job_outcome& outcome) {
        std::lock_guard<std::mutex> lock(*mutex);
        seen->push_back(outcome);
      },
  };
}

/// A host whose downstream acknowledges with outcomes (docs/write-back.md): items whose
/// sequence is a multiple of `fail_every` failed in the ERP, the others were booked.
xi::downstream_actor::behavior_type outcome_downstream(std::shared_ptr<ledger> book,
                                                       std::uint64_t fail_every) {
  return {
      [book, fail_every](xi::items_atom, const xi::item_batch& batch,
                         const xi::ack_receiver_actor& stage) {
        xi::outcome_acks outcomes;
        {
          std::lock_guard<std::mutex> lock(book->mutex);
          for (const auto& item : batch.items) {
            book->sequences[item.job_id.to_string()].push_back(item.sequence);
            xi::item_outcome_ack ack{
                item.accounting_entry_id, item.sequence, ei::api::item_status::successful, {}};
            if (fail_every != 0 && item.sequence % fail_every == 0) {
              ack.status = ei::api::item_status::failed;
              ack.fields.failure_reason_type = "OTHER";
              ack.fields.failure_reason = "rejected by the ERP";
            } else {
              ack.fields.external_id = "ERP-" + std::to_string(item.sequence);
            }
            outcomes.items.push_back(std::move(ack));
          }
        }
        caf::anon_send(stage, xi::ack_atom::value, batch.job_id, batch.items.back().sequence, false,
                       std::move(outcomes));
      },
  };
}

// --- the test -----------------------------------------------------------------------------

using ei::testing::temp_dir;

namespace {

/// A simulator of `jobs` jobs over `companies` companies, `items` items each; every job in
/// progress unless `all_in_progress` is false (then the seed decides).
auto start_sim(std::uint64_t seed, std::uint32_t jobs, std::uint32_t companies, std::uint32_t items,
               bool all_in_progress = true) {
  ei::sim::sim_config sc;
  sc.api_key = kKey;
  sc.seed = seed;
  sc.jobs = jobs;
  sc.companies = companies;
  sc.items_per_job = items;
  sc.all_in_progress = all_in_progress;
  return ei::sim::simulator::start(sc);
}

std::vector<xi::uuid> ids_of(const ei::sim::simulator& sim) {
  std::vector<xi::uuid> ids;
  for (const auto& j : sim.jobs())
    ids.push_back(j.id);
  return ids;
}

}  // namespace

TEST(Embed, StageRunsInsideTheHostSystemAndAcksBySequence) {
  auto sim = start_sim(77, 4, 2, 700, false);
  ASSERT_TRUE(sim.ok());
  std::vector<xi::uuid> jobs;
  std::size_t in_progress = 0;
  for (auto& j : sim.value()->jobs()) {
    jobs.push_back(j.id);
    in_progress += j.status == ei::api::job_status::in_progress;
  }
  temp_dir state;

  caf::actor_system_config host_cfg;
  host_cfg.set("scheduler.max-threads", std::size_t{2});
  caf::actor_system host{host_cfg};

  auto book = std::make_shared<ledger>();
  auto downstream = host.spawn(host_downstream, book);
  xi::stage_config config;
  config.base_url = sim.value()->base_url();
  config.settings.page_size = 100;
  config.settings.batch_size = 64;
  config.settings.credit_window = 256;
  auto creds = xi::credentials::from_api_key(kKey);
  ASSERT_TRUE(creds.ok());
  auto stage = xi::stage::start(host, config, creds.value(), state.str(), downstream);
  ASSERT_TRUE(stage.ok()) << stage.err().message;

  auto seen = std::make_shared<std::vector<xi::job_outcome>>();
  auto seen_mutex = std::make_shared<std::mutex>();
  auto listener = host.spawn(host_listener, seen, seen_mutex);
  std::optional<xi::batch_report> report;
  {
    caf::scoped_actor self{host};
    self->request(stage.value()->batch_runner(), std::chrono::seconds(60), xi::run_atom::value,
                  xi::batch_request{jobs, false, {}, listener})
        .receive([&](xi::batch_report& r) { report = std::move(r); },
                 [&](caf::error& err) { FAIL() << caf::to_string(err); });
  }
  ASSERT_TRUE(report);
  ASSERT_EQ(report->jobs.size(), jobs.size());
  std::size_t complete = 0;
  for (const auto& o : report->jobs) {
    if (o.result == xi::job_result::complete) {
      ++complete;
      EXPECT_EQ(xi::failure_of(o), xi::failure_kind::none);
      // Every item of the job reached the host once, in sequence order.
      std::lock_guard<std::mutex> lock(book->mutex);
      const auto& seqs = book->sequences[o.job_id.to_string()];
      ASSERT_EQ(seqs.size(), o.stats.in_scope);
      for (std::size_t i = 0; i < seqs.size(); ++i)
        EXPECT_EQ(seqs[i], i + 1);
    } else {
      EXPECT_EQ(xi::failure_of(o), xi::failure_kind::job_not_in_progress) << o.reason;
    }
  }
  EXPECT_EQ(complete, in_progress);
  EXPECT_EQ(book->redeliveries, 0U);
  {
    // The stats: every job has an outcome, each item the host took was handed on once and its
    // ack recorded (a job completes only after that), and the HTTP counters moved.
    const xi::stage_stats st = stage.value()->stats();
    std::uint64_t taken = 0;
    {
      std::lock_guard<std::mutex> lock(book->mutex);
      for (const auto& [job, seqs] : book->sequences)
        taken += seqs.size();
    }
    EXPECT_GT(taken, 0U);
    EXPECT_EQ(st.jobs_total, jobs.size());
    EXPECT_EQ(st.jobs_done, jobs.size());
    EXPECT_EQ(st.jobs_running, 0U);
    EXPECT_EQ(st.jobs_failed, jobs.size() - in_progress);
    EXPECT_EQ(st.items_handed_on, taken);
    EXPECT_EQ(st.items_acked, taken);
    EXPECT_GT(st.pages, 0U);
    EXPECT_GE(st.http_requests, jobs.size());
    EXPECT_GT(st.http_responses_by_class[2], 0U);
  }
  {
    // The listener heard about every job. Its messages and the report travel to different
    // actors, so the last outcome may still be in the listener's mailbox: wait (bounded).
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    std::size_t heard = 0;
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(*seen_mutex);
        heard = seen->size();
      }
      if (heard >= jobs.size() || std::chrono::steady_clock::now() > deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    EXPECT_EQ(heard, jobs.size());
  }

  // Clean shutdown, then a second stage on the same state directory: nothing to redo.
  stage.value()->shutdown();
  auto again = xi::stage::start(host, config, creds.value(), state.str(), downstream);
  ASSERT_TRUE(again.ok()) << again.err().message;  // the directory lock was released
  auto second = again.value()->run(xi::batch_request{jobs, false, {}, std::nullopt});
  ASSERT_TRUE(second.ok());
  for (const auto& o : second->jobs) {
    if (o.result != xi::job_result::failed) {
      EXPECT_EQ(o.result, xi::job_result::already_complete);
    }
  }
  again.value()->shutdown();
  caf::anon_send_exit(downstream, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(listener, caf::exit_reason::user_shutdown);
}

TEST(Embed, StartRefusesWhatItCannotUse) {
  caf::actor_system_config host_cfg;
  host_cfg.set("scheduler.max-threads", std::size_t{1});
  caf::actor_system host{host_cfg};
  auto creds = xi::credentials::from_api_key(kKey).value();
  temp_dir state;
  xi::stage_config config;  // no base_url: refused
  auto book = std::make_shared<ledger>();
  auto downstream = host.spawn(host_downstream, book);
  auto s = xi::stage::start(host, config, creds, state.str(), downstream);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.err().code, xi::stage_errc::invalid_config);
  config.base_url = "embedded";  // the command line's simulator: not for embedders
  auto embedded = xi::stage::start(host, config, creds, state.str(), downstream);
  ASSERT_FALSE(embedded.ok());
  EXPECT_EQ(embedded.err().code, xi::stage_errc::invalid_config);
  config.base_url = "http://127.0.0.1:9";
  auto no_downstream = xi::stage::start(host, config, creds, state.str(), {});
  ASSERT_FALSE(no_downstream.ok());
  auto ok = xi::stage::start(host, config, creds, state.str(), downstream);
  ASSERT_TRUE(ok.ok()) << ok.err().message;
  auto locked = xi::stage::start(host, config, creds, state.str(), downstream);
  ASSERT_FALSE(locked.ok());
  EXPECT_EQ(locked.err().code, xi::stage_errc::state_dir);
  ok.value()->shutdown();
  caf::anon_send_exit(downstream, caf::exit_reason::user_shutdown);
}

}  // namespace

TEST(Embed, OutcomesAckedByTheHostAreWrittenBackAndTheJobsCompletedOnce) {
  auto sim = start_sim(78, 3, 3, 250);
  ASSERT_TRUE(sim.ok());
  const std::vector<xi::uuid> jobs = ids_of(*sim.value());
  ASSERT_EQ(jobs.size(), 3U);
  temp_dir state;

  caf::actor_system_config host_cfg;
  host_cfg.set("scheduler.max-threads", std::size_t{2});
  caf::actor_system host{host_cfg};
  auto book = std::make_shared<ledger>();
  // Job 0 and 2: every 7th item failed in the ERP; job 1 is failed as a whole below.
  auto downstream = host.spawn(outcome_downstream, book, std::uint64_t{7});
  xi::stage_config config;
  config.base_url = sim.value()->base_url();
  auto creds = xi::credentials::from_api_key(kKey);
  ASSERT_TRUE(creds.ok());
  auto stage = xi::stage::start(host, config, creds.value(), state.str(), downstream);
  ASSERT_TRUE(stage.ok()) << stage.err().message;
  auto batch = stage.value()->run(xi::batch_request{jobs, false, {}, std::nullopt});
  ASSERT_TRUE(batch.ok());
  for (const auto& o : batch->jobs)
    ASSERT_EQ(o.result, xi::job_result::complete) << o.reason;

  // Completing: the two jobs whose outcomes were all acked; failing: job 1, with a reason.
  xi::write_back_options complete;
  complete.jobs = {jobs[0], jobs[2]};
  complete.complete = true;
  auto done = stage.value()->write_back(complete);
  ASSERT_TRUE(done.ok()) << done.err().message;
  ASSERT_EQ(done->jobs.size(), 2U);
  // What the host was handed (the items in scope), and which of those it failed.
  auto handed = [&](const xi::uuid& job) {
    std::lock_guard<std::mutex> lock(book->mutex);
    return book->sequences[job.to_string()];
  };
  for (const auto& j : done->jobs) {
    const auto seqs = handed(j.job_id);
    ASSERT_GT(seqs.size(), 7U);
    EXPECT_TRUE(j.ok()) << j.stop_code << ": " << j.stop_message;
    EXPECT_EQ(j.completion, export_items::write_back_completion::completed_with_errors);
    EXPECT_EQ(j.reported, seqs.size());
    EXPECT_EQ(j.failed, static_cast<std::uint64_t>(std::count_if(
                            seqs.begin(), seqs.end(), [](auto s) { return s % 7 == 0; })));
  }
  xi::write_back_options fail;
  fail.jobs = {jobs[1]};
  fail.fail_reason_type = "OTHER";
  fail.fail_reason = "the host gave up on this company";
  auto failed = stage.value()->write_back(fail);
  ASSERT_TRUE(failed.ok()) << failed.err().message;
  ASSERT_EQ(failed->jobs.size(), 1U);
  EXPECT_EQ(failed->jobs[0].completion, export_items::write_back_completion::failed)
      << failed->jobs[0].stop_message;
  // Failing without naming a job is refused: nothing is sent.
  xi::write_back_options unnamed;
  unnamed.fail_reason_type = "OTHER";
  EXPECT_FALSE(stage.value()->write_back(unnamed).ok());

  // Pleo got each item's outcome once and one event per job, of the right kind; asking again
  // sends nothing.
  auto again = stage.value()->write_back(complete);
  ASSERT_TRUE(again.ok());
  for (const auto& j : again->jobs) {
    EXPECT_EQ(j.completion, export_items::write_back_completion::already_recorded);
    EXPECT_EQ(j.updates_sent, 0U);
  }
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    const auto counts = sim.value()->write_back(jobs[i]);
    EXPECT_EQ(counts.events.size(), 1U);
    EXPECT_EQ(counts.events.begin()->second, 1U);
    EXPECT_EQ(counts.events.begin()->first, i == 1 ? "failed" : "completed_with_errors");
    if (i != 1) {
      EXPECT_EQ(counts.item_updates.size(), handed(jobs[i]).size());
      for (const auto& [id, n] : counts.item_updates)
        EXPECT_EQ(n, 1U);
    }
  }
  stage.value()->shutdown();
  caf::anon_send_exit(downstream, caf::exit_reason::user_shutdown);
}

namespace {

std::size_t line_count(const fs::path& p) {
  std::ifstream in(p);
  std::size_t n = 0;
  std::string line;
  while (std::getline(in, line))
    ++n;
  return n;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

/// A host downstream that holds the first batch unacknowledged and hands its ack to the test
/// (through `first`); later batches are acknowledged at once.
struct gate {
  std::promise<std::pair<xi::ack_receiver_actor, xi::item_batch>> first;
  std::atomic<bool> opened{false};
  std::mutex mutex;
  std::vector<std::uint64_t> sequences;
};

xi::downstream_actor::behavior_type gated_downstream(std::shared_ptr<gate> g) {
  return {
      [g](xi::items_atom, const xi::item_batch& batch, const xi::ack_receiver_actor& stage) {
        {
          std::lock_guard<std::mutex> lock(g->mutex);
          for (const auto& item : batch.items)
            g->sequences.push_back(item.sequence);
        }
        if (!g->opened.exchange(true)) {
          g->first.set_value({stage, batch});
          return;
        }
        caf::anon_send(stage, xi::ack_atom::value, batch.job_id, batch.items.back().sequence,
                       false);
      },
  };
}

}  // namespace

// The built-in NDJSON file downstream (what `export-items run --out` writes, through this API):
// every acknowledged item is one line, `<out>.committed` says how far, and the file is bound to
// the state directory that wrote it: another state directory, or another file, is refused
// before anything is written or created.
TEST(Embed, NdjsonFileDownstreamIsBoundToItsStateDirectory) {
  auto sim = start_sim(31, 2, 2, 300);
  ASSERT_TRUE(sim.ok());
  const std::vector<xi::uuid> jobs = ids_of(*sim.value());
  temp_dir state, files;
  const fs::path out = files.path() / "items.ndjson";
  const fs::path reconcile = files.path() / "items.reconcile.ndjson";

  caf::actor_system_config host_cfg;
  host_cfg.set("scheduler.max-threads", std::size_t{2});
  caf::actor_system host{host_cfg};
  xi::stage_config config;
  config.base_url = sim.value()->base_url();
  config.settings.page_size = 100;
  auto creds = xi::credentials::from_api_key(kKey).value();

  xi::stage_options options;
  options.reconcile_path = reconcile.string();
  auto stage =
      xi::stage::start(host, config, creds, state.str(), xi::ndjson_file{out.string()}, options);
  ASSERT_TRUE(stage.ok()) << stage.err().message;
  auto report = stage.value()->run(xi::batch_request{jobs, false, {}, std::nullopt});
  ASSERT_TRUE(report.ok()) << report.err().message;
  EXPECT_EQ(report->complete, jobs.size());
  const auto st = stage.value()->stats();
  stage.value()->shutdown();
  EXPECT_GT(st.items_acked, 0U);
  EXPECT_EQ(st.items_handed_on, st.items_acked);
  EXPECT_EQ(line_count(out), st.items_acked);
  EXPECT_EQ(slurp(fs::path(out.string() + ".committed")),
            std::to_string(fs::file_size(out)) + "\n");
  EXPECT_FALSE(st.reconciliation_written);  // a first run has nothing to reconcile
  EXPECT_FALSE(fs::exists(reconcile));
  const auto size = fs::file_size(out);

  // A fresh state directory refuses the non-empty file it did not write: nothing is created.
  const fs::path fresh = files.path() / "fresh-state";
  auto refused =
      xi::stage::start(host, config, creds, fresh.string(), xi::ndjson_file{out.string()});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.err().code, xi::stage_errc::output);
  EXPECT_NE(refused.err().message.find(out.string()), std::string::npos) << refused.err().message;
  EXPECT_FALSE(fs::exists(fresh));
  // The state directory refuses another file than the one it wrote.
  const fs::path other = files.path() / "other.ndjson";
  auto elsewhere =
      xi::stage::start(host, config, creds, state.str(), xi::ndjson_file{other.string()});
  ASSERT_FALSE(elsewhere.ok());
  EXPECT_EQ(elsewhere.err().code, xi::stage_errc::output);
  EXPECT_FALSE(fs::exists(other));
  EXPECT_EQ(fs::file_size(out), size);

  // The same file again: the jobs are done, nothing is added.
  auto again =
      xi::stage::start(host, config, creds, state.str(), xi::ndjson_file{out.string()}, options);
  ASSERT_TRUE(again.ok()) << again.err().message;
  auto second = again.value()->run(xi::batch_request{jobs, false, {}, std::nullopt});
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->already_complete, jobs.size());
  again.value()->shutdown();
  EXPECT_EQ(fs::file_size(out), size);
}

// request_stop(): the batch in flight is acknowledged, nothing more is handed on, the job ends
// interrupted and reports; a later stage resumes it after the acknowledged items.
TEST(Embed, RequestStopEndsTheJobInterruptedAndALaterStageResumesIt) {
  auto sim = start_sim(32, 1, 1, 600);
  ASSERT_TRUE(sim.ok());
  const std::vector<xi::uuid> jobs{sim.value()->jobs().front().id};
  temp_dir state;

  caf::actor_system_config host_cfg;
  host_cfg.set("scheduler.max-threads", std::size_t{2});
  caf::actor_system host{host_cfg};
  xi::stage_config config;
  config.base_url = sim.value()->base_url();
  config.settings.page_size = 100;
  config.settings.batch_size = 50;
  config.settings.credit_window = 50;  // one batch in flight: the stop comes before the next
  auto creds = xi::credentials::from_api_key(kKey).value();

  auto g = std::make_shared<gate>();
  auto held = g->first.get_future();
  auto downstream = host.spawn(gated_downstream, g);
  auto stage = xi::stage::start(host, config, creds, state.str(), downstream);
  ASSERT_TRUE(stage.ok()) << stage.err().message;
  auto running = std::async(std::launch::async, [&] {
    return stage.value()->run(xi::batch_request{jobs, false, {}, std::nullopt});
  });
  ASSERT_EQ(held.wait_for(std::chrono::seconds(60)), std::future_status::ready);
  auto [receiver, batch] = held.get();
  stage.value()->request_stop();
  caf::anon_send(receiver, xi::ack_atom::value, batch.job_id, batch.items.back().sequence, false);
  ASSERT_EQ(running.wait_for(std::chrono::seconds(60)), std::future_status::ready);
  auto report = running.get();
  ASSERT_TRUE(report.ok()) << report.err().message;
  EXPECT_EQ(report->interrupted, 1U);
  ASSERT_EQ(report->jobs.size(), 1U);
  EXPECT_EQ(report->jobs[0].failure.code, xi::job_errc::interrupted) << report->jobs[0].reason;
  const auto st = stage.value()->stats();
  EXPECT_EQ(st.items_handed_on, batch.items.size());
  EXPECT_EQ(st.items_acked, batch.items.size());
  stage.value()->shutdown();

  // A stage without the stop resumes after the acknowledged batch and completes the job.
  {
    std::lock_guard<std::mutex> lock(g->mutex);
    g->sequences.clear();
  }
  auto resumed = xi::stage::start(host, config, creds, state.str(), downstream);
  ASSERT_TRUE(resumed.ok()) << resumed.err().message;
  auto second = resumed.value()->run(xi::batch_request{jobs, false, {}, std::nullopt});
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->complete, 1U);
  resumed.value()->shutdown();
  {
    std::lock_guard<std::mutex> lock(g->mutex);
    ASSERT_FALSE(g->sequences.empty());
    EXPECT_EQ(g->sequences.front(), batch.items.back().sequence + 1);
  }
  caf::anon_send_exit(downstream, caf::exit_reason::user_shutdown);
}
