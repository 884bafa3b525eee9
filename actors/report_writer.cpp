#include <atomic>
#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <unistd.h>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include "actors/report.hpp"
#include "common/durable_file.hpp"

namespace ei::actors {

std::string reconciliation_line(const api::uuid& job, const reconciliation_entry& e) {
  return nlohmann::json{{"jobId", job.to_string()},
                        {"accountingEntryId", e.accounting_entry_id.to_string()},
                        {"remoteStatus", e.remote_status},
                        {"action", e.action}}
      .dump();
}

namespace {

struct report_writer_state {
  std::string path;
  std::shared_ptr<std::atomic<bool>> wrote;
  int fd = -1;
  ~report_writer_state() {
    if (fd >= 0) ::close(fd);
  }
  static inline const char* name = "report_writer";
};

store_reply append_and_sync(report_writer_state& st, const std::string& lines) {
  auto failed = [&](const char* what) {
    return store_reply{false,
                       std::string("cannot ") + what + " the reconciliation report '" + st.path +
                           "': " + std::strerror(errno),
                       storage::store_errc::io_error};
  };
  if (st.fd < 0) {
    st.fd = ::open(st.path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (st.fd < 0) return failed("open");
  }
  if (auto f = durable::append_synced(st.fd, lines)) {
    errno = f->error;
    return failed(f->step);
  }
  if (st.wrote) *st.wrote = true;
  return store_reply{};
}

report_writer_actor::behavior_type report_writer_behavior(
    report_writer_actor::stateful_pointer<report_writer_state> self, std::string path,
    std::shared_ptr<std::atomic<bool>> wrote) {
  self->state.path = std::move(path);
  self->state.wrote = std::move(wrote);
  return {
      [self](report_atom, const api::uuid& job,
             const std::vector<reconciliation_entry>& entries) -> store_reply {
        if (entries.empty()) return store_reply{};
        std::string lines;
        for (const auto& e : entries) {
          lines += reconciliation_line(job, e);
          lines += '\n';
        }
        return append_and_sync(self->state, lines);
      },
  };
}

}  // namespace

report_writer_actor spawn_report_writer(caf::actor_system& sys, std::string path,
                                        std::shared_ptr<std::atomic<bool>> wrote) {
  // Detached: the write and its fsync block.
  return sys.spawn<caf::detached>(report_writer_behavior, std::move(path), std::move(wrote));
}

}  // namespace ei::actors
