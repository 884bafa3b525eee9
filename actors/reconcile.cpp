#include "actors/reconcile.hpp"

namespace ei::actors {

std::string_view to_string(reconcile_action a) noexcept {
  switch (a) {
    case reconcile_action::dispatch:
      return "dispatch";
    case reconcile_action::redeliver:
      return "redeliver";
    case reconcile_action::skip_done:
      return "skip_done";
    case reconcile_action::out_of_scope:
      return "out_of_scope";
    case reconcile_action::out_of_scope_reported:
      return "out_of_scope_reported";
    case reconcile_action::needs_reconciliation:
      return "needs_reconciliation";
  }
  return "unknown";
}

std::string_view to_string(local_state s) noexcept {
  switch (s) {
    case local_state::none:
      return "none";
    case local_state::scoped:
      return "scoped";
    case local_state::dispatched:
      return "dispatched";
    case local_state::acked:
      return "acked";
  }
  return "unknown";
}

reconcile_action reconcile(std::optional<api::item_status> remote, local_state local,
                           bool state_lost) noexcept {
  if (local == local_state::acked) return reconcile_action::skip_done;
  const bool open =
      remote && (*remote == api::item_status::pending || *remote == api::item_status::in_progress);
  if (!open) {
    // successful / failed / abandoned / an unrecognised status / gone from the listing
    return local == local_state::dispatched ? reconcile_action::out_of_scope_reported
                                            : reconcile_action::out_of_scope;
  }
  switch (local) {
    case local_state::dispatched:
      return reconcile_action::redeliver;
    case local_state::scoped:
      return reconcile_action::dispatch;
    case local_state::none:
      if (*remote == api::item_status::in_progress && state_lost)
        return reconcile_action::needs_reconciliation;
      return reconcile_action::dispatch;
    case local_state::acked:
      break;
  }
  return reconcile_action::skip_done;
}

}  // namespace ei::actors
