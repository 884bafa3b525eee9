// The ordering phase: reads the committed pages of the current listing, deduplicates by
// accountingEntryId (the last listing of an item wins), keeps the in-scope items and fixes
// their order: `entry_id` sorts by id; `chronological` streams the data layer's pages (only
// `accountingEntryId` and `date` are parsed) and sorts by (date, id), undated items last.
//
// Memory does not grow with the job: every sort is a storage::external_sorter (sorted runs in
// the store's scratch space, merged back), and the order is written in chunks as the merge
// produces it, a few chunks in flight. The order is made official by one synced write, which
// also drops the runs; an order of one chunk is written in that same write.
//
// Where it runs: detached (its own thread) when its sorts may spill runs to the store, which
// blocks; a small job whose listing fits in one order chunk and in one in-memory run, ordered
// by id (or with nothing in scope, so without a data-layer walk), runs on the shared scheduler
// instead: it then only reads the store, and writes through the store actor (issue 14: a
// thread per tiny job cost ~0.1 ms of CPU in thread creation and wake-ups).
//
// A data-layer page that does not decode is fetched again alone after a backoff (as the
// paginator does, up to `page_attempts`); the walk starts over only for what needs it.
#include <algorithm>
#include <array>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include <caf/all.hpp>

#include "actors/detail/cursor_walk.hpp"
#include "actors/detail/job_parts.hpp"
#include "actors/detail/scope_records.hpp"
#include "actors/reconcile.hpp"
#include "storage/external_sort.hpp"

