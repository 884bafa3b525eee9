// Measures the state store's hot paths: commit_page (500-item pages) under each sync policy,
// commit_acks and commit_dispatch with fsync, reading pages and the order back, and the
// latency of the reads scheduled actors make (alone and while another thread fsyncs).
// Usage: ei_storage_throughput [scratch-dir] [pages]   (the scratch dir is created and removed)
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "storage/state_store.hpp"

namespace fs = std::filesystem;
using namespace ei;
using namespace ei::storage;
using clock_type = std::chrono::steady_clock;

namespace {

api::uuid make_uuid(std::uint64_t n) {
  api::uuid u;
  // Spread bits so ids look random, as real UUIDs do (key order != insert order).
  std::uint64_t x = n * 0x9e3779b97f4a7c15ull;
  for (int i = 0; i < 8; ++i)
    u.bytes[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(x >> (8 * i));
  for (int i = 0; i < 8; ++i)
    u.bytes[15 - static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(n >> (8 * i));
  return u;
}

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "failed: %s\n", what);
    std::exit(1);
  }
}

page_record make_page(std::uint32_t n, std::size_t items) {
  page_record p;
  p.page_no = n;
  p.request_cursor = std::string(96, 'c') + std::to_string(n);
  p.next_cursor = std::string(96, 'c') + std::to_string(n + 1);
  p.has_next = true;
  p.items.resize(items);
  for (std::size_t i = 0; i < items; ++i) {
    auto& it = p.items[i];
    it.id = make_uuid(std::uint64_t{n} * items + i);
    it.remote_status = i % 10 == 0 ? api::item_status::successful : api::item_status::pending;
    if (i % 10 == 0) {
      it.tracking.exported_at = "2024-01-02T03:04:05Z";
      it.tracking.external_id = "ERP-" + std::to_string(i);
    }
  }
  return p;
}

struct percentiles {
  double p50 = 0, p99 = 0, max = 0;  // microseconds
};

percentiles percentiles_of(std::vector<double> us) {
  std::sort(us.begin(), us.end());
  auto at = [&](double q) { return us[static_cast<std::size_t>(q * (us.size() - 1))]; };
  return {at(0.5), at(0.99), us.back()};
}

template <class F>
percentiles time_calls(int n, F call) {
  std::vector<double> us;
  us.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    const auto t = clock_type::now();
    call(i);
    us.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - t).count());
  }
  return percentiles_of(std::move(us));
}

void read_latencies(state_store& s, const api::uuid& job, std::uint64_t total, const char* note) {
  std::mt19937_64 rng{42};
  std::uniform_int_distribution<std::uint64_t> seq(1, total > 64 ? total - 64 : 1);
  constexpr int n = 5000;
  const auto order =
      time_calls(n, [&](int) { check(s.read_order(job, seq(rng), 64).ok(), "read_order"); });
  const auto tracking = time_calls(
      n, [&](int) { check(s.load_tracking(job, make_uuid(seq(rng))).ok(), "load_tracking"); });
  const auto wm =
      time_calls(n, [&](int) { check(s.load_watermarks(job).ok(), "load_watermarks"); });
  const char* label = note ? note : "alone";
  std::printf(
      "reads (%s), p50/p99/max us: read_order(64) %.1f/%.1f/%.0f, load_tracking "
      "%.1f/%.1f/%.0f, load_watermarks %.1f/%.1f/%.0f\n",
      label, order.p50, order.p99, order.max, tracking.p50, tracking.p99, tracking.max, wm.p50,
      wm.p99, wm.max);
}

