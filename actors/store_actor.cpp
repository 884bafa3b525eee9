#include "actors/store.hpp"

#include <caf/all.hpp>

#include "common/crash_point.hpp"

namespace ei::actors {
namespace {

template <class Status>
store_reply to_reply(const Status& st) {
  if (st.ok()) return {};
  return {false, st.err().message};
}

store_actor::behavior_type store_behavior(std::shared_ptr<storage::state_store> store) {
  return {
      [store](put_job_atom, const storage::job_record& job) {
        return to_reply(store->put_job(job));
      },
      [store](page_atom, const page_commit& c) {
        auto reply = to_reply(store->commit_page(c.job, c.epoch, c.page));
        crash_point(c.job.phase == storage::job_phase::reconciling ? "after_relist_page"
                                                                   : "after_page_commit");
        return reply;
      },
      [store](order_atom, const storage::job_record& job) {
        crash_point("before_finish_order");
        return to_reply(store->finish_order(job));
      },
      [store](order_atom, const order_chunk& c) {
        auto reply = to_reply(store->write_order_chunk(c.job_id, c.chunk_no, c.entries));
        crash_point("after_order_chunk");
        return reply;
      },
      [store](dispatch_atom, const dispatch_mark& m) {
        auto reply =
            to_reply(store->commit_dispatch(m.job_id, m.dispatched_through, m.redelivery_attempts));
        crash_point("after_dispatch_commit");
        return reply;
      },
      [store](ack_atom, const std::vector<storage::job_progress>& progress) {
        return to_reply(store->commit_acks(progress, std::nullopt));
      },
  };
}

}  // namespace

store_actor spawn_store_actor(caf::actor_system& sys, std::shared_ptr<storage::state_store> store) {
  return sys.spawn<caf::detached>(store_behavior, std::move(store));
}

}  // namespace ei::actors
