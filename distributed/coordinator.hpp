// The coordinator of a distributed batch: holds the job list, the per-company rule, the
// authoritative ledger (ledger.hpp) and the output file; workers connect to it over CAF's
// middleman, take job assignments and hand their items back here (see protocol.hpp).
//
// run_coordinator blocks until every job has an outcome. It resolves the jobs (GET each, or
// discovery) with `creds`, publishes the coordinator actor, writes `listening on HOST:PORT`
// as the first line of `out`, and at the end the JSON summary (to `summary_file` when set,
// else to `out`). Progress and failure lines go to `log`. Returns the process exit code:
// 0 every job complete, 1 some failed, 2 usage/configuration/ledger/output error.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "api/credentials.hpp"
#include "api/model.hpp"

namespace ei::distributed {

struct coordinator_options {
  std::string listen_host = "127.0.0.1";
  std::uint16_t listen_port = 0;  // 0: the OS picks (printed)
  std::vector<api::uuid> jobs;
  bool discover = false;
  std::optional<api::uuid> company_id;  // discovery filter
  std::string base_url;
  std::string ledger_dir;
  std::string out;  // NDJSON output file
  std::string summary_file;
  std::uint32_t expected_workers = 1;  // assignments start once this many registered
  std::uint32_t max_jobs_per_worker = 2;
  std::uint32_t heartbeat_ms = 200;            // workers beat this often (and BASP heartbeats)
  std::uint32_t worker_timeout_ms = 3000;      // no beat for this long: the worker is dead
  std::uint32_t request_timeout_ms = 10000;    // deadline of every remote request
  std::uint32_t no_worker_timeout_ms = 60000;  // jobs pending and no live worker this long: fail
  std::uint32_t max_attempts = 3;              // assignments per job before it fails
  // What every worker runs with (sequence numbers must agree across workers).
  std::string ordering = "chronological";
  std::uint32_t page_size = 500;
  std::uint32_t batch_size = 256;
  std::uint32_t credit_window = 1024;
};

int run_coordinator(const coordinator_options& options, const api::credentials& creds,
                    std::ostream& out, std::ostream& log);

}  // namespace ei::distributed
