#include "actors/outcome_downstream.hpp"

#include <caf/all.hpp>

namespace ei::actors {

downstream_actor spawn_outcome_downstream(
    caf::actor_system& sys,
    std::function<std::optional<std::vector<item_outcome_ack>>(const item_batch&)> on_batch) {
  auto behavior = [on_batch = std::move(on_batch)]() -> downstream_actor::behavior_type {
    return {
        [on_batch](items_atom, const item_batch& batch, const ack_receiver_actor& receiver) {
          if (batch.items.empty()) return;
          auto outcomes = on_batch(batch);
          if (!outcomes) return;
          caf::anon_send(receiver, ack_atom::value, batch.job_id, batch.items.back().sequence,
                         false, outcome_acks{std::move(*outcomes)});
        },
    };
  };
  return caf::actor_cast<downstream_actor>(sys.spawn<caf::detached>(std::move(behavior)));
}

}  // namespace ei::actors
