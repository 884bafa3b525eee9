// The coordinator actor: scheduling (oldest first as given, one job per company at a time
// across all workers, at most max_jobs_per_worker per worker), failure detection (down_msg
// from the middleman and a heartbeat deadline for hung workers), fencing epochs, and the
// sink: batches are checked against the assignment's epoch and the ledger watermark, written,
// fsynced and committed to the ledger before the worker is acknowledged.
#include "distributed/coordinator.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <future>
#include <iostream>
#include <map>
#include <set>
#include <thread>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <nlohmann/json.hpp>

#include "api/codec.hpp"
#include "api/export_requests.hpp"
#include "api/http_client.hpp"
#include "distributed/ledger.hpp"
#include "distributed/protocol.hpp"

namespace ei::distributed {
namespace {

using clock = std::chrono::steady_clock;

enum class job_phase : std::uint8_t { pending, running, complete, failed };

struct assignment_record {
  std::uint64_t worker = 0;
  std::uint64_t epoch = 0;
  std::uint64_t resume_from = 0;
  std::string ended;  // how the assignment ended: complete, failed:<code>, requeued:<why>
};

struct job_entry {
  std::string id;
  std::string company;
  job_phase phase = job_phase::pending;
  std::uint64_t epoch = 0;   // of the current / last assignment
  std::uint64_t worker = 0;  // when running
  std::uint32_t attempts = 0;
  std::string result;  // complete | already_complete | failed
  std::string reason_code;
  std::string reason;
  std::uint64_t in_scope = 0;
  std::vector<assignment_record> assignments;
};

struct worker_entry {
  std::uint64_t id = 0;
  caf::actor handle;
  worker_hello hello;
  bool alive = true;
  std::string death;
  clock::time_point last_beat;
  std::set<std::string> running;
};

struct shared_ctx {
  coordinator_options options;
  std::unique_ptr<ledger> book;
  int fd = -1;
  std::ostream* log = nullptr;
  std::vector<job_entry> initial;  // resolved jobs (phase set for those already decided)
  std::promise<nlohmann::json> done;
};

struct coord_state {
  std::shared_ptr<shared_ctx> ctx;
  std::vector<job_entry> jobs;
  std::map<std::string, std::size_t> index;
  std::map<std::uint64_t, worker_entry> workers;
  std::set<std::string> busy_companies;
  std::uint64_t next_worker = 1;
  bool started = false;
  bool finished = false;
  clock::time_point began = clock::now();
  clock::time_point last_alive = clock::now();
  std::uint64_t requeued = 0;
  std::uint64_t fenced_batches = 0;
  std::uint64_t fenced_outcomes = 0;
  std::uint64_t fenced_heartbeats = 0;
  std::uint64_t items_written = 0;
  std::uint64_t items_skipped = 0;
  std::uint64_t batches = 0;
  static inline const char* name = "ei.coordinator";
};

using coord_ptr = caf::stateful_actor<coord_state>*;

std::ostream& log(coord_ptr self) {
  return *self->state.ctx->log << "coordinator: ";
}

std::size_t alive_workers(coord_ptr self) {
  std::size_t n = 0;
  for (auto& [id, w] : self->state.workers)
    n += w.alive ? 1 : 0;
  return n;
}

nlohmann::json summary(coord_ptr self) {
  auto& st = self->state;
  nlohmann::json jobs = nlohmann::json::array();
  std::size_t complete = 0;
  std::size_t failed = 0;
  for (const auto& j : st.jobs) {
    const auto lj = st.ctx->book->job(j.id);
    nlohmann::json assignments = nlohmann::json::array();
    for (const auto& a : j.assignments)
      assignments.push_back({{"worker", a.worker},
                             {"epoch", a.epoch},
                             {"resumeFrom", a.resume_from},
                             {"ended", a.ended}});
    (j.phase == job_phase::complete ? complete : failed) += 1;
    jobs.push_back({{"jobId", j.id},
                    {"companyId", j.company},
                    {"result", j.result},
                    {"reasonCode", j.reason_code},
                    {"reason", j.reason},
                    {"inScope", j.in_scope},
                    {"ackedThrough", lj.acked_through},
                    {"epoch", lj.epoch},
                    {"assignments", std::move(assignments)}});
  }
  nlohmann::json workers = nlohmann::json::array();
  for (const auto& [id, w] : st.workers)
    workers.push_back({{"id", id},
                       {"name", w.hello.name},
                       {"pid", w.hello.pid},
                       {"state", w.alive ? "alive" : "dead"},
                       {"death", w.death}});
  const double secs = std::chrono::duration<double>(clock::now() - st.began).count();
  return {{"complete", complete},
          {"failed", failed},
          {"jobs", std::move(jobs)},
          {"workers", std::move(workers)},
          {"requeued", st.requeued},
          {"fencedBatches", st.fenced_batches},
          {"fencedOutcomes", st.fenced_outcomes},
          {"fencedHeartbeats", st.fenced_heartbeats},
          {"batches", st.batches},
          {"itemsWritten", st.items_written},
          {"itemsSkipped", st.items_skipped},
          {"durationSeconds", secs}};
}

void finish(coord_ptr self) {
  auto& st = self->state;
  if (st.finished) return;
  st.finished = true;
  // Workers that are still connected are told to stop, so they exit 0 instead of treating
  // the closed connection as a lost coordinator.
  for (auto& [id, w] : st.workers)
    if (w.alive) self->send(w.handle, drain_atom::value);
  st.ctx->done.set_value(summary(self));
  // Give the drain messages a moment to leave before the process tears the middleman down.
  self->delayed_send(self, std::chrono::milliseconds(200), drain_atom::value);
}

void check_done(coord_ptr self) {
  for (const auto& j : self->state.jobs)
    if (j.phase == job_phase::pending || j.phase == job_phase::running) return;
  finish(self);
}

void release(coord_ptr self, job_entry& job) {
  auto& st = self->state;
  st.busy_companies.erase(job.company);
  auto w = st.workers.find(job.worker);
  if (w != st.workers.end()) w->second.running.erase(job.id);
}

void end_job(coord_ptr self, job_entry& job, job_phase phase, std::string result, std::string code,
             std::string reason) {
  auto& st = self->state;
  job.phase = phase;
  job.result = std::move(result);
  job.reason_code = std::move(code);
  job.reason = std::move(reason);
  auto lj = st.ctx->book->job(job.id);
  lj.state = phase == job_phase::complete ? ledger_job_state::complete : ledger_job_state::failed;
  auto committed = st.ctx->book->commit({{job.id, lj}}, nullptr);
  if (!committed) log(self) << committed.err().message << "\n";
  log(self) << "job " << job.id << " " << job.result
            << (job.reason_code.empty() ? "" : " (" + job.reason_code + ": " + job.reason + ")")
            << "\n";
}

void schedule(coord_ptr self);

/// Puts the job back in the queue (a later assignment gets epoch + 1), or fails it when it
/// used up its attempts.
void requeue(coord_ptr self, job_entry& job, const std::string& why) {
  auto& st = self->state;
  release(self, job);
  if (!job.assignments.empty()) job.assignments.back().ended = "requeued: " + why;
  ++st.requeued;
  if (job.attempts >= st.ctx->options.max_attempts) {
    end_job(self, job, job_phase::failed, "failed", "attempts_exhausted",
            std::to_string(job.attempts) + " assignment(s) ended without completing; last: " + why);
    return;
  }
  job.phase = job_phase::pending;
  log(self) << "job " << job.id << " requeued (" << why << ")\n";
}

void declare_dead(coord_ptr self, std::uint64_t worker_id, const std::string& why) {
  auto& st = self->state;
  auto it = st.workers.find(worker_id);
  if (it == st.workers.end() || !it->second.alive) return;
  auto& w = it->second;
  w.alive = false;
  w.death = why;
  self->demonitor(w.handle);
  log(self) << "worker " << worker_id << " (pid " << w.hello.pid << ") declared dead: " << why
            << "\n";
  const auto running = w.running;
  for (const auto& job_id : running) {
    auto& job = st.jobs[st.index[job_id]];
    if (job.phase == job_phase::running && job.worker == worker_id)
      requeue(self, job, "worker " + std::to_string(worker_id) + " " + why);
  }
  schedule(self);
  check_done(self);
}

void assign(coord_ptr self, job_entry& job, worker_entry& w) {
  auto& st = self->state;
  auto lj = st.ctx->book->job(job.id);
  lj.epoch = std::max(lj.epoch, job.epoch) + 1;
  // The epoch is durable before anyone hears of it: a restarted coordinator never reuses it.
  auto committed = st.ctx->book->commit({{job.id, lj}}, nullptr);
  if (!committed) {
    log(self) << committed.err().message << "\n";
    end_job(self, job, job_phase::failed, "failed", "ledger", committed.err().message);
    return;
  }
  job.phase = job_phase::running;
  job.epoch = lj.epoch;
  job.worker = w.id;
  ++job.attempts;
  job.assignments.push_back({w.id, lj.epoch, lj.acked_through, {}});
  w.running.insert(job.id);
  st.busy_companies.insert(job.company);
  log(self) << "assigned job " << job.id << " epoch " << lj.epoch << " to worker " << w.id
            << " (pid " << w.hello.pid << ") resuming after " << lj.acked_through << "\n";
  const auto job_id = job.id;
  const auto epoch = lj.epoch;
  const auto worker_id = w.id;
  self->request(w.handle, std::chrono::milliseconds(st.ctx->options.request_timeout_ms),
                assign_atom::value, assignment{job.id, lj.epoch, lj.acked_through})
      .then(
          [self, job_id, epoch](assign_atom, const std::string&, bool accepted) {
            if (accepted) return;
            auto& s = self->state;
            auto& j = s.jobs[s.index[job_id]];
            if (j.phase == job_phase::running && j.epoch == epoch) {
              requeue(self, j, "assignment refused");
              schedule(self);
              check_done(self);
            }
          },
          [self, worker_id](caf::error& err) {
            // A worker that does not take an assignment in time is treated as dead: its
            // heartbeats may still arrive, but nothing pending on it is waited for.
            declare_dead(self, worker_id, "assignment not answered: " + caf::to_string(err));
          });
}

void schedule(coord_ptr self) {
  auto& st = self->state;
  if (st.finished) return;
  if (!st.started) {
    if (alive_workers(self) < st.ctx->options.expected_workers) return;
    st.started = true;
    log(self) << alive_workers(self) << " worker(s) registered, assigning\n";
  }
  for (auto& job : st.jobs) {
    if (job.phase != job_phase::pending || st.busy_companies.count(job.company) > 0) continue;
    worker_entry* best = nullptr;
    for (auto& [id, w] : st.workers) {
      if (!w.alive || w.running.size() >= st.ctx->options.max_jobs_per_worker) continue;
      if (best == nullptr || w.running.size() < best->running.size()) best = &w;
    }
    if (best == nullptr) return;
    assign(self, job, *best);
  }
}

bool write_all(int fd, const std::string& data, std::string& problem) {
  std::size_t done = 0;
  while (done < data.size()) {
    const auto n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      problem = std::strerror(errno);
      return false;
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fdatasync(fd) != 0) {
    problem = std::string("fdatasync: ") + std::strerror(errno);
    return false;
  }
  return true;
}

using batch_reply = caf::result<batch_atom, std::string, std::uint64_t, std::uint64_t, bool>;

batch_reply on_batch(coord_ptr self, const wire_batch& b) {
  auto& st = self->state;
  auto fenced = [&](const std::string& why) -> batch_reply {
    ++st.fenced_batches;
    log(self) << "fenced batch of " << b.items.size() << " item(s) for job " << b.job_id
              << " epoch " << b.epoch << " from worker " << b.worker_id << ": " << why << "\n";
    return {batch_atom::value, b.job_id, b.epoch, std::uint64_t{0}, true};
  };
  auto w = st.workers.find(b.worker_id);
  if (w == st.workers.end() || !w->second.alive) return fenced("worker is not alive");
  auto ji = st.index.find(b.job_id);
  if (ji == st.index.end()) return fenced("unknown job");
  auto& job = st.jobs[ji->second];
  if (job.phase != job_phase::running || job.epoch != b.epoch || job.worker != b.worker_id)
    return fenced("stale epoch (current " + std::to_string(job.epoch) + ")");
  w->second.last_beat = clock::now();
  ++st.batches;
  auto lj = st.ctx->book->job(b.job_id);
  const std::string prefix = "{\"jobId\":\"" + b.job_id + "\"";
  std::string buffer;
  std::uint64_t last = lj.acked_through;
  for (const auto& item : b.items) {
    if (item.sequence <= last) {
      ++st.items_skipped;  // the ledger already holds it: never written twice
      continue;
    }
    if (item.line.compare(0, prefix.size(), prefix) != 0 ||
        item.line.find('\n') != std::string::npos)
      return fenced("malformed line for sequence " + std::to_string(item.sequence));
    buffer += item.line;
    buffer.push_back('\n');
    last = item.sequence;
    ++st.items_written;
  }
  if (!buffer.empty()) {
    std::string problem;
    if (!write_all(st.ctx->fd, buffer, problem)) {
      log(self) << "cannot write the output: " << problem << "\n";
      for (auto& j : st.jobs)
        if (j.phase == job_phase::pending || j.phase == job_phase::running)
          end_job(self, j, job_phase::failed, "failed", "output", problem);
      finish(self);
      return fenced("output failed");
    }
    const std::uint64_t offset = st.ctx->book->output_offset() + buffer.size();
    lj.acked_through = last;
    auto committed = st.ctx->book->commit({{b.job_id, lj}}, &offset);
    if (!committed) {
      log(self) << committed.err().message << "\n";
      for (auto& j : st.jobs)
        if (j.phase == job_phase::pending || j.phase == job_phase::running)
          end_job(self, j, job_phase::failed, "failed", "ledger", committed.err().message);
      finish(self);
      return fenced("ledger failed");
    }
  }
  return {batch_atom::value, b.job_id, b.epoch, last, false};
}

bool permanent(const std::string& code) {
  return code == "job_not_in_progress" || code == "http_404" || code == "http_401" ||
         code == "http_403";
}

caf::result<outcome_atom, bool> on_outcome(coord_ptr self, const wire_outcome& o) {
  auto& st = self->state;
  auto w = st.workers.find(o.worker_id);
  auto ji = st.index.find(o.job_id);
  if (w == st.workers.end() || !w->second.alive || ji == st.index.end() ||
      st.jobs[ji->second].phase != job_phase::running || st.jobs[ji->second].epoch != o.epoch ||
      st.jobs[ji->second].worker != o.worker_id) {
    ++st.fenced_outcomes;
    log(self) << "fenced outcome '" << o.result << "' for job " << o.job_id << " epoch " << o.epoch
              << " from worker " << o.worker_id << "\n";
    return {outcome_atom::value, false};
  }
  auto& job = st.jobs[ji->second];
  release(self, job);
  job.in_scope = o.in_scope;
  const auto lj = st.ctx->book->job(job.id);
  if (o.result == "complete" || o.result == "already_complete") {
    if (lj.acked_through >= o.in_scope) {
      job.assignments.back().ended = "complete";
      end_job(self, job, job_phase::complete, o.result, {}, {});
    } else {
      requeue(self, job,
              "worker reported " + o.result + " but the ledger holds " +
                  std::to_string(lj.acked_through) + " of " + std::to_string(o.in_scope));
    }
  } else if (permanent(o.reason_code)) {
    job.assignments.back().ended = "failed: " + o.reason_code;
    end_job(self, job, job_phase::failed, "failed", o.reason_code, o.reason);
  } else {
    requeue(
        self, job,
        "failed on worker " + std::to_string(o.worker_id) + ": " + o.reason_code + ": " + o.reason);
  }
  schedule(self);
  check_done(self);
  return {outcome_atom::value, true};
}

caf::behavior coordinator(coord_ptr self, std::shared_ptr<shared_ctx> ctx) {
  auto& st = self->state;
  st.ctx = ctx;
  st.jobs = std::move(ctx->initial);
  for (std::size_t i = 0; i < st.jobs.size(); ++i)
    st.index[st.jobs[i].id] = i;
  self->set_down_handler([self](caf::down_msg& dm) {
    for (auto& [id, w] : self->state.workers)
      if (w.alive && w.handle.address() == dm.source)
        return declare_dead(self, id, "connection lost (" + caf::to_string(dm.reason) + ")");
  });
  self->send(self, check_atom::value);
  return {
      [self](hello_atom,
             const worker_hello& hello) -> caf::result<hello_atom, std::uint64_t, worker_settings> {
        auto& s = self->state;
        const auto& o = s.ctx->options;
        worker_entry w;
        w.id = s.next_worker++;
        w.handle = caf::actor_cast<caf::actor>(self->current_sender());
        w.hello = hello;
        w.last_beat = clock::now();
        self->monitor(w.handle);
        const auto id = w.id;
        log(self) << "worker " << id << " registered: " << hello.name << " pid " << hello.pid
                  << "\n";
        s.workers.emplace(id, std::move(w));
        s.last_alive = clock::now();
        worker_settings ws{o.base_url,      o.ordering,     o.page_size,         o.batch_size,
                           o.credit_window, o.heartbeat_ms, o.request_timeout_ms};
        // Assign after the reply has left, so the worker knows its id first.
        self->send(self, assign_atom::value);
        return {hello_atom::value, id, std::move(ws)};
      },
      [self](assign_atom) {
        schedule(self);
        check_done(self);  // also: every job may have been decided before any worker came
      },
      [self](drain_atom) { self->quit(); },
      [self](beat_atom, std::uint64_t worker_id) -> caf::result<beat_atom, bool> {
        auto& s = self->state;
        auto it = s.workers.find(worker_id);
        if (it == s.workers.end() || !it->second.alive) {
          if (s.fenced_heartbeats++ < 10)
            log(self) << "fenced heartbeat from worker " << worker_id << ": declared dead\n";
          return {beat_atom::value, false};
        }
        it->second.last_beat = clock::now();
        return {beat_atom::value, true};
      },
      [self](batch_atom, const wire_batch& b) { return on_batch(self, b); },
      [self](outcome_atom, const wire_outcome& o) { return on_outcome(self, o); },
      [self](check_atom) {
        auto& s = self->state;
        if (s.finished) return;
        const auto now = clock::now();
        const auto timeout = std::chrono::milliseconds(s.ctx->options.worker_timeout_ms);
        std::vector<std::uint64_t> late;
        for (auto& [id, w] : s.workers)
          if (w.alive && now - w.last_beat > timeout) late.push_back(id);
        for (auto id : late)
          declare_dead(
              self, id,
              "no heartbeat for " + std::to_string(s.ctx->options.worker_timeout_ms) + " ms");
        if (!s.started && alive_workers(self) > 0 &&
            now - s.began > std::chrono::milliseconds(s.ctx->options.no_worker_timeout_ms)) {
          // Fewer workers than expected came: start with those that did.
          s.ctx->options.expected_workers = 1;
          schedule(self);
        }
        if (alive_workers(self) > 0) {
          s.last_alive = now;
        } else if (now - s.last_alive >
                   std::chrono::milliseconds(s.ctx->options.no_worker_timeout_ms)) {
          for (auto& j : s.jobs)
            if (j.phase == job_phase::pending)
              end_job(self, j, job_phase::failed, "failed", "no_workers",
                      "no live worker for " + std::to_string(s.ctx->options.no_worker_timeout_ms) +
                          " ms");
          check_done(self);
        }
        if (!s.finished)
          self->delayed_send(self, std::chrono::milliseconds(s.ctx->options.heartbeat_ms),
                             check_atom::value);
      },
  };
}

/// GETs each explicit job (or lists in_progress ones) for its company and status.
bool resolve_jobs(const coordinator_options& o, const api::credentials& creds, shared_ctx& ctx,
                  std::ostream& log) {
  api::client_config cc;
  cc.base_url = o.base_url;
  auto client = api::http_client::create(cc, creds);
  if (!client) {
    log << "coordinator: " << client.err().message << "\n";
    return false;
  }
  auto add = [&](const api::export_job& job) {
    job_entry e;
    e.id = job.id.to_string();
    e.company = job.company_id.to_string();
    const auto lj = ctx.book->job(e.id);
    e.epoch = lj.epoch;
    if (lj.state == ledger_job_state::complete) {
      e.phase = job_phase::complete;
      e.result = "already_complete";
    } else if (job.status != api::job_status::in_progress) {
      e.phase = job_phase::failed;
      e.result = "failed";
      e.reason_code = "job_not_in_progress";
      e.reason = "the job is " + job.status_text + ", not in_progress";
    }
    ctx.initial.push_back(std::move(e));
  };
  std::set<std::string> seen;
  for (const auto& id : o.jobs) {
    if (!seen.insert(id.to_string()).second) continue;
    auto r = (*client)->request_sync(api::requests::get_job(id));
    if (!r) {
      job_entry e;
      e.id = id.to_string();
      e.company = "unknown:" + e.id;
      e.phase = job_phase::failed;
      e.result = "failed";
      e.reason_code = r.err().status ? "http_" + std::to_string(r.err().status) : "api";
      e.reason = r.err().message;
      ctx.initial.push_back(std::move(e));
      continue;
    }
    auto job = api::decode_job(r->body, "GET job " + id.to_string());
    if (!job) {
      log << "coordinator: " << job.err().message << "\n";
      return false;
    }
    add(job.value());
  }
  if (o.discover) {
    std::string after;
    for (int pages = 0; pages < 10000; ++pages) {
      auto r = (*client)->request_sync(
          api::requests::list_jobs({"in_progress"}, o.company_id, 100, after));
      if (!r) {
        log << "coordinator: discovery failed: " << r.err().message << "\n";
        return false;
      }
      auto page = api::decode_job_list(r->body, "GET export-jobs");
      if (!page) {
        log << "coordinator: " << page.err().message << "\n";
        return false;
      }
      for (const auto& job : page->data)
        if (job.status == api::job_status::in_progress && seen.insert(job.id.to_string()).second)
          add(job);
      const auto& pg = page->pagination;
      if (!pg.has_next_page || !pg.end_cursor || *pg.end_cursor == after) break;
      after = *pg.end_cursor;
    }
  }
  (*client)->stop();
  return true;
}

/// Opens the output and cuts it back to what the ledger committed.
int open_output(const std::string& path, std::uint64_t offset, std::string& problem) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    problem = "cannot open output file '" + path + "': " + std::strerror(errno);
    return -1;
  }
  struct stat info {};
  if (::fstat(fd, &info) != 0 || static_cast<std::uint64_t>(info.st_size) < offset ||
      ::ftruncate(fd, static_cast<off_t>(offset)) != 0 ||
      ::lseek(fd, static_cast<off_t>(offset), SEEK_SET) < 0) {
    problem = "output file '" + path + "' is shorter than the ledger's offset " +
              std::to_string(offset) + " or cannot be cut back to it";
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

int run_coordinator(const coordinator_options& options, const api::credentials& creds,
                    std::ostream& out, std::ostream& log) {
  auto ctx = std::make_shared<shared_ctx>();
  ctx->options = options;
  ctx->log = &log;
  auto book = ledger::open(options.ledger_dir);
  if (!book) {
    log << "coordinator: " << book.err().message << "\n";
    return 2;
  }
  ctx->book = std::move(book.value());
  std::string problem;
  ctx->fd = open_output(options.out, ctx->book->output_offset(), problem);
  if (ctx->fd < 0) {
    log << "coordinator: " << problem << "\n";
    return 2;
  }
  if (!resolve_jobs(options, creds, *ctx, log)) {
    ::close(ctx->fd);
    return 2;
  }
  caf::actor_system_config cfg;
  configure_system(cfg, options.heartbeat_ms,
                   // BASP backstop well after the application-level deadline, so that a
                   // returning zombie still reaches us and learns it is fenced.
                   options.worker_timeout_ms * 20, 2);
  auto sys = std::make_unique<caf::actor_system>(cfg);
  auto done = ctx->done.get_future();
  auto actor = sys->spawn<caf::detached>(coordinator, ctx);
  auto port =
      sys->middleman().publish(actor, options.listen_port, options.listen_host.c_str(), true);
  if (!port) {
    log << "coordinator: cannot listen on " << options.listen_host << ":" << options.listen_port
        << ": " << sys->render(port.error()) << "\n";
    caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
    ::close(ctx->fd);
    return 2;
  }
  out << "listening on " << options.listen_host << ":" << *port << std::endl;
  caf::anon_send(actor, assign_atom::value);
  const nlohmann::json report = done.get();
  // Everything that matters is on disk before the actor system is torn down.
  ::close(ctx->fd);
  const auto text = report.dump();
  if (!options.summary_file.empty()) {
    std::ofstream s(options.summary_file, std::ios::trunc);
    s << text << "\n";
  }
  out << text << std::endl;
  const int code = report["failed"].get<std::size_t>() == 0 ? 0 : 1;
  // Safety net: the batch is decided and written, so the teardown is bounded (a handle kept
  // anywhere to the detached coordinator actor would make ~actor_system wait forever).
  std::thread([code, &log] {
    std::this_thread::sleep_for(std::chrono::seconds(2));
    log << "coordinator: actor system shutdown hung; exiting\n";
    log.flush();
    std::_Exit(code);
  }).detach();
  {
    caf::scoped_actor self{*sys};
    self->wait_for(actor);
  }
  // A detached actor's thread ends only when the last handle to it is gone.
  auto unpublished = sys->middleman().unpublish(actor, *port);
  static_cast<void>(unpublished);
  actor = nullptr;
  sys.reset();
  return code;
}

}  // namespace ei::distributed
