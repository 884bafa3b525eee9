// A worker of a batch coordinated through etcd (docs/distributed.md). Any number of identical
// workers run against one prefix; there is no coordinator.
//
// The worker holds one etcd lease (kept alive every ttl/3). It claims a job with one txn that
// creates the job's claim key and its company's lock key under that lease (compare
// create_revision == 0 on both, and no done key), runs it through the embedding API
// (export_items::stage, in the order --ordering names) with itself as the downstream: item lines
// are appended to --out and fsynced, then acknowledged to the stage; the acknowledged ids and the
// watermark (the last id acknowledged in the job's order) go to etcd in grouped txns fenced by the
// claim key's create_revision. Completion is one txn creating the done key.
//
// Lease: the worker counts its lease as valid until (send time of the last successful
// keep-alive + the TTL it returned). Past that it hands nothing on, sends no API request
// (client_config::admit), makes one last fenced write of what it had handed on (etcd refuses
// it when the claim is gone) and exits 3.
//
// run_worker blocks and returns the exit code: 0 every job of the batch is done, 2 usage /
// etcd unreachable at start / state directory / output, 3 the lease was lost (fenced).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "api/credentials.hpp"
#include "distributed/etcd.hpp"
#include "storage/state_store.hpp"

namespace ei::distributed {

struct worker_options {
  etcd_options etcd;
  std::string prefix = "/export-items/";
  std::string state_dir;
  std::string out;
  std::string base_url;  // the API: only from this worker's command line
  std::string name;      // default host:pid
  std::int64_t lease_ttl_s = 10;
  std::uint32_t max_jobs = 2;
  std::uint32_t max_attempts = 5;  // claims of one job before it is recorded failed
  std::uint32_t page_size = 500;
  /// The order items are handed on in (the stage's --ordering). Every worker of a batch should
  /// use the same one; a takeover skips by acknowledged id, so a mismatch loses nothing.
  storage::ordering_mode ordering = storage::ordering_mode::chronological;
  std::chrono::milliseconds flush_interval{100};  // progress write at most this late ...
  std::size_t flush_items = 2048;                 // ... or once this many acks wait
  /// OpenMetrics text for node_exporter's textfile collector (the run's families and the
  /// worker's own, docs/operations.md), rewritten atomically this often and at exit. Empty: none.
  std::string metrics_file;
  std::chrono::milliseconds metrics_interval{5000};
};

/// Logs through ei::log (common/log.hpp: the level and format the host set): every line carries
/// the event, the worker's name and, for a job, jobId, companyId and attempt (docs/operations.md).
int run_worker(const worker_options& options, const api::credentials& creds);

}  // namespace ei::distributed