void bench_pages(const fs::path& dir, sync_policy policy, std::uint32_t pages) {
  store_options o;
  o.sync = policy;
  auto r = state_store::open(dir, o);
  check(r.ok(), "open");
  auto& s = *r.value();
  job_record j;
  j.job_id = make_uuid(~0ull);
  j.phase = job_phase::listing;
  constexpr std::size_t items = 500;
  std::vector<page_record> prepared;
  for (std::uint32_t n = 0; n < pages; ++n)
    prepared.push_back(make_page(n, items));
  const auto t0 = clock_type::now();
  for (const auto& p : prepared) {
    j.pages_committed = p.page_no + 1;
    j.next_cursor = p.next_cursor;
    j.counters.listed += items;
    check(s.commit_page(j, 0, p).ok(), "commit_page");
  }
  const double dt = seconds_since(t0);
  std::printf("commit_page  sync=%-7s %6u pages x 500: %8.0f pages/s %10.0f items/s\n",
              std::string{to_string(policy)}.c_str(), pages, pages / dt, pages * items / dt);

  if (policy == sync_policy::commits) {
    std::uint64_t listed = 0;
    const auto t1 = clock_type::now();
    check(s.for_each_page(j.job_id, 0,
                          [&](page_record&& p) {
                            listed += p.items.size();
                            return true;
                          })
              .ok(),
          "for_each_page");
    const double dt1 = seconds_since(t1);
    std::printf("for_each_page (tracking filled): %10.0f items/s\n", listed / dt1);

    // The order of all listed items, then acks and dispatches over it.
    const std::uint64_t total = std::uint64_t{pages} * items;
    std::vector<order_entry> chunk;
    const auto t2 = clock_type::now();
    for (std::uint64_t seq = 0; seq < total; seq += state_store::order_chunk_size) {
      chunk.clear();
      for (std::uint64_t k = seq; k < std::min(total, seq + state_store::order_chunk_size); ++k)
        chunk.push_back({make_uuid(k), api::item_status::pending, false});
      check(s.write_order_chunk(
                 j.job_id, static_cast<std::uint32_t>(seq / state_store::order_chunk_size), chunk)
                .ok(),
            "write_order_chunk");
    }
    j.order_size = total;
    j.counters.in_scope = total;
    j.phase = job_phase::dispatching;
    check(s.finish_order(j).ok(), "finish_order");
    std::printf("write order (chunks + finish):   %10.0f items/s\n", total / seconds_since(t2));
    const auto t3 = clock_type::now();
    std::uint64_t read = 0;
    for (std::uint64_t seq = 1; seq <= total; seq += 1000) {
      auto v = s.read_order(j.job_id, seq, 1000);
      check(v.ok(), "read_order");
      read += v->size();
    }
    std::printf("read_order (1000 per call):      %10.0f items/s\n", read / seconds_since(t3));

    constexpr int rounds = 300;
    const auto t4 = clock_type::now();
    for (int i = 1; i <= rounds; ++i)
      check(s.commit_dispatch(j.job_id, static_cast<std::uint64_t>(i) * 100, {}).ok(),
            "commit_dispatch");
    std::printf("commit_dispatch (fsync):         %10.0f commits/s\n", rounds / seconds_since(t4));
    const auto t5 = clock_type::now();
    for (int i = 1; i <= rounds; ++i) {
      const job_progress p[] = {{j.job_id, std::nullopt, static_cast<std::uint64_t>(i) * 100}};
      check(s.commit_acks(p, std::pair<std::string, std::uint64_t>{"out", i * 1000ull}).ok(),
            "commit_acks");
    }
    std::printf("commit_acks + sink offset (fsync): %8.0f commits/s\n", rounds / seconds_since(t5));

    // Concurrent committers (e.g. several jobs' sequencers and a sink): fsyncs overlap.
    constexpr int threads = 4;
    std::vector<job_record> jobs(threads);
    for (int t = 0; t < threads; ++t) {
      jobs[t].job_id = make_uuid(1'000'000'000ull + static_cast<std::uint64_t>(t));
      jobs[t].order_size = 1'000'000;
      check(s.put_job(jobs[t]).ok(), "put_job");
      check(s.commit_dispatch(jobs[t].job_id, 1'000'000, {}).ok(), "commit_dispatch");
    }
    const auto t6 = clock_type::now();
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t)
      workers.emplace_back([&, t] {
        for (int i = 1; i <= rounds; ++i) {
          const job_progress p[] = {{jobs[t].job_id, std::nullopt, static_cast<std::uint64_t>(i)}};
          check(s.commit_acks(p, std::nullopt).ok(), "commit_acks");
        }
      });
    for (auto& w : workers)
      w.join();
    std::printf("commit_acks, %d threads (fsync):  %8.0f commits/s\n", threads,
                threads * rounds / seconds_since(t6));

    // The reads scheduled actors make (sequencer: a credit's worth of the order and an item's
    // tracking; supervisor/sequencer: the watermarks), timed one by one, alone and while
    // another thread commits with fsync as the store actor does. Their tail is what the
    // contract in storage/state_store.hpp rests on.
    read_latencies(s, j.job_id, total, nullptr);
    std::atomic<bool> stop{false};
    std::thread fsyncing([&] {
      for (std::uint64_t i = 1; !stop.load(); ++i) {
        const job_progress p[] = {
            {jobs[0].job_id, std::nullopt, std::min<std::uint64_t>(rounds + i, 1'000'000)}};
        check(s.commit_acks(p, std::nullopt).ok(), "commit_acks");
      }
    });
    read_latencies(s, j.job_id, total, "while another thread fsyncs");
    stop = true;
    fsyncing.join();
  }
}

}  // namespace

int main(int argc, char** argv) {
  const fs::path base =
      argc > 1 ? fs::path{argv[1]} : fs::temp_directory_path() / "ei-storage-throughput";
  const std::uint32_t pages = argc > 2 ? static_cast<std::uint32_t>(std::atoi(argv[2])) : 2000;
  fs::remove_all(base);
  for (auto policy : {sync_policy::none, sync_policy::commits, sync_policy::always}) {
    const auto dir = base / std::string{to_string(policy)};
    bench_pages(dir, policy,
                policy == sync_policy::always ? std::min<std::uint32_t>(pages, 300) : pages);
  }
  fs::remove_all(base);
  return 0;
}
