// The persistent state of export jobs: a page-granular layout over RocksDB (see
// storage/README.md for the physical layout and how it maps to docs/design.md's logical model).
// Nothing here knows about actors or HTTP; every call blocks on disk I/O and must therefore
// run on a blocking/detached actor or a plain thread, never inside an event-based actor.
//
// Crash vocabulary used by the contracts below:
//  - "process crash": the process dies (kill -9, abort) but the machine keeps running. The OS
//    page cache survives, so every write that returned ok is recovered on the next open.
//  - "power loss": the machine stops (power, kernel panic). Only writes made durable by an
//    fsync of the WAL survive. RocksDB recovers a *prefix* of the write sequence
//    (point-in-time recovery): a synced write makes every earlier write durable too, and a
//    lost write is never recovered while a later one is.
//  - Every write call is ONE RocksDB WriteBatch: after any crash it is either entirely
//    present or entirely absent, never partially.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "api/model.hpp"
#include "common/result.hpp"
#include "export_items/config.hpp"  // sync_policy, store_options, ordering_mode

namespace ei::storage {

/// Error codes of the state store.
enum class store_errc : std::uint8_t {
  locked,            ///< the directory is held by another store (this or another process)
  corrupt,           ///< a record failed validation, or RocksDB reported corruption
  schema_mismatch,   ///< the directory holds another schema version; it is left untouched
  io_error,          ///< the file system or RocksDB failed (disk full, permissions, ...)
  not_found,         ///< the store or a required record does not exist
  invalid_argument,  ///< the caller broke a precondition; nothing was written
};

std::string_view to_string(store_errc code) noexcept;

/// The version of the RocksDB library linked in (for `export-items --version`).
std::string engine_version();

template <class T>
using store_result = result<T, store_errc>;
using store_status = status<store_errc>;

inline constexpr std::array sync_policies{sync_policy::none, sync_policy::commits,
                                          sync_policy::always};
std::string_view to_string(sync_policy p) noexcept;
std::optional<sync_policy> parse_sync_policy(std::string_view text) noexcept;

/// How one write call applies the store's sync policy (the last parameter of every write).
enum class write_sync : std::uint8_t {
  /// Default: fsync when the policy says so (see `syncs`), before the call returns.
  policy,
  /// Group commit: never fsync in this call, whatever the policy. The write still reaches
  /// the OS before the call returns (a process crash loses nothing) and keeps its place in
  /// the write sequence (watermarks never regress), but a write the policy would fsync is
  /// durable against power loss only once a LATER sync() returns ok (or a later fsynced
  /// write does: prefix recovery). The caller must not act on it as durable before that
  /// (e.g. reply, send items on); one sync() then covers every write made before it.
  deferred,
};

/// True when a write that is (`commit_point`) or is not a commit point is fsynced under `p`
/// with write_sync::policy. Commit points: put_job, finish_order, commit_dispatch,
/// commit_acks, erase_job (storage/README.md "Writes, sync policies and crashes").
constexpr bool syncs(sync_policy p, bool commit_point) noexcept {
  return p == sync_policy::always || (p == sync_policy::commits && commit_point);
}

/// The file name of the marker `open()` writes (and fsyncs, with its directory) into an empty
/// directory before RocksDB creates anything there. Only a directory holding it was created
/// by export-items: a creation cut short by a crash is cleaned up (RocksDB's own files only)
/// and started again; any other directory without a store is refused untouched.
inline constexpr std::string_view state_marker_name = ".export-items-state";

/// Which file a sink writes: device and inode (`stat`), so that another path to the same file
/// (a symlink, a bind mount) is recognised and a different file is not.
struct file_identity {
  std::uint64_t device = 0;
  std::uint64_t inode = 0;
  friend bool operator==(const file_identity&, const file_identity&) = default;
};

/// What the store knows about one sink (meta `sink/<name>`, `sink-identity/<name>`).
struct sink_record {
  std::string name;
  std::uint64_t offset = 0;               ///< just past the last acknowledged record
  std::optional<file_identity> identity;  ///< absent for sinks recorded before identities
};

/// Persisted job phases (docs/design.md "Job phases").
/// `reconciling`: a resumed job whose order is fixed re-lists the items (new epoch) and
/// applies the reconciliation table to the persisted order before dispatching again.
enum class job_phase : std::uint8_t {
  verifying,
  listing,
  ordering,
  dispatching,
  complete,
  failed,
  reconciling,
};
inline constexpr std::array job_phases{
    job_phase::verifying, job_phase::listing, job_phase::ordering,   job_phase::dispatching,
    job_phase::complete,  job_phase::failed,  job_phase::reconciling};
inline constexpr std::array ordering_modes{ordering_mode::chronological, ordering_mode::entry_id};

std::string_view to_string(job_phase p) noexcept;
std::string_view to_string(ordering_mode m) noexcept;
std::optional<job_phase> parse_job_phase(std::string_view text) noexcept;
std::optional<ordering_mode> parse_ordering_mode(std::string_view text) noexcept;

/// Counters of a job. `verify()` checks them against the stored records, so writers must
/// keep these meanings:
///  - listed, pages, by_remote_status: items (duplicates included) and pages of the CURRENT
///    listing epoch; reset to zero when a new epoch starts. by_remote_status is indexed by
///    api::item_status and sums to `listed`.
///  - duplicates: items of the current epoch already seen on an earlier page (<= listed).
///  - in_scope: items placed in the order; equals order_size once the order is finished.
///  - needs_reconciliation, redelivered: reported only, not cross-checked.
struct job_counters {
  std::uint64_t listed = 0;
  std::uint64_t pages = 0;
  std::uint64_t duplicates = 0;
  std::uint64_t in_scope = 0;
  std::uint64_t needs_reconciliation = 0;
  std::uint64_t redelivered = 0;
  std::array<std::uint64_t, 6> by_remote_status{};

