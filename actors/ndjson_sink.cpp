#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>

#include <caf/all.hpp>

#include "actors/sink.hpp"
#include "common/crash_point.hpp"

namespace ei::actors {
namespace {

void append_json_string(std::string& out, std::string_view s) {
  out.push_back('"');
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          static constexpr char hex[] = "0123456789abcdef";
          out += "\\u00";
          out.push_back(hex[(c >> 4) & 0xf]);
          out.push_back(hex[c & 0xf]);
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
}

void append_optional(std::string& out, std::string_view key, const std::optional<std::string>& v) {
  out.push_back(',');
  out.push_back('"');
  out.append(key);
  out += "\":";
  if (v)
    append_json_string(out, *v);
  else
    out += "null";
}

struct pending_ack {
  std::uint64_t through = 0;
  ack_receiver_actor receiver;
};

struct sink_state {
  ndjson_sink_options options;
  std::shared_ptr<storage::state_store> store;
  std::string sink_name;
  int fd = -1;
  std::uint64_t offset = 0;
  std::string buffer;
  std::size_t buffered_items = 0;
  std::map<api::uuid, pending_ack> pending;
  bool flush_scheduled = false;
  static inline const char* name = "ndjson_sink";
};

using sink_impl = downstream_actor::extend<caf::reacts_to<flush_atom>>;
using sink_ptr = sink_impl::stateful_pointer<sink_state>;

bool write_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    auto n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

/// Stops the sink for good: after a failed write, fsync or ack commit the file and the store
/// may disagree about what is acknowledged, so nothing more may be written or acknowledged.
/// The jobs see their downstream go down and fail; a re-run cuts the file back to the last
/// committed offset and redelivers.
void stop_sink(sink_ptr self, const std::string& what) {
  std::cerr << "export-items: output " << self->state.options.path << ": " << what
            << "; stopping the output\n";
  self->state.pending.clear();
  self->quit(caf::make_error(caf::sec::runtime_error, what));
}

void flush(sink_ptr self) {
  auto& st = self->state;
  st.flush_scheduled = false;
  if (st.pending.empty()) return;
  if (!write_all(st.fd, st.buffer.data(), st.buffer.size()))
    return stop_sink(self, std::string("write failed: ") + std::strerror(errno));
  crash_point("after_output_write");
  if (st.options.fsync && st.options.path != "-" && ::fdatasync(st.fd) != 0)
    return stop_sink(self, std::string("fsync failed: ") + std::strerror(errno));
  crash_point("after_output_fsync");
  st.offset += st.buffer.size();
  st.buffer.clear();
  st.buffered_items = 0;
  std::vector<storage::job_progress> progress;
  progress.reserve(st.pending.size());
  for (auto& [job, ack] : st.pending)
    progress.push_back({job, std::nullopt, ack.through});
  std::optional<std::pair<std::string, std::uint64_t>> sink_offset;
  if (st.options.path != "-") sink_offset.emplace(st.sink_name, st.offset);
  auto committed = st.store->commit_acks(progress, sink_offset);
  if (!committed.ok())
    return stop_sink(self, "committing acknowledgements failed: " + committed.err().message);
  crash_point("after_ack_commit");
  for (auto& [job, ack] : st.pending)
    self->send(ack.receiver, ack_atom::value, job, ack.through, true);
  st.pending.clear();
}

sink_impl::behavior_type sink_behavior(sink_ptr self, ndjson_sink_options options,
                                       std::shared_ptr<storage::state_store> store, int fd,
                                       std::uint64_t offset, std::string sink_name) {
  auto& st = self->state;
  st.options = std::move(options);
  st.store = std::move(store);
  st.fd = fd;
  st.offset = offset;
  st.sink_name = std::move(sink_name);
  self->attach_functor([self] {
    if (self->state.fd > 1) ::close(self->state.fd);
  });
  return {
      [self](items_atom, const item_batch& batch, const ack_receiver_actor& receiver) {
        auto& s = self->state;
        if (batch.items.empty()) return;
        for (const auto& item : batch.items) {
          append_ndjson_line(s.buffer, item);
          s.buffer.push_back('\n');
        }
        s.buffered_items += batch.items.size();
        auto& ack = s.pending[batch.job_id];
        ack.through = std::max(ack.through, batch.items.back().sequence);
        ack.receiver = receiver;
        if (s.buffered_items >= s.options.flush_items) {
          flush(self);
        } else if (!s.flush_scheduled) {
          s.flush_scheduled = true;
          if (s.options.flush_interval.count() == 0)
            self->send(self, flush_atom::value);  // behind the batches already queued
          else
            self->delayed_send(self, s.options.flush_interval, flush_atom::value);
        }
      },
      [self](flush_atom) { flush(self); },
  };
}

}  // namespace

void append_ndjson_line(std::string& out, const delivery_item& item) {
  using namespace std::string_view_literals;  // literals with their length: no strlen per line
  char buf[36];
  out += R"({"jobId":")"sv;
  item.job_id.format_to(buf);
  out.append(buf, 36);
  out += R"(","accountingEntryId":")"sv;
  item.accounting_entry_id.format_to(buf);
  out.append(buf, 36);
  out += R"(","status":)"sv;
  append_json_string(out, item.status == api::item_status::unknown
                              ? std::string_view(item.status_text)
                              : api::to_string(item.status));
  out += R"(,"sequence":)"sv;
  out.append(buf, static_cast<std::size_t>(std::to_chars(buf, buf + 36, item.sequence).ptr - buf));
  out += R"(,"attempt":)"sv;
  out.append(buf, static_cast<std::size_t>(std::to_chars(buf, buf + 36, item.attempt).ptr - buf));
  out += item.redelivery ? R"(,"redelivery":true)"sv : R"(,"redelivery":false)"sv;
  const auto& t = item.tracking;
  if (!t.exported_at && !t.external_id && !t.external_url && !t.failure_reason &&
      !t.failure_reason_type) {
    // The common case (items not exported yet): the whole null tail at once.
    out +=
        R"(,"exportedAt":null,"externalId":null,"externalUrl":null,"failureReason":null,"failureReasonType":null})"sv;
    return;
  }
  append_optional(out, "exportedAt", t.exported_at);
  append_optional(out, "externalId", t.external_id);
  append_optional(out, "externalUrl", t.external_url);
  append_optional(out, "failureReason", t.failure_reason);
  append_optional(out, "failureReasonType", t.failure_reason_type);
  out.push_back('}');
}

