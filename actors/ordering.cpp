// The ordering phase: reads the committed pages of the current listing, deduplicates by
// accountingEntryId (the last listing of an item wins), keeps the in-scope items and fixes
// their order: `entry_id` sorts by id; `chronological` streams the data layer's pages (only
// `accountingEntryId` and `date` are parsed) and sorts by (date, id), undated items last.
// The order is written in chunks and committed with the job record in one synced write.
#include <algorithm>
#include <numeric>
#include <set>
#include <vector>

#include <caf/all.hpp>

#include "actors/detail/job_parts.hpp"
#include "actors/reconcile.hpp"

namespace ei::actors::detail {
namespace {

struct orderer_state {
  job_context ctx;
  storage::job_record job;
  job_supervisor_actor supervisor;
  std::vector<storage::order_entry> scoped;  // sorted by id
  std::vector<std::int64_t> dates;           // parallel to `scoped`; INT64_MAX = undated
  std::string cursor;
  std::set<std::string> seen_cursors;
  std::uint32_t empty_run = 0;
  std::uint32_t chunks_in_flight = 0;
  std::uint32_t walk_restarts = 0;
  bool finished = false;
  order_result result;
  static inline const char* name = "orderer";
};

using orderer_ptr = phase_actor::stateful_pointer<orderer_state>;
constexpr std::int64_t undated = INT64_MAX;

void finish(orderer_ptr self, bool ok, std::string code, std::string message) {
  finish_phase(self, ok, std::move(code), std::move(message),
               [](auto& st) { st.result.job = st.job; });
}

/// Reads the listing back and leaves the deduplicated in-scope entries, sorted by id.
bool collect_scope(orderer_ptr self) {
  auto& st = self->state;
  struct seen_item {
    storage::order_entry entry;
    std::uint64_t arrival;
  };
  std::vector<seen_item> all;
  all.reserve(st.job.counters.listed);
  std::uint64_t arrival = 0;
  auto walked = st.ctx.store->for_each_page(
      st.job.job_id, st.job.listing_epoch, [&](storage::page_record&& page) {
        for (auto& item : page.items)
          all.push_back({storage::order_entry{item.id, item.remote_status, !item.tracking.empty()},
                         arrival++});
        return true;
      });
  if (!walked.ok()) {
    finish(self, false, "store", walked.err().message);
    return false;
  }
  std::sort(all.begin(), all.end(), [](const seen_item& a, const seen_item& b) {
    return a.entry.id != b.entry.id ? a.entry.id < b.entry.id : a.arrival < b.arrival;
  });
  auto& counters = st.job.counters;
  counters.by_remote_status = {};
  counters.duplicates = 0;
  counters.in_scope = 0;
  counters.needs_reconciliation = 0;
  st.scoped.clear();
  for (std::size_t i = 0; i < all.size(); ++i) {
    if (i + 1 < all.size() && all[i + 1].entry.id == all[i].entry.id) {
      ++counters.duplicates;  // a later listing of the same item supersedes this one
      continue;
    }
    const auto& e = all[i].entry;
    ++counters.by_remote_status[static_cast<std::size_t>(e.remote_status)];
    // A first listing has no local records: the table decides (state_lost only when the
    // operator says this job's state was lost).
    const auto action =
        reconcile(e.remote_status, local_state::none, st.ctx.settings.recover_lost_state);
    if (action == reconcile_action::needs_reconciliation) {
      ++counters.needs_reconciliation;
      st.result.reported.push_back(
          {e.id, std::string(api::to_string(e.remote_status)), std::string(to_string(action))});
      if (!st.ctx.settings.dispatch_unreconciled) continue;
    } else if (action != reconcile_action::dispatch) {
      continue;
    }
    st.scoped.push_back(e);
  }
  counters.in_scope = st.scoped.size();
  return true;
}

void write_order(orderer_ptr self, const std::vector<std::uint32_t>& order) {
  auto& st = self->state;
  const std::size_t chunk = storage::state_store::order_chunk_size;
  std::uint32_t chunk_no = 0;
  for (std::size_t start = 0; start < order.size(); start += chunk, ++chunk_no) {
    order_chunk c{st.job.job_id, chunk_no, {}};
    const std::size_t end = std::min(order.size(), start + chunk);
    c.entries.reserve(end - start);
    for (std::size_t i = start; i < end; ++i)
      c.entries.push_back(st.scoped[order[i]]);
    ++st.chunks_in_flight;
    self->request(st.ctx.store_writer, st.ctx.settings.request_timeout, order_atom::value,
                  std::move(c))
        .then(
            [self](const store_reply& r) {
              auto& s = self->state;
              --s.chunks_in_flight;
              if (!r.ok) return finish(self, false, "store", r.message);
              if (s.chunks_in_flight == 0 && !s.finished) {
                // All chunks are in: commit the record that makes the order official.
                s.job.phase = storage::job_phase::dispatching;
                s.job.order_size = s.scoped.size();
                self->request(s.ctx.store_writer, s.ctx.settings.request_timeout, order_atom::value,
                              s.job)
                    .then(
                        [self](const store_reply& done) {
                          if (!done.ok) return finish(self, false, "store", done.message);
                          auto dropped =
                              drop_previous_epochs(*self->state.ctx.store, self->state.job);
                          if (!dropped.ok())
                            return finish(self, false, "store", dropped.err().message);
                          finish(self, true, {}, {});
                        },
                        [self](caf::error& err) {
                          finish(self, false, "internal", "store: " + to_string(err));
                        });
              }
            },
            [self](caf::error& err) {
              finish(self, false, "internal", "store: " + to_string(err));
            });
  }
  if (order.empty()) {
    st.job.phase = storage::job_phase::dispatching;
    st.job.order_size = 0;
    self->request(st.ctx.store_writer, st.ctx.settings.request_timeout, order_atom::value, st.job)
        .then(
            [self](const store_reply& done) {
              if (!done.ok) return finish(self, false, "store", done.message);
              finish(self, true, {}, {});
            },
            [self](caf::error& err) {
              finish(self, false, "internal", "store: " + to_string(err));
            });
  }
}

void order_by_id(orderer_ptr self) {
  std::vector<std::uint32_t> order(self->state.scoped.size());
  std::iota(order.begin(), order.end(), 0U);
  write_order(self, order);
}

void order_by_date(orderer_ptr self) {
  auto& st = self->state;
  std::vector<std::uint32_t> order(st.scoped.size());
  std::iota(order.begin(), order.end(), 0U);
  std::stable_sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) {
    return st.dates[a] < st.dates[b];  // ties keep id order: `scoped` is sorted by id
  });
  st.result.undated =
      static_cast<std::uint64_t>(std::count(st.dates.begin(), st.dates.end(), undated));
  write_order(self, order);
}

