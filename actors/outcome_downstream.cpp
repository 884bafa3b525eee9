#include "actors/outcome_downstream.hpp"

#include <caf/all.hpp>

namespace ei::actors {

namespace {

using outcome_fn = std::function<std::optional<std::vector<item_outcome_ack>>(const item_batch&)>;

downstream_actor::behavior_type outcome_behavior(outcome_fn on_batch) {
  return {
      [on_batch](items_atom, const item_batch& batch, const ack_receiver_actor& receiver) {
        if (batch.items.empty()) return;
        auto outcomes = on_batch(batch);
        if (!outcomes) return;
        caf::anon_send(receiver, ack_atom::value, batch.job_id, batch.items.back().sequence, false,
                       outcome_acks{std::move(*outcomes)});
      },
  };
}

}  // namespace

downstream_actor spawn_outcome_downstream(caf::actor_system& sys, outcome_fn on_batch) {
  // The callback goes to spawn as an argument, not into a capture: CAF 0.17 dereferences a
  // null argument tuple when a function is spawned with none (UBSan reports it).
  return sys.spawn<caf::detached>(outcome_behavior, std::move(on_batch));
}

}  // namespace ei::actors