  friend bool operator==(const job_counters&, const job_counters&) = default;
};

/// Everything about a job except its watermarks (kept under a separate key so the ack path
/// never rewrites this record).
struct job_record {
  api::uuid job_id;
  api::uuid company_id;
  job_phase phase = job_phase::verifying;
  ordering_mode ordering = ordering_mode::chronological;
  std::uint32_t runs = 0;             ///< how many times the job was started
  std::uint32_t listing_epoch = 0;    ///< bumped when a listing restarts from scratch
  std::uint32_t pages_committed = 0;  ///< pages of the current epoch: numbered 0..n-1
  std::string next_cursor;            ///< cursor for the next page (empty: first/none)
  bool listing_complete = false;
  std::uint64_t order_size = 0;  ///< valid once the order is finished
  job_counters counters;
  std::string failure_code;
  std::string failure_message;
  std::int64_t created_ms = 0;
  std::int64_t updated_ms = 0;

  friend bool operator==(const job_record&, const job_record&) = default;
};

/// Progress over the job's order (1-based sequence numbers): every seq <= acked_through was
/// acknowledged downstream; every seq <= dispatched_through was handed on at least once.
/// Invariant: acked_through <= dispatched_through <= order_size.
struct watermarks {
  std::uint64_t dispatched_through = 0;
  std::uint64_t acked_through = 0;

  friend bool operator==(const watermarks&, const watermarks&) = default;
};

/// One item as listed (ExportJobItemV3 without the job id).
struct listed_item {
  api::uuid id;
  api::item_status remote_status = api::item_status::unknown;
  std::string status_text;  ///< raw text, kept only when remote_status == unknown
  api::tracking_fields tracking;

  friend bool operator==(const listed_item&, const listed_item&) = default;
};

/// One listed page: the cursor that fetched it and the cursor that follows it.
struct page_record {
  std::uint32_t page_no = 0;   ///< 0-based within the listing epoch
  std::string request_cursor;  ///< empty for the first page
  std::string next_cursor;     ///< endCursor of the page (empty when absent)
  bool has_next = false;
  std::vector<listed_item> items;

  friend bool operator==(const page_record&, const page_record&) = default;
};

/// One entry of the deterministic order. Its sequence number is its 1-based position.
struct order_entry {
  api::uuid id;
  api::item_status remote_status = api::item_status::unknown;
  bool has_tracking = false;  ///< a tracking record exists (load_tracking)
  /// Set by reconciliation when the entry left the scope (its remote status is final, or the
  /// item is absent from a re-listing: status `unknown`) after it had been handed on: it is
  /// reported, not skipped. Meaningless while the entry is in scope.
  bool handed_on = false;
  /// Set by reconciliation when a re-listing no longer had the item (its status is then
  /// `unknown`): out of scope and reported.
  bool absent = false;

