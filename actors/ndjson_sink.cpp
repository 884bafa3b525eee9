#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <map>

#include <caf/all.hpp>

#include "actors/sink.hpp"
#include "actors/store.hpp"
#include "common/crash_point.hpp"
#include "common/durable_file.hpp"
#include "common/json_text.hpp"
#include "common/log.hpp"

namespace ei::actors {
namespace {

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
  std::string sink_name;
  int fd = -1;
  std::uint64_t offset = 0;
  std::string buffer;
  std::size_t buffered_items = 0;
  std::map<api::uuid, pending_ack> pending;
  store_actor writer;             // the ack commits go through the store actor
  bool commit_in_flight = false;  // one ack commit at a time; lines buffer meanwhile
  // The in-flight commit's deadline. The commit is sent without a CAF timeout (CAF 0.17 keeps
  // every request timeout in its clock until it fires, also once the answer came: ~180 bytes
  // per commit for commit_timeout, so the sink grew with every flush); one check at a time
  // is pending instead (a tick_atom to itself), rescheduled while commits follow each other.
  std::chrono::steady_clock::time_point commit_deadline;
  bool commit_check_pending = false;
  bool flush_scheduled = false;
  bool committed_warned = false;
  static inline const char* name = "ndjson_sink";
};

/// The most the sink buffers while an ack commit is in flight before it writes the lines out
/// (unsynced): the buffer of a sink fed by a few large jobs' credit windows stays this size
/// instead of reaching their sum (~10 MB for three windows of 16,384 lines).
constexpr std::size_t spill_bytes = std::size_t{1} << 20;

using sink_impl = downstream_actor::extend<caf::reacts_to<flush_atom>, caf::reacts_to<tick_atom>>;
using sink_ptr = sink_impl::stateful_pointer<sink_state>;

/// Replaces `<path>.committed` with `offset` (write the .tmp, rename). Advisory: not fsynced.
bool write_committed_file(const std::string& path, std::uint64_t offset) {
  const auto target = committed_path(path);
  const auto tmp = target + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  char text[32];
  auto end = std::to_chars(text, text + sizeof text - 1, offset).ptr;
  *end++ = '\n';
  const bool written =
      !durable::write_all(fd, std::string_view(text, static_cast<std::size_t>(end - text)));
  const bool closed = ::close(fd) == 0;
  return written && closed && ::rename(tmp.c_str(), target.c_str()) == 0;
}

/// Stops the sink for good: after a failed write, fsync or ack commit the file and the store
/// may disagree about what is acknowledged, so nothing more may be written or acknowledged.
/// The jobs see their downstream go down and fail; a re-run cuts the file back to the last
/// committed offset and redelivers.
void stop_sink(sink_ptr self, const std::string& what) {
  log::error("output_stopped", what + "; stopping the output",
             {{"output", self->state.options.path}});
  self->state.pending.clear();
  self->quit(caf::make_error(caf::sec::runtime_error, what));
}

void flush(sink_ptr self);

/// The ack commit of `acks` (output written and fsynced through `offset`) is durable: update
/// the commit file, acknowledge, and flush what arrived in the meantime.
void committed(sink_ptr self, std::uint64_t offset, std::map<api::uuid, pending_ack> acks) {
  auto& st = self->state;
  st.commit_in_flight = false;
  if (st.options.path != "-" && !write_committed_file(st.options.path, offset) &&
      !st.committed_warned) {
    st.committed_warned = true;  // advisory: the store holds the truth; say it once
    log::warn("output_committed_file",
              "cannot update " + committed_path(st.options.path) + ": " + std::strerror(errno),
              {{"output", st.options.path}});
  }
  for (auto& [job, ack] : acks)
    self->send(ack.receiver, ack_atom::value, job, ack.through, true);
  if (!st.pending.empty()) flush(self);
}

/// Writes and fsyncs the buffered lines, then commits the jobs' ack watermarks with the new
/// offset through the store actor (one synced write, grouped with the other writes of its
/// mailbox round); the acks leave once that write is durable. While a commit is in flight,
/// lines keep buffering: they are flushed when it returns.
void flush(sink_ptr self) {
  auto& st = self->state;
  st.flush_scheduled = false;
  if (st.pending.empty() || st.commit_in_flight) return;
  if (auto f = durable::append_synced(st.fd, st.buffer, st.options.fsync && st.options.path != "-",
                                      "after_output_write"))
    return stop_sink(self, std::string(f->step) + " failed: " + std::strerror(f->error));
  crash_point("after_output_fsync");
  st.offset += st.buffer.size();
  st.buffer.clear();
  st.buffered_items = 0;
  sink_acks commit;
  commit.progress.reserve(st.pending.size());
  for (auto& [job, ack] : st.pending)
    commit.progress.push_back({job, std::nullopt, ack.through});
  if (st.options.path != "-") {
    commit.sink = st.sink_name;
    commit.offset = st.offset;
  }
  auto acks = std::move(st.pending);
  st.pending.clear();
  st.commit_in_flight = true;
  st.commit_deadline = std::chrono::steady_clock::now() + st.options.commit_timeout;
  if (!st.commit_check_pending) {
    st.commit_check_pending = true;
    self->delayed_send(self, st.options.commit_timeout, tick_atom::value);
  }
  self->request(st.writer, caf::infinite, ack_atom::value, std::move(commit))
      .then(
          [self, offset = st.offset, acks = std::move(acks)](const store_reply& r) mutable {
            if (!r.ok) return stop_sink(self, "committing acknowledgements failed: " + r.message);
            committed(self, offset, std::move(acks));
          },
          [self](caf::error& err) {
            stop_sink(self, "committing acknowledgements failed: " + to_string(err));
          });
}

sink_impl::behavior_type sink_behavior(sink_ptr self, ndjson_sink_options options,
                                       store_actor writer, int fd, std::uint64_t offset,
                                       std::string sink_name) {
  auto& st = self->state;
  st.options = std::move(options);
  st.writer = std::move(writer);
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
        if (s.commit_in_flight && s.buffer.size() >= spill_bytes) {
          // Lines wait for the commit in flight: write them out now (not fsynced, not
          // acknowledged: provisional, past the committed offset) so that the buffer stays
          // small; the next flush's fsync covers them with its own lines.
          if (auto f = durable::write_all(s.fd, s.buffer))
            return stop_sink(self, std::string(f->step) + " failed: " + std::strerror(f->error));
          s.offset += s.buffer.size();
          s.buffer.clear();
        }
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
      [self](tick_atom) {  // the commit check
        auto& s = self->state;
        s.commit_check_pending = false;
        if (!s.commit_in_flight) return;
        const auto now = std::chrono::steady_clock::now();
        if (now >= s.commit_deadline)
          return stop_sink(self, "committing acknowledgements failed: no answer within " +
                                     std::to_string(s.options.commit_timeout.count()) + " ms");
        s.commit_check_pending = true;
        self->delayed_send(self, s.commit_deadline - now, tick_atom::value);
      },
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

std::string committed_path(const std::string& path) {
  return path + ".committed";
}

namespace {

constexpr std::string_view file_sink_prefix = "ndjson:";

std::string sink_name_of(const std::string& path) {
  std::error_code ec;
  auto abs = std::filesystem::absolute(path, ec);
  return std::string(file_sink_prefix) + (ec ? path : abs.lexically_normal().string());
}

std::string in_quotes(std::string_view s) {
  return "'" + std::string(s) + "'";
}

storage::file_identity identity_of(const struct stat& info) {
  return {static_cast<std::uint64_t>(info.st_dev), static_cast<std::uint64_t>(info.st_ino)};
}

error<sink_errc> locked_output(const std::string& path) {
  return make_error(sink_errc::locked, "output file " + in_quotes(path) +
                                           " is locked: another export-items process is "
                                           "writing it; wait for it to finish");
}

}  // namespace

result<output_plan, sink_errc> plan_output(const std::string& path, const struct stat* info,
                                           const std::vector<storage::sink_record>& sinks,
                                           const std::string& state_dir) {
  const storage::sink_record* bound = nullptr;  // the file this state directory writes
  for (const auto& r : sinks)
    if (r.name.starts_with(file_sink_prefix)) {
      bound = &r;
      if (info != nullptr && r.identity && *r.identity == identity_of(*info))
        return output_plan{r.name, r.offset, false};
    }
  if (path == "-") {
    if (bound != nullptr)
      return make_error(sink_errc::not_bound,
                        "state directory " + in_quotes(state_dir) + " writes its items to " +
                            in_quotes(bound->name.substr(file_sink_prefix.size())) +
                            ", not to stdout: use --out " +
                            in_quotes(bound->name.substr(file_sink_prefix.size())) +
                            " (or a new --state-dir to start over); nothing was changed");
    return output_plan{"stdout", std::nullopt, false};
  }
  if (info != nullptr && !S_ISREG(info->st_mode))
    return make_error(sink_errc::open_failed,
                      "output " + in_quotes(path) +
                          " is not a regular file; use --out - for a pipe or a terminal");
  const auto name = sink_name_of(path);
  if (bound != nullptr) {
    // Recorded before identities existed: the same path is taken to be the same file once.
    if (!bound->identity && bound->name == name && info != nullptr)
      return output_plan{name, bound->offset, true};
    return make_error(
        sink_errc::not_bound,
        "state directory " + in_quotes(state_dir) + " wrote its output to " +
            in_quotes(bound->name.substr(file_sink_prefix.size())) + ", and --out " +
            in_quotes(path) + (info == nullptr ? " does not exist" : " is a different file") +
            " (or that file was replaced): use the --out it wrote, or start over with a new "
            "--state-dir and a new or empty --out; nothing was changed");
  }
  if (info != nullptr && info->st_size > 0)
    return make_error(
        sink_errc::not_bound,
        "output file " + in_quotes(path) + " already holds " + std::to_string(info->st_size) +
            " bytes that state directory " + in_quotes(state_dir) +
            " did not write (a run on a fresh state directory would hand every item on again "
            "after them): use the state directory that wrote it, or move the file away; "
            "nothing was changed");
  return output_plan{name, std::nullopt, true};
}

status<sink_errc> check_output(const std::string& path,
                               const std::vector<storage::sink_record>& sinks,
                               const std::string& state_dir) {
  struct stat info {};
  const bool exists = path != "-" && ::stat(path.c_str(), &info) == 0;
  if (path != "-" && !exists && errno != ENOENT)
    return make_error(sink_errc::open_failed,
                      "cannot stat output file " + in_quotes(path) + ": " + std::strerror(errno));
  auto plan = plan_output(path, exists ? &info : nullptr, sinks, state_dir);
  if (!plan) return std::move(plan).err();
  if (path != "-" && !exists) {
    // It will be created: its directory must be there (before the state directory is made).
    std::error_code ec;
    const auto parent = std::filesystem::absolute(path, ec).parent_path();
    if (!std::filesystem::is_directory(parent, ec))
      return make_error(sink_errc::open_failed, "cannot create output file " + in_quotes(path) +
                                                    ": directory " + in_quotes(parent.string()) +
                                                    " does not exist");
  }
  if (exists && S_ISREG(info.st_mode)) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      const bool busy = ::flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
      ::close(fd);
      if (busy) return locked_output(path);
    }
  }
  return ok_v;
}

