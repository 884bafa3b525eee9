// The store actor: where the actor graph writes state (only the detached orderer and
// reconciler write their sort runs themselves). It runs detached (its own thread), because
// synced RocksDB writes block on fsync; event-based actors and the NDJSON sink send it
// requests and carry on when the reply says the write is durable (per the store's sync policy,
// see storage/state_store.hpp). Bounded reads of a job's own keys stay with the actors that
// need them (they never wait for an fsync; measured figures and the rule for scans are in
// storage/state_store.hpp).
//
// Group commit: a write the policy fsyncs (put_job, finish_order, dispatch, acks under
// `commits`; every write under `always`) is written with write_sync::deferred and its reply
// held; the actor then queues a sync message behind the requests already in its mailbox and,
// when it comes up, makes ONE fsync for all of them before delivering their replies (each the
// fsync's error if it failed). A reply therefore still means "durable per the policy"; it
// only comes later. Writes the policy does not fsync, and rejected writes, are answered at
// once, so replies may overtake those of earlier, still held requests.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/typed_actor.hpp>

#include "actors/atoms.hpp"
#include "actors/wire.hpp"
#include "storage/state_store.hpp"

namespace ei::actors {

/// The answer to every write: ok, or the store's error (`code` and `message`; the job fails
/// with it). `code` is meaningless when ok.
struct store_reply {
  bool ok = true;
  std::string message;
  storage::store_errc code = storage::store_errc::io_error;

  /// The failed reply for a store error.
  static store_reply failed(const error<storage::store_errc>& e) {
    return store_reply{false, e.message, e.code};
  }
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, store_reply& x) {
  return f(caf::meta::type_name("ei::actors::store_reply"), x.ok, x.message, x.code);
}

struct page_commit {
  storage::job_record job;
  std::uint32_t epoch = 0;
  storage::page_record page;
};

struct dispatch_mark {
  api::uuid job_id;
  std::uint64_t dispatched_through = 0;
  std::vector<std::pair<std::uint64_t, std::uint32_t>> redelivery_attempts;
};

struct order_chunk {
  api::uuid job_id;
  std::uint32_t chunk_no = 0;
  std::vector<storage::order_entry> entries;
};

/// finish_order with the chunks that must become visible together with the new order size.
struct order_finish {
  storage::job_record job;
  std::vector<storage::order_chunk_write> chunks;
};

/// The NDJSON sink's ack commit: the jobs' watermarks and the output offset just past the
/// last acknowledged line, in one synced write (state_store::commit_acks). `sink` empty: no
/// offset (stdout).
struct sink_acks {
  std::vector<storage::job_progress> progress;
  std::string sink;
  std::uint64_t offset = 0;
};

/// Acks with item outcomes, written in one synced write (state_store::commit_acks).
struct ack_outcomes {
  std::vector<storage::job_progress> progress;
  std::vector<storage::job_item_outcome> outcomes;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, page_commit& x) {
  return f(caf::meta::type_name("ei::actors::page_commit"), x.job, x.epoch, x.page);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, dispatch_mark& x) {
  return f(caf::meta::type_name("ei::actors::dispatch_mark"), x.job_id, x.dispatched_through,
           x.redelivery_attempts);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, order_chunk& x) {
  return f(caf::meta::type_name("ei::actors::order_chunk"), x.job_id, x.chunk_no, x.entries);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, order_finish& x) {
  return f(caf::meta::type_name("ei::actors::order_finish"), x.job, x.chunks);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, ack_outcomes& x) {
  return f(caf::meta::type_name("ei::actors::ack_outcomes"), x.progress, x.outcomes);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, sink_acks& x) {
  return f(caf::meta::type_name("ei::actors::sink_acks"), x.progress, x.sink, x.offset);
}

using store_actor = caf::typed_actor<
    caf::replies_to<put_job_atom, storage::job_record>::with<store_reply>,
    caf::replies_to<page_atom, page_commit>::with<store_reply>,
    caf::replies_to<order_atom, storage::job_record>::with<store_reply>,
    caf::replies_to<order_atom, order_chunk>::with<store_reply>,
    caf::replies_to<order_atom, order_finish>::with<store_reply>,
    caf::replies_to<dispatch_atom, dispatch_mark>::with<store_reply>,
    caf::replies_to<ack_atom, std::vector<storage::job_progress>>::with<store_reply>,
    caf::replies_to<ack_atom, ack_outcomes>::with<store_reply>,
    caf::replies_to<ack_atom, sink_acks>::with<store_reply>>;

/// Spawns the detached store actor over `store` (shared; must outlive the actor).
store_actor spawn_store_actor(caf::actor_system& sys, std::shared_ptr<storage::state_store> store);

}  // namespace ei::actors