  friend bool operator==(const order_entry&, const order_entry&) = default;
};

/// One order chunk to write (finish_order's atomic tail).
struct order_chunk_write {
  std::uint32_t chunk_no = 0;
  std::vector<order_entry> entries;
};

/// Ack progress of one job for commit_acks; an empty optional leaves that watermark alone.
struct job_progress {
  api::uuid job_id;
  std::optional<std::uint64_t> dispatched_through;
  std::optional<std::uint64_t> acked_through;
};

/// Where the write-back of one item's outcome stands (storage/README.md, "Outcomes").
///  - recorded: the outcome is durable here and not yet confirmed by Pleo (send it);
///  - reported: a PUT answered 200 with the item in `data`: never sent again;
///  - rejected: Pleo refused it for good (`error_type`, `error_message`): never sent again.
enum class outcome_state : std::uint8_t { recorded, reported, rejected };
std::string_view to_string(outcome_state s) noexcept;

/// The outcome downstream gave for one item of a job's order, and its write-back state.
struct item_outcome {
  api::uuid item;
  std::uint64_t seq = 0;  ///< the item's position in the job's order (1-based)
  api::item_status status = api::item_status::successful;  ///< successful or failed
  /// successful: exported_at, external_id, external_url; failed: failure_reason(_type).
  api::tracking_fields fields;
  outcome_state state = outcome_state::recorded;
  std::uint32_t rejections = 0;  ///< `errors[]` answers so far (retried while recorded)
  std::string error_type;        ///< the last `errors[]` entry's type and message
  std::string error_message;

  /// Same outcome (status and fields), whatever its write-back state.
  bool same_outcome(const item_outcome& o) const noexcept {
    return item == o.item && status == o.status && fields == o.fields;
  }
  friend bool operator==(const item_outcome&, const item_outcome&) = default;
};

/// An outcome of one job, for the writes that take outcomes of several jobs.
struct job_item_outcome {
  api::uuid job_id;
  item_outcome outcome;
};

/// How a job was finished in Pleo, recorded once: by our event (`sent`), or found final when
/// we were about to send one (an earlier attempt took effect, or someone else finished it).
struct completion_record {
  api::job_status status = api::job_status::completed;  ///< the job's final status in Pleo
  bool sent = false;
  std::string failure_reason_type;  ///< `failed` only
  std::string failure_reason;
  std::int64_t at_ms = 0;

  friend bool operator==(const completion_record&, const completion_record&) = default;
};

/// The state store. One instance owns one directory exclusively for its lifetime.
///
/// Threads: every member function may be called concurrently from any thread (RocksDB's DB
/// is thread-safe). Watermark updates (commit_dispatch, commit_acks, erase_job) take a
/// store-wide mutex around read-current / max / write, so concurrent writers never move a
/// watermark backwards; the WAL fsync that follows runs outside the mutex, so concurrent
/// committers overlap their fsyncs. Callers still keep one logical writer per job for the job
/// record (put_job, commit_page, finish_order are last-writer-wins).
///
/// Blocking: every call does disk I/O; synced writes wait for fsync (milliseconds). A
/// write_sync::deferred write never waits for one; sync() does, for all of them at once.
///
/// Errors: records read back are external input; a record that fails validation yields
/// store_errc::corrupt with a message naming the column family, the job id and the fault.
class state_store {
 public:
  /// The schema identifier stored under meta/"schema".
  static constexpr std::string_view schema_version = "export-items-state/1";
  /// Entries per order chunk: seq s lives in chunk (s-1)/order_chunk_size, index
  /// (s-1)%order_chunk_size.
  static constexpr std::size_t order_chunk_size = 4096;

  /// Opens (creating if allowed) the store in `dir`.
  ///
  /// Locking: takes an exclusive flock on the directory itself before RocksDB touches
  /// anything, then RocksDB's own LOCK file; a second open of the same dir (this or another
  /// process) fails with store_errc::locked naming the directory. The lock is released when
  /// the store is destroyed or the process dies.
  ///
  /// Refusal: an existing store is first inspected read-only. A different schema version is
  /// store_errc::schema_mismatch (naming both versions); a non-empty store without a schema,
  /// with missing column families, or a non-empty directory that is not a RocksDB store is
  /// store_errc::corrupt. A refused directory is never modified (no file created, rotated or
  /// rewritten). An existing but empty store (a crash during creation) is initialised.
  ///
  /// Creation: a missing directory is created (its parent fsynced); an empty directory first
  /// gets the marker `state_marker_name` (fsynced with the directory) before RocksDB writes
  /// anything. A directory without a store is used only when it is empty or holds our marker
  /// (then only RocksDB's creation files are removed); anything else is refused untouched.
  ///
  /// `options.read_only`: see store_options; never modifies the directory.
  static store_result<std::unique_ptr<state_store>> open(const std::filesystem::path& dir,
                                                         store_options options = {});

