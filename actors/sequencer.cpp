// The dispatching phase: hands the persisted order downstream in batches under a credit
// window. Before a batch leaves, its dispatch mark (and the attempt numbers of redelivered
// items) is durable, so a crash can only ever cause a *flagged* redelivery of items that were
// in flight, never an unflagged duplicate and never a loss. Acks are cumulative watermarks.
//
// Order entries that reconciliation took out of scope (their stored remote status is final)
// keep their sequence number but are passed over: a batch covers a range of sequences, and an
// ack of the last item sent for a range acknowledges the whole range.
//
// The job is read again every ctx.job_check_every (through the fetcher, like every request):
// a job that expired or was finished elsewhere stops dispatching at once with its typed
// reason; what was handed on and not acknowledged stays so in the store.
#include <algorithm>
#include <chrono>
#include <deque>
#include <unordered_map>

#include <caf/all.hpp>

#include "actors/detail/job_parts.hpp"
#include "common/crash_point.hpp"

namespace ei::actors::detail {
namespace {

/// A range of sequences handed on together; `last_sent` is the last sequence actually sent
/// (0 when every entry of the range was passed over).
struct batch_range {
  std::uint64_t last_sent = 0;
  std::uint64_t range_end = 0;
  std::uint64_t items = 0;  // items handed on in it (batch_progress::items_acked)
};

struct sequencer_state {
  job_context ctx;
  storage::job_record job;
  job_supervisor_actor supervisor;
  std::uint64_t next_seq = 1;           // next sequence to hand on
  std::uint64_t acked = 0;              // acked_through as known here (ranges included)
  std::uint64_t acked_committed = 0;    // acked_through as persisted by anyone
  std::uint64_t dispatched = 0;         // dispatched_through as persisted
  std::uint64_t redeliver_through = 0;  // items <= this were in flight when a run stopped
  std::unordered_map<std::uint64_t, std::uint32_t> prior_attempts;
  std::deque<batch_range> in_flight;
  bool commit_in_flight = false;
  std::uint32_t ack_commits_in_flight = 0;
  std::uint64_t ack_seen_at_tick = 0;
  std::chrono::steady_clock::time_point ack_seen_at;  // when ack_seen_at_tick last changed
  std::chrono::steady_clock::time_point next_check;   // when the job is read again
  bool check_in_flight = false;
  bool finished = false;
  dispatch_result result;
  static inline const char* name = "sequencer";
};

using sequencer_ptr = sequencer_actor::stateful_pointer<sequencer_state>;

/// The downstream watchdog ticks this often and fails the job once no ack came for a whole
/// request timeout. A pending delayed message keeps its (finished) actor in memory until it
/// fires: one tick per request timeout (5 minutes) kept every sequencer of a batch of many
/// small jobs alive that long (~1.7 KB each, issue 14); short ticks free them within 250 ms.
/// The tick also starts the job checks (check_atom), so it is no longer than job_check_every.
std::chrono::milliseconds watchdog_interval(const sequencer_state& st) {
  auto every = std::min<std::chrono::milliseconds>(st.ctx.settings.request_timeout,
                                                   std::chrono::milliseconds(250));
  if (st.ctx.job_check_every.count() > 0) every = std::min(every, st.ctx.job_check_every);
  return every;
}

void finish(sequencer_ptr self, bool ok, job_failure code, std::string message) {
  // The monitor sits on the downstream, which lives as long as the batch: left there, it
  // would keep this actor's memory (~1.7 KB) until the batch ends, one per job (issue 14).
  if (!self->state.finished) self->demonitor(self->state.ctx.downstream.address());
  finish_phase(self, ok, code, std::move(message),
               [](auto& st) { st.result.acked_through = st.acked; });
}

void maybe_done(sequencer_ptr self) {
  auto& st = self->state;
  if (st.acked >= st.job.order_size && st.acked_committed >= st.job.order_size &&
      st.ack_commits_in_flight == 0)
    finish(self, true, {}, {});
}

void pump(sequencer_ptr self);

/// Persists `acked` when nobody else has (downstream that does not commit, or ranges whose
/// tail was passed over).
/// Sends an ack write (watermarks, maybe with outcomes) to the store actor; once it is durable,
/// `through` counts as committed.
template <class Write>
void commit_ack_write(sequencer_ptr self, Write write, std::uint64_t through) {
  auto& st = self->state;
  ++st.ack_commits_in_flight;
  self->request(st.ctx.store_writer, st.ctx.settings.request_timeout, ack_atom::value,
                std::move(write))
      .then(
          [self, through](const store_reply& r) {
            auto& s = self->state;
            --s.ack_commits_in_flight;
            if (!r.ok) return finish(self, false, job_errc::store, r.message);
            s.acked_committed = std::max(s.acked_committed, through);
            maybe_done(self);
            pump(self);  // a stopping job ends here once nothing is in flight
          },
          [self](caf::error& err) {
            finish(self, false, job_errc::internal, "store: " + to_string(err));
          });
}

/// Persists `acked` when nobody else has (downstream that does not commit, or ranges whose
/// tail was passed over).
void commit_acked(sequencer_ptr self) {
  auto& st = self->state;
  if (st.acked <= st.acked_committed) return maybe_done(self);
  commit_ack_write(
      self, std::vector<storage::job_progress>{{st.job.job_id, std::nullopt, st.acked}}, st.acked);
}

/// Moves `acked` over every range whose last sent item is acknowledged.
void advance(sequencer_ptr self, std::uint64_t through) {
  auto& st = self->state;
  while (!st.in_flight.empty() && st.in_flight.front().last_sent <= through) {
    st.acked = std::max(st.acked, st.in_flight.front().range_end);
    if (st.ctx.progress) st.ctx.progress->items_acked += st.in_flight.front().items;
    st.in_flight.pop_front();
  }
}

void pump(sequencer_ptr self) {
  auto& st = self->state;
  if (st.finished || st.commit_in_flight) return;
  const std::uint64_t window = st.ctx.settings.credit_window;
  const std::uint64_t outstanding = st.next_seq - 1 - st.acked;
  if (st.next_seq > st.job.order_size) return;
  if (st.ctx.progress && st.ctx.progress->stop_requested()) {
    // A graceful stop: no new batch; once every batch handed on is acknowledged (and its
    // acks committed), end the job as interrupted. Its phase stays: a re-run resumes it.
    if (st.in_flight.empty() && st.ack_commits_in_flight == 0)
      finish(self, false, job_errc::interrupted,
             "the run was interrupted after " + std::to_string(st.acked) + " of " +
                 std::to_string(st.job.order_size) +
                 " items were acknowledged; a re-run "
                 "resumes it");
    return;
  }
  if (outstanding >= window) return;
  const std::uint64_t n = std::min<std::uint64_t>(
      {st.ctx.settings.batch_size, window - outstanding, st.job.order_size - st.next_seq + 1});
  auto entries = st.ctx.store->read_order(st.job.job_id, st.next_seq, static_cast<std::size_t>(n));
  if (!entries) return finish(self, false, job_errc::store, entries.err().message);
  if (entries->size() != n)
    return finish(self, false, job_errc::store,
                  "persisted order ends at " + std::to_string(st.next_seq + entries->size() - 1) +
                      " but the job record says " + std::to_string(st.job.order_size));
  item_batch batch;
  batch.job_id = st.job.job_id;
  batch.items.reserve(entries->size());
  dispatch_mark mark{st.job.job_id, 0, {}};
  std::uint64_t seq = st.next_seq;
  std::uint64_t skipped = 0;
  for (auto& e : entries.value()) {
    const std::uint64_t this_seq = seq++;
    if (!in_scope(e.remote_status)) {
      ++skipped;  // reconciliation took it out of scope
      continue;
    }
    delivery_item item;
    item.job_id = st.job.job_id;
    item.accounting_entry_id = e.id;
    item.status = e.remote_status;
    item.sequence = this_seq;
    if (this_seq <= st.redeliver_through) {
      auto it = st.prior_attempts.find(this_seq);
      item.attempt = (it == st.prior_attempts.end() ? 1U : it->second) + 1U;
      item.redelivery = true;
      mark.redelivery_attempts.emplace_back(this_seq, item.attempt);
    }
    if (e.has_tracking) {
      auto t = st.ctx.store->load_tracking(st.job.job_id, e.id);
      if (!t) return finish(self, false, job_errc::store, t.err().message);
      if (t.value()) item.tracking = std::move(*t.value());
    }
    batch.items.push_back(std::move(item));
  }
  const std::uint64_t range_end = seq - 1;
  mark.dispatched_through = std::max(st.dispatched, range_end);
  st.commit_in_flight = true;
  self->request(st.ctx.store_writer, st.ctx.settings.request_timeout, dispatch_atom::value,
                std::move(mark))
      .then(
          [self, batch = std::move(batch), range_end, skipped](const store_reply& r) mutable {
            auto& s = self->state;
            s.commit_in_flight = false;
            if (!r.ok) return finish(self, false, job_errc::store, r.message);
            for (const auto& item : batch.items)
              if (item.redelivery) ++s.result.redelivered;
            s.result.emitted += batch.items.size();
            if (s.ctx.progress) s.ctx.progress->items_emitted += batch.items.size();
            s.result.skipped += skipped;
            s.dispatched = std::max(s.dispatched, range_end);
            s.next_seq = range_end + 1;
            const std::uint64_t last_sent = batch.items.empty() ? 0 : batch.items.back().sequence;
            s.in_flight.push_back({last_sent, range_end, batch.items.size()});
            if (batch.items.empty()) {
              // Nothing to hand on: the range is done as soon as everything before it is.
              advance(self, s.acked_committed > s.acked ? s.acked_committed : s.acked);
              commit_acked(self);
            } else {
              self->send(s.ctx.downstream, items_atom::value, std::move(batch),
                         caf::actor_cast<ack_receiver_actor>(self));
              crash_point("after_batch_sent");
            }
            pump(self);
          },
          [self](caf::error& err) {
            finish(self, false, job_errc::internal, "store: " + to_string(err));
          });
}

/// False when an ack is to be ignored (this job is done, or it is another job's) or breaks
/// the protocol (beyond what was handed on: the job fails).
bool ack_is_valid(sequencer_ptr self, const api::uuid& job_id, std::uint64_t through) {
  auto& s = self->state;
  if (s.finished || job_id != s.job.job_id) return false;
  if (through <= s.dispatched) return true;
  finish(self, false, job_errc::downstream_protocol,
         "downstream acknowledged sequence " + std::to_string(through) +
             " beyond what was handed on (" + std::to_string(s.dispatched) + ")");
  return false;
}

/// An ack that carries outcomes (downstream.hpp): each outcome is checked against the
/// order (the item at its sequence, handed on, acked by this ack, final status), then the
/// outcomes and the ack are recorded in one synced write before the ack counts.
void ack_with_outcomes(sequencer_ptr self, const api::uuid& job_id, std::uint64_t through,
                       const outcome_acks& outcomes) {
  auto& s = self->state;
  if (!ack_is_valid(self, job_id, through)) return;
  // The order of the sequences this ack covers, read once (not once per outcome).
  std::uint64_t first = through;
  for (const auto& o : outcomes.items)
    if (o.sequence != 0) first = std::min(first, o.sequence);
  std::vector<storage::order_entry> covered;
  if (!outcomes.items.empty() && first >= 1) {
    auto read =
        s.ctx.store->read_order(s.job.job_id, first, static_cast<std::size_t>(through - first + 1));
    if (!read) return finish(self, false, job_errc::store, read.err().message);
    covered = std::move(read.value());
  }
  ack_outcomes write;
  for (const auto& o : outcomes.items) {
    const std::string item = "outcome of item " + o.accounting_entry_id.to_string() + " (seq " +
                             std::to_string(o.sequence) + "): ";
    if (o.sequence == 0 || o.sequence > through)
      return finish(self, false, job_errc::downstream_protocol,
                    item + "not an item of this ack (through " + std::to_string(through) + ")");
    if (o.status != api::item_status::successful && o.status != api::item_status::failed)
      return finish(self, false, job_errc::downstream_protocol,
                    item + "status '" + std::string(api::to_string(o.status)) +
                        "' is not final (successful or failed)");
    const auto index = o.sequence - first;
    if (index >= covered.size() || covered[index].id != o.accounting_entry_id)
      return finish(self, false, job_errc::downstream_protocol,
                    item + "another item has that sequence");
    storage::item_outcome rec;
    rec.item = o.accounting_entry_id;
    rec.seq = o.sequence;
    rec.status = o.status;
    rec.fields = o.fields;
    write.outcomes.push_back({s.job.job_id, std::move(rec)});
  }
  advance(self, through);
  write.progress.push_back({s.job.job_id, std::nullopt, s.acked});
  commit_ack_write(self, std::move(write), s.acked);
  pump(self);
}

sequencer_actor::behavior_type sequencer_behavior(sequencer_ptr self, job_context ctx,
                                                  storage::job_record job,
                                                  job_supervisor_actor supervisor) {
  auto& st = self->state;
  st.ctx = std::move(ctx);
  st.job = std::move(job);
  st.supervisor = std::move(supervisor);
  return {
      [self](run_atom) {
        auto& s = self->state;
        auto wm = s.ctx.store->load_watermarks(s.job.job_id);
        if (!wm) return finish(self, false, job_errc::store, wm.err().message);
        s.acked = wm->acked_through;
        s.acked_committed = wm->acked_through;
        s.dispatched = wm->dispatched_through;
        s.redeliver_through = wm->dispatched_through;
        s.next_seq = s.acked + 1;
        if (s.redeliver_through > s.acked) {
          auto attempts =
              s.ctx.store->load_attempts(s.job.job_id, s.acked + 1, s.redeliver_through);
          if (!attempts) return finish(self, false, job_errc::store, attempts.err().message);
          for (auto& [seq, attempt] : attempts.value())
            s.prior_attempts[seq] = attempt;
        }
        maybe_done(self);
        if (s.finished) return;
        // A downstream that goes away takes nothing more: fail now, not at the deadline.
        self->monitor(s.ctx.downstream);
        self->set_down_handler([self](caf::down_msg& dm) {
          finish(self, false, job_errc::downstream_down,
                 "downstream stopped: " + to_string(dm.reason));
        });
        s.ack_seen_at = std::chrono::steady_clock::now();
        s.next_check = s.ack_seen_at + s.ctx.job_check_every;
        self->delayed_send(self, watchdog_interval(s), tick_atom::value);
        pump(self);
      },
      [self](check_atom) {
        // Sent by the watchdog tick once job_check_every has passed since the last check
        // ended. Not a delayed message of its own: one pending for job_check_every (60 s by
        // default) kept every finished sequencer in memory that long (~1.7 KB each, ~3 KB
        // per job of a batch of many small jobs, issue 14).
        auto& s = self->state;
        if (s.finished || s.check_in_flight) return;
        s.check_in_flight = true;
        auto again = [self] {
          auto& state = self->state;
          state.check_in_flight = false;
          state.next_check = std::chrono::steady_clock::now() + state.ctx.job_check_every;
        };
        self->request(s.ctx.fetcher, s.ctx.settings.fetch_timeout, get_job_atom::value,
                      s.job.job_id)
            .then(
                [self, again](const job_reply& r) {
                  if (self->state.finished) return;
                  auto change = check_job(r);
                  if (change.stop)
                    return finish(self, false, change.failure, std::move(change.message));
                  again();
                },
                [again](caf::error&) { again(); });
      },
      [self](ack_atom, const api::uuid& job_id, std::uint64_t through, bool committed) {
        auto& s = self->state;
        if (!ack_is_valid(self, job_id, through)) return;
        if (committed) s.acked_committed = std::max(s.acked_committed, through);
        advance(self, through);
        commit_acked(self);
        pump(self);
      },
      [self](ack_atom, const api::uuid& job_id, std::uint64_t through, bool,
             const outcome_acks& outcomes) { ack_with_outcomes(self, job_id, through, outcomes); },
      [self](tick_atom) {
        // Downstream that takes no item for a whole request timeout is stuck: fail the job
        // (its state stays, and a re-run redelivers what was in flight).
        auto& s = self->state;
        if (s.finished) return;
        const auto now = std::chrono::steady_clock::now();
        const bool waiting = s.dispatched > s.acked;
        if (!waiting || s.acked != s.ack_seen_at_tick) {
          s.ack_seen_at_tick = s.acked;
          s.ack_seen_at = now;
        } else if (now - s.ack_seen_at >= s.ctx.settings.request_timeout) {
          return finish(self, false, job_errc::downstream_timeout,
                        "downstream acknowledged nothing for " +
                            std::to_string(s.ctx.settings.request_timeout.count()) + " ms");
        }
        if (s.ctx.job_check_every.count() > 0 && !s.check_in_flight && now >= s.next_check)
          self->send(self, check_atom::value);
        self->delayed_send(self, watchdog_interval(s), tick_atom::value);
      },
  };
}

}  // namespace

sequencer_actor spawn_sequencer(caf::actor_system& sys, job_context ctx, storage::job_record job,
                                job_supervisor_actor supervisor) {
  return sys.spawn(sequencer_behavior, std::move(ctx), std::move(job), std::move(supervisor));
}

}  // namespace ei::actors::detail