namespace ei::actors::detail {
namespace {

using storage::store_result;
using storage::store_status;

// Scratch spaces of the job's sorters.
constexpr std::uint8_t scope_space = 0;
constexpr std::uint8_t dates_space = 1;
constexpr std::uint8_t chrono_space = 2;

// Scope records: detail/scope_records.hpp.
// Date record: id (16) | arrival u32 BE | date (8, biased BE). The first of an id wins.
constexpr std::uint8_t dates_width = 28;
// Chronological record: date (8, biased BE; undated = all ones) | id (16) | status | flags.
constexpr std::uint8_t chrono_width = 26;

constexpr std::uint32_t max_chunks_in_flight = 4;

/// Signed milliseconds → unsigned with the same order (flip the sign bit).
std::uint64_t biased(std::int64_t ms) {
  return static_cast<std::uint64_t>(ms) ^ (std::uint64_t{1} << 63);
}
constexpr std::uint64_t undated_key = ~std::uint64_t{0};

/// The orderer's own interface: its phase interface plus the delayed retry of one data-layer
/// page (`cursor_retry` for the cursor walk's next page, else the offset page's number), tagged
/// with the walk it belongs to.
using orderer_actor = phase_actor::extend<caf::reacts_to<retry_atom, std::uint32_t, std::uint32_t>>;
constexpr std::uint32_t cursor_retry = ~std::uint32_t{0};

struct orderer_state {
  job_context ctx;
  storage::job_record job;
  job_supervisor_actor supervisor;
  std::unique_ptr<storage::external_sorter> scope;
  std::unique_ptr<storage::external_sorter> dates;
  std::unique_ptr<storage::external_sorter> chrono;
  std::uint64_t scope_candidates = 0;      // records listed in a status the scope may take
  bool offset_listing = false;             // the listing used offset pages (listing_mode::parallel)
  bool offset_duplicate = false;           // ... and returned an item twice
  std::unique_ptr<latest_listing> latest;  // the merged scope, one entry per id
  // Data-layer walk.
  std::uint32_t date_arrival = 0;
  std::uint32_t walk_epoch = 0;  // replies of an abandoned walk are dropped
  // Offset walk of the data layer (listing_mode::parallel): pages in flight, checked after.
  bool dates_by_offset = false;
  std::uint64_t date_total = 0;
  std::uint32_t date_pages = 0;
  std::uint32_t next_date_page = 0;
  std::uint32_t date_fetches_in_flight = 0;
  std::uint32_t date_pages_done = 0;
  std::uint64_t date_items = 0;
  cursor_walk walk{"data layer"};  // the cursor walk's hazard guard (detail/cursor_walk.hpp)
  std::uint32_t walk_restarts = 0;
  std::uint32_t cursor_page_failures = 0;                       // the cursor walk's next page
  std::map<std::uint32_t, std::uint32_t> offset_page_failures;  // per offset page
  // Writing the order.
  std::uint32_t next_chunk = 0;
  std::uint32_t chunks_in_flight = 0;
  bool source_done = false;
  bool committing = false;
  bool in_memory = false;  // on the shared scheduler: the sorts never spill (orders_in_memory)
  bool finished = false;
  order_result result;
  static inline const char* name = "orderer";
};

using orderer_ptr = orderer_actor::stateful_pointer<orderer_state>;

/// Schedules a data-layer page again after a backoff while it has attempts left; false
/// otherwise.
bool retry_page_again(orderer_ptr self, std::uint32_t which, std::uint32_t& failures) {
  auto& st = self->state;
  const auto delay = page_retry_delay(st.ctx.settings, ++failures);
  if (!delay) return false;
  ++st.result.retries;  // counted with the HTTP retries
  self->delayed_send(self, *delay, retry_atom::value, st.walk_epoch, which);
  return true;
}

/// Schedules a data-layer page again after a backoff when its failure is one of that page
/// (it did not decode) and it has attempts left; false otherwise.
bool retry_date_page(orderer_ptr self, const fetch_failure& f, std::uint32_t which,
                     std::uint32_t& failures) {
  if (f.code != fetch_errc::decode) return false;
  return retry_page_again(self, which, failures);
}

void finish(orderer_ptr self, bool ok, job_failure code, std::string message) {
  finish_phase(self, ok, code, std::move(message), [](auto& st) { st.result.job = st.job; });
}

void store_failed(orderer_ptr self, const error<storage::store_errc>& e) {
  finish(self, false, job_errc::store, e.message);
}

/// Reads the listing into the scope sorter.
bool fill_scope(orderer_ptr self) {
  auto& st = self->state;
  store_status added = ok_v;
  std::uint32_t arrival = 0;
  auto walked = st.ctx.store->for_each_page_entries(
      st.job.job_id, st.job.listing_epoch,
      [&](const storage::page_record& page, std::span<const storage::order_entry> entries) {
        if (page.page_no > 0 && page.request_cursor.empty()) st.offset_listing = true;
        for (const auto& e : entries)
          st.scope_candidates += in_scope(e.remote_status) ? 1 : 0;
        added = add_scope_records(*st.scope, entries, arrival);
        return added.ok();
      });
  if (!walked) {
    store_failed(self, walked.err());
    return false;
  }
  if (!added) {
    store_failed(self, added.err());
    return false;
  }
  if (auto sealed = st.scope->seal(); !sealed) {
    store_failed(self, sealed.err());
    return false;
  }
  st.latest = std::make_unique<latest_listing>(*st.scope);
  // by_remote_status stays as the listing counted it (every listed record, duplicates
  // included: storage::job_counters); the rest is counted by the merge.
  auto& counters = st.job.counters;
  counters.duplicates = 0;
  counters.in_scope = 0;
  counters.needs_reconciliation = 0;
  return true;
}

/// The next item of the deduplicated scope (by id), counting as it goes; nullopt at the end.
/// Fails the phase (and returns an error) on a store error or on a duplicate in an offset
/// listing (a duplicate there means an item may have been skipped).
result<std::optional<storage::order_entry>, storage::store_errc> next_scoped(orderer_ptr self) {
  auto& st = self->state;
  auto& counters = st.job.counters;
  for (;;) {
    auto next = st.latest->next();
    if (!next) return std::move(next).err();
    counters.duplicates = st.latest->duplicates();
    if (st.offset_listing && counters.duplicates > 0) {
      st.offset_duplicate = true;
      return make_error(storage::store_errc::invalid_argument,
                        "the offset listing returned an item twice, so another may have been "
                        "skipped; listing again with cursors");
    }
    if (!*next) return std::optional<storage::order_entry>{};
    const auto& e = **next;
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
    ++counters.in_scope;
    return std::optional<storage::order_entry>{e};
  }
}

void scope_failed(orderer_ptr self, const error<storage::store_errc>& e) {
  if (self->state.offset_duplicate)
    return finish(self, false, job_errc::parallel_listing_mismatch, e.message);
  store_failed(self, e);
}

/// The next entry of the order; nullopt at the end.
result<std::optional<storage::order_entry>, storage::store_errc> next_ordered(orderer_ptr self) {
  auto& st = self->state;
  if (!st.chrono) return next_scoped(self);
  auto r = st.chrono->next();
  if (!r) return std::move(r).err();
  if (*r == nullptr) return std::optional<storage::order_entry>{};
  const std::uint8_t* p = *r;
  return std::optional<storage::order_entry>{
      storage::order_entry{uuid_at(p + 8), static_cast<api::item_status>(p[24]), (p[25] & 1) != 0}};
}

/// Makes the order official; `last` is the whole order when it fits in one chunk (written in
/// the same synced write), else empty (every chunk was written before).
void commit_order(orderer_ptr self, std::vector<storage::order_entry> last = {}) {
  auto& st = self->state;
  if (auto why = short_listing(st.ctx, st.job); !why.empty())
    return finish(self, false, job_errc::short_listing, std::move(why));
  st.committing = true;
  st.job.phase = storage::job_phase::dispatching;
  st.job.order_size = st.job.counters.in_scope;
  order_finish f{st.job, {}};
  if (!last.empty()) f.chunks.push_back({0, std::move(last)});
  self->request(st.ctx.store_writer, st.ctx.settings.request_timeout, order_atom::value,
                std::move(f))
      .then(
          [self](const store_reply& done) {
            if (!done.ok) return finish(self, false, job_errc::store, done.message);
            auto dropped = drop_previous_epochs(*self->state.ctx.store, self->state.job);
            if (!dropped.ok()) return finish(self, false, job_errc::store, dropped.err().message);
            finish(self, true, {}, {});
          },
          [self](caf::error& err) {
            finish(self, false, job_errc::internal, "store: " + to_string(err));
          });
}

/// Pulls the order from the merge chunk by chunk, a few chunks in flight to the store actor.
void pump_chunks(orderer_ptr self) {
  auto& st = self->state;
  while (!st.finished && !st.source_done && st.chunks_in_flight < max_chunks_in_flight) {
    order_chunk c{st.job.job_id, st.next_chunk, {}};
    c.entries.reserve(storage::state_store::order_chunk_size);
    while (c.entries.size() < storage::state_store::order_chunk_size) {
      auto e = next_ordered(self);
      if (!e) return scope_failed(self, e.err());
      if (!*e) {
        st.source_done = true;
        break;
      }
      c.entries.push_back(**e);
    }
    if (c.entries.empty()) break;
    if (st.source_done && st.next_chunk == 0) {
      // The whole order is one chunk: it becomes visible with the order size, in one write.
      ++st.next_chunk;
      return commit_order(self, std::move(c.entries));
    }
    ++st.next_chunk;
    ++st.chunks_in_flight;
    self->request(st.ctx.store_writer, st.ctx.settings.request_timeout, order_atom::value,
                  std::move(c))
        .then(
            [self](const store_reply& r) {
              --self->state.chunks_in_flight;
              if (!r.ok) return finish(self, false, job_errc::store, r.message);
              pump_chunks(self);
            },
            [self](caf::error& err) {
              finish(self, false, job_errc::internal, "store: " + to_string(err));
            });
  }
  if (!st.finished && st.source_done && st.chunks_in_flight == 0 && !st.committing)
    commit_order(self);
}

/// Joins the scope (by id) with the data layer's dates (by id) into the chronological sorter.
void order_by_date(orderer_ptr self) {
  auto& st = self->state;
  st.chrono = std::make_unique<storage::external_sorter>(
      *st.ctx.store, st.job.job_id, chrono_space, chrono_width, st.ctx.settings.sort_run_items);
  std::optional<std::array<std::uint8_t, dates_width>> date;  // first record of its id
  std::array<std::uint8_t, 16> last_date_id{};
  bool have_last = false;
  auto next_date = [&]() -> store_status {
    for (;;) {
      auto r = st.dates->next();
      if (!r) return std::move(r).err();
      if (*r == nullptr) {
        date.reset();
        return ok_v;
      }
      // Later records of an id repeat an item listed twice: the first date stands.
      if (have_last && std::memcmp(*r, last_date_id.data(), 16) == 0) continue;
      std::memcpy(last_date_id.data(), *r, 16);
      have_last = true;
      date.emplace();
      std::memcpy(date->data(), *r, dates_width);
      return ok_v;
    }
  };
  if (auto st0 = next_date(); !st0) return store_failed(self, st0.err());
  std::array<std::uint8_t, chrono_width> rec{};
  for (;;) {
    auto e = next_scoped(self);
    if (!e) return scope_failed(self, e.err());
    if (!*e) break;
    const auto& id = (*e)->id;
    while (date && std::memcmp(date->data(), id.bytes.data(), 16) < 0) {
      if (auto s = next_date(); !s) return store_failed(self, s.err());
    }
    std::uint64_t key = undated_key;
    if (date && std::memcmp(date->data(), id.bytes.data(), 16) == 0)
      key = get_be(date->data() + 20, 8);
    if (key == undated_key) ++st.result.undated;
    put_be(rec.data(), key, 8);
    std::memcpy(rec.data() + 8, id.bytes.data(), 16);
    rec[24] = static_cast<std::uint8_t>((*e)->remote_status);
    rec[25] = (*e)->has_tracking ? 1 : 0;
    if (auto s = st.chrono->add(rec.data()); !s) return store_failed(self, s.err());
  }
  st.dates.reset();
  if (auto sealed = st.chrono->seal(); !sealed) return store_failed(self, sealed.err());
  pump_chunks(self);
}

void fetch_dates(orderer_ptr self);
void start_date_walk(orderer_ptr self);

/// A fresh guard for the data layer's cursor chain: the same rules as the item listing's. The
/// data layer lists the job's items, so the walk expects numberOfItems (else what the listing
/// found, duplicates included).
cursor_walk data_layer_walk(const orderer_state& st) {
  return cursor_walk("data layer", {st.ctx.settings.max_empty_pages, st.ctx.settings.page_size,
                                    st.ctx.expected_items.value_or(st.job.counters.listed)});
}

/// Walks the data layer again with cursors, from the start (an offset walk did not add up).
void dates_by_cursor(orderer_ptr self) {
  auto& st = self->state;
  ++st.walk_epoch;
  st.dates_by_offset = false;
  if (auto s = st.dates->reset(); !s) return store_failed(self, s.err());
  st.date_arrival = 0;
  st.walk = data_layer_walk(st);
  st.cursor_page_failures = 0;
  fetch_dates(self);
}

/// The walk is complete: seal the dates; an offset walk must not have returned an id twice
/// (then another may have been skipped and would sort as undated), else walk with cursors.
void dates_complete(orderer_ptr self) {
  auto& st = self->state;
  if (auto sealed = st.dates->seal(); !sealed) return store_failed(self, sealed.err());
  if (st.dates_by_offset) {
    std::array<std::uint8_t, 16> last{};
    bool have_last = false;
    for (;;) {
      auto r = st.dates->next();
      if (!r) return store_failed(self, r.err());
      if (*r == nullptr) break;
      if (have_last && std::memcmp(*r, last.data(), 16) == 0) return dates_by_cursor(self);
      std::memcpy(last.data(), *r, 16);
      have_last = true;
    }
    if (auto s = st.dates->rewind(); !s) return store_failed(self, s.err());
  }
  order_by_date(self);
}

void add_dates(orderer_ptr self, const std::vector<api::export_item_date>& data,
               std::uint64_t first_arrival) {
  auto& st = self->state;
  std::array<std::uint8_t, dates_width> rec{};
  for (const auto& d : data) {
    std::memcpy(rec.data(), d.accounting_entry_id.bytes.data(), 16);
    put_be(rec.data() + 16, first_arrival++, 4);
    // A date that did not parse makes the item undated (ordered last, counted), as if the
    // data layer had not listed it.
    put_be(rec.data() + 20, d.date_ms ? biased(*d.date_ms) : undated_key, 8);
    if (auto s = st.dates->add(rec.data()); !s) return store_failed(self, s.err());
  }
}

void fetch_date_page(orderer_ptr self, std::uint32_t page_no);

void pump_date_pages(orderer_ptr self) {
  auto& st = self->state;
  // Data-layer pages are ~2.6 kB per item (a full ExportItemV3): fewer in flight than for the
  // control layer keeps the memory of a walk flat (4 x 500 items ~ 5 MiB of bodies).
  const auto limit = std::clamp<std::uint32_t>(st.ctx.settings.parallel_requests, 1, 4);
  while (!st.finished && st.next_date_page < st.date_pages && st.date_fetches_in_flight < limit)
    fetch_date_page(self, st.next_date_page++);
}

void on_date_page(orderer_ptr self, std::uint32_t page_no, dates_reply& reply) {
  auto& st = self->state;
  --st.date_fetches_in_flight;
  if (st.finished || !st.dates_by_offset) return;
  ++st.result.requests;
  if (reply.attempts > 1) st.result.retries += reply.attempts - 1;
  if (!reply.ok &&
      retry_date_page(self, reply.failure, page_no, st.offset_page_failures[page_no])) {
    ++st.date_fetches_in_flight;  // its slot stays taken until it is fetched again
    return;
  }
  // Any doubt about the offset walk (a failed page, no `total`, a count that does not add
  // up) is settled by the contract's cursor walk, which reports failures as they are.
  if (!reply.ok) return dates_by_cursor(self);
  if (page_no == 0) {
    if (!reply.page.pagination.total) return dates_by_cursor(self);
    st.date_total =
        static_cast<std::uint64_t>(std::max<std::int64_t>(0, *reply.page.pagination.total));
    st.date_pages = offset_page_count(*reply.page.pagination.total, st.ctx.settings.page_size);
  }
  // Arrival = position in the walk, whatever order the pages come back in.
  st.result.deviations.merge(reply.page.deviations);
  add_dates(self, reply.page.data, std::uint64_t{page_no} * st.ctx.settings.page_size);
  if (st.finished) return;
  st.date_items += reply.page.data.size();
  if (++st.date_pages_done == st.date_pages) {
    if (st.date_items != st.date_total) return dates_by_cursor(self);
    return dates_complete(self);
  }
  pump_date_pages(self);
}

/// Requests data-layer offset page `page_no`; its slot is already counted.
void request_date_page(orderer_ptr self, std::uint32_t page_no) {
  auto& st = self->state;
  const auto req =
      offset_page(st.job.job_id, st.ctx.settings.page_size, page_no, st.ctx.job_deadline_ms);
  self->request(st.ctx.fetcher, st.ctx.settings.fetch_timeout, list_dates_atom::value, req)
      .then(
          [self, page_no, epoch = st.walk_epoch](dates_reply& reply) {
            if (epoch != self->state.walk_epoch) {
              --self->state.date_fetches_in_flight;
              return;
            }
            on_date_page(self, page_no, reply);
          },
          [self](caf::error& err) {
            finish(self, false, job_errc::timeout, "fetcher: " + to_string(err));
          });
}

/// The data-layer walk: offset pages in flight with listing_mode::parallel (the first tells
/// `total`), else the cursor chain.
void fetch_date_page(orderer_ptr self, std::uint32_t page_no) {
  ++self->state.date_fetches_in_flight;
  request_date_page(self, page_no);
}

void start_date_walk(orderer_ptr self) {
  auto& st = self->state;
  if (st.ctx.settings.listing != listing_mode::parallel) {
    st.walk = data_layer_walk(st);
    return fetch_dates(self);
  }
  st.dates_by_offset = true;
  st.date_pages = 1;
  st.next_date_page = 1;
  fetch_date_page(self, 0);
}

/// A broken data-layer walk (a page that does not parse, a cursor cycle, empty pages, an
/// expired cursor) is walked again from the start a bounded number of times: such faults are
/// usually transient, and the walk is idempotent.
void walk_failed(orderer_ptr self, job_failure code, std::string message, bool restartable) {
  auto& st = self->state;
  if (!restartable || st.walk_restarts >= 3) return finish(self, false, code, std::move(message));
  ++st.walk_restarts;
  dates_by_cursor(self);
}

void on_dates(orderer_ptr self, dates_reply& reply) {
  auto& st = self->state;
  if (st.finished || st.dates_by_offset) return;
  ++st.result.requests;
  if (reply.attempts > 1) st.result.retries += reply.attempts - 1;
  if (!reply.ok &&
      retry_date_page(self, reply.failure, cursor_retry, self->state.cursor_page_failures))
    return;
  if (!reply.ok) {
    const auto& f = reply.failure;
    const job_failure code = failure_code(f);
    std::string msg = "data layer (export-items): " + f.message;
    if (!f.type.empty()) msg += " (type " + f.type + ")";
    return walk_failed(self, code, std::move(msg),
                       f.cursor_rejected || f.code == fetch_errc::decode);
  }
  const auto& pg = reply.page.pagination;
  if (pg.total) st.walk.expect(static_cast<std::uint64_t>(std::max<std::int64_t>(0, *pg.total)));
  std::optional<api::uuid> first;
  if (!reply.page.data.empty()) first = reply.page.data.front().accounting_entry_id;
  auto step = st.walk.on_page(reply.page.data.size(), first, pg.has_next_page,
                              pg.end_cursor ? *pg.end_cursor : "");
  using verdict = cursor_walk::verdict;
  switch (step.what) {
    case verdict::page_fault:
      if (retry_page_again(self, cursor_retry, st.cursor_page_failures)) return;
      return walk_failed(self, std::move(step.code), std::move(step.message), true);
    case verdict::ask_again:
      return fetch_dates(self);
    case verdict::fail:
      return walk_failed(self, std::move(step.code), std::move(step.message), true);
    case verdict::follow:
    case verdict::last:
      break;
  }
  st.cursor_page_failures = 0;
  st.result.deviations.merge(reply.page.deviations);
  add_dates(self, reply.page.data, st.date_arrival);
  if (st.finished) return;
  st.date_arrival += static_cast<std::uint32_t>(reply.page.data.size());
  if (step.what == verdict::last) return dates_complete(self);
  fetch_dates(self);
}

void fetch_dates(orderer_ptr self) {
  auto& st = self->state;
  page_request req{st.job.job_id, st.ctx.settings.page_size, st.walk.cursor(), std::nullopt,
                   st.ctx.job_deadline_ms};
  self->request(st.ctx.fetcher, st.ctx.settings.fetch_timeout, list_dates_atom::value, req)
      .then([self](dates_reply& reply) { on_dates(self, reply); },
            [self](caf::error& err) {
              finish(self, false, job_errc::timeout, "fetcher: " + to_string(err));
            });
}

orderer_actor::behavior_type orderer_behavior(orderer_ptr self, job_context ctx,
                                              storage::job_record job,
                                              job_supervisor_actor supervisor, bool in_memory) {
  auto& st = self->state;
  st.in_memory = in_memory;
  st.ctx = std::move(ctx);
  st.job = std::move(job);
  st.supervisor = std::move(supervisor);
  return {
      [self](retry_atom, std::uint32_t walk, std::uint32_t which) {
        auto& s = self->state;
        if (s.finished || walk != s.walk_epoch) {
          if (which != cursor_retry && walk != s.walk_epoch) --s.date_fetches_in_flight;
          return;
        }
        if (which == cursor_retry) return fetch_dates(self);
        request_date_page(self, which);
      },
      [self](run_atom) {
        auto& s = self->state;
        s.job.phase = storage::job_phase::ordering;
        // Runs left by an ordering that a crash interrupted are stale: start over. In memory
        // none are read or written, and finish_order drops any in the write that makes the
        // order official, so the orderer on the shared scheduler does not write here.
        if (!s.in_memory) {
          if (auto dropped = s.ctx.store->drop_scratch(s.job.job_id); !dropped)
            return store_failed(self, dropped.err());
        }
        s.scope = std::make_unique<storage::external_sorter>(
            *s.ctx.store, s.job.job_id, scope_space, scope_width, s.ctx.settings.sort_run_items);
        if (!fill_scope(self)) return;
        if (s.job.ordering == storage::ordering_mode::entry_id || s.scope_candidates == 0)
          return pump_chunks(self);
        s.dates = std::make_unique<storage::external_sorter>(
            *s.ctx.store, s.job.job_id, dates_space, dates_width, s.ctx.settings.sort_run_items);
        start_date_walk(self);
      },
  };
}

}  // namespace

bool orders_in_memory(const stage_settings& s, const storage::job_record& job) noexcept {
  // Pages of earlier epochs are dropped (a write) once the order is official: only epoch 0.
  if (job.listing_epoch != 0) return false;
  // Every listed record fits in the scope sorter's memory and the order in one chunk.
  const std::uint64_t limit =
      std::min<std::uint64_t>(s.sort_run_items, storage::state_store::order_chunk_size);
  if (job.counters.listed > limit) return false;
  if (job.ordering == storage::ordering_mode::entry_id) return true;
  // Chronological: the data layer's dates are a second sort whose size the API decides; only
  // a job with nothing in scope skips that walk.
  std::uint64_t candidates = 0;
  for (std::size_t i = 0; i < job.counters.by_remote_status.size(); ++i)
    if (in_scope(static_cast<api::item_status>(i))) candidates += job.counters.by_remote_status[i];
  return candidates == 0;
}

phase_actor spawn_orderer(caf::actor_system& sys, job_context ctx, storage::job_record job,
                          job_supervisor_actor supervisor) {
  if (orders_in_memory(ctx.settings, job))
    return caf::actor_cast<phase_actor>(
        sys.spawn(orderer_behavior, std::move(ctx), std::move(job), std::move(supervisor), true));
  // Detached: merging sorted runs reads and writes the store synchronously.
  return caf::actor_cast<phase_actor>(sys.spawn<caf::detached>(
      orderer_behavior, std::move(ctx), std::move(job), std::move(supervisor), false));
}

phase_actor spawn_orderer_scheduled(caf::actor_system& sys, job_context ctx,
                                    storage::job_record job, job_supervisor_actor supervisor) {
  const bool in_memory = orders_in_memory(ctx.settings, job);
  return caf::actor_cast<phase_actor>(sys.spawn(orderer_behavior, std::move(ctx), std::move(job),
                                                std::move(supervisor), in_memory));
}

}  // namespace ei::actors::detail