  /// Closes RocksDB cleanly (memtables are flushed); the directory lock is released.
  ~state_store();
  state_store(const state_store&) = delete;
  state_store& operator=(const state_store&) = delete;

  const std::filesystem::path& directory() const noexcept;
  const store_options& options() const noexcept;

  // -- jobs ---------------------------------------------------------------------------------

  /// The job record, or nullopt when the job is unknown.
  store_result<std::optional<job_record>> load_job(const api::uuid& job);
  /// Every job record, in job id order.
  store_result<std::vector<job_record>> load_jobs();
  /// Every job record, in job id order, one at a time (memory does not grow with the number
  /// of jobs); `fn` returns false to stop early.
  store_status for_each_job(const std::function<bool(job_record&&)>& fn);
  /// Writes the job record (phase changes, counters, failure...). Last writer wins.
  /// Durable against power loss when it returns under `commits` and `always`.
  /// Idempotent. Watermarks are not touched.
  store_status put_job(const job_record& job, write_sync mode = write_sync::policy);
  /// The job's watermarks; {0, 0} when none were ever committed (or the job is unknown).
  store_result<watermarks> load_watermarks(const api::uuid& job);

  // -- listing ------------------------------------------------------------------------------

  /// Atomically writes page `page` of listing epoch `epoch` of job `updated.job_id`, the
  /// tracking records of its items that carry tracking fields, and `updated` (which should
  /// carry the cursor that follows the page and the new counters). ONE WriteBatch: after any
  /// crash either the page and its job record are both present or neither is, so the
  /// persisted cursor is never ahead of its items nor behind them.
  /// fsynced only under `always`: under `commits`, power loss may lose the latest pages
  /// (together with the cursor that follows them, so listing resumes from an earlier
  /// cursor and re-fetches them). Idempotent: re-committing a page overwrites it.
  /// invalid_argument when an item status is out of range.
  store_status commit_page(const job_record& updated, std::uint32_t epoch, const page_record& page,
                           write_sync mode = write_sync::policy);
  /// Every page of the epoch, in page order, with tracking fields filled in.
  store_result<std::vector<page_record>> load_pages(const api::uuid& job, std::uint32_t epoch);
  /// Streams the pages of the epoch in page order without holding them all; `fn` returns
  /// false to stop early (not an error). Tracking fields are filled in.
  store_status for_each_page(const api::uuid& job, std::uint32_t epoch,
                             const std::function<bool(page_record&&)>& fn);
  /// Removes every page of the epoch (one range tombstone). fsynced only under `always`; a
  /// drop lost to power loss leaves stale pages that verify() reports and a later drop
  /// removes. Tracking records are keyed by item, not epoch, and are kept. Idempotent.
  store_status drop_pages(const api::uuid& job, std::uint32_t epoch,
                          write_sync mode = write_sync::policy);
  /// The tracking fields of an item of the job, or nullopt when none were stored.
  store_result<std::optional<api::tracking_fields>> load_tracking(const api::uuid& job,
                                                                  const api::uuid& item);

  // -- ordering -----------------------------------------------------------------------------

