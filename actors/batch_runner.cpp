#include <algorithm>
#include <chrono>
#include <deque>
#include <map>
#include <set>

#include <caf/all.hpp>

#include "actors/batch.hpp"
#include "actors/detail/listed_jobs.hpp"
#include "common/log.hpp"

namespace ei::actors {
namespace {

using clock_type = std::chrono::steady_clock;

/// Oldest first: createdAt (RFC 3339 in UTC, so text order is time order), then id.
struct age_key {
  std::string created_at;
  api::uuid id;
  friend bool operator<(const age_key& a, const age_key& b) {
    return std::tie(a.created_at, a.id) < std::tie(b.created_at, b.id);
  }
};

/// The verified jobs of one company that wait for their turn, oldest first.
struct company_queue {
  std::map<age_key, api::export_job> waiting;
  bool running = false;  // one job of this company runs now
};

struct runner_state {
  job_context base;
  std::vector<fetcher_actor> fetchers;
  std::shared_ptr<batch_progress> progress;
  std::size_t next_fetcher = 0;
  // Explicit ids, deduplicated in their given order; verified `next_id` on, a window at a time.
  std::vector<api::uuid> ids;
  std::size_t next_id = 0;
  // Waiting jobs by company; `ready` holds the oldest waiting job of every company that has no
  // job running: the next job to start is ready.begin(), the oldest among the free companies.
  std::map<api::uuid, company_queue> companies;
  std::set<std::pair<age_key, api::uuid>> ready;  // (age of the company's oldest job, company)
  std::size_t waiting = 0;                        // jobs in `companies`, running ones not included
  std::map<caf::actor_addr, api::export_job> active;            // supervisors that owe an outcome
  std::map<caf::actor_addr, job_supervisor_actor> supervisors;  // of the active ones
  std::map<caf::actor_addr, std::uint64_t> weights;             // of the active ones
  std::uint64_t running_weight = 0;
  std::size_t verifying = 0;
  // The deadline of every verification in flight (at most max_verifying). The GETs are sent
  // without a CAF timeout: CAF 0.17 keeps a request's timeout in its clock until it fires,
  // also once the answer came (~180 bytes for fetch_timeout, about an hour), so one per job
  // made the runner grow by that per job; the tick fails what is past its deadline instead.
  std::map<api::uuid, clock_type::time_point> verify_deadlines;
  std::size_t running = 0;
  batch_report report;
  clock_type::time_point started;
  caf::typed_response_promise<batch_report> promise;
  bool listing_done = false;   // every job of the batch is known (discovery ended)
  bool discovering = false;    // a discovery page is being read
  bool discover_more = false;  // discovery has a next page to read
  std::string discover_cursor;
  std::set<std::string> discover_cursors;  // every cursor discovery followed: a repeat is a cycle
  // Every job discovery listed, whatever its status (fresh pages), and which of them were
  // handed to the batch (a job listed twice runs once).
  detail::listed_jobs discover_listed;
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

/// The items a job can have in flight: what `max_window_items` counts.
std::uint64_t weight_of(const runner_state& st, const api::export_job& job) {
  const std::uint64_t window = std::max<std::uint32_t>(1, st.base.settings.credit_window);
  if (job.number_of_items < 0) return window;  // not known: as much as a window
  return std::clamp<std::uint64_t>(static_cast<std::uint64_t>(job.number_of_items), 1, window);
}

void maybe_finish(runner_ptr self) {
  auto& st = self->state;
  if (!st.listing_done || st.next_id < st.ids.size() || st.verifying > 0 || st.running > 0 ||
      st.waiting > 0)
    return;
  st.report.duration_seconds =
      std::chrono::duration<double>(clock_type::now() - st.started).count();
  st.promise.deliver(std::move(st.report));
  self->quit();
}

/// job_completed (info) or job_failed (warn when interrupted, which a re-run resumes; else
/// error), with the job's ids and reason.
void log_outcome(const job_outcome& out) {
  const auto lvl = out.result != job_result::failed ? log::level::info
                   : is_interrupted(out)            ? log::level::warn
                                                    : log::level::error;
  if (!log::enabled(lvl)) return;
  const auto job = out.job_id.is_nil() ? std::string() : out.job_id.to_string();  // discovery
  const auto company = out.company_id.is_nil() ? std::string() : out.company_id.to_string();
  if (out.result != job_result::failed) {
    const auto emitted = std::to_string(out.stats.emitted);
    const auto secs = std::to_string(out.stats.duration_seconds);
    log::write(lvl, "job_completed", "job completed",
               {{"jobId", job},
                {"companyId", company},
                {"result", to_string(out.result)},
                {"emitted", emitted},
                {"seconds", secs}});
  } else {
    log::write(lvl, "job_failed", out.reason,
               {{"jobId", job}, {"companyId", company}, {"reason", out.reason_code}});
  }
}

void record(runner_ptr self, job_outcome out) {
  auto& st = self->state;
  auto& rep = st.report;
  ++rep.total;
  switch (out.result) {
    case job_result::complete:
      ++rep.complete;
      break;
    case job_result::already_complete:
      ++rep.already_complete;
      break;
    case job_result::failed:
      ++rep.failed;
      if (out.failure.code == job_errc::interrupted) ++rep.interrupted;
      break;
  }
  if (out.result != job_result::failed && !out.job_id.is_nil()) rep.finished.push_back(out.job_id);
  log_outcome(out);
  if (st.progress) {
    if (out.result == job_result::failed) ++st.progress->jobs_failed;
    ++st.progress->jobs_done;
  }
  if (st.request.listener) self->send(*st.request.listener, outcome_atom::value, out);
  if (st.request.collect_outcomes) rep.jobs.push_back(std::move(out));
}

void failed_before_start(runner_ptr self, const api::uuid& job, job_failure code,
                         std::string reason) {
  job_outcome out;
  out.job_id = job;
  set_failure(out, code, std::move(reason));
  record(self, std::move(out));
}

void interrupted_before_start(runner_ptr self, const api::uuid& job, const api::uuid& company) {
  job_outcome out;
  out.job_id = job;
  out.company_id = company;
  set_failure(out, job_errc::interrupted,
              "not started: the run was interrupted; a re-run starts it");
  record(self, std::move(out));
}

/// Makes the company's oldest waiting job ready, when the company has no job running.
void refresh_ready(runner_state& st, const api::uuid& company) {
  auto it = st.companies.find(company);
  if (it == st.companies.end()) return;
  auto& q = it->second;
  if (q.running) return;
  if (q.waiting.empty()) {
    st.companies.erase(it);
    return;
  }
  st.ready.emplace(q.waiting.begin()->first, company);
}

/// A job's company is free again: its next job (if any) becomes ready.
void company_done(runner_state& st, const api::uuid& company) {
  auto it = st.companies.find(company);
  if (it == st.companies.end()) return;
  it->second.running = false;
  refresh_ready(st, company);
}

void verify(runner_ptr self, const api::uuid& job_id);
void discover_page(runner_ptr self);

/// Verifies (or discovers) more jobs while fewer than `lookahead_jobs` wait or are verified.
void fill(runner_ptr self) {
  auto& st = self->state;
  if (st.stopping) return;
  const std::size_t max_jobs = std::max<std::uint32_t>(1, st.base.settings.max_jobs);
  // GETs in flight at once: enough to keep every slot fed, not the whole batch at once.
  const std::size_t max_verifying = std::max<std::size_t>(16, max_jobs);
  while (st.next_id < st.ids.size() && st.verifying < max_verifying &&
         st.waiting + st.verifying < lookahead_jobs)
    verify(self, st.ids[st.next_id++]);
  if (st.discover_more && !st.discovering && st.waiting + 100 <= lookahead_jobs)
    discover_page(self);
}

void start_job(runner_ptr self, api::export_job job, std::uint64_t weight) {
  auto& st = self->state;
  job_context ctx = st.base;
  ctx.fetcher = pick_fetcher(self);
  ctx.progress = st.progress;
  ++st.running;
  st.running_weight += weight;
  if (st.progress) {
    ++st.progress->jobs_running;  // shared by every runner of an embedded stage
    ++st.progress->jobs_started;
    if (job.number_of_items > 0)
      st.progress->items_expected += static_cast<std::uint64_t>(job.number_of_items);
  }
  if (log::enabled(log::level::info)) {
    const auto items = std::to_string(job.number_of_items);
    log::info("job_started", "job started",
              {{"jobId", job.id.to_string()},
               {"companyId", job.company_id.to_string()},
               {"numberOfItems", items}});
  }
  auto sup =
      spawn_job_supervisor(self->system(), ctx, job, caf::actor_cast<outcome_receiver_actor>(self));
  self->monitor(sup);
  st.weights.emplace(sup.address(), weight);
  st.active.emplace(sup.address(), std::move(job));
  st.supervisors.emplace(sup.address(), sup);
  self->send(sup, run_atom::value);
}

/// A job that ended (outcome or down): frees its slot, weight and company.
void job_ended(runner_state& st, const caf::actor_addr& addr, const api::uuid& company) {
  st.supervisors.erase(addr);
  if (auto w = st.weights.find(addr); w != st.weights.end()) {
    st.running_weight -= w->second;
    st.weights.erase(w);
  }
  company_done(st, company);
  --st.running;
  if (st.progress) --st.progress->jobs_running;
}

void schedule(runner_ptr self) {
  auto& st = self->state;
  if (st.progress && st.listing_done) st.progress->jobs_total_known = true;
  if (st.stopping) {
    for (auto& [company, q] : st.companies)
      for (auto& [key, job] : q.waiting)
        interrupted_before_start(self, job.id, company);
    st.companies.clear();
    st.ready.clear();
    st.waiting = 0;
    for (; st.next_id < st.ids.size(); ++st.next_id)
      interrupted_before_start(self, st.ids[st.next_id], api::uuid{});
    st.discover_more = false;  // the rest of the list is not read (a re-run discovers it)
    if (!st.discovering) st.listing_done = true;
    return maybe_finish(self);
  }
  const std::size_t max_jobs = std::max<std::uint32_t>(1, st.base.settings.max_jobs);
  while (st.running < max_jobs && !st.ready.empty()) {
    // Oldest first among the companies that are free; when it does not fit the window budget,
    // nothing younger overtakes it (a large job is not starved by a stream of small ones).
    const auto company = st.ready.begin()->second;
    auto& q = st.companies.at(company);
    auto head = q.waiting.begin();
    const auto weight = weight_of(st, head->second);
    if (st.running > 0 && st.running_weight + weight > st.base.settings.max_window_items) break;
    st.ready.erase(st.ready.begin());
    api::export_job job = std::move(head->second);
    q.waiting.erase(head);
    q.running = true;
    --st.waiting;
    start_job(self, std::move(job), weight);
  }
  fill(self);
  maybe_finish(self);
}

void enqueue_verified(runner_ptr self, api::export_job job) {
  auto& st = self->state;
  const auto company = job.company_id;
  auto& q = st.companies[company];
  age_key key{job.created_at, job.id};
  if (!q.running && !q.waiting.empty()) st.ready.erase({q.waiting.begin()->first, company});
  q.waiting.emplace(std::move(key), std::move(job));
  ++st.waiting;
  refresh_ready(st, company);
}

std::string describe_failure(const fetch_failure& f) {
  std::string msg = f.message;
  if (!f.type.empty()) msg += " (type " + f.type + ")";
  return msg;
}

/// The ids in their given order, each once (a job listed twice runs once), in place: the
/// batch's id list is the only copy the runner keeps (16 bytes a job).
std::vector<api::uuid> dedupe(std::vector<api::uuid> ids) {
  std::vector<std::uint32_t> order(ids.size());
  for (std::size_t i = 0; i < order.size(); ++i)
    order[i] = static_cast<std::uint32_t>(i);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::uint32_t a, std::uint32_t b) { return ids[a] < ids[b]; });
  std::vector<bool> keep(ids.size(), true);
  for (std::size_t i = 1; i < order.size(); ++i)
    if (ids[order[i]] == ids[order[i - 1]]) keep[order[i]] = false;
  order = {};
  std::size_t n = 0;
  for (std::size_t i = 0; i < ids.size(); ++i)
    if (keep[i]) ids[n++] = ids[i];
  ids.resize(n);
  ids.shrink_to_fit();
  return ids;
}

/// Fails the verifications past their deadline (their answer, should it still come, is
/// dropped); true when there was one.
bool expire_verifications(runner_ptr self) {
  auto& st = self->state;
  const auto now = clock_type::now();
  bool expired = false;
  for (auto it = st.verify_deadlines.begin(); it != st.verify_deadlines.end();) {
    if (it->second > now) {
      ++it;
      continue;
    }
    const auto job_id = it->first;
    it = st.verify_deadlines.erase(it);
    --st.verifying;
    expired = true;
    failed_before_start(self, job_id, job_errc::timeout,
                        "verifying the job: no answer within " +
                            std::to_string(st.base.settings.fetch_timeout.count()) + " ms");
  }
  return expired;
}

void verify(runner_ptr self, const api::uuid& job_id) {
  auto& st = self->state;
  ++st.verifying;
  st.verify_deadlines[job_id] = clock_type::now() + st.base.settings.fetch_timeout;
  self->request(pick_fetcher(self), caf::infinite, get_job_atom::value, job_id)
      .then(
          [self, job_id](job_reply& reply) {
            auto& s = self->state;
            if (s.verify_deadlines.erase(job_id) == 0) return;  // failed at its deadline
            --s.verifying;
            if (!reply.ok) {
              const auto& f = reply.failure;
              const job_failure code = failure_code(f);
              std::string reason = f.http_status == 404
                                       ? "unknown job: the API has no export job " +
                                             job_id.to_string() + " (" + describe_failure(f) + ")"
                                       : "verifying the job failed: " + describe_failure(f);
              failed_before_start(self, job_id, code, std::move(reason));
            } else {
              enqueue_verified(self, std::move(reply.job));
            }
            schedule(self);
          },
          [self, job_id](caf::error& err) {
            if (self->state.verify_deadlines.erase(job_id) == 0) return;
            --self->state.verifying;
            failed_before_start(self, job_id, job_errc::timeout,
                                "verifying the job: " + to_string(err));
            schedule(self);
          });
}

void discover_page(runner_ptr self) {
  auto& st = self->state;
  st.discovering = true;
  jobs_request req{{"in_progress"}, st.request.company_id, 100, st.discover_cursor};
  self->request(pick_fetcher(self), st.base.settings.fetch_timeout, list_jobs_atom::value, req)
      .then(
          [self](jobs_reply& reply) {
            auto& s = self->state;
            if (!reply.ok) {
              s.discovering = false;
              s.discover_more = false;
              // Discovery itself failed: report it as a batch-level failure entry.
              failed_before_start(
                  self, api::uuid{}, job_errc::discovery_failed,
                  "listing in_progress jobs failed: " + describe_failure(reply.failure));
              s.listing_done = true;
              return schedule(self);
            }
            s.discovering = false;
            s.discover_more = false;
            bool fresh = false;  // a job this discovery has not listed before
            for (auto& job : reply.page.data) {
              fresh = s.discover_listed.list(job.id) || fresh;
              if (job.status != api::job_status::in_progress) continue;
              if (!s.discover_listed.start(job.id)) continue;  // listed twice: run once
              if (s.progress) ++s.progress->jobs_total;
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
                failed_before_start(self, api::uuid{}, job_errc::discovery_failed,
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
              s.discover_more = true;  // read once fewer than lookahead_jobs wait (fill)
              return schedule(self);
            }
            s.listing_done = true;
            schedule(self);
          },
          [self](caf::error& err) {
            self->state.discovering = false;
            self->state.discover_more = false;
            failed_before_start(self, api::uuid{}, job_errc::discovery_failed,
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
  if (expire_verifications(self)) {
    schedule(self);
    if (!st.promise.pending()) return;
  }
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
      set_failure(out, job_errc::interrupted,
                  "stopped " + std::to_string(st.base.settings.stop_timeout.count()) +
                      " ms after the run was interrupted, where it stood; a re-run resumes it");
      if (auto it = st.supervisors.find(addr); it != st.supervisors.end())
        self->send_exit(it->second, caf::exit_reason::user_shutdown);
      job_ended(st, addr, job.company_id);
      record(self, std::move(out));
    }
    st.active.clear();
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
    set_failure(out, job_errc::internal,
                "the job supervisor stopped without an outcome: " + to_string(dm.reason));
    s.active.erase(it);
    job_ended(s, dm.source, out.company_id);
    record(self, std::move(out));
    schedule(self);
  });
  return {
      [self](run_atom, batch_request& req) -> caf::typed_response_promise<batch_report> {
        auto& s = self->state;
        s.started = clock_type::now();
        s.promise = self->make_response_promise<batch_report>();
        s.ids = dedupe(std::move(req.jobs));
        s.request = std::move(req);
        if (s.progress) s.progress->jobs_total += s.ids.size();
        if (s.request.discover) {
          s.discover_more = true;  // the first page
        } else {
          s.listing_done = true;
        }
        schedule(self);
        on_tick(self);  // the stop flag (if any) and the verifications' deadlines
        return s.promise;
      },
      [self](tick_atom) { on_tick(self); },
      [self](outcome_atom, job_outcome& out) {
        auto& s = self->state;
        const auto sender = caf::actor_cast<caf::actor_addr>(self->current_sender());
        auto it = s.active.find(sender);
        if (it == s.active.end()) return;  // stopped at the deadline: recorded already
        const auto company = it->second.company_id;
        s.active.erase(it);
        job_ended(s, sender, company);
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