result<downstream_actor, sink_errc> spawn_ndjson_sink(caf::actor_system& sys,
                                                      ndjson_sink_options options,
                                                      std::shared_ptr<storage::state_store> store,
                                                      store_actor writer) {
  int fd = 1;
  std::uint64_t offset = 0;
  std::string sink_name = "stdout";
  const std::string state_dir = store->directory().string();
  auto sinks = store->load_sinks();
  if (!sinks) return make_error(sink_errc::store, sinks.err().message);
  if (options.path == "-") {
    auto plan = plan_output(options.path, nullptr, sinks.value(), state_dir);
    if (!plan) return std::move(plan).err();
  } else {
    const auto& path = options.path;
    const auto fail = [&fd](error<sink_errc> e) -> error<sink_errc> {
      ::close(fd);
      return e;
    };
    // Create it only when it does not exist (then its directory is fsynced); never truncate.
    bool created = false;
    fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
      fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      created = fd >= 0;
      if (fd < 0 && errno == EEXIST) fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    }
    if (fd < 0)
      return make_error(sink_errc::open_failed,
                        "cannot open output file " + in_quotes(path) + ": " + std::strerror(errno));
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;  // whoever holds the lock opened the file: it is theirs now
      if (err == EWOULDBLOCK) return fail(locked_output(path));
      return fail(make_error(sink_errc::open_failed, "cannot lock output file " + in_quotes(path) +
                                                         ": " + std::strerror(err)));
    }
    struct stat info {};
    if (::fstat(fd, &info) != 0)
      return fail(make_error(sink_errc::open_failed, "cannot stat output file " + in_quotes(path) +
                                                         ": " + std::strerror(errno)));
    auto plan = plan_output(path, &info, sinks.value(), state_dir);
    if (!plan) {
      // Not created after all: the file this run made (empty, under our lock) goes again.
      if (created && info.st_size == 0) ::unlink(path.c_str());
      return fail(std::move(plan).err());
    }
    if (created) {
      const auto parent = std::filesystem::absolute(path).parent_path();
      const int dfd = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      const bool synced = dfd >= 0 && ::fsync(dfd) == 0;
      if (dfd >= 0) ::close(dfd);
      if (!synced)
        return fail(make_error(
            sink_errc::open_failed,
            "cannot fsync the directory of " + in_quotes(path) + ": " + std::strerror(errno)));
    }
    sink_name = plan->sink_name;
    const auto size = static_cast<std::uint64_t>(info.st_size);
    if (plan->offset) {
      offset = *plan->offset;
      if (size < offset)
        return fail(make_error(sink_errc::output_shorter_than_state,
                               "output file " + in_quotes(path) + " has " + std::to_string(size) +
                                   " bytes but state directory " + in_quotes(state_dir) +
                                   " recorded " + std::to_string(offset) +
                                   " acknowledged bytes: it was truncated; refusing to write to "
                                   "it (restore it, or start over with a new --state-dir and "
                                   "a new --out)"));
      // Cut away a torn last line and lines that were never acknowledged.
      if (auto f = durable::cut_to(fd, offset))
        return fail(make_error(
            sink_errc::open_failed,
            "cannot truncate output file " + in_quotes(path) + ": " + std::strerror(f->error)));
    } else {
      offset = size;  // 0: plan_output binds only empty files
    }
    if (plan->bind) {
      // Record the file and its starting offset before writing anything, so lines of a run
      // that dies before its first acknowledgement are cut on restart like any others.
      auto bound = store->bind_sink(sink_name, identity_of(info), offset);
      if (!bound.ok()) return fail(make_error(sink_errc::store, bound.err().message));
    }
    if (!write_committed_file(path, offset))
      log::warn("output_committed_file",
                "cannot write " + committed_path(path) + ": " + std::strerror(errno),
                {{"output", path}});
  }
  auto actor = sys.spawn<caf::detached>(sink_behavior, std::move(options), std::move(writer), fd,
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
