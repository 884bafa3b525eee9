#include "distributed/commands.hpp"

#include <fstream>
#include <iostream>

#include "distributed/coordinator.hpp"
#include "distributed/protocol.hpp"
#include "distributed/worker.hpp"

namespace ei::distributed {

struct command_set {
  CLI::App* coordinator = nullptr;
  CLI::App* worker = nullptr;
  std::string listen = "127.0.0.1:0";
  std::vector<std::string> jobs;
  std::string jobs_file;
  std::string company_id;
  coordinator_options co;
  worker_options wo;
};

namespace {

int usage(const std::string& message) {
  std::cerr << "export-items: " << message << "\n";
  return 2;
}

bool add_job(const std::string& text, std::vector<api::uuid>& out, std::string& problem,
             const std::string& where) {
  auto id = api::uuid::parse(text);
  if (!id) {
    problem = where + ": '" + text + "' is not a job id (expected a UUID)";
    return false;
  }
  out.push_back(*id);
  return true;
}

int run_coordinator_command(const command_set& c) {
  auto o = c.co;
  if (!split_host_port(c.listen, o.listen_host, o.listen_port))
    return usage("--listen: expected HOST:PORT, got '" + c.listen + "'");
  std::string problem;
  for (const auto& j : c.jobs)
    if (!add_job(j, o.jobs, problem, "--job")) return usage(problem);
  if (!c.jobs_file.empty()) {
    std::ifstream in(c.jobs_file);
    if (!in) return usage("--jobs-file: cannot read '" + c.jobs_file + "'");
    std::string line;
    for (int n = 1; std::getline(in, line); ++n) {
      auto first = line.find_first_not_of(" \t\r");
      if (first == std::string::npos || line[first] == '#') continue;
      auto last = line.find_last_not_of(" \t\r");
      if (!add_job(line.substr(first, last - first + 1), o.jobs, problem,
                   c.jobs_file + ":" + std::to_string(n)))
        return usage(problem);
    }
  }
  if (!c.company_id.empty()) {
    auto id = api::uuid::parse(c.company_id);
    if (!id) return usage("--company-id: '" + c.company_id + "' is not a UUID");
    o.company_id = *id;
  }
  if (o.jobs.empty() && !o.discover)
    return usage("no jobs: give --job ID, --jobs-file FILE or --discover");
  if (o.ordering != "chronological" && o.ordering != "entry_id")
    return usage("--ordering: expected chronological or entry_id, got '" + o.ordering + "'");
  if (o.heartbeat_ms == 0 || o.worker_timeout_ms <= o.heartbeat_ms)
    return usage("--worker-timeout-ms must be larger than --heartbeat-ms (and both > 0)");
  if (o.max_jobs_per_worker == 0 || o.expected_workers == 0 || o.max_attempts == 0)
    return usage("--max-jobs-per-worker, --expected-workers and --max-attempts must be > 0");
  auto creds = api::credentials::from_env();
  if (!creds) return usage(creds.err().message);
  return run_coordinator(o, creds.value(), std::cout, std::cerr);
}

int run_worker_command(const command_set& c) {
  auto creds = api::credentials::from_env();
  if (!creds) return usage(creds.err().message);
  return run_worker(c.wo, creds.value(), std::cerr);
}

}  // namespace

std::shared_ptr<command_set> add_commands(CLI::App& app) {
  auto c = std::make_shared<command_set>();
  auto* co = app.add_subcommand("coordinator",
                                "Hold a batch and its ledger; workers connect and run the jobs");
  c->coordinator = co;
  co->add_option("--listen", c->listen,
                 "HOST:PORT to listen on; port 0 lets the OS pick "
                 "(printed as 'listening on HOST:PORT')")
      ->required();
  co->add_option("--job", c->jobs, "Export job id (repeatable)");
  co->add_option("--jobs-file", c->jobs_file, "File with one job id per line");
  co->add_flag("--discover", c->co.discover, "Run every in_progress job the API lists");
  co->add_option("--company-id", c->company_id, "With --discover: only this company");
  co->add_option("--base-url", c->co.base_url, "API base URL (also given to the workers)")
      ->required();
  co->add_option("--ledger-dir", c->co.ledger_dir, "The coordinator's ledger (RocksDB)")
      ->required();
  co->add_option("--out", c->co.out, "NDJSON output file")->required();
  co->add_option("--summary", c->co.summary_file, "Also write the JSON summary here");
  co->add_option("--expected-workers", c->co.expected_workers,
                 "Start assigning once this many workers registered (default 1)");
  co->add_option("--max-jobs-per-worker", c->co.max_jobs_per_worker,
                 "Jobs one worker runs at once (default 2)");
  co->add_option("--heartbeat-ms", c->co.heartbeat_ms, "Worker heartbeat period (default 200)");
  co->add_option("--worker-timeout-ms", c->co.worker_timeout_ms,
                 "A worker silent this long is declared dead (default 3000)");
  co->add_option("--request-timeout-ms", c->co.request_timeout_ms,
                 "Deadline of every remote request (default 10000)");
  co->add_option("--no-worker-timeout-ms", c->co.no_worker_timeout_ms,
                 "Fail pending jobs after this long without any live worker (default 60000)");
  co->add_option("--max-attempts", c->co.max_attempts,
                 "Assignments per job before it fails (default 3)");
  co->add_option("--ordering", c->co.ordering, "chronological (default) or entry_id");
  co->add_option("--page-size", c->co.page_size, "Items per page (default 500)");
  co->add_option("--batch-size", c->co.batch_size, "Items per batch to the coordinator");
  co->add_option("--credit-window", c->co.credit_window, "Unacknowledged items per job");

  auto* wo = app.add_subcommand("worker", "Run the jobs a coordinator assigns");
  c->worker = wo;
  wo->add_option("--coordinator", c->wo.coordinator, "HOST:PORT of the coordinator")->required();
  wo->add_option("--state-dir", c->wo.state_dir, "This worker's state directory (RocksDB)")
      ->required();
  wo->add_option("--base-url", c->wo.base_url, "API base URL (default: the coordinator's)");
  wo->add_option("--connect-timeout-ms", c->wo.connect_timeout_ms,
                 "Keep trying to reach the coordinator this long (default 15000)");
  wo->add_option("--coordinator-timeout-ms", c->wo.coordinator_timeout_ms,
                 "Give up after heartbeats went unanswered this long (default 30000)");
  return c;
}

std::optional<int> dispatch(const command_set& c) {
  if (c.coordinator->parsed()) return run_coordinator_command(c);
  if (c.worker->parsed()) return run_worker_command(c);
  return std::nullopt;
}

}  // namespace ei::distributed
