#include <string>

#include "actors/detail/job_parts.hpp"
#include "actors/reconcile.hpp"

namespace ei::actors::detail {

result<delivery_tally, storage::store_errc> tally_delivery(
    storage::state_store& store, const storage::job_record& job,
    std::vector<reconciliation_entry>* reported) {
  delivery_tally t;
  const std::size_t cs = storage::state_store::order_chunk_size;
  for (std::uint64_t first = 1; first <= job.order_size; first += cs) {
    auto entries = store.read_order(job.job_id, first, cs);
    if (!entries) return std::move(entries).err();
    if (entries->empty()) break;
    for (const auto& e : *entries) {
      if (in_scope(e.remote_status)) {
        ++t.acked;
        continue;
      }
      if (!e.absent && !e.handed_on) {
        ++t.skipped_final_remotely;
        continue;
      }
      ++t.reported;
      if (e.absent) ++t.absent;
      if (reported)
        reported->push_back(
            {e.id, e.absent ? std::string("absent") : std::string(api::to_string(e.remote_status)),
             e.absent ? std::string("absent")
                      : std::string(to_string(reconcile_action::out_of_scope_reported))});
    }
  }
  return t;
}

}  // namespace ei::actors::detail
