// The names of every crash point (for the harness and --help texts), in every build.
#include "common/crash_point.hpp"

namespace ei {

const std::vector<std::string_view>& crash_points() noexcept {
  static const std::vector<std::string_view> names{
      "after_page_commit",      // a listing page and its cursor are committed
      "after_order_chunk",      // one chunk of the order is written, ordering not finished
      "before_finish_order",    // every chunk is written, the order is not yet official
      "after_dispatch_commit",  // a dispatch mark is durable, the batch has not left
      "after_batch_sent",       // a batch was handed to downstream
      "after_output_write",     // NDJSON lines written, not yet fsynced
      "after_output_fsync",     // lines fsynced, acks not yet committed
      "after_ack_commit",       // acks and the output offset committed
      "after_relist_page",      // a reconciliation re-listing page is committed
      "before_complete",        // every item acked, the job not yet marked complete
      // Write-back (writeback/, docs/write-back.md):
      "after_outcome_commit",        // outcomes recorded (synced), nothing sent yet
      "after_put_sent",              // a PUT of outcomes handed to the HTTP client
      "after_put_ok_before_record",  // a PUT answered 200, its items not yet recorded
      "before_event",                // every item reported, the job not yet re-read
      "after_event_before_record",   // the job event accepted (202), not yet recorded
  };
  return names;
}

}  // namespace ei
