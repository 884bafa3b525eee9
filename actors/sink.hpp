// Sinks: downstream actors the stage ships with.
//
// The NDJSON sink writes one line per item to a file (or stdout) and acknowledges items once
// their lines are written and fsynced, recording in the same synced store write both the
// jobs' ack watermarks and the file offset after the last acknowledged line. On start it cuts
// away anything after that offset (a torn line or unacknowledged lines of a crashed run), so
// the file only ever holds whole lines and every acknowledged line exactly once.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <caf/actor_system.hpp>

#include "actors/downstream.hpp"
#include "common/result.hpp"
#include "storage/state_store.hpp"

namespace ei::actors {

struct ndjson_sink_options {
  std::string path = "-";          // "-" is stdout (no truncation, no fsync)
  std::size_t flush_items = 8192;  // flush once this many lines are buffered
  /// How long buffered lines may wait for more. Zero: flush as soon as the batches already
  /// in the mailbox are appended (they share one write, fsync and ack commit; a lone job's
  /// credit window is never held back by a timer).
  std::chrono::milliseconds flush_interval{0};
  bool fsync = true;
};

enum class sink_errc : std::uint8_t { open_failed, output_shorter_than_state, store };

/// Opens the output (repairing its tail as described above) and spawns the sink detached.
result<downstream_actor, sink_errc> spawn_ndjson_sink(caf::actor_system& sys,
                                                      ndjson_sink_options options,
                                                      std::shared_ptr<storage::state_store> store);

/// Formats one NDJSON line (without the newline) — shared with tests and tools.
void append_ndjson_line(std::string& out, const delivery_item& item);

/// An in-process downstream for embedders and tests: calls `on_batch` for every batch (on
/// the sink's own thread) and acknowledges the batch when it returns true; when it returns
/// false the batch stays unacknowledged (the job will time out and redeliver on the next run).
downstream_actor spawn_callback_downstream(caf::actor_system& sys,
                                           std::function<bool(const item_batch&)> on_batch);

}  // namespace ei::actors