void fetch_dates(orderer_ptr self);

/// A broken data-layer walk (a page that does not parse, a cursor cycle, empty pages, an
/// expired cursor) is walked again from the start a bounded number of times: such faults are
/// usually transient, and the walk is idempotent.
void walk_failed(orderer_ptr self, std::string code, std::string message, bool restartable) {
  auto& st = self->state;
  if (!restartable || st.walk_restarts >= 3)
    return finish(self, false, std::move(code), std::move(message));
  ++st.walk_restarts;
  std::fill(st.dates.begin(), st.dates.end(), undated);
  st.cursor.clear();
  st.seen_cursors.clear();
  st.empty_run = 0;
  fetch_dates(self);
}

void on_dates(orderer_ptr self, dates_reply& reply) {
  auto& st = self->state;
  if (st.finished) return;
  ++st.result.requests;
  if (reply.attempts > 1) st.result.retries += reply.attempts - 1;
  if (!reply.ok) {
    const auto& f = reply.failure;
    std::string code = failure_code(f);
    std::string msg = "data layer (export-items): " + f.message;
    if (!f.type.empty()) msg += " (type " + f.type + ")";
    return walk_failed(self, std::move(code), std::move(msg),
                       f.cursor_rejected || f.kind == "decode");
  }
  for (const auto& d : reply.page.data) {
    auto it = std::lower_bound(
        st.scoped.begin(), st.scoped.end(), d.accounting_entry_id,
        [](const storage::order_entry& e, const api::uuid& id) { return e.id < id; });
    if (it != st.scoped.end() && it->id == d.accounting_entry_id) {
      auto& slot = st.dates[static_cast<std::size_t>(it - st.scoped.begin())];
      if (slot == undated) slot = d.date_ms;
    }
  }
  const auto& pg = reply.page.pagination;
  if (!pg.has_next_page) return order_by_date(self);
  std::string end = pg.end_cursor.value_or("");
  if (reply.page.data.empty()) {
    if (++st.empty_run > st.ctx.settings.max_empty_pages)
      return walk_failed(self, "empty_pages",
                         "data layer: " + std::to_string(st.empty_run) +
                             " consecutive empty pages claimed a next page",
                         true);
    if (end.empty() || end == st.cursor) return fetch_dates(self);  // ask again
  } else {
    st.empty_run = 0;
  }
  if (end.empty() || end == st.cursor || st.seen_cursors.count(end) != 0)
    return walk_failed(self, "cursor_cycle",
                       "data layer listing revisits cursor '" + end + "' or lacks one", true);
  st.seen_cursors.insert(st.cursor);
  st.cursor = std::move(end);
  fetch_dates(self);
}

void fetch_dates(orderer_ptr self) {
  auto& st = self->state;
  page_request req{st.job.job_id, st.ctx.settings.page_size, st.cursor, std::nullopt};
  self->request(st.ctx.fetcher, st.ctx.settings.request_timeout, list_dates_atom::value, req)
      .then([self](dates_reply& reply) { on_dates(self, reply); },
            [self](caf::error& err) {
              finish(self, false, "timeout", "fetcher: " + to_string(err));
            });
}

phase_actor::behavior_type orderer_behavior(orderer_ptr self, job_context ctx,
                                            storage::job_record job,
                                            job_supervisor_actor supervisor) {
  auto& st = self->state;
  st.ctx = std::move(ctx);
  st.job = std::move(job);
  st.supervisor = std::move(supervisor);
  return {
      [self](run_atom) {
        auto& s = self->state;
        s.job.phase = storage::job_phase::ordering;
        if (!collect_scope(self)) return;
        if (s.job.ordering == storage::ordering_mode::entry_id || s.scoped.empty()) {
          order_by_id(self);
        } else {
          s.dates.assign(s.scoped.size(), undated);
          fetch_dates(self);
        }
      },
  };
}

}  // namespace

phase_actor spawn_orderer(caf::actor_system& sys, job_context ctx, storage::job_record job,
                          job_supervisor_actor supervisor) {
  return sys.spawn(orderer_behavior, std::move(ctx), std::move(job), std::move(supervisor));
}

}  // namespace ei::actors::detail
