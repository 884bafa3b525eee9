// The downstream protocol: how the stage hands items on and learns they are safe.
//
// A sequencer (one per job) sends `(items_atom, item_batch, ack_receiver_actor)` to the
// downstream actor. Items of a batch belong to one job and carry consecutive sequence numbers
// (1-based positions in the job's deterministic order). Downstream answers, at any time and
// as often as it likes, `(ack_atom, job_id, acked_through, committed)` to the ack receiver:
// every item of that job with sequence <= acked_through is acknowledged and will never be
// handed on again, across crashes and restarts. Acks are cumulative and may be coalesced;
// an ack lower than an earlier one is ignored. `committed` is true when downstream has already
// recorded the watermark in the stage's state store itself (the NDJSON sink does, so that the
// output offset and the watermarks move in one write); otherwise the sequencer persists it.
//
// Flow control: a sequencer never has more than `credit_window` unacknowledged items in
// flight, so downstream memory stays bounded by window x jobs.
//
// The reference for hosts (one place, with the example from tests/embed): docs/embedding.md,
// "The message protocol".
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/meta/type_name.hpp>
#include <caf/typed_actor.hpp>

#include "actors/atoms.hpp"
#include "actors/wire.hpp"
#include "api/model.hpp"

namespace ei::actors {

/// One item handed on. `attempt` counts deliveries of this item (1 on the first);
/// `redelivery` is true when the item may have reached downstream before (it was in flight
/// when an earlier run stopped), so downstream can deduplicate by accounting_entry_id.
struct delivery_item {
  api::uuid job_id;
  api::uuid accounting_entry_id;
  api::item_status status = api::item_status::pending;
  std::string status_text;
  std::uint64_t sequence = 0;
  std::uint32_t attempt = 1;
  bool redelivery = false;
  api::tracking_fields tracking;
};

struct item_batch {
  api::uuid job_id;
  std::vector<delivery_item> items;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, delivery_item& x) {
  return f(caf::meta::type_name("ei::actors::delivery_item"), x.job_id, x.accounting_entry_id,
           x.status, x.status_text, x.sequence, x.attempt, x.redelivery, x.tracking);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, item_batch& x) {
  return f(caf::meta::type_name("ei::actors::item_batch"), x.job_id, x.items);
}

/// The outcome downstream gives an item it acknowledges (docs/write-back.md): `successful`
/// (optional exported_at, external_id, external_url) or `failed` (failure_reason_type,
/// failure_reason). Identified by id and the sequence it was handed on with.
struct item_outcome_ack {
  api::uuid accounting_entry_id;
  std::uint64_t sequence = 0;
  api::item_status status = api::item_status::successful;
  api::tracking_fields fields;
};

/// Outcomes travelling with an ack.
struct outcome_acks {
  std::vector<item_outcome_ack> items;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, item_outcome_ack& x) {
  return f(caf::meta::type_name("ei::actors::item_outcome_ack"), x.accounting_entry_id, x.sequence,
           x.status, x.fields);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, outcome_acks& x) {
  return f(caf::meta::type_name("ei::actors::outcome_acks"), x.items);
}

/// Acks, with or without outcomes. `(ack_atom, job, through, committed, outcome_acks)` acks
/// like the plain ack and records the outcomes in the SAME synced store write as the ack
/// (the sequencer writes it, whatever `committed` says). Every outcome must be of an item of
/// this ack (sequence <= through) with status successful or failed; a bad outcome fails the
/// job (downstream_protocol) and nothing of that ack is recorded. A later write-back
/// (`run --complete-jobs`, `export-items complete`) sends the outcomes to Pleo.
using ack_receiver_actor =
    caf::typed_actor<caf::reacts_to<ack_atom, api::uuid, std::uint64_t, bool>,
                     caf::reacts_to<ack_atom, api::uuid, std::uint64_t, bool, outcome_acks>>;

using downstream_actor =
    caf::typed_actor<caf::reacts_to<items_atom, item_batch, ack_receiver_actor>>;

}  // namespace ei::actors
