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
// The message types (delivery_item, item_batch, item_outcome_ack, outcome_acks,
// ack_receiver_actor, downstream_actor) are public: include/export_items/protocol.hpp.
// The reference for hosts (one place, with the example from tests/embed): docs/embedding.md,
// "The message protocol".
#pragma once

#include "actors/atoms.hpp"
#include "actors/wire.hpp"
#include "api/model.hpp"
#include "export_items/protocol.hpp"
