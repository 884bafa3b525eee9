// The reconciling phase: a job resumed after its order was fixed has re-listed its items
// (a new epoch); this applies the reconciliation table to the persisted order without
// renumbering it. Entries no longer in scope get their new remote status written into their
// order entry (the sequencer passes over them); items the listing shows that the order lacks
// are appended (pending), or reported (in_progress: needs reconciliation). Then the order is
// made official again with one synced write, and the previous listing's pages are dropped.
#include <algorithm>

#include <caf/all.hpp>

#include "actors/detail/job_parts.hpp"
#include "actors/reconcile.hpp"

namespace ei::actors::detail {
namespace {

struct relisted {
  api::uuid id;
  api::item_status status;
  bool has_tracking;
  bool found = false;  // present in the persisted order
};

struct reconciler_state {
  job_context ctx;
  storage::job_record job;
  job_supervisor_actor supervisor;
  std::uint32_t writes_in_flight = 0;
  bool all_written = false;
  bool finished = false;
  reconcile_result result;
  static inline const char* name = "reconciler";
};

using reconciler_ptr = phase_actor::stateful_pointer<reconciler_state>;

void finish(reconciler_ptr self, bool ok, std::string code, std::string message) {
  finish_phase(self, ok, std::move(code), std::move(message),
               [](auto& st) { st.result.job = st.job; });
}

void commit_order(reconciler_ptr self) {
  auto& st = self->state;
  if (!st.all_written || st.writes_in_flight > 0 || st.finished) return;
  st.job.phase = storage::job_phase::dispatching;
  st.job.listing_complete = true;
  st.job.counters.in_scope = st.job.order_size;
  self->request(st.ctx.store_writer, st.ctx.settings.request_timeout, order_atom::value, st.job)
      .then(
          [self](const store_reply& r) {
            auto& s = self->state;
            if (!r.ok) return finish(self, false, "store", r.message);
            // The previous listing has served its purpose; keep the store lean and verifiable.
            auto dropped = drop_previous_epochs(*s.ctx.store, s.job);
            if (!dropped.ok()) return finish(self, false, "store", dropped.err().message);
            finish(self, true, {}, {});
          },
          [self](caf::error& err) { finish(self, false, "internal", "store: " + to_string(err)); });
}

void write_chunk(reconciler_ptr self, std::uint32_t chunk_no,
                 std::vector<storage::order_entry> entries) {
  auto& st = self->state;
  ++st.writes_in_flight;
  self->request(st.ctx.store_writer, st.ctx.settings.request_timeout, order_atom::value,
                order_chunk{st.job.job_id, chunk_no, std::move(entries)})
      .then(
          [self](const store_reply& r) {
            --self->state.writes_in_flight;
            if (!r.ok) return finish(self, false, "store", r.message);
            commit_order(self);
          },
          [self](caf::error& err) { finish(self, false, "internal", "store: " + to_string(err)); });
}

void report(reconciler_ptr self, const api::uuid& id, std::optional<api::item_status> remote,
            reconcile_action action) {
  self->state.result.reported.push_back(
      {id, remote ? std::string(api::to_string(*remote)) : std::string("absent"),
       std::string(to_string(action))});
}

void reconcile_order(reconciler_ptr self) {
  auto& st = self->state;
  auto wm = st.ctx.store->load_watermarks(st.job.job_id);
  if (!wm) return finish(self, false, "store", wm.err().message);

  // The re-listing, deduplicated (last listing of an item wins), sorted by id.
  std::vector<relisted> listed;
  bool offset_listing = false;  // listing_mode::parallel: its pages have no request cursor
  auto walked = st.ctx.store->for_each_page(
      st.job.job_id, st.job.listing_epoch, [&](storage::page_record&& page) {
        if (page.page_no > 0 && page.request_cursor.empty()) offset_listing = true;
        for (auto& item : page.items) {
          listed.push_back({item.id, item.remote_status, !item.tracking.empty()});
        }
        return true;
      });
  if (!walked.ok()) return finish(self, false, "store", walked.err().message);
  {
    std::vector<std::size_t> idx(listed.size());
    for (std::size_t i = 0; i < idx.size(); ++i)
      idx[i] = i;
    std::stable_sort(idx.begin(), idx.end(),
                     [&](std::size_t a, std::size_t b) { return listed[a].id < listed[b].id; });
    std::vector<relisted> dedup;
    dedup.reserve(listed.size());
    auto& counters = st.job.counters;
    counters.by_remote_status = {};
    counters.duplicates = 0;
    for (std::size_t k = 0; k < idx.size(); ++k) {
      if (k + 1 < idx.size() && listed[idx[k + 1]].id == listed[idx[k]].id) {
        ++counters.duplicates;
        continue;
      }
      dedup.push_back(listed[idx[k]]);
      ++counters.by_remote_status[static_cast<std::size_t>(listed[idx[k]].status)];
    }
    listed = std::move(dedup);
    if (offset_listing && counters.duplicates > 0)
      return finish(self, false, "parallel_listing_mismatch",
                    "the offset listing returned " + std::to_string(counters.duplicates) +
                        " items twice, so others may have been skipped; listing again with "
                        "cursors");
  }
  auto lookup = [&](const api::uuid& id) -> relisted* {
    auto it = std::lower_bound(listed.begin(), listed.end(), id,
                               [](const relisted& r, const api::uuid& k) { return r.id < k; });
    return it != listed.end() && it->id == id ? &*it : nullptr;
  };

  // Walk the persisted order chunk by chunk; rewrite only chunks that change. The last chunk
  // is held back: appended items may extend it.
  const std::size_t cs = storage::state_store::order_chunk_size;
  const std::uint64_t size = st.job.order_size;
  std::vector<storage::order_entry> tail;
  std::uint32_t tail_chunk = 0;
  bool tail_dirty = false;
  for (std::uint64_t first = 1; first <= size; first += cs) {
    auto entries = st.ctx.store->read_order(st.job.job_id, first, cs);
    if (!entries) return finish(self, false, "store", entries.err().message);
    bool changed = false;
    for (std::size_t i = 0; i < entries->size(); ++i) {
      auto& e = (*entries)[i];
      const std::uint64_t seq = first + i;
      auto* r = lookup(e.id);
      if (r != nullptr) r->found = true;
      const auto local = seq <= wm->acked_through        ? local_state::acked
                         : seq <= wm->dispatched_through ? local_state::dispatched
                                                         : local_state::scoped;
      const auto remote = r ? std::optional<api::item_status>(r->status) : std::nullopt;
      const auto action = reconcile(remote, local, true);
      if (action == reconcile_action::skip_done) continue;
      if (action == reconcile_action::out_of_scope) ++st.result.skipped_out_of_scope;
      if (action == reconcile_action::out_of_scope_reported) {
        ++st.result.out_of_scope_reported;
        report(self, e.id, remote, action);
      }
      const auto new_status = remote ? *remote : api::item_status::unknown;
      if (e.remote_status != new_status || (r && r->has_tracking && !e.has_tracking)) {
        e.remote_status = new_status;
        if (r && r->has_tracking) e.has_tracking = true;
        changed = true;
      }
    }
    const auto chunk_no = static_cast<std::uint32_t>((first - 1) / cs);
    if (first + cs > size) {
      tail = std::move(entries.value());
      tail_chunk = chunk_no;
      tail_dirty = changed;
    } else if (changed) {
      write_chunk(self, chunk_no, std::move(entries.value()));
    }
  }
  if (tail.size() == cs) {  // a full last chunk is final; appends start a new one
    if (tail_dirty) write_chunk(self, tail_chunk, std::move(tail));
    tail.clear();
    tail_dirty = false;
    ++tail_chunk;
  } else if (size == 0) {
    tail_chunk = 0;
  }

  // Items the order lacks: pending ones are appended (in id order), in_progress ones need a
  // person (appended only with dispatch_unreconciled).
  std::uint64_t new_size = size;
  for (auto& r : listed) {
    if (r.found) continue;
    const auto action = reconcile(r.status, local_state::none, true);
    bool append = action == reconcile_action::dispatch;
    if (action == reconcile_action::needs_reconciliation) {
      ++st.job.counters.needs_reconciliation;
      report(self, r.id, r.status, action);
      append = st.ctx.settings.dispatch_unreconciled;
    }
    if (!append) continue;
    tail.push_back({r.id, r.status, r.has_tracking});
    tail_dirty = true;
    ++new_size;
    ++st.result.appended;
    if (tail.size() == cs) {
      write_chunk(self, tail_chunk++, std::move(tail));
      tail.clear();
      tail_dirty = false;
    }
  }
  if (tail_dirty) write_chunk(self, tail_chunk, std::move(tail));
  st.job.order_size = new_size;
  st.all_written = true;
  commit_order(self);
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
  return sys.spawn(reconciler_behavior, std::move(ctx), std::move(job), std::move(supervisor));
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