  /// Writes chunk `chunk_no` of the job's order: at most order_chunk_size entries, exactly
  /// order_chunk_size unless it is the last chunk. Not fsynced except under `always`; the
  /// chunks become durable with finish_order. Idempotent (overwrites).
  store_status write_order_chunk(const api::uuid& job, std::uint32_t chunk_no,
                                 std::span<const order_entry> entries,
                                 write_sync mode = write_sync::policy);
  /// Commits `updated` (with order_size and the next phase) and removes chunks beyond
  /// order_size left by an earlier, interrupted ordering, in ONE WriteBatch, fsynced under
  /// `commits` and `always`. Because the WAL is recovered as a prefix, every chunk written
  /// before is durable once this returns. It does not re-read the chunks (verify() does).
  store_status finish_order(const job_record& updated, write_sync mode = write_sync::policy);
  /// finish_order that also writes `chunks` (each as write_order_chunk would) in the same
  /// WriteBatch: a reconciliation that appends to the last chunk makes the longer chunk and
  /// the new order_size visible together, or neither.
  store_status finish_order(const job_record& updated, std::span<const order_chunk_write> chunks,
                            write_sync mode = write_sync::policy);
  /// Up to `max_count` entries from seq `first_seq` (>= 1) on, in order. Stops early at the
  /// end of the order: the job record's order_size (so entries an unfinished ordering or
  /// reconciliation wrote beyond it are never read; nothing before the order is finished),
  /// or the stored chunks when the job has no record. Empty when first_seq is beyond it.
  store_result<std::vector<order_entry>> read_order(const api::uuid& job, std::uint64_t first_seq,
                                                    std::size_t max_count);

  // -- dispatch and acks --------------------------------------------------------------------

  /// Records that every seq <= dispatched_through has been handed on, plus the attempt
  /// numbers (>= 2) of redelivered seqs, in ONE WriteBatch fsynced under `commits` and
  /// `always`, so it is durable BEFORE the items leave (call it first, send after it returns).
  /// The new value is visible to concurrent readers a moment before its fsync completes
  /// (write, then WAL sync); the call returns only after the fsync. Cost: one WAL fsync per
  /// call, so commit once per window of items, never per item.
  /// Monotonic: a dispatched_through below the stored one is kept at the stored value (the
  /// attempts are still written). invalid_argument (nothing written) when the job is unknown,
  /// dispatched_through exceeds its order_size, an attempt is < 2, or an attempt's seq is 0
  /// or beyond dispatched_through.
  store_status commit_dispatch(
      const api::uuid& job, std::uint64_t dispatched_through,
      std::span<const std::pair<std::uint64_t, std::uint32_t>> redelivery_attempts,
      write_sync mode = write_sync::policy);
  /// Attempt numbers stored for seqs in [first_seq, last_seq], ascending by seq. Seqs not
  /// listed were never redelivered (attempt 1).
  store_result<std::vector<std::pair<std::uint64_t, std::uint32_t>>> load_attempts(
      const api::uuid& job, std::uint64_t first_seq, std::uint64_t last_seq);
  /// Commits ack progress of several jobs and, optionally, a sink's file offset (the byte
  /// offset just past its last acknowledged record) in ONE WriteBatch, fsynced under
  /// `commits` and `always`: when it returns, neither the acks nor the offset can be lost,
  /// and after any crash both or neither are present (visible to readers a moment before the
  /// fsync completes, as for commit_dispatch). Watermarks never move backwards: a
  /// value below the stored one is ignored, so replaying a commit is harmless.
  /// invalid_argument (nothing written) when an acked_through would exceed the job's
  /// dispatched_through (after applying the same batch's dispatched_through) or a sink name
  /// is empty.
  store_status commit_acks(std::span<const job_progress> progress,
                           std::optional<std::pair<std::string, std::uint64_t>> sink_offset,
                           write_sync mode = write_sync::policy);
  /// The committed offset of a sink, or nullopt when none was committed.
  store_result<std::optional<std::uint64_t>> load_sink_offset(const std::string& sink_name);
  /// Binds a sink to the file it writes: its identity and its starting offset in ONE synced
  /// WriteBatch (fsynced unless the policy is `none`). invalid_argument for an empty name.
  store_status bind_sink(const std::string& sink_name, const file_identity& identity,
                         std::uint64_t offset, write_sync mode = write_sync::policy);
  /// Every sink the store knows, by name.
  store_result<std::vector<sink_record>> load_sinks();

  /// commit_acks that also writes item outcomes (embedding: a downstream acks items with
  /// their outcomes) in the same WriteBatch: the acks and the outcomes become durable
  /// together, or neither. invalid_argument (nothing written) as for commit_acks, or when an
  /// outcome's status is not successful/failed or its seq is 0.
  store_status commit_acks(std::span<const job_progress> progress,
                           std::optional<std::pair<std::string, std::uint64_t>> sink_offset,
                           std::span<const job_item_outcome> outcomes,
                           write_sync mode = write_sync::policy);

  // -- outcomes and completion (write-back to Pleo) -----------------------------------------

