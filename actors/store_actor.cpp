#include "actors/store.hpp"

#include <caf/all.hpp>

#include <unordered_map>

#include "common/crash_point.hpp"
#include "common/log.hpp"

namespace ei::actors {
namespace {

using storage::write_sync;

/// The store actor as spawned: the public interface plus the group-commit message it sends
/// itself. Handles to it are handed out as store_actor, so nobody else sends sync_atom.
using store_actor_impl = store_actor::extend<caf::reacts_to<sync_atom>>;

/// A reply to a deferred write, held until the group's fsync.
struct held_reply {
  caf::typed_response_promise<store_reply> promise;
  const char* crash_after = nullptr;  // fired after the fsync, before the reply (may be null)
};

struct store_state {
  std::shared_ptr<storage::state_store> store;
  /// Deferred writes not yet synced. Non-empty exactly when a sync_atom is in the mailbox.
  std::vector<held_reply> held;
  /// The phase each unfinished job was last written with, for the phase_changed log line
  /// (every job record the stage writes passes through here). A job leaves it when it is
  /// written complete or failed, so it holds the running jobs only.
  std::unordered_map<api::uuid, storage::job_phase, api::uuid_hash> phases;
  static inline const char* name = "store";
};

using store_pointer = store_actor_impl::stateful_pointer<store_state>;

/// Logs phase_changed (debug) when a job record is written with a phase other than the last.
void note_phase(store_state& st, const storage::job_record& job) {
  const bool done = job.phase == storage::job_phase::complete || !job.failure_code.empty();
  auto it = st.phases.find(job.job_id);
  const bool changed = it == st.phases.end() || it->second != job.phase;
  if (changed && log::enabled(log::level::debug)) {
    const auto from =
        it == st.phases.end() ? std::string_view("-") : storage::to_string(it->second);
    log::debug("phase_changed", "job phase changed",
               {{"jobId", job.job_id.to_string()},
                {"companyId", job.company_id.to_string()},
                {"from", from},
                {"phase", storage::to_string(job.phase)}});
  }
  if (done) {
    if (it != st.phases.end()) st.phases.erase(it);
  } else if (it == st.phases.end()) {
    st.phases.emplace(job.job_id, job.phase);
  } else {
    it->second = job.phase;
  }
}

template <class Status>
store_reply to_reply(const Status& st) {
  if (st.ok()) return {};
  return store_reply::failed(st.err());
}

/// Group commit: a write the sync policy would fsync is written without the fsync, and its
/// reply is held until the next sync_atom, queued behind every request already in the
/// mailbox; that one fsync covers all of them (the WAL is recovered as a prefix). Writes the
/// policy does not fsync keep replying at once. `write(mode)` performs the store call.
template <class Write>
caf::result<store_reply> write_reply(store_pointer self, bool commit_point, Write&& write,
                                     const char* crash_after = nullptr) {
  auto& st = self->state;
  if (!storage::syncs(st.store->options().sync, commit_point)) {
    auto reply = to_reply(write(write_sync::policy));
    if (crash_after) crash_point(crash_after);
    return reply;
  }
  auto written = write(write_sync::deferred);
  if (!written) {  // nothing was written: nothing to wait for
    if (crash_after) crash_point(crash_after);
    return to_reply(written);
  }
  auto promise = self->make_response_promise<store_reply>();
  if (st.held.empty()) self->send(caf::actor_cast<store_actor_impl>(self), sync_atom::value);
  st.held.push_back({promise, crash_after});
  return promise;
}

store_actor_impl::behavior_type store_behavior(store_pointer self,
                                               std::shared_ptr<storage::state_store> store) {
  self->state.store = std::move(store);
  return {
      [self](put_job_atom, const storage::job_record& job) {
        note_phase(self->state, job);
        return write_reply(self, true,
                           [&](write_sync m) { return self->state.store->put_job(job, m); });
      },
      [self](page_atom, const page_commit& c) {
        note_phase(self->state, c.job);
        return write_reply(
            self, false,
            [&](write_sync m) { return self->state.store->commit_page(c.job, c.epoch, c.page, m); },
            c.job.phase == storage::job_phase::reconciling ? "after_relist_page"
                                                           : "after_page_commit");
      },
      [self](order_atom, const storage::job_record& job) {
        note_phase(self->state, job);
        crash_point("before_finish_order");
        return write_reply(self, true,
                           [&](write_sync m) { return self->state.store->finish_order(job, m); });
      },
      [self](order_atom, const order_finish& f) {
        note_phase(self->state, f.job);
        crash_point("before_finish_order");
        return write_reply(self, true, [&](write_sync m) {
          return self->state.store->finish_order(f.job, f.chunks, m);
        });
      },
      [self](order_atom, const order_chunk& c) {
        return write_reply(
            self, false,
            [&](write_sync m) {
              return self->state.store->write_order_chunk(c.job_id, c.chunk_no, c.entries, m);
            },
            "after_order_chunk");
      },
      [self](dispatch_atom, const dispatch_mark& m) {
        return write_reply(
            self, true,
            [&](write_sync mode) {
              return self->state.store->commit_dispatch(m.job_id, m.dispatched_through,
                                                        m.redelivery_attempts, mode);
            },
            "after_dispatch_commit");
      },
      [self](ack_atom, const std::vector<storage::job_progress>& progress) {
        return write_reply(self, true, [&](write_sync m) {
          return self->state.store->commit_acks(progress, std::nullopt, m);
        });
      },
      [self](ack_atom, const ack_outcomes& a) {
        return write_reply(self, true, [&](write_sync m) {
          return self->state.store->commit_acks(a.progress, std::nullopt, a.outcomes, m);
        });
      },
      [self](ack_atom, const sink_acks& a) {
        std::optional<std::pair<std::string, std::uint64_t>> offset;
        if (!a.sink.empty()) offset.emplace(a.sink, a.offset);
        return write_reply(
            self, true,
            [&](write_sync m) { return self->state.store->commit_acks(a.progress, offset, m); },
            "after_ack_commit");
      },
      [self](sync_atom) {
        auto held = std::move(self->state.held);
        self->state.held.clear();
        if (held.empty()) return;
        const auto reply = to_reply(self->state.store->sync());
        for (auto& h : held) {
          if (h.crash_after) crash_point(h.crash_after);
          h.promise.deliver(reply);
        }
      },
  };
}

}  // namespace

store_actor spawn_store_actor(caf::actor_system& sys, std::shared_ptr<storage::state_store> store) {
  return caf::actor_cast<store_actor>(sys.spawn<caf::detached>(store_behavior, std::move(store)));
}

}  // namespace ei::actors
