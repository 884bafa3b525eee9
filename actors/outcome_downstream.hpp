// A downstream that acknowledges items with their outcomes (downstream.hpp, `outcome_acks`):
// for embedders and tests that close the loop in process (docs/write-back.md).
#pragma once

#include <functional>
#include <optional>
#include <vector>

#include <caf/actor_system.hpp>

#include "actors/downstream.hpp"

namespace ei::actors {

/// Calls `on_batch` for every batch (on its own thread: it may block, e.g. on an ERP); the
/// outcomes it returns go back with the ack of the whole batch. nullopt leaves the batch
/// unacknowledged (it comes again, flagged, on the next run).
downstream_actor spawn_outcome_downstream(
    caf::actor_system& sys,
    std::function<std::optional<std::vector<item_outcome_ack>>(const item_batch&)> on_batch);

}  // namespace ei::actors
