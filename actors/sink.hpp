// Sinks: downstream actors the stage ships with.
//
// The NDJSON sink writes one line per item to a file (or stdout) and acknowledges items once
// their lines are written and fsynced, recording in the same synced store write both the
// jobs' ack watermarks and the file offset after the last acknowledged line. That write goes
// through the store actor (actors/store.hpp), so it shares the fsync of the other jobs' writes
// of the same round (group commit); the acks leave once it is durable. On start it cuts
// away anything after that offset (a torn line or unacknowledged lines of a crashed run), so
// the file only ever holds whole lines and every acknowledged line exactly once.
//
// The commit file, for consumers that follow the output while it is written (`tail -F`):
// `<out>.committed` holds one line, the decimal byte offset just past the last acknowledged
// line of `<out>`, then "\n". It is replaced atomically (written to `<out>.committed.tmp`,
// renamed) after every ack commit (once the store's commit_acks returned) and once at start,
// after the tail cut (it then equals the file's size). It never decreases. It is advisory (not
// fsynced); the truth is the state store. Bytes beyond it may be cut by a restart and come
// again flagged `"redelivery": true`.
//
// stdout (`-`): an item is acknowledged once write() returned for its line: a pipe gives
// at-least-once delivery across a crash (what was written but not acknowledged comes again,
// flagged `"redelivery": true`), and nothing is cut.
#pragma once

#include <sys/stat.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>

#include "actors/downstream.hpp"
#include "actors/store.hpp"
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
  /// Deadline of an ack commit through the store actor (settings.request_timeout).
  std::chrono::milliseconds commit_timeout{300000};
};

enum class sink_errc : std::uint8_t {
  open_failed,
  output_shorter_than_state,
  store,
  not_bound,  // the file is not the one the state directory wrote (or holds foreign data)
  locked,     // another process holds the output's lock
};

/// How an `--out` path relates to what a state directory wrote (its sink records).
///
/// An output file is bound to the state directory that writes it: the first run binds it
/// (device and inode, with offset 0) before writing; later runs must name the same file (any
/// path to it: a symlink or another mount counts). Refused (sink_errc::not_bound, the message
/// naming the state directory and both files and saying how to proceed):
///  - a state directory bound to one file and `--out` naming another file, or `-`;
///  - a state directory not bound to any file and a non-empty existing `--out` (its lines were
///    not written by this state directory: appending would hand every item on again).
/// `--out -` (stdout, a pipe) binds nothing: a state directory that never wrote a file may
/// write to stdout in every run.
struct output_plan {
  std::string sink_name;                ///< the sink's key in the store ("stdout" for -)
  std::optional<std::uint64_t> offset;  ///< bound already: the committed offset
  bool bind = false;                    ///< bind the file (identity + offset) before writing
};
/// `info` is the stat() of `path` when it exists. Touches nothing.
result<output_plan, sink_errc> plan_output(const std::string& path, const struct stat* info,
                                           const std::vector<storage::sink_record>& sinks,
                                           const std::string& state_dir);

/// The same checks as spawn_ndjson_sink, for a run that has not opened its state store yet:
/// `sinks` as a read-only open of the store found them (empty when there is no store). Also
/// refuses (sink_errc::locked) an output file another process holds. Touches nothing.
status<sink_errc> check_output(const std::string& path,
                               const std::vector<storage::sink_record>& sinks,
                               const std::string& state_dir);

/// The path of the commit file of output `path`: `<path>.committed`.
std::string committed_path(const std::string& path);

/// Opens the output (repairing its tail as described above) and spawns the sink detached.
/// A file is opened with O_APPEND and an exclusive flock (LOCK_EX|LOCK_NB: a second writer
/// gets sink_errc::locked); a file it creates has its directory fsynced. After the tail cut,
/// and after every ack commit, it replaces `<path>.committed` (see committed_path). `store`
/// is read (and the file bound) here; the ack commits go through `writer`, the store actor
/// over the same store.
result<downstream_actor, sink_errc> spawn_ndjson_sink(caf::actor_system& sys,
                                                      ndjson_sink_options options,
                                                      std::shared_ptr<storage::state_store> store,
                                                      store_actor writer);

/// Formats one NDJSON line (without the newline) — shared with tests and tools.
void append_ndjson_line(std::string& out, const delivery_item& item);

/// An in-process downstream for embedders and tests: calls `on_batch` for every batch (on
/// the sink's own thread) and acknowledges the batch when it returns true; when it returns
/// false the batch stays unacknowledged (the job will time out and redeliver on the next run).
downstream_actor spawn_callback_downstream(caf::actor_system& sys,
                                           std::function<bool(const item_batch&)> on_batch);

}  // namespace ei::actors
