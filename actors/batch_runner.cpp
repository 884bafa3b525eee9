#include <algorithm>
#include <chrono>
#include <deque>
#include <map>
#include <set>

#include <caf/all.hpp>

#include "actors/batch.hpp"

namespace ei::actors {
namespace {

using clock_type = std::chrono::steady_clock;

struct runner_state {
  job_context base;
  std::vector<fetcher_actor> fetchers;
  std::shared_ptr<batch_progress> progress;
  std::size_t next_fetcher = 0;
  std::vector<api::export_job> verified;  // waiting to be scheduled, oldest first
  std::set<api::uuid> running_companies;
  std::map<caf::actor_addr, api::export_job> active;            // supervisors that owe an outcome
  std::map<caf::actor_addr, job_supervisor_actor> supervisors;  // of the active ones
  std::set<api::uuid> seen_jobs;
  std::size_t expected = 0;
  std::size_t verifying = 0;
  std::size_t running = 0;
  batch_report report;
  clock_type::time_point started;
  caf::typed_response_promise<batch_report> promise;
  bool listing_done = false;
  std::string discover_cursor;
  std::set<std::string> discover_cursors;  // every cursor discovery followed: a repeat is a cycle
  std::set<api::uuid> discover_listed;     // every job discovery listed, whatever its status
  std::uint32_t discover_stale_pages = 0;  // pages in a row that brought no job not seen before
  batch_request request;
  bool stopping = false;  // a graceful stop was requested: no new job starts
  clock_type::time_point stop_deadline;
  static inline const char* name = "batch_runner";
};

/// The runner polls the stop flag with a tick (the flag is set from a signal watcher thread).
using runner_impl = batch_runner_actor::extend<caf::reacts_to<tick_atom>>;
using runner_ptr = runner_impl::stateful_pointer<runner_state>;
constexpr std::chrono::milliseconds stop_poll_interval{100};

fetcher_actor& pick_fetcher(runner_ptr self) {
  auto& st = self->state;
  return st.fetchers[st.next_fetcher++ % st.fetchers.size()];
}

void maybe_finish(runner_ptr self) {
  auto& st = self->state;
  if (!st.listing_done || st.verifying > 0 || st.running > 0 || !st.verified.empty()) return;
  st.report.duration_seconds =
      std::chrono::duration<double>(clock_type::now() - st.started).count();
  st.promise.deliver(std::move(st.report));
  self->quit();
}

void record(runner_ptr self, job_outcome out) {
  auto& st = self->state;
  if (st.request.listener) self->send(*st.request.listener, outcome_atom::value, out);
  st.report.jobs.push_back(std::move(out));
  if (st.progress) ++st.progress->jobs_done;
}

void failed_before_start(runner_ptr self, const api::uuid& job, std::string code,
                         std::string reason) {
  job_outcome out;
  out.job_id = job;
  out.result = job_result::failed;
  out.reason_code = std::move(code);
  out.reason = std::move(reason);
  record(self, std::move(out));
}

void interrupted_before_start(runner_ptr self, const api::export_job& job) {
  job_outcome out;
  out.job_id = job.id;
  out.company_id = job.company_id;
  out.result = job_result::failed;
  out.reason_code = std::string(interrupted_code);
  out.reason = "not started: the run was interrupted; a re-run starts it";
  record(self, std::move(out));
}

void schedule(runner_ptr self) {
  auto& st = self->state;
  if (st.stopping) {
    for (const auto& job : st.verified)
      interrupted_before_start(self, job);
    st.verified.clear();
    return maybe_finish(self);
  }
  const std::size_t max_jobs = std::max<std::uint32_t>(1, st.base.settings.max_jobs);
  for (auto it = st.verified.begin(); it != st.verified.end() && st.running < max_jobs;) {
    if (st.running_companies.count(it->company_id) != 0) {
      ++it;  // one running export per company: wait for the other job of this company
      continue;
    }
    job_context ctx = st.base;
    ctx.fetcher = pick_fetcher(self);
    ctx.progress = st.progress;
    st.running_companies.insert(it->company_id);
    ++st.running;
    if (st.progress) st.progress->jobs_running = st.running;
    auto sup = spawn_job_supervisor(self->system(), ctx, *it,
                                    caf::actor_cast<outcome_receiver_actor>(self));
    self->monitor(sup);
    st.active.emplace(sup.address(), *it);
    st.supervisors.emplace(sup.address(), sup);
    self->send(sup, run_atom::value);
    it = st.verified.erase(it);
  }
  maybe_finish(self);
}

void enqueue_verified(runner_ptr self, api::export_job job) {
  auto& st = self->state;
  // Oldest first (createdAt is RFC 3339 in UTC, so text order is time order; ties by id).
  auto pos = std::find_if(st.verified.begin(), st.verified.end(), [&](const api::export_job& j) {
    return std::tie(job.created_at, job.id) < std::tie(j.created_at, j.id);
  });
  st.verified.insert(pos, std::move(job));
}

std::string describe_failure(const fetch_failure& f) {
  std::string msg = f.message;
  if (!f.type.empty()) msg += " (type " + f.type + ")";
  return msg;
}

void verify(runner_ptr self, const api::uuid& job_id) {
  auto& st = self->state;
  if (!st.seen_jobs.insert(job_id).second) return;  // listed twice: run once
  ++st.expected;
  if (st.progress) st.progress->jobs_total = st.expected;
  ++st.verifying;
  self->request(pick_fetcher(self), st.base.settings.request_timeout, get_job_atom::value, job_id)
      .then(
          [self, job_id](job_reply& reply) {
            auto& s = self->state;
            --s.verifying;
            if (!reply.ok) {
              const auto& f = reply.failure;
              std::string code = failure_code(f);
              std::string reason = f.http_status == 404
                                       ? "unknown job: the API has no export job " +
                                             job_id.to_string() + " (" + describe_failure(f) + ")"
                                       : "verifying the job failed: " + describe_failure(f);
              failed_before_start(self, job_id, std::move(code), std::move(reason));
            } else {
              enqueue_verified(self, std::move(reply.job));
            }
            schedule(self);
          },
          [self, job_id](caf::error& err) {
            --self->state.verifying;
            failed_before_start(self, job_id, "timeout", "verifying the job: " + to_string(err));
            schedule(self);
          });
}

void discover_page(runner_ptr self) {
  auto& st = self->state;
  jobs_request req{{"in_progress"}, st.request.company_id, 100, st.discover_cursor};
  self->request(pick_fetcher(self), st.base.settings.request_timeout, list_jobs_atom::value, req)
      .then(
          [self](jobs_reply& reply) {
            auto& s = self->state;
            if (!reply.ok) {
              // Discovery itself failed: report it as a batch-level failure entry.
              failed_before_start(
                  self, api::uuid{}, "discovery_failed",
                  "listing in_progress jobs failed: " + describe_failure(reply.failure));
              s.listing_done = true;
              return schedule(self);
            }
            bool fresh = false;  // a job this discovery has not listed before
            for (auto& job : reply.page.data) {
              fresh = s.discover_listed.insert(job.id).second || fresh;
              if (job.status != api::job_status::in_progress) continue;
              if (!s.seen_jobs.insert(job.id).second) continue;
              ++s.expected;
              if (s.progress) s.progress->jobs_total = s.expected;
              enqueue_verified(self, std::move(job));
            }
            const auto& pg = reply.page.pagination;
            if (!s.stopping && pg.has_next_page && pg.end_cursor) {
              // A cycle under cursor texts that change (the same jobs again and again) shows
              // as pages that bring nothing new: a few in a row end discovery too.
              s.discover_stale_pages = fresh ? 0 : s.discover_stale_pages + 1;
              if (*pg.end_cursor == s.discover_cursor ||
                  !s.discover_cursors.insert(*pg.end_cursor).second || s.discover_stale_pages > 3) {
                // The jobs found so far run; the rest of the list cannot be reached.
                failed_before_start(self, api::uuid{}, "discovery_failed",
                                    s.discover_stale_pages > 3
                                        ? "listing in_progress jobs: the pages cycle (" +
                                              std::to_string(s.discover_stale_pages) +
                                              " pages in a row listed no job not seen before)"
                                        : "listing in_progress jobs: the cursors cycle (" +
                                              *pg.end_cursor + " came back)");
                s.listing_done = true;
                return schedule(self);
              }
              s.discover_cursor = *pg.end_cursor;
              return discover_page(self);
            }
            s.listing_done = true;
            schedule(self);
          },
          [self](caf::error& err) {
            failed_before_start(self, api::uuid{}, "discovery_failed",
                                "listing in_progress jobs: " + to_string(err));
            self->state.listing_done = true;
            schedule(self);
          });
}

/// Polls the stop flag; once it is set, starts no new job and, after stop_timeout, stops the
/// jobs still running where they stand (their committed state stays: a re-run resumes them).
void on_tick(runner_ptr self) {
  auto& st = self->state;
  if (!st.promise.pending()) return;
  if (!st.stopping && st.progress && st.progress->stop_requested()) {
    st.stopping = true;
    st.stop_deadline = clock_type::now() + st.base.settings.stop_timeout;
    schedule(self);
    if (!st.promise.pending()) return;
  }
  if (st.stopping && clock_type::now() >= st.stop_deadline) {
    for (auto& [addr, job] : st.active) {
      job_outcome out;
      out.job_id = job.id;
      out.company_id = job.company_id;
      out.result = job_result::failed;
      out.reason_code = std::string(interrupted_code);
      out.reason = "stopped " + std::to_string(st.base.settings.stop_timeout.count()) +
                   " ms after the run was interrupted, where it stood; a re-run resumes it";
      if (auto it = st.supervisors.find(addr); it != st.supervisors.end())
        self->send_exit(it->second, caf::exit_reason::user_shutdown);
      --st.running;
      record(self, std::move(out));
    }
    st.active.clear();
    st.supervisors.clear();
    st.running_companies.clear();
    return schedule(self);
  }
  self->delayed_send(self, stop_poll_interval, tick_atom::value);
}

runner_impl::behavior_type runner_behavior(runner_ptr self, job_context base,
                                           std::vector<fetcher_actor> fetchers,
                                           std::shared_ptr<batch_progress> progress) {
  auto& st = self->state;
  st.base = std::move(base);
  st.fetchers = std::move(fetchers);
  st.progress = std::move(progress);
  self->set_down_handler([self](caf::down_msg& dm) {
    // A supervisor reports before it quits; a down while it still owes an outcome is a crash.
    auto& s = self->state;
    auto it = s.active.find(dm.source);
    if (it == s.active.end()) return;
    job_outcome out;
    out.job_id = it->second.id;
    out.company_id = it->second.company_id;
    out.reason_code = "internal";
    out.reason = "the job supervisor stopped without an outcome: " + to_string(dm.reason);
    s.active.erase(it);
    s.supervisors.erase(dm.source);
    s.running_companies.erase(out.company_id);
    --s.running;
    record(self, std::move(out));
    schedule(self);
  });
  return {
      [self](run_atom, batch_request& req) -> caf::typed_response_promise<batch_report> {
        auto& s = self->state;
        s.started = clock_type::now();
        s.promise = self->make_response_promise<batch_report>();
        s.request = req;
        for (const auto& id : req.jobs)
          verify(self, id);
        if (req.discover) {
          discover_page(self);
        } else {
          s.listing_done = true;
          schedule(self);
        }
        if (s.progress && s.progress->stop) on_tick(self);
        return s.promise;
      },
      [self](tick_atom) { on_tick(self); },
      [self](outcome_atom, job_outcome& out) {
        auto& s = self->state;
        const auto sender = caf::actor_cast<caf::actor_addr>(self->current_sender());
        if (s.active.erase(sender) == 0) return;  // stopped at the deadline: recorded already
        s.supervisors.erase(sender);
        s.running_companies.erase(out.company_id);
        --s.running;
        if (s.progress) s.progress->jobs_running = s.running;
        record(self, std::move(out));
        schedule(self);
      },
  };
}

}  // namespace

batch_runner_actor spawn_batch_runner(caf::actor_system& sys, job_context base,
                                      std::vector<fetcher_actor> fetchers,
                                      std::shared_ptr<batch_progress> progress) {
  return caf::actor_cast<batch_runner_actor>(
      sys.spawn(runner_behavior, std::move(base), std::move(fetchers), std::move(progress)));
}

}  // namespace ei::actors
