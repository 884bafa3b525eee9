// The reconciliation table of docs/design.md ("Scope and recovery"): what to do with an item given
// its remote status (from the latest listing) and its local state (from the state store).
// Pure and total, so it is unit-tested cell by cell; the ordering and reconciling phases apply
// it.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "api/model.hpp"

namespace ei::actors {

/// An item's local state, derived from the store: no record; in the order but never handed
/// on; handed on but not acknowledged; acknowledged.
enum class local_state : std::uint8_t { none, scoped, dispatched, acked };

enum class reconcile_action : std::uint8_t {
  dispatch,               // in scope: hand it on
  redeliver,              // in scope and maybe seen downstream: hand on again, flagged
  skip_done,              // acknowledged earlier: never again
  out_of_scope,           // not (or no longer) to be exported; recorded
  out_of_scope_reported,  // was handed on, now final remotely: not again, but reported
  needs_reconciliation,   // in_progress remotely with no local record after state loss
};

std::string_view to_string(reconcile_action a) noexcept;
std::string_view to_string(local_state s) noexcept;

/// `remote` is empty when the latest listing no longer contains the item. `state_lost` is true
/// when this run recovers a job whose local record of the item may have been lost (a resumed
/// job, or --recover-lost-state); on a first run it is false.
reconcile_action reconcile(std::optional<api::item_status> remote, local_state local,
                           bool state_lost) noexcept;

}  // namespace ei::actors
