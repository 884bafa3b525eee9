// The job supervisor: works a job through its phases, persisting each boundary, and reports
// one outcome. Children are monitored: a child that dies without reporting fails the job.
#include <chrono>

#include <caf/all.hpp>

#include "common/crash_point.hpp"

#include "actors/detail/job_parts.hpp"

namespace ei::actors {

std::string_view to_string(job_result r) noexcept {
  switch (r) {
    case job_result::complete:
      return "complete";
    case job_result::already_complete:
      return "already_complete";
    case job_result::failed:
      return "failed";
  }
  return "failed";
}

namespace {

/// Pleo's failureReasonType of a job that expired (the API's text, not one of our codes).
constexpr std::string_view pleo_job_expired = "job_expired";

bool expired_in_pleo(const api::export_job& job) {
  return job.failure_reason_type && *job.failure_reason_type == pleo_job_expired;
}

}  // namespace

namespace detail {

job_check check_job(const job_reply& reply) {
  if (!reply.ok) {
    if (reply.failure.http_status == 404)
      return {
          true, {job_errc::http_status, 404}, "the job is gone (404 " + reply.failure.type + ")"};
    return {};  // not the job's doing; the next check tells
  }
  const auto& job = reply.job;
  switch (job.status) {
    case api::job_status::in_progress:
      return {};
    case api::job_status::failed:
      if (expired_in_pleo(job))
        return {true, job_errc::job_expired, "the job expired in Pleo (failed: job_expired)"};
      return {true, job_errc::job_finished_elsewhere,
              "the job was failed elsewhere (" +
                  job.failure_reason_type.value_or("no reason type") + ")"};
    case api::job_status::completed:
    case api::job_status::completed_with_errors:
      return {true, job_errc::job_finished_elsewhere,
              "the job was finished elsewhere (" + job.status_text + ")"};
    default:
      return {true, job_errc::job_not_in_progress,
              "the job's status is now '" + job.status_text + "'"};
  }
}

}  // namespace detail

namespace {

using clock_type = std::chrono::steady_clock;

struct supervisor_state {
  job_context ctx;
  api::export_job remote;
  outcome_receiver_actor report_to;
  storage::job_record job;
  job_stats stats;
  std::vector<reconciliation_entry> to_report;
  clock_type::time_point started;
  caf::actor_addr child;
  std::uint32_t listing_restarts = 0;
  std::uint64_t job_checks = 0;        // reads of the job at phase boundaries
  clock_type::time_point job_read_at;  // when the job was last read (verified, or checked)
  bool reported = false;
  static inline const char* name = "job_supervisor";
};

using supervisor_ptr = job_supervisor_actor::stateful_pointer<supervisor_state>;

/// Listings restarted from scratch (cursor refused or cycling, a page that does not parse, a
/// listing that does not add up) before the job fails.
constexpr std::uint32_t max_listing_restarts = 3;

void fill_stats_from_record(supervisor_ptr self) {
  auto& st = self->state;
  const auto& c = st.job.counters;
  st.stats.listed = c.listed;
  st.stats.in_scope = c.in_scope;
  st.stats.by_remote_status = c.by_remote_status;
  st.stats.duplicates = c.duplicates;
  st.stats.pages = c.pages;
  st.stats.needs_reconciliation = c.needs_reconciliation;
}

void report(supervisor_ptr self, job_result result, job_failure failure, std::string reason) {
  auto& st = self->state;
  if (st.reported) return;
  st.reported = true;
  fill_stats_from_record(self);
  st.stats.duration_seconds = std::chrono::duration<double>(clock_type::now() - st.started).count();
  job_outcome out;
  out.job_id = st.job.job_id;
  out.company_id = st.job.company_id;
  if (result == job_result::failed) {
    set_failure(out, failure, std::move(reason));
  } else {
    out.result = result;
    out.reason = std::move(reason);
  }
  out.stats = st.stats;
  out.reported = std::move(st.to_report);
  self->send(st.report_to, outcome_atom::value, std::move(out));
  self->quit();
}

/// Records the failure in the job record (the phase stays, so a re-run resumes there), writes
/// the items this run found for a person to look at, then reports.
void fail(supervisor_ptr self, job_failure code, std::string reason) {
  auto& st = self->state;
  st.job.failure_code = code.text();
  st.job.failure_message = reason;
  st.job.updated_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  auto done = [self, code, reason]() mutable {
    report(self, job_result::failed, code, std::move(reason));
  };
  auto write_report = [self, done]() mutable {
    auto& s = self->state;
    if (s.to_report.empty() || !s.ctx.report_writer) return done();
    self->request(s.ctx.report_writer, s.ctx.settings.request_timeout, report_atom::value,
                  s.job.job_id, s.to_report)
        .then([done](const store_reply&) mutable { done(); },
              [done](caf::error&) mutable { done(); });
  };
  self->request(st.ctx.store_writer, st.ctx.settings.request_timeout, put_job_atom::value, st.job)
      .then([write_report](const store_reply&) mutable { write_report(); },
            [write_report](caf::error&) mutable { write_report(); });
}

/// The job changed in Pleo while it ran (expired, finished elsewhere): stop with its typed
/// reason. Nothing is lost: what was handed on and not acknowledged stays so in the store (a
/// re-run redelivers it, flagged, if the job is in progress again); the reason says how far
/// dispatching got.
void stop_changed(supervisor_ptr self, job_failure code, std::string why) {
  auto& st = self->state;
  std::string where = "while " + std::string(storage::to_string(st.job.phase));
  if (st.job.order_size > 0) {
    if (auto wm = st.ctx.store->load_watermarks(st.job.job_id)) {
      st.stats.acked = wm->acked_through;
      where += ": items were handed on through sequence " + std::to_string(wm->dispatched_through) +
               " and acknowledged through " + std::to_string(wm->acked_through) + " of " +
               std::to_string(st.job.order_size);
    }
  } else {
    where += ": no item was handed on";
  }
  fail(self, code,
       std::move(why) + " " + where +
           "; unacknowledged items stay in the state store, and a re-run resumes the job if it "
           "is in progress again");
}

/// When a job just read expires if nothing acts on it: expiresIn counts from the job's last
/// action, and reading is none (contract: expiresIn), so now + expiresIn is the latest it can
/// be; 0 when the job announces no expiry.
std::int64_t deadline_of(const api::export_job& job) {
  if (job.expires_in <= 0) return 0;
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::system_clock::now().time_since_epoch());
  return now.count() + std::int64_t{job.expires_in} * 1000;
}

/// Reads the job again at a phase boundary; `next` runs when it is still in progress (or the
/// read failed for a reason that is not the job's), else the job stops with the typed reason.
/// A read younger than settings.job_check_fresh_for is not repeated, unless `always`.
template <class Next>
void at_boundary(supervisor_ptr self, Next next, bool always = false) {
  auto& st = self->state;
  if (!always && clock_type::now() - st.job_read_at < st.ctx.settings.job_check_fresh_for)
    return next();
  ++st.job_checks;
  st.job_read_at = clock_type::now();
  self->request(st.ctx.fetcher, st.ctx.settings.fetch_timeout, get_job_atom::value, st.job.job_id)
      .then(
          [self, next](job_reply& r) mutable {
            auto& s = self->state;
            ++s.stats.requests;
            if (r.attempts > 1) s.stats.retries += r.attempts - 1;
            auto change = detail::check_job(r);
            if (change.stop) return stop_changed(self, change.failure, std::move(change.message));
            if (r.ok) {
              s.stats.deviations.merge(r.job.deviations);
              s.ctx.job_deadline_ms = deadline_of(r.job);
            }
            next();
          },
          [self, next](caf::error&) mutable { next(); });
}

/// A phase failed with an answer that a job which changed in Pleo also gets (the data layer's
/// 422 once a job is no longer in progress, a 404): the job is read again, and a job that
/// expired or finished elsewhere stops with that reason rather than the symptom.
void fail_phase(supervisor_ptr self, job_failure code, std::string reason) {
  const bool symptom =
      code.code == job_errc::http_status &&
      (code.http_status == 422 || code.http_status == 404 || code.http_status == 409);
  if (!symptom) return fail(self, code, std::move(reason));
  at_boundary(
      self,
      [self, code, reason = std::move(reason)]() mutable { fail(self, code, std::move(reason)); },
      true);
}

/// What a failed phase's code says about recovering, for the restart rules of the phase
/// handlers below (each a switch over it). Every code is placed here: a new one must be.
enum class failure_class : std::uint8_t {
  offset_mismatch,  // the offset listing did not add up: list again with cursors
  short_listing,    // the listing ended short of the job's items: list again
  broken_listing,   // the cursor was refused, cycled, or pages came empty: a new listing
  job_changed,      // the job expired or finished in Pleo: stop with that reason
  final,            // anything else: the job fails (fail_phase reads a 422/404/409 job again)
};

failure_class classify(job_errc c) noexcept {
  switch (c) {
    case job_errc::parallel_listing_mismatch:
      return failure_class::offset_mismatch;
    case job_errc::short_listing:
      return failure_class::short_listing;
    case job_errc::cursor_rejected:
    case job_errc::cursor_cycle:
    case job_errc::empty_pages:
      return failure_class::broken_listing;
    case job_errc::job_expired:
    case job_errc::job_finished_elsewhere:
      return failure_class::job_changed;
    case job_errc::job_not_in_progress:
    case job_errc::http_status:
    case job_errc::invalid_url:
    case job_errc::invalid_config:
    case job_errc::connect_failed:
    case job_errc::tls_failed:
    case job_errc::timeout:
    case job_errc::connection_reset:
    case job_errc::truncated_body:
    case job_errc::response_too_large:
    case job_errc::retries_exhausted:
    case job_errc::cancelled:
    case job_errc::bad_encoding:
    case job_errc::decode:  // a page was already asked again alone (page_attempts)
    case job_errc::limit_rejected:
    case job_errc::missing_end_cursor:  // a page that keeps lacking it: not cured by relisting
    case job_errc::item_of_another_job:
    case job_errc::discovery_failed:
    case job_errc::downstream_timeout:
    case job_errc::downstream_protocol:
    case job_errc::downstream_down:
    case job_errc::store:
    case job_errc::report:
    case job_errc::internal:
    case job_errc::interrupted:
      return failure_class::final;
  }
  return failure_class::final;  // not reached: every code is listed above
}

template <class Spawned>
void start_child(supervisor_ptr self, Spawned child) {
  self->monitor(child);
  self->state.child = child.address();
  self->send(child, run_atom::value);
}

void start_dispatch(supervisor_ptr self) {
  at_boundary(self, [self] {
    auto& st = self->state;
    start_child(self, detail::spawn_sequencer(self->system(), st.ctx, st.job, self));
  });
}

/// Orders the listed items (after a listing: the job is read again first).
void start_ordering(supervisor_ptr self, bool check = true) {
  auto go = [self] {
    auto& st = self->state;
    st.job.phase = storage::job_phase::ordering;
    start_child(self, detail::spawn_orderer(self->system(), st.ctx, st.job, self));
  };
  if (!check) return go();
  at_boundary(self, go);
}

/// Persists the record, then lists (the first listing, or the re-listing of a resumed job,
/// whose phase stays `reconciling`).
void start_listing(supervisor_ptr self) {
  auto& st = self->state;
  if (st.job.phase != storage::job_phase::reconciling) st.job.phase = storage::job_phase::listing;
  self->request(st.ctx.store_writer, st.ctx.settings.request_timeout, put_job_atom::value, st.job)
      .then(
          [self](const store_reply& r) {
            if (!r.ok) return fail(self, job_errc::store, r.message);
            auto& s = self->state;
            start_child(self, detail::spawn_paginator(self->system(), s.ctx, s.job, self));
          },
          [self](caf::error& err) { fail(self, job_errc::internal, "store: " + to_string(err)); });
}

/// Starts a fresh listing epoch (counters of the listing reset; the order's scope kept).
void new_epoch(supervisor_ptr self) {
  auto& job = self->state.job;
  ++job.listing_epoch;
  job.pages_committed = 0;
  job.next_cursor.clear();
  job.listing_complete = false;
  job.counters.listed = 0;
  job.counters.pages = 0;
  job.counters.duplicates = 0;
  job.counters.by_remote_status = {};
  if (job.phase != storage::job_phase::reconciling) job.counters.in_scope = 0;
}

/// A resumed job whose order is fixed: re-list (the docs prescribe it on recovery), then
/// reconcile the persisted order with what the API says now, then dispatch the rest.
void start_reconciling(supervisor_ptr self) {
  self->state.job.phase = storage::job_phase::reconciling;
  new_epoch(self);
  start_listing(self);
}

/// Picks up where the persisted record says the job stands.
void resume(supervisor_ptr self) {
  auto& st = self->state;
  if (st.job.phase == storage::job_phase::dispatching ||
      st.job.phase == storage::job_phase::reconciling)
    return start_reconciling(self);
  if (!st.job.listing_complete) {
    // A cursor listing resumes from its last committed cursor; an offset listing starts over
    // (its pages are only meaningful with the same page size and a complete set).
    if (st.job.pages_committed > 0 && st.ctx.settings.listing == listing_mode::parallel)
      new_epoch(self);
    return start_listing(self);
  }
  start_ordering(self, false);  // verified just now
}

/// Fills the delivery counters (over every run) from the job's order in the store; with
/// `reported`, also collects the reported items. False (and the job failed) on a store error.
bool tally(supervisor_ptr self, std::vector<reconciliation_entry>* reported) {
  auto& st = self->state;
  auto t = detail::tally_delivery(*st.ctx.store, st.job, reported);
  if (!t) {
    fail(self, job_errc::store, t.err().message);
    return false;
  }
  st.stats.acked = t->acked;
  st.stats.skipped_final_remotely = t->skipped_final_remotely;
  st.stats.reported = t->reported;
  st.stats.absent = t->absent;
  return true;
}

/// The job is done: its reported items are written (and durable) first, then the phase
/// `complete` is, so a crash in between reports them again rather than never.
void complete(supervisor_ptr self, std::string note) {
  auto& st = self->state;
  if (!tally(self, &st.to_report)) return;
  auto commit = [self, note = std::move(note)]() mutable {
    auto& s = self->state;
    s.job.phase = storage::job_phase::complete;
    self->request(s.ctx.store_writer, s.ctx.settings.request_timeout, put_job_atom::value, s.job)
        .then(
            [self, note = std::move(note)](const store_reply& w) mutable {
              if (!w.ok) return fail(self, job_errc::store, w.message);
              report(self, job_result::complete, {}, std::move(note));
            },
            [self](caf::error& err) {
              fail(self, job_errc::internal, "store: " + to_string(err));
            });
  };
  if (st.to_report.empty() || !st.ctx.report_writer) return commit();
  self->request(st.ctx.report_writer, st.ctx.settings.request_timeout, report_atom::value,
                st.job.job_id, st.to_report)
      .then(
          [self, commit](const store_reply& w) mutable {
            if (!w.ok) return fail(self, job_errc::report, w.message);
            commit();
          },
          [self](caf::error& err) { fail(self, job_errc::internal, "report: " + to_string(err)); });
}

/// Restarts the listing in a new epoch with cursors after a listing that did not add up
/// (bounded: a listing that keeps failing fails the job). The phase stays `reconciling` for
/// a resumed job, else it is `listing` again.
bool relist(supervisor_ptr self) {
  auto& s = self->state;
  if (s.listing_restarts >= max_listing_restarts) return false;
  ++s.listing_restarts;
  s.ctx.settings.listing = listing_mode::cursor;
  if (s.job.phase != storage::job_phase::reconciling) s.job.phase = storage::job_phase::listing;
  new_epoch(self);
  start_listing(self);
  return true;
}

std::string not_in_progress_reason(const api::export_job& job) {
  switch (job.status) {
    case api::job_status::pending:
      return "job is pending: it has not been claimed yet (send the `started` event first)";
    case api::job_status::completed:
    case api::job_status::completed_with_errors:
      return "job has already finished (status " + job.status_text + ")";
    case api::job_status::failed:
      if (expired_in_pleo(job)) return "job has expired (failed: job_expired)";
      return "job has failed (" + job.failure_reason_type.value_or("no reason type") + ")";
    default:
      return "job status is '" + job.status_text + "', not in_progress";
  }
}

job_supervisor_actor::behavior_type supervisor_behavior(supervisor_ptr self, job_context ctx,
                                                        api::export_job remote,
                                                        outcome_receiver_actor report_to) {
  auto& st = self->state;
  st.ctx = std::move(ctx);
  st.remote = std::move(remote);
  st.report_to = std::move(report_to);
  self->set_down_handler([self](caf::down_msg& dm) {
    // Children report `done` before they quit normally; only an abnormal exit is a failure.
    if (dm.source == self->state.child && dm.reason != caf::exit_reason::normal &&
        !self->state.reported)
      fail(self, job_errc::internal,
           "a pipeline actor stopped unexpectedly: " + to_string(dm.reason));
  });
  return {
      [self](run_atom) {
        auto& s = self->state;
        s.started = clock_type::now();
        s.job_read_at = s.started;  // verified just before it was handed to this supervisor
        s.stats.deviations.merge(s.remote.deviations);
        auto loaded = s.ctx.store->load_job(s.remote.id);
        if (!loaded) return report(self, job_result::failed, job_errc::store, loaded.err().message);
        const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count();
        if (loaded.value()) {
          s.job = std::move(*loaded.value());
          ++s.job.runs;
          if (s.job.phase == storage::job_phase::complete) {
            if (!tally(self, nullptr)) return;
            return report(self, job_result::already_complete, {},
                          "job was completed by an earlier run; nothing to do");
          }
        } else {
          s.job.job_id = s.remote.id;
          s.job.company_id = s.remote.company_id;
          s.job.phase = storage::job_phase::verifying;
          s.job.ordering = s.ctx.settings.ordering;
          s.job.runs = 1;
          s.job.created_ms = now_ms;
        }
        s.job.updated_ms = now_ms;
        s.job.failure_code.clear();
        s.job.failure_message.clear();
        if (s.remote.number_of_items >= 0)
          s.ctx.expected_items = static_cast<std::uint64_t>(s.remote.number_of_items);
        // While dispatching, the job is read again at least every expiresIn/4 (expiresIn is
        // not relied on: a missing one leaves the configured interval).
        s.ctx.job_check_every = s.ctx.settings.job_check_interval;
        if (s.remote.expires_in > 0)
          s.ctx.job_check_every =
              std::min(s.ctx.job_check_every,
                       std::chrono::milliseconds(std::int64_t{s.remote.expires_in} * 1000 / 4));
        s.ctx.job_check_every = std::max(s.ctx.job_check_every, std::chrono::milliseconds(10));
        s.ctx.job_deadline_ms = deadline_of(s.remote);
        if (s.remote.status != api::job_status::in_progress) {
          // Killed between the last acknowledgement and recording `complete`, then the job was
          // completed in Pleo: every item of the order was acknowledged, so the job is done.
          const bool finished_remotely = s.remote.status == api::job_status::completed ||
                                         s.remote.status == api::job_status::completed_with_errors;
          const bool ordered = s.job.phase == storage::job_phase::dispatching ||
                               s.job.phase == storage::job_phase::reconciling;
          if (finished_remotely && ordered) {
            auto wm = s.ctx.store->load_watermarks(s.job.job_id);
            if (!wm) return report(self, job_result::failed, job_errc::store, wm.err().message);
            if (wm->acked_through >= s.job.order_size)
              return complete(self,
                              "every item was acknowledged by an earlier run and the job "
                              "was then completed in Pleo (" +
                                  s.remote.status_text + ")");
          }
          return fail(self, job_errc::job_not_in_progress, not_in_progress_reason(s.remote));
        }
        resume(self);
      },
      [self](done_atom, listing_result& r) {
        auto& s = self->state;
        s.child = caf::actor_addr{};
        s.stats.requests += r.requests;
        s.stats.retries += r.retries;
        s.stats.total_reported = r.total_reported;
        s.stats.deviations.merge(r.deviations);
        s.job = std::move(r.job);
        if (r.page_size > 0) s.ctx.settings.page_size = r.page_size;  // a refused limit halved
        if (!r.ok) {
          switch (classify(r.failure.code)) {
            case failure_class::offset_mismatch:
              // The offset listing did not add up: list again the contract's way.
              s.ctx.settings.listing = listing_mode::cursor;
              new_epoch(self);
              return start_listing(self);
            case failure_class::short_listing:
            case failure_class::broken_listing:
              // An expired or refused cursor, a cycle, empty pages or a listing that ended
              // short: list again from the start in a new epoch (bounded; usually transient).
              if (s.listing_restarts < max_listing_restarts) {
                ++s.listing_restarts;
                new_epoch(self);
                return start_listing(self);
              }
              break;
            case failure_class::job_changed:
            case failure_class::final:
              // A page that does not decode was already asked again alone (the paginator's
              // page_attempts): that is not cured by listing everything again, nor is a page
              // that keeps lacking its endCursor. What restarts the listing is what needs one.
              break;
          }
          return fail_phase(self, r.failure, r.message);
        }
        if (s.job.phase == storage::job_phase::reconciling) {
          at_boundary(self, [self] {
            auto& state = self->state;
            start_child(self, detail::spawn_reconciler(self->system(), state.ctx, state.job, self));
          });
          return;
        }
        start_ordering(self);
      },
      [self](done_atom, reconcile_result& r) {
        auto& s = self->state;
        s.child = caf::actor_addr{};
        s.job = std::move(r.job);
        if (!r.ok) {
          switch (classify(r.failure.code)) {
            case failure_class::offset_mismatch:
              s.ctx.settings.listing = listing_mode::cursor;
              new_epoch(self);  // the phase stays `reconciling`
              return start_listing(self);
            case failure_class::short_listing:
              if (relist(self)) return;
              break;
            case failure_class::broken_listing:
            case failure_class::job_changed:
            case failure_class::final:
              break;
          }
        }
        s.stats.out_of_scope_reported += r.out_of_scope_reported;
        for (auto& e : r.reported)
          s.to_report.push_back(std::move(e));
        if (!r.ok) return fail(self, r.failure, r.message);
        start_dispatch(self);
      },
      [self](done_atom, order_result& r) {
        auto& s = self->state;
        s.child = caf::actor_addr{};
        s.stats.requests += r.requests;
        s.stats.retries += r.retries;
        s.stats.undated = r.undated;
        s.stats.deviations.merge(r.deviations);
        s.job = std::move(r.job);
        if (!r.ok) {
          switch (classify(r.failure.code)) {
            case failure_class::offset_mismatch:
              // The offset listing returned an item twice (so it may have skipped another):
              // list again the contract's way. Its reports are superseded by the next
              // ordering's.
              s.ctx.settings.listing = listing_mode::cursor;
              s.job.phase = storage::job_phase::listing;
              new_epoch(self);
              return start_listing(self);
            case failure_class::short_listing:
              if (relist(self)) return;
              break;
            case failure_class::broken_listing:
            case failure_class::job_changed:
            case failure_class::final:
              break;
          }
        }
        for (auto& e : r.reported)
          s.to_report.push_back(std::move(e));
        if (!r.ok) return fail_phase(self, r.failure, r.message);
        start_dispatch(self);
      },
      [self](done_atom, dispatch_result& r) {
        auto& s = self->state;
        s.child = caf::actor_addr{};
        s.stats.emitted += r.emitted;
        s.stats.redelivered += r.redelivered;
        s.stats.skipped_out_of_scope += r.skipped;
        if (!r.ok) {
          switch (classify(r.failure.code)) {
            case failure_class::job_changed:
              return stop_changed(self, r.failure, r.message);
            case failure_class::offset_mismatch:
            case failure_class::short_listing:
            case failure_class::broken_listing:
            case failure_class::final:
              return fail(self, r.failure, r.message);
          }
        }
        crash_point("before_complete");
        complete(self, {});
      },
  };
}

}  // namespace

job_supervisor_actor spawn_job_supervisor(caf::actor_system& sys, job_context ctx,
                                          api::export_job verified,
                                          outcome_receiver_actor report_to) {
  return sys.spawn(supervisor_behavior, std::move(ctx), std::move(verified), std::move(report_to));
}

}  // namespace ei::actors