result<downstream_actor, sink_errc> spawn_ndjson_sink(caf::actor_system& sys,
                                                      ndjson_sink_options options,
                                                      std::shared_ptr<storage::state_store> store) {
  int fd = 1;
  std::uint64_t offset = 0;
  std::string sink_name = "stdout";
  if (options.path != "-") {
    std::error_code ec;
    auto abs = std::filesystem::absolute(options.path, ec);
    sink_name = "ndjson:" + (ec ? options.path : abs.lexically_normal().string());
    fd = ::open(options.path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
      return make_error(sink_errc::open_failed,
                        "cannot open output file '" + options.path + "': " + std::strerror(errno));
    struct stat info {};
    ::fstat(fd, &info);
    const auto size = static_cast<std::uint64_t>(info.st_size);
    auto stored = store->load_sink_offset(sink_name);
    if (!stored) {
      ::close(fd);
      return make_error(sink_errc::store, stored.err().message);
    }
    if (stored.value()) {
      offset = *stored.value();
      if (size < offset) {
        ::close(fd);
        return make_error(sink_errc::output_shorter_than_state,
                          "output file '" + options.path + "' has " + std::to_string(size) +
                              " bytes but the state directory recorded " + std::to_string(offset) +
                              " acknowledged bytes: it was truncated or replaced; refusing to "
                              "write to it (move it back, or use another --out)");
      }
      // Cut away a torn last line and lines that were never acknowledged.
      if (size > offset && ::ftruncate(fd, static_cast<off_t>(offset)) != 0) {
        ::close(fd);
        return make_error(sink_errc::open_failed, "cannot truncate output file '" + options.path +
                                                      "': " + std::strerror(errno));
      }
    } else {
      // A file the store has never seen: append after what is there, and record that start
      // before writing anything, so lines of a run that dies before its first acknowledgement
      // are cut on restart like any other unacknowledged lines.
      offset = size;
      auto recorded = store->commit_acks({}, std::make_pair(sink_name, offset));
      if (!recorded.ok()) {
        ::close(fd);
        return make_error(sink_errc::store, recorded.err().message);
      }
    }
    ::lseek(fd, static_cast<off_t>(offset), SEEK_SET);
  }
  auto actor = sys.spawn<caf::detached>(sink_behavior, std::move(options), std::move(store), fd,
                                        offset, std::move(sink_name));
  return caf::actor_cast<downstream_actor>(actor);
}

namespace {

downstream_actor::behavior_type callback_behavior(std::function<bool(const item_batch&)> on_batch) {
  return {
      [on_batch](items_atom, const item_batch& batch, const ack_receiver_actor& receiver) {
        if (batch.items.empty()) return;
        if (on_batch(batch))
          caf::anon_send(receiver, ack_atom::value, batch.job_id, batch.items.back().sequence,
                         false);
      },
  };
}

}  // namespace

downstream_actor spawn_callback_downstream(caf::actor_system& sys,
                                           std::function<bool(const item_batch&)> on_batch) {
  return sys.spawn<caf::detached>(callback_behavior, std::move(on_batch));
}

}  // namespace ei::actors
