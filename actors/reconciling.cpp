// The reconciling phase: a job resumed after its order was fixed has re-listed its items
// (a new epoch); this applies the reconciliation table to the persisted order without
// renumbering it. Entries no longer in scope get their new remote status written into their
// order entry (the sequencer passes over them); items the listing shows that the order lacks
// are appended (pending), or reported (in_progress: needs reconciliation). Then the order is
// made official again with one synced write, and the previous listing's pages are dropped.
//
// Memory does not grow with the job: the re-listing and the order are sorted by id with
// storage::external_sorter and joined; the verdict per sequence number is sorted back into
// sequence order and applied chunk by chunk, a few chunk writes in flight. Runs detached.
#include <algorithm>
#include <memory>

#include <caf/all.hpp>

#include "actors/detail/job_parts.hpp"
#include "actors/detail/scope_records.hpp"
#include "actors/reconcile.hpp"
#include "storage/external_sort.hpp"

namespace ei::actors::detail {
namespace {

using storage::store_result;
using storage::store_status;

// Scratch spaces of the reconciler's sorters (the orderer's are done by now).
constexpr std::uint8_t listing_space = 0;  // the re-listing: scope records
constexpr std::uint8_t order_space = 1;    // the order by id: id (16) | seq u64 BE
constexpr std::uint8_t verdict_space = 2;  // per seq: seq u64 BE | status (0xff: absent) | flags
constexpr std::uint8_t append_space = 3;   // listed, not in the order: id (16) | status | flags
constexpr std::uint8_t order_width = 24;
constexpr std::uint8_t verdict_width = 10;
constexpr std::uint8_t append_width = 18;
constexpr std::uint8_t absent = 0xff;
constexpr std::uint32_t max_writes_in_flight = 4;

struct reconciler_state {
  job_context ctx;
  storage::job_record job;
  job_supervisor_actor supervisor;
  storage::watermarks marks;
  std::unique_ptr<storage::external_sorter> verdicts;  // sealed: one per seq, in seq order
  std::unique_ptr<storage::external_sorter> appends;   // sealed: new items in id order
  // Applying: the next chunk's first seq; the last chunk is held back for appends.
  std::uint64_t next_first = 1;
  std::vector<storage::order_entry> tail;
  std::uint32_t tail_chunk = 0;
  bool tail_dirty = false;
  bool tail_prepared = false;
  bool appends_done = false;
  bool tail_flushed = false;
  std::uint64_t new_size = 0;
  // Chunks holding appended items at sequences the finished order already covers (the old
  // last chunk, extended): written with finish_order, so the longer chunk and the new size
  // become visible together. Chunks wholly beyond the old size are written before (read_order
  // does not read past the order size).
  std::vector<storage::order_chunk_write> finish_chunks;
  std::uint32_t writes_in_flight = 0;
  bool committing = false;
  bool finished = false;
  reconcile_result result;
  static inline const char* name = "reconciler";
};

using reconciler_ptr = phase_actor::stateful_pointer<reconciler_state>;

void finish(reconciler_ptr self, bool ok, job_failure code, std::string message) {
  finish_phase(self, ok, code, std::move(message), [](auto& st) { st.result.job = st.job; });
}

void store_failed(reconciler_ptr self, const error<storage::store_errc>& e) {
  finish(self, false, job_errc::store, e.message);
}

void commit_order(reconciler_ptr self) {
  auto& st = self->state;
  st.committing = true;
  st.job.order_size = st.new_size;
  st.job.phase = storage::job_phase::dispatching;
  st.job.listing_complete = true;
  st.job.counters.in_scope = st.job.order_size;
  self->request(st.ctx.store_writer, st.ctx.settings.request_timeout, order_atom::value,
                order_finish{st.job, std::move(st.finish_chunks)})
      .then(
          [self](const store_reply& r) {
            auto& s = self->state;
            if (!r.ok) return finish(self, false, job_errc::store, r.message);
            // The previous listing has served its purpose; keep the store lean and verifiable.
            auto dropped = drop_previous_epochs(*s.ctx.store, s.job);
            if (!dropped.ok()) return finish(self, false, job_errc::store, dropped.err().message);
            finish(self, true, {}, {});
          },
          [self](caf::error& err) {
            finish(self, false, job_errc::internal, "store: " + to_string(err));
          });
}

void pump(reconciler_ptr self);

void write_chunk(reconciler_ptr self, std::uint32_t chunk_no,
                 std::vector<storage::order_entry> entries) {
  auto& st = self->state;
  ++st.writes_in_flight;
  self->request(st.ctx.store_writer, st.ctx.settings.request_timeout, order_atom::value,
                order_chunk{st.job.job_id, chunk_no, std::move(entries)})
      .then(
          [self](const store_reply& r) {
            --self->state.writes_in_flight;
            if (!r.ok) return finish(self, false, job_errc::store, r.message);
            pump(self);
          },
          [self](caf::error& err) {
            finish(self, false, job_errc::internal, "store: " + to_string(err));
          });
}

void report(reconciler_ptr self, const api::uuid& id, std::optional<api::item_status> remote,
            reconcile_action action) {
  self->state.result.reported.push_back(
      {id, remote ? std::string(api::to_string(*remote)) : std::string("absent"),
       std::string(to_string(action))});
}

/// Applies the table to one chunk of the order (seqs from `first`); true when it changed.
/// An entry that left the scope in an earlier reconciliation keeps what it was recorded as
/// (skipped, or reported because it had been handed on): passing over it since does not make
/// it "handed on", and a repeated reconciliation does not count or report it again.
store_result<bool> apply_chunk(reconciler_ptr self, std::uint64_t first,
                               std::vector<storage::order_entry>& entries) {
  auto& st = self->state;
  bool changed = false;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    auto v = st.verdicts->next();
    if (!v) return std::move(v).err();
    const std::uint64_t seq = first + i;
    if (*v == nullptr || get_be(*v, 8) != seq)
      return make_error(storage::store_errc::corrupt,
                        "reconciling job " + st.job.job_id.to_string() +
                            ": no verdict for sequence " + std::to_string(seq));
    const std::uint8_t status = (*v)[8];
    const bool listed_tracking = ((*v)[9] & 1) != 0;
    auto& e = entries[i];
    if (!in_scope(e.remote_status)) continue;  // left the scope before: recorded then
    const auto local = seq <= st.marks.acked_through        ? local_state::acked
                       : seq <= st.marks.dispatched_through ? local_state::dispatched
                                                            : local_state::scoped;
    const auto remote =
        status == absent ? std::nullopt
                         : std::optional<api::item_status>(static_cast<api::item_status>(status));
    const auto action = reconcile(remote, local, true);
    if (action == reconcile_action::skip_done) continue;
    if (!remote) ++st.result.absent;
    if (action == reconcile_action::out_of_scope) ++st.result.skipped_out_of_scope;
    if (action == reconcile_action::out_of_scope_reported) ++st.result.out_of_scope_reported;
    if (action == reconcile_action::out_of_scope ||
        action == reconcile_action::out_of_scope_reported) {
      e.remote_status = remote ? *remote : api::item_status::unknown;
      e.handed_on = action == reconcile_action::out_of_scope_reported;
      e.absent = !remote;
      changed = true;
      continue;
    }
    if (e.remote_status != *remote || (listed_tracking && !e.has_tracking)) {
      e.remote_status = *remote;  // pending <-> in_progress: still in scope
      if (listed_tracking) e.has_tracking = true;
      changed = true;
    }
  }
  return changed;
}

/// Writes the tail chunk: with finish_order when it holds sequences of the current order (so
/// the appended entries and the new size appear together), else now.
void flush_tail(reconciler_ptr self) {
  auto& st = self->state;
  const std::size_t cs = storage::state_store::order_chunk_size;
  const std::uint64_t first_seq = std::uint64_t{st.tail_chunk} * cs + 1;
  if (first_seq <= st.job.order_size)
    st.finish_chunks.push_back({st.tail_chunk, std::move(st.tail)});
  else
    write_chunk(self, st.tail_chunk, std::move(st.tail));
  st.tail.clear();
  st.tail_dirty = false;
}

/// Rewrites the order chunk by chunk, then appends, a few chunk writes in flight.
void pump(reconciler_ptr self) {
  auto& st = self->state;
  const std::size_t cs = storage::state_store::order_chunk_size;
  const std::uint64_t size = st.job.order_size;
  while (!st.finished && st.writes_in_flight < max_writes_in_flight) {
    if (st.next_first <= size) {
      const auto first = st.next_first;
      st.next_first += cs;
      auto entries = st.ctx.store->read_order(st.job.job_id, first, cs);
      if (!entries) return store_failed(self, entries.err());
      auto changed = apply_chunk(self, first, *entries);
      if (!changed) return store_failed(self, changed.err());
      const auto chunk_no = static_cast<std::uint32_t>((first - 1) / cs);
      if (first + cs > size) {  // the last chunk: appended items may extend it
        st.tail = std::move(entries.value());
        st.tail_chunk = chunk_no;
        st.tail_dirty = *changed;
      } else if (*changed) {
        write_chunk(self, chunk_no, std::move(entries.value()));
      }
      continue;
    }
    if (!st.tail_prepared) {
      st.tail_prepared = true;
      if (st.tail.size() == cs) {  // a full last chunk is final; appends start a new one
        if (st.tail_dirty) write_chunk(self, st.tail_chunk, std::move(st.tail));
        st.tail.clear();
        st.tail_dirty = false;
        ++st.tail_chunk;
      } else if (size == 0) {
        st.tail_chunk = 0;
      }
      continue;
    }
    if (!st.appends_done) {
      // Items the order lacks, in id order: pending ones are appended, in_progress ones need
      // a person (appended only with dispatch_unreconciled).
      auto a = st.appends->next();
      if (!a) return store_failed(self, a.err());
      if (*a == nullptr) {
        st.appends_done = true;
        continue;
      }
      const storage::order_entry e{uuid_at(*a), static_cast<api::item_status>((*a)[16]),
                                   ((*a)[17] & 1) != 0};
      const auto action = reconcile(e.remote_status, local_state::none, true);
      bool append = action == reconcile_action::dispatch;
      if (action == reconcile_action::needs_reconciliation) {
        ++st.job.counters.needs_reconciliation;
        report(self, e.id, e.remote_status, action);
        append = st.ctx.settings.dispatch_unreconciled;
      }
      if (!append) continue;
      st.tail.push_back(e);
      st.tail_dirty = true;
      ++st.new_size;
      ++st.result.appended;
      if (st.tail.size() == cs) {
        flush_tail(self);
        ++st.tail_chunk;
      }
      continue;
    }
    if (!st.tail_flushed) {
      st.tail_flushed = true;
      if (st.tail_dirty) flush_tail(self);
      continue;
    }
    break;
  }
  if (!st.finished && st.tail_flushed && st.writes_in_flight == 0 && !st.committing)
    commit_order(self);
}

/// Sorts the re-listing and the order by id and joins them: a verdict per seq (its item's
/// latest listing, or absent) and the listed items the order lacks.
status<storage::store_errc> join(reconciler_ptr self, bool& offset_duplicates) {
  auto& st = self->state;
  auto& store = *st.ctx.store;
  const auto& job_id = st.job.job_id;
  const auto run = st.ctx.settings.sort_run_items;
  storage::external_sorter listing{store, job_id, listing_space, scope_width, run};
  bool offset_listing = false;  // listing_mode::parallel: its pages have no request cursor
  std::uint32_t arrival = 0;
  store_status added = ok_v;
  auto walked = store.for_each_page_entries(
      job_id, st.job.listing_epoch,
      [&](const storage::page_record& page, std::span<const storage::order_entry> entries) {
        if (page.page_no > 0 && page.request_cursor.empty()) offset_listing = true;
        added = add_scope_records(listing, entries, arrival);
        return added.ok();
      });
  if (!walked) return walked;
  if (!added) return added;
  if (auto s = listing.seal(); !s) return s;

  storage::external_sorter order{store, job_id, order_space, order_width, run};
  const std::size_t cs = storage::state_store::order_chunk_size;
  std::array<std::uint8_t, order_width> orec{};
  for (std::uint64_t first = 1; first <= st.job.order_size; first += cs) {
    auto entries = store.read_order(job_id, first, cs);
    if (!entries) return std::move(entries).err();
    for (std::size_t i = 0; i < entries->size(); ++i) {
      std::memcpy(orec.data(), (*entries)[i].id.bytes.data(), 16);
      put_be(orec.data() + 16, first + i, 8);
      if (auto s = order.add(orec.data()); !s) return s;
    }
  }
  if (auto s = order.seal(); !s) return s;

  st.verdicts =
      std::make_unique<storage::external_sorter>(store, job_id, verdict_space, verdict_width, run);
  st.appends =
      std::make_unique<storage::external_sorter>(store, job_id, append_space, append_width, run);
  latest_listing latest{listing};
  auto l = latest.next();
  if (!l) return std::move(l).err();
  auto o = order.next();
  if (!o) return std::move(o).err();
  std::array<std::uint8_t, verdict_width> vrec{};
  std::array<std::uint8_t, append_width> arec{};
  for (;;) {
    const bool have_l = l->has_value();
    const bool have_o = *o != nullptr;
    if (!have_l && !have_o) break;
    const int cmp = !have_l ? 1 : !have_o ? -1 : std::memcmp((*l)->id.bytes.data(), *o, 16);
    if (cmp <= 0) {
      const auto& e = **l;
      if (cmp == 0) {  // in the order: its verdict is its latest listing
        put_be(vrec.data(), get_be(*o + 16, 8), 8);
        vrec[8] = static_cast<std::uint8_t>(e.remote_status);
        vrec[9] = e.has_tracking ? 1 : 0;
        if (auto s = st.verdicts->add(vrec.data()); !s) return s;
        o = order.next();
        if (!o) return std::move(o).err();
      } else {  // listed, not in the order
        std::memcpy(arec.data(), e.id.bytes.data(), 16);
        arec[16] = static_cast<std::uint8_t>(e.remote_status);
        arec[17] = e.has_tracking ? 1 : 0;
        if (auto s = st.appends->add(arec.data()); !s) return s;
      }
      l = latest.next();
      if (!l) return std::move(l).err();
    } else {  // in the order, no longer listed
      put_be(vrec.data(), get_be(*o + 16, 8), 8);
      vrec[8] = absent;
      vrec[9] = 0;
      if (auto s = st.verdicts->add(vrec.data()); !s) return s;
      o = order.next();
      if (!o) return std::move(o).err();
    }
  }
  st.job.counters.duplicates = latest.duplicates();
  offset_duplicates = offset_listing && latest.duplicates() > 0;
  if (auto s = st.verdicts->seal(); !s) return s;
  return st.appends->seal();
}

void reconcile_order(reconciler_ptr self) {
  auto& st = self->state;
  auto wm = st.ctx.store->load_watermarks(st.job.job_id);
  if (!wm) return store_failed(self, wm.err());
  st.marks = *wm;
  // Runs left by an interrupted reconciliation (or ordering) are stale: start over.
  if (auto dropped = st.ctx.store->drop_scratch(st.job.job_id); !dropped)
    return store_failed(self, dropped.err());
  bool offset_duplicates = false;
  if (auto joined = join(self, offset_duplicates); !joined) return store_failed(self, joined.err());
  if (auto why = short_listing(st.ctx, st.job); !why.empty())
    return finish(self, false, job_errc::short_listing, std::move(why));
  if (offset_duplicates)
    return finish(self, false, job_errc::parallel_listing_mismatch,
                  "the offset listing returned " + std::to_string(st.job.counters.duplicates) +
                      " items twice, so others may have been skipped; listing again with "
                      "cursors");
  st.new_size = st.job.order_size;
  // Recounted by every reconciliation (those items are never in the order, so each
  // reconciliation finds all of them again).
  st.job.counters.needs_reconciliation = 0;
  pump(self);
}

phase_actor::behavior_type reconciler_behavior(reconciler_ptr self, job_context ctx,
                                               storage::job_record job,
                                               job_supervisor_actor supervisor) {
  auto& st = self->state;
  st.ctx = std::move(ctx);
  st.job = std::move(job);
  st.supervisor = std::move(supervisor);
  return {
      [self](run_atom) { reconcile_order(self); },
  };
}

}  // namespace

phase_actor spawn_reconciler(caf::actor_system& sys, job_context ctx, storage::job_record job,
                             job_supervisor_actor supervisor) {
  // Detached: sorting and joining read and write the store synchronously.
  return sys.spawn<caf::detached>(reconciler_behavior, std::move(ctx), std::move(job),
                                  std::move(supervisor));
}

status<storage::store_errc> drop_previous_epochs(storage::state_store& store,
                                                 const storage::job_record& job) {
  for (std::uint32_t e = 0; e < job.listing_epoch; ++e) {
    auto st = store.drop_pages(job.job_id, e);
    if (!st.ok()) return st;
  }
  return ok_v;
}

}  // namespace ei::actors::detail
