// A host that embeds the export-items stage (docs/embedding.md): its own caf::actor_system, its
// own downstream actor that counts items and acknowledges them by sequence, and a listener that
// prints each job's outcome. Runs every `in_progress` job once, prints the stage's stats, then
// shuts down cleanly. It includes nothing of export-items but <export_items/stage.hpp>.
//
//   embed_example --base-url URL           the API, or a simulator (`export-items-sim`);
//                                          credentials from PLEO_API_KEY or PLEO_ACCESS_TOKEN
//   --state-dir DIR                        keep the state there (default: a temporary directory)
//   --expect-jobs N                        fail unless exactly N jobs ran (CI knows the number)
//
// Exit code 0 when every in_progress job completed with all its items acknowledged.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>

#include <caf/all.hpp>

#include <export_items/stage.hpp>

namespace xi = export_items;

namespace {

/// Items the downstream has taken, per job (a real host writes them to its ERP instead).
struct tally {
  std::mutex mutex;
  std::map<std::string, std::uint64_t> items;
};

/// The downstream: takes a batch, makes it "safe" (counts it), then acknowledges everything up
/// to the batch's last sequence number. Acks are cumulative: one per batch is enough.
xi::downstream_actor::behavior_type counting_downstream(std::shared_ptr<tally> t) {
  return {
      [t](xi::items_atom, const xi::item_batch& batch, const xi::ack_receiver_actor& stage) {
        {
          std::lock_guard<std::mutex> lock(t->mutex);
          t->items[batch.job_id.to_string()] += batch.items.size();
        }
        caf::anon_send(stage, xi::ack_atom::value, batch.job_id, batch.items.back().sequence,
                       false);
      },
  };
}

/// The listener: one message per job, as soon as the job ends.
xi::outcome_receiver_actor::behavior_type printing_listener() {
  return {
      [](xi::outcome_atom, const xi::job_outcome& o) {
        if (o.result == xi::job_result::failed)
          std::printf("job %s failed (%s): %s\n", o.job_id.to_string().c_str(),
                      std::string(xi::to_string(xi::failure_of(o))).c_str(), o.reason.c_str());
        else
          std::printf("job %s %s: %llu items in scope, %llu handed on\n",
                      o.job_id.to_string().c_str(), std::string(to_string(o.result)).c_str(),
                      static_cast<unsigned long long>(o.stats.in_scope),
                      static_cast<unsigned long long>(o.stats.emitted));
      },
  };
}

/// Runs every in_progress job once inside a fresh host actor system; true when all completed
/// (and, when `expected_jobs` is known, that many ran).
bool run_host(const std::string& base_url, const xi::credentials& creds,
              const std::string& state_dir, std::optional<std::size_t> expected_jobs) {
  caf::actor_system_config host_cfg;
  caf::actor_system host{host_cfg};  // the host's own system; the stage spawns into it
  auto counted = std::make_shared<tally>();
  auto downstream = host.spawn(counting_downstream, counted);
  auto listener = host.spawn(printing_listener);

  xi::stage_config config;
  config.base_url = base_url;
  config.settings.batch_size = 100;
  auto stage = xi::stage::start(host, config, creds, state_dir, downstream);
  if (!stage.ok()) {
    std::fprintf(stderr, "stage: %s\n", stage.err().message.c_str());
    caf::anon_send_exit(downstream, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(listener, caf::exit_reason::user_shutdown);
    return false;
  }

  // discover = true: list the in_progress jobs and run them, oldest first.
  std::optional<xi::batch_report> report;
  {
    caf::scoped_actor self{host};
    self->request(stage.value()->batch_runner(), std::chrono::minutes(5), xi::run_atom::value,
                  xi::batch_request{{}, true, {}, listener})
        .receive([&](xi::batch_report& r) { report = std::move(r); },
                 [&](caf::error& err) {
                   std::fprintf(stderr, "batch: %s\n", caf::to_string(err).c_str());
                 });
  }
  // What the stage did (any thread may ask, also while batches run).
  const xi::stage_stats stats = stage.value()->stats();
  std::printf(
      "stats: jobs %llu done (%llu failed) of %llu, items %llu handed on, %llu acked, "
      "pages %llu, http %llu requests (%llu 2xx, %llu retries, %llu throttled)\n",
      static_cast<unsigned long long>(stats.jobs_done),
      static_cast<unsigned long long>(stats.jobs_failed),
      static_cast<unsigned long long>(stats.jobs_total),
      static_cast<unsigned long long>(stats.items_handed_on),
      static_cast<unsigned long long>(stats.items_acked),
      static_cast<unsigned long long>(stats.pages),
      static_cast<unsigned long long>(stats.http_requests),
      static_cast<unsigned long long>(stats.http_responses_by_class[2]),
      static_cast<unsigned long long>(stats.http_retries),
      static_cast<unsigned long long>(stats.http_throttled));
  stage.value()->shutdown();  // every ack above is committed; the state dir is unlocked
  caf::anon_send_exit(downstream, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(listener, caf::exit_reason::user_shutdown);

  if (report) {
    std::size_t complete = 0;
    for (const auto& o : report->jobs)
      complete += o.result != xi::job_result::failed;
    std::uint64_t taken = 0;
    std::lock_guard<std::mutex> lock(counted->mutex);
    for (const auto& [job, n] : counted->items)
      taken += n;
    std::printf("%zu of %zu jobs complete, %llu items acknowledged, %.2f s\n", complete,
                report->jobs.size(), static_cast<unsigned long long>(taken),
                report->duration_seconds);
    // Every job completed, and the stats agree with what the downstream took: each item it
    // took was acknowledged and recorded before its job completed.
    return complete == report->jobs.size() && (!expected_jobs || complete == *expected_jobs) &&
           stats.jobs_done == report->jobs.size() && stats.items_handed_on == taken &&
           stats.items_acked == taken;
  }
  return false;
}  // the host system waits for its actors here

}  // namespace

int main(int argc, char** argv) {
  std::string base_url;
  std::string state_dir;
  std::optional<std::size_t> expected_jobs;
  for (int i = 1; i < argc; i += 2) {
    if (i + 1 < argc && std::strcmp(argv[i], "--base-url") == 0) {
      base_url = argv[i + 1];
    } else if (i + 1 < argc && std::strcmp(argv[i], "--state-dir") == 0) {
      state_dir = argv[i + 1];
    } else if (i + 1 < argc && std::strcmp(argv[i], "--expect-jobs") == 0) {
      expected_jobs = std::strtoull(argv[i + 1], nullptr, 10);
    } else {
      base_url.clear();
      break;
    }
  }
  if (base_url.empty()) {
    std::fprintf(stderr, "usage: %s --base-url URL [--state-dir DIR] [--expect-jobs N]\n", argv[0]);
    return 2;
  }

  auto creds = xi::credentials::from_env();  // PLEO_API_KEY or PLEO_ACCESS_TOKEN
  if (!creds.ok()) {
    std::fprintf(stderr, "credentials: %s\n", creds.err().message.c_str());
    return 1;
  }
  bool temporary = state_dir.empty();
  if (temporary)
    state_dir = (std::filesystem::temp_directory_path() /
                 ("ei-embed-example-" + std::to_string(std::random_device{}())))
                    .string();

  bool ok = run_host(base_url, creds.value(), state_dir, expected_jobs);
  if (temporary) std::filesystem::remove_all(state_dir);
  return ok ? 0 : 1;
}