  /// Writes outcome records of a job (new ones, or their next write-back state) in ONE
  /// WriteBatch, fsynced under `commits` and `always` (a commit point). Last writer wins:
  /// the caller keeps one writer per job and never moves reported/rejected back.
  store_status put_outcomes(const api::uuid& job, std::span<const item_outcome> outcomes,
                            write_sync mode = write_sync::policy);
  /// The outcome of one item, or nullopt.
  store_result<std::optional<item_outcome>> load_outcome(const api::uuid& job,
                                                         const api::uuid& item);
  /// Every outcome of the job, in item id order; `fn` returns false to stop early.
  store_status for_each_outcome(const api::uuid& job,
                                const std::function<bool(item_outcome&&)>& fn);
  /// Records how the job was finished in Pleo (fsynced: a commit point). Idempotent.
  store_status put_completion(const api::uuid& job, const completion_record& c,
                              write_sync mode = write_sync::policy);
  store_result<std::optional<completion_record>> load_completion(const api::uuid& job);

  // -- durability ----------------------------------------------------------------------------

  /// Makes every write that returned before this call durable against power loss with ONE
  /// WAL fsync (RocksDB SyncWAL): the completion of write_sync::deferred writes (group
  /// commit). A no-op returning ok under sync_policy::none, where nothing is fsynced. Writes
  /// running concurrently on other threads may or may not be covered. Blocks on the fsync.
  /// io_error when the fsync fails: the deferred writes must then not be treated as durable.
  store_status sync();

  // -- maintenance --------------------------------------------------------------------------

  /// Removes every record of the job in every column family (range tombstones, ONE
  /// WriteBatch, fsynced under `commits` and `always`). Sink offsets are not per job and are
  /// kept. Idempotent.
  store_status erase_job(const api::uuid& job, write_sync mode = write_sync::policy);

  /// Offline integrity check (`export-items state verify`): decodes every record and checks
  /// the schema, order continuity (chunks 0..n-1 present and full but the last, sizes adding
  /// up to order_size, no duplicate ids, no chunks beyond), watermarks (acked <= dispatched
  /// <= order_size), attempts (2 <= attempt, seq <= dispatched_through), pages (numbered
  /// 0..pages_committed-1; no epoch ahead of the job record; no older epoch once the listing
  /// is complete), counters against the pages, tracking records
  /// for entries flagged with tracking, and orphans (records of unknown jobs). Returns
  /// human-readable problems, empty when clean; fails only on I/O errors. Reads everything:
  /// O(store size) time, O(order size) memory.
  store_result<std::vector<std::string>> verify();

  // -- scratch: sorted runs of an ordering in progress (storage/external_sort.hpp) ----------

  /// Writes segment `segment` of run `run` in scratch space `space` of the job: whole records
  /// of `width` (> 0) bytes. Never fsynced and never needed after a crash: an interrupted
  /// ordering drops the job's scratch and starts over; finish_order and erase_job remove it.
  store_status put_scratch(const api::uuid& job, std::uint8_t space, std::uint32_t run,
                           std::uint32_t segment, std::uint8_t width,
                           std::span<const std::uint8_t> records);
  /// The record bytes of a segment written with `width`, or nullopt when it does not exist.
  /// corrupt when the stored segment is malformed or has another width.
  store_result<std::optional<std::string>> get_scratch(const api::uuid& job, std::uint8_t space,
                                                       std::uint32_t run, std::uint32_t segment,
                                                       std::uint8_t width);
  /// Removes the job's scratch: one space, or every space. Not fsynced. Idempotent.
  store_status drop_scratch(const api::uuid& job, std::optional<std::uint8_t> space = std::nullopt);

  /// Streams the pages of the epoch in page order like for_each_page, but lean: `page` has
  /// the page number and cursors (its `items` stay empty) and `entries` its items as order
  /// entries (id, remote status, whether a tracking record exists); tracking records are not
  /// read. `fn` returns false to stop early.
  store_status for_each_page_entries(
      const api::uuid& job, std::uint32_t epoch,
      const std::function<bool(const page_record& page, std::span<const order_entry> entries)>& fn);

  /// Opaque implementation (storage/detail/store_impl.hpp).
  struct impl;

 private:
  explicit state_store(std::unique_ptr<impl> p);
  static store_result<std::unique_ptr<state_store>> open_read_only(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

}  // namespace ei::storage
