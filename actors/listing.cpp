// The listing phase: the paginator walks the cursor chain (or the offset pages) through a
// fetcher, guarding against the pagination hazards of docs/design.md (the cursor chain's guard:
// detail/cursor_walk.hpp), scopes each page and commits it (page + cursor + counters in one
// write to the store actor, whose reply comes straight back). Fetching page k+1 overlaps
// committing page k. The paginator owns the job record while it lists.
//
// A page that fails on its own (it does not decode: HTML, a non-JSON 200, JSON cut short; or
// it claims a next page without an endCursor) is fetched again alone after a backoff, in the
// same epoch, up to `page_attempts` times; a `limit` the server refuses is halved and the page
// asked again. Only what needs it restarts the listing (supervisor): an expired or refused
// cursor, a cycle, a listing that does not add up.
#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_set>

#include <caf/all.hpp>

#include "actors/detail/cursor_walk.hpp"
#include "actors/detail/job_parts.hpp"

namespace ei::actors::detail {

bool in_scope(api::item_status s) noexcept {
  return s == api::item_status::pending || s == api::item_status::in_progress;
}

std::string short_listing(const job_context& ctx, const storage::job_record& job) {
  if (!ctx.expected_items) return {};
  const auto& c = job.counters;
  const auto distinct = c.listed - std::min(c.duplicates, c.listed);
  if (distinct >= *ctx.expected_items) return {};
  return "the listing holds " + std::to_string(distinct) + " distinct items (" +
         std::to_string(c.listed) + " listed, " + std::to_string(c.duplicates) +
         " repeated) but the job has " + std::to_string(*ctx.expected_items) + "; listing again";
}

page_request offset_page(const api::uuid& job_id, std::uint32_t page_size, std::uint32_t page_no,
                         std::int64_t not_after_ms) {
  return page_request{
      job_id, page_size, {}, static_cast<std::int64_t>(page_no) * page_size, not_after_ms};
}

std::uint32_t offset_page_count(std::int64_t total, std::uint32_t page_size) noexcept {
  const std::uint64_t n = static_cast<std::uint64_t>(std::max<std::int64_t>(0, total));
  const std::uint64_t size = std::max<std::uint32_t>(1, page_size);
  return static_cast<std::uint32_t>(std::max<std::uint64_t>(1, (n + size - 1) / size));
}

namespace {

/// The paginator's own interface: its phase interface plus the delayed retry of one page
/// (`cursor_retry` for the cursor chain's next page, else the offset page's number).
using paginator_actor = phase_actor::extend<caf::reacts_to<retry_atom, std::uint32_t>>;
constexpr std::uint32_t cursor_retry = ~std::uint32_t{0};

struct paginator_state {
  job_context ctx;
  // The job record as the page commits sent so far leave it (the store has it once they are
  // answered): counters, cursor, pages committed.
  storage::job_record job;
  job_supervisor_actor supervisor;
  bool listing = false;           // run: the record above is this actor's, ahead of the store's
  std::uint32_t page_size = 500;  // `limit`: settings.page_size, halved while it is refused
  std::uint32_t cursor_page_failures = 0;  // failed attempts at the cursor chain's next page
  std::map<std::uint32_t, std::uint32_t> offset_page_failures;  // per offset page
  std::uint32_t page_no = 0;  // listing_mode::parallel: the next offset page to commit
  // listing_mode::cursor: the cursor chain and its hazard guard (detail/cursor_walk.hpp)
  cursor_walk walk{"listing"};
  std::uint32_t commits_in_flight = 0;
  bool fetch_waits_for_commit = false;  // the next cursor page waits for the store to catch up
  bool last_page_fetched = false;
  bool store_failed = false;  // a page commit failed: the record above is not the store's
  bool finished = false;
  listing_result result;
  // listing_mode::parallel
  std::uint64_t total = 0;
  std::uint32_t page_count = 0;
  std::uint32_t next_fetch = 0;  // next offset page to request
  std::uint32_t fetches_in_flight = 0;
  std::map<std::uint32_t, api::page<api::export_job_item>> arrived;  // reorder buffer
  // Items listed in this epoch (duplicates included), checked against what the job holds
  // before the last page is committed: a listing that ends short never counts as complete.
  std::uint64_t listed_items = 0;
  std::optional<listing_result> failing;  // waits for the commits in flight, then reports
  static inline const char* name = "paginator";
};

using paginator_ptr = paginator_actor::stateful_pointer<paginator_state>;

void finish(paginator_ptr self, listing_result result) {
  auto& st = self->state;
  if (st.finished) return;
  st.finished = true;
  result.requests = st.result.requests;
  result.retries = st.result.retries;
  result.total_reported = st.result.total_reported;
  result.deviations = std::move(st.result.deviations);
  result.page_size = st.page_size;
  self->send(st.supervisor, done_atom::value, std::move(result));
  self->quit();
}

void report_failure(paginator_ptr self);

/// Ends the listing with a failure. The result carries the job record as the store has it
/// (this actor's, once the commits in flight are answered), never the copy this actor started
/// with: the supervisor writes it back, and a stale copy would roll back the cursor, the page
/// count and the counters of pages that are committed.
void fail(paginator_ptr self, job_failure code, std::string message) {
  auto& st = self->state;
  if (st.finished || st.failing) return;
  listing_result r;
  r.failure = code;
  r.message = std::move(message);
  st.failing = std::move(r);
  if (st.commits_in_flight == 0) report_failure(self);
}

void report_failure(paginator_ptr self) {
  auto& st = self->state;
  auto r = std::move(*st.failing);
  if (st.store_failed || !st.listing) {
    auto stored = st.ctx.store->load_job(st.job.job_id);
    r.job = stored && *stored ? std::move(**stored) : st.job;
  } else {
    r.job = st.job;
  }
  finish(self, std::move(r));
}

/// What the job should hold: `total` when the API reported it, else the job's numberOfItems.
std::optional<std::uint64_t> expected_items(const paginator_state& st) {
  if (st.result.total_reported >= 0) return static_cast<std::uint64_t>(st.result.total_reported);
  return st.ctx.expected_items;
}

void fetch_next(paginator_ptr self);

/// A fault of one page that asking for the same page again may cure: a body that does not
/// decode (HTML or another non-JSON 200, JSON cut short, a required field broken).
bool page_fault(const fetch_failure& f) {
  return f.code == fetch_errc::decode;
}

/// Schedules the page again after a backoff (doubled per failed attempt, capped at 5 s); false
/// when its attempts are used up. `failures` counts this page's failed attempts so far.
bool retry_page(paginator_ptr self, std::uint32_t which, std::uint32_t& failures) {
  auto& st = self->state;
  const auto delay = page_retry_delay(st.ctx.settings, ++failures);
  if (!delay) return false;
  ++st.result.retries;  // counted with the HTTP retries
  self->delayed_send(self, *delay, retry_atom::value, which);
  return true;
}

/// A refused `limit`: ask for pages half as large (a page size of 1 refused is a failure).
bool halve_limit(paginator_ptr self, const fetch_failure& f) {
  auto& st = self->state;
  if (!f.limit_rejected || st.page_size <= 1) return false;
  st.page_size /= 2;
  ++st.result.retries;  // counted with the HTTP retries
  return true;
}

/// Counts the page's deviations; false (and the listing failed) when an item names another
/// job than the one listed: the API broke the contract in a way nothing downstream may see.
bool accept_page(paginator_ptr self, const api::page<api::export_job_item>& page) {
  auto& st = self->state;
  st.result.deviations.merge(page.deviations);
  for (const auto& item : page.data)
    if (!item.export_job_id.is_nil() && item.export_job_id != st.job.job_id) {
      fail(self, job_errc::item_of_another_job,
           "item " + item.accounting_entry_id.to_string() + " listed for job " +
               st.job.job_id.to_string() + " names job " + item.export_job_id.to_string());
      return false;
    }
  return true;
}

void maybe_complete(paginator_ptr self) {
  auto& st = self->state;
  if (!st.last_page_fetched || st.commits_in_flight > 0 || st.finished || st.failing) return;
  listing_result r;
  r.ok = true;
  r.job = st.job;
  finish(self, std::move(r));
}

void pump_parallel(paginator_ptr self);

/// Pages sent to the store and not yet committed: beyond this the listing waits for the
/// store, so a store slower than the API never queues up pages (memory stays flat).
constexpr std::uint32_t max_commits_in_flight = 4;

/// Scopes a page into its record and the job's counters and cursor, and commits page + record
/// in one store write; pages are committed in page order. Only items that may be handed on
/// keep their tracking fields (out-of-scope items would cost a random-key tracking record
/// each, never read).
void commit(paginator_ptr self, api::page<api::export_job_item> page, std::string request_cursor,
            std::uint32_t page_no) {
  auto& st = self->state;
  auto& job = st.job;
  const std::uint64_t page_items = page.data.size();
  storage::page_record rec;
  rec.page_no = page_no;
  rec.request_cursor = std::move(request_cursor);
  rec.has_next = page.pagination.has_next_page;
  rec.next_cursor = page.pagination.end_cursor.value_or("");
  rec.items.reserve(page.data.size());
  for (auto& item : page.data) {
    ++job.counters.listed;
    ++job.counters.by_remote_status[static_cast<std::size_t>(item.status)];
    if (in_scope(item.status) && job.phase != storage::job_phase::reconciling)
      ++job.counters.in_scope;  // a re-listing keeps the persisted order's scope
    rec.items.push_back(storage::listed_item{
        item.accounting_entry_id, item.status, std::move(item.status_text),
        in_scope(item.status) ? std::move(item.tracking) : api::tracking_fields{}});
  }
  ++job.counters.pages;
  job.pages_committed = page_no + 1;
  job.next_cursor = rec.has_next ? rec.next_cursor : std::string{};
  job.listing_complete = !rec.has_next;
  page_commit c{job, job.listing_epoch, std::move(rec)};
  ++st.commits_in_flight;
  self->request(st.ctx.store_writer, st.ctx.settings.request_timeout, page_atom::value,
                std::move(c))
      .then(
          [self, page_items](const store_reply& r) {
            auto& s = self->state;
            --s.commits_in_flight;
            if (!r.ok) s.store_failed = true;
            if (s.failing) {
              if (s.commits_in_flight == 0) report_failure(self);
              return;
            }
            if (!r.ok) {
              fail(self, job_errc::store, r.message);
              return;
            }
            if (s.ctx.progress) {
              ++s.ctx.progress->pages;
              s.ctx.progress->items_listed += page_items;
            }
            if (s.fetch_waits_for_commit) {
              s.fetch_waits_for_commit = false;
              fetch_next(self);
            } else if (s.ctx.settings.listing == listing_mode::parallel) {
              pump_parallel(self);
            }
            maybe_complete(self);
          },
          [self](caf::error& err) {
            auto& s = self->state;
            --s.commits_in_flight;
            s.store_failed = true;  // the record here may be ahead of the store's
            if (s.failing) {
              if (s.commits_in_flight == 0) report_failure(self);
              return;
            }
            fail(self, job_errc::internal, "page commit: " + to_string(err));
          });
}

// --- listing_mode::parallel -------------------------------------------------------------

void fetch_offset(paginator_ptr self, std::uint32_t page_no);

void pump_parallel(paginator_ptr self) {
  auto& st = self->state;
  const auto limit = std::max<std::uint32_t>(1, st.ctx.settings.parallel_requests);
  // Pages fetched but not yet committed (in flight to the store or waiting for an earlier
  // page) count against the same limit, so memory does not grow with a slow store.
  while (!st.finished && !st.failing && st.next_fetch < st.page_count &&
         st.fetches_in_flight < limit &&
         st.fetches_in_flight + st.arrived.size() + st.commits_in_flight <
             limit + max_commits_in_flight)
    fetch_offset(self, st.next_fetch++);
}

/// Commits buffered pages in order. The count is checked against `total` before the last
/// page is committed (its commit marks the listing complete), so a listing that does not add
/// up is never recorded as complete, whenever the process dies.
void drain_parallel(paginator_ptr self) {
  auto& st = self->state;
  for (auto it = st.arrived.find(st.page_no); it != st.arrived.end() && !st.failing;
       it = st.arrived.find(st.page_no)) {
    auto page = std::move(it->second);
    st.arrived.erase(it);
    const bool last = st.page_no + 1 >= st.page_count;
    page.pagination.has_next_page = !last;
    st.listed_items += page.data.size();
    if (last && st.listed_items != st.total) {
      // Duplicates (an item on two offset pages, so another may have been skipped) are caught
      // by the orderer's or reconciler's deduplication, which sees every id in sorted order.
      fail(self, job_errc::parallel_listing_mismatch,
           "offset listing found " + std::to_string(st.listed_items) + " items where total says " +
               std::to_string(st.total) + "; listing again with cursors");
      return;
    }
    commit(self, std::move(page), std::string{}, st.page_no);
    ++st.page_no;
  }
  if (st.page_no < st.page_count || st.last_page_fetched || st.failing) return;
  st.last_page_fetched = true;
  maybe_complete(self);
}

void on_offset_page(paginator_ptr self, std::uint32_t page_no, items_reply& reply) {
  auto& st = self->state;
  if (st.finished || st.failing) return;
  --st.fetches_in_flight;
  ++st.result.requests;
  if (reply.attempts > 1) st.result.retries += reply.attempts - 1;
  // Page 0 sets the page size of every other page: a refused limit is halved there.
  if (!reply.ok && page_no == 0 && halve_limit(self, reply.failure)) {
    ++st.fetches_in_flight;
    self->send(self, retry_atom::value, page_no);
    return;
  }
  if (!reply.ok && page_fault(reply.failure) &&
      retry_page(self, page_no, st.offset_page_failures[page_no])) {
    ++st.fetches_in_flight;  // its slot stays taken until it is fetched again
    return;
  }
  if (!reply.ok) {
    std::string msg =
        "listing offset page " + std::to_string(page_no) + ": " + reply.failure.message;
    if (!reply.failure.type.empty()) msg += " (type " + reply.failure.type + ")";
    fail(self, failure_code(reply.failure), std::move(msg));
    return;
  }
  if (!accept_page(self, reply.page)) return;
  if (page_no == 0) {
    if (!reply.page.pagination.total) {
      fail(self, job_errc::parallel_listing_mismatch,
           "the first page has no `total`; listing again with cursors");
      return;
    }
    st.total = static_cast<std::uint64_t>(std::max<std::int64_t>(0, *reply.page.pagination.total));
    st.result.total_reported = static_cast<std::int64_t>(st.total);
    if (st.ctx.expected_items && *st.ctx.expected_items != st.total) {
      fail(self, job_errc::parallel_listing_mismatch,
           "the listing's total (" + std::to_string(st.total) + ") differs from the job's " +
               "numberOfItems (" + std::to_string(*st.ctx.expected_items) +
               "); listing again with cursors");
      return;
    }
    st.page_count = offset_page_count(*reply.page.pagination.total, st.page_size);
  }
  st.arrived.emplace(page_no, std::move(reply.page));
  drain_parallel(self);
  pump_parallel(self);
}

/// Requests offset page `page_no`; its slot in `fetches_in_flight` is already counted.
void request_offset(paginator_ptr self, std::uint32_t page_no) {
  auto& st = self->state;
  const auto req = offset_page(st.job.job_id, st.page_size, page_no, st.ctx.job_deadline_ms);
  self->request(st.ctx.fetcher, st.ctx.settings.fetch_timeout, list_items_atom::value, req)
      .then(
          [self, page_no](items_reply& reply) { on_offset_page(self, page_no, reply); },
          [self](caf::error& err) { fail(self, job_errc::timeout, "fetcher: " + to_string(err)); });
}

void fetch_offset(paginator_ptr self, std::uint32_t page_no) {
  ++self->state.fetches_in_flight;
  request_offset(self, page_no);
}

// --- listing_mode::cursor ---------------------------------------------------------------

void on_page(paginator_ptr self, items_reply& reply) {
  auto& st = self->state;
  if (st.finished || st.failing) return;
  ++st.result.requests;
  if (reply.attempts > 1) st.result.retries += reply.attempts - 1;
  if (!reply.ok && halve_limit(self, reply.failure)) return fetch_next(self);
  if (!reply.ok && page_fault(reply.failure) &&
      retry_page(self, cursor_retry, st.cursor_page_failures))
    return;
  if (!reply.ok) {
    const auto& f = reply.failure;
    std::string msg = "listing page " + std::to_string(st.walk.page_no()) + ": " + f.message;
    if (!f.type.empty()) msg += " (type " + f.type + ")";
    fail(self, failure_code(f), std::move(msg));
    return;
  }
  auto& pg = reply.page;
  if (!accept_page(self, pg)) return;
  if (pg.pagination.total) {
    st.result.total_reported = *pg.pagination.total;
    st.walk.expect(static_cast<std::uint64_t>(std::max<std::int64_t>(0, *pg.pagination.total)));
  }
  const bool has_next = pg.pagination.has_next_page;
  std::optional<api::uuid> first;
  if (!pg.data.empty()) first = pg.data.front().accounting_entry_id;
  st.walk.set_page_size(st.page_size);
  auto step = st.walk.on_page(pg.data.size(), first, has_next,
                              pg.pagination.end_cursor ? *pg.pagination.end_cursor : "");
  using verdict = cursor_walk::verdict;
  switch (step.what) {
    case verdict::page_fault:
      // A fault of this page: ask for it again before giving up on the listing.
      if (retry_page(self, cursor_retry, st.cursor_page_failures)) return;
      return fail(self, std::move(step.code), std::move(step.message));
    case verdict::ask_again:
      return fetch_next(self);
    case verdict::fail:
      return fail(self, std::move(step.code), std::move(step.message));
    case verdict::follow:
    case verdict::last:
      break;
  }
  st.cursor_page_failures = 0;
  if (!has_next) {
    // hasNextPage=false too early must not pass for a complete listing: the last page is
    // committed (and the listing with it) only when the items add up to what the job holds.
    if (const auto expected = expected_items(st); expected && st.walk.listed() < *expected) {
      fail(self, job_errc::short_listing,
           "the listing ended after " + std::to_string(st.walk.listed()) +
               " items but the job holds " + std::to_string(*expected) + "; listing again");
      return;
    }
  }
  commit(self, std::move(pg), std::move(step.request_cursor), step.page_no);
  if (has_next) {
    if (st.commits_in_flight >= max_commits_in_flight)
      st.fetch_waits_for_commit = true;  // resumed by the next commit's reply
    else
      fetch_next(self);
  } else {
    st.last_page_fetched = true;
  }
}

void fetch_next(paginator_ptr self) {
  auto& st = self->state;
  page_request req{st.job.job_id, st.page_size, st.walk.cursor(), std::nullopt,
                   st.ctx.job_deadline_ms};
  self->request(st.ctx.fetcher, st.ctx.settings.fetch_timeout, list_items_atom::value, req)
      .then(
          [self](items_reply& reply) { on_page(self, reply); },
          [self](caf::error& err) { fail(self, job_errc::timeout, "fetcher: " + to_string(err)); });
}

paginator_actor::behavior_type paginator_behavior(paginator_ptr self, job_context ctx,
                                                  storage::job_record job,
                                                  job_supervisor_actor supervisor) {
  auto& st = self->state;
  st.ctx = std::move(ctx);
  st.job = std::move(job);
  st.supervisor = std::move(supervisor);
  st.page_size = std::max<std::uint32_t>(1, st.ctx.settings.page_size);
  st.walk = cursor_walk("listing",
                        {st.ctx.settings.max_empty_pages, st.page_size, st.ctx.expected_items});
  return {
      [self](retry_atom, std::uint32_t which) {
        auto& s = self->state;
        if (s.finished || s.failing) return;
        if (which == cursor_retry) return fetch_next(self);
        request_offset(self, which);
      },
      [self](run_atom) {
        auto& s = self->state;
        // Resume from the last committed cursor of this listing epoch, if any.
        if (s.job.pages_committed > 0 && !s.job.listing_complete) {
          std::set<std::string> visited;
          auto walked = s.ctx.store->for_each_page(s.job.job_id, s.job.listing_epoch,
                                                   [&visited](storage::page_record&& p) {
                                                     visited.insert(std::move(p.request_cursor));
                                                     return true;
                                                   });
          if (!walked.ok()) {
            fail(self, job_errc::store, walked.err().message);
            return;
          }
          s.page_no = s.job.pages_committed;
          s.listed_items = s.job.counters.listed;
          s.walk.resume(s.job.next_cursor, s.job.pages_committed, s.job.counters.listed,
                        std::move(visited));
        }
        s.listing = true;
        if (s.ctx.settings.listing == listing_mode::parallel && s.page_no == 0) {
          // The first page tells `total`; then the other offset pages go out in parallel.
          s.next_fetch = 1;
          s.page_count = 1;
          fetch_offset(self, 0);
          return;
        }
        fetch_next(self);
      },
  };
}

}  // namespace

phase_actor spawn_paginator(caf::actor_system& sys, job_context ctx, storage::job_record job,
                            job_supervisor_actor supervisor) {
  // Resuming a listing walks the pages this epoch committed (their cursors, for cycle
  // detection): a scan as long as the listing so far, which storage/state_store.hpp keeps off
  // the shared scheduler. Only resumed listings pay for the thread.
  if (job.pages_committed > 0 && !job.listing_complete)
    return caf::actor_cast<phase_actor>(sys.spawn<caf::detached>(
        paginator_behavior, std::move(ctx), std::move(job), std::move(supervisor)));
  return spawn_paginator_scheduled(sys, std::move(ctx), std::move(job), std::move(supervisor));
}

phase_actor spawn_paginator_scheduled(caf::actor_system& sys, job_context ctx,
                                      storage::job_record job, job_supervisor_actor supervisor) {
  return caf::actor_cast<phase_actor>(
      sys.spawn(paginator_behavior, std::move(ctx), std::move(job), std::move(supervisor)));
}

}  // namespace ei::actors::detail
