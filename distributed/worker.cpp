// The worker actor is at once the stage's downstream (it receives the stage's item batches)
// and the coordinator's peer. Per job it forwards one batch at a time, so a retry after a
// timed-out request can never overtake a later batch; the coordinator skips sequences its
// ledger already holds, which makes the retry harmless.
#include "distributed/worker.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <deque>
#include <future>
#include <iostream>
#include <map>
#include <optional>
#include <thread>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "actors/sink.hpp"
#include "distributed/protocol.hpp"
#include "export_items/stage.hpp"

namespace ei::distributed {
namespace {

using clock = std::chrono::steady_clock;
using go_atom = caf::atom_constant<caf::atom("dgo")>;

struct worker_ctx {
  caf::actor coordinator;
  std::uint64_t id = 0;
  worker_settings settings;
  std::uint32_t connect_timeout_ms = 15000;
  std::uint32_t coordinator_timeout_ms = 30000;
  export_items::stage* stage = nullptr;  // set by the main thread before go_atom
  std::promise<std::optional<worker_settings>> registered;
  std::promise<int> done;
  std::ostream* log = nullptr;
};

struct pending_batch {
  wire_batch batch;
  export_items::ack_receiver_actor receiver;
  std::uint64_t last = 0;  // last sequence of the stage's batch (dropped ones included)
};

struct job_run {
  api::uuid uid;
  std::uint64_t epoch = 0;
  std::uint64_t resume_from = 0;
  bool fenced = false;  // the coordinator refused it: hand nothing on, acknowledge nothing
  bool in_flight = false;
  std::uint32_t tries = 0;
  std::uint64_t dropped = 0;
  std::deque<pending_batch> queue;
};

struct worker_state {
  std::shared_ptr<worker_ctx> ctx;
  std::map<std::string, job_run> runs;
  std::vector<assignment> waiting;  // assignments that came before the stage was ready
  bool ready = false;
  bool registered = false;  // the registration promise was fulfilled
  bool finished = false;
  clock::time_point last_beat_ok = clock::now();
  static inline const char* name = "ei.worker";
};

using worker_ptr = caf::stateful_actor<worker_state>*;

std::ostream& log(worker_ptr self) {
  return *self->state.ctx->log << "worker " << self->state.ctx->id << ": ";
}

std::chrono::milliseconds request_timeout(worker_ptr self) {
  return std::chrono::milliseconds(self->state.ctx->settings.request_timeout_ms);
}

void finish(worker_ptr self, int code) {
  auto& st = self->state;
  if (st.finished) return;
  st.finished = true;
  st.ctx->done.set_value(code);
  self->quit();
}

void send_outcome(worker_ptr self, wire_outcome o, std::uint32_t tries) {
  self->request(self->state.ctx->coordinator, request_timeout(self), outcome_atom::value, o)
      .then(
          [self, job = o.job_id, epoch = o.epoch](outcome_atom, bool accepted) {
            if (!accepted)
              log(self) << "outcome of job " << job << " epoch " << epoch
                        << " refused: the assignment was fenced\n";
          },
          [self, o, tries](caf::error& err) {
            if (tries < 3) return send_outcome(self, o, tries + 1);
            log(self) << "outcome of job " << o.job_id
                      << " not acknowledged: " << caf::to_string(err) << "\n";
          });
}

void report(worker_ptr self, const std::string& job, std::uint64_t epoch,
            const export_items::job_outcome* outcome, const std::string& error) {
  auto& st = self->state;
  wire_outcome o;
  o.job_id = job;
  o.epoch = epoch;
  o.worker_id = st.ctx->id;
  auto it = st.runs.find(job);
  if (it != st.runs.end() && it->second.epoch == epoch) {
    o.dropped = it->second.dropped;
    st.runs.erase(it);
  }
  if (outcome != nullptr) {
    o.result = std::string(ei::actors::to_string(outcome->result));
    o.reason_code = outcome->reason_code;
    o.reason = outcome->reason;
    o.in_scope = outcome->stats.in_scope;
    o.emitted = outcome->stats.emitted;
    o.duration_seconds = outcome->stats.duration_seconds;
  } else {
    o.result = "failed";
    o.reason_code = "internal";
    o.reason = error;
  }
  log(self) << "job " << job << " epoch " << epoch << ": " << o.result
            << (o.reason_code.empty() ? "" : " (" + o.reason_code + ")") << "\n";
  send_outcome(self, std::move(o), 0);
}

void start_job(worker_ptr self, const assignment& a) {
  auto& st = self->state;
  auto uid = api::uuid::parse(a.job_id);
  if (!uid) return report(self, a.job_id, a.epoch, nullptr, "not a job id");
  job_run run;
  run.uid = *uid;
  run.epoch = a.epoch;
  run.resume_from = a.resume_from;
  st.runs[a.job_id] = std::move(run);
  log(self) << "running job " << a.job_id << " epoch " << a.epoch << " after sequence "
            << a.resume_from << "\n";
  // Local request: the stage's own deadlines bound every phase; this one only bounds a
  // stage that stopped answering altogether.
  self->request(st.ctx->stage->batch_runner(), std::chrono::milliseconds(24 * 3600 * 1000),
                export_items::run_atom::value,
                export_items::batch_request{{*uid}, false, {}, std::nullopt})
      .then(
          [self, job = a.job_id, epoch = a.epoch](export_items::batch_report& r) {
            if (r.jobs.empty()) return report(self, job, epoch, nullptr, "empty batch report");
            report(self, job, epoch, &r.jobs.front(), {});
          },
          [self, job = a.job_id, epoch = a.epoch](caf::error& err) {
            report(self, job, epoch, nullptr, "batch runner: " + caf::to_string(err));
          });
}

void pump(worker_ptr self, const std::string& job) {
  auto& st = self->state;
  auto it = st.runs.find(job);
  if (it == st.runs.end()) return;
  auto& run = it->second;
  while (!run.fenced && !run.in_flight && !run.queue.empty() &&
         run.queue.front().batch.items.empty()) {
    // Everything in it was at or below resume_from: acknowledged here, never sent.
    self->send(run.queue.front().receiver, export_items::ack_atom::value, run.uid,
               run.queue.front().last, false);
    run.queue.pop_front();
  }
  if (run.fenced || run.in_flight || run.queue.empty()) return;
  run.in_flight = true;
  const auto epoch = run.epoch;
  self->request(st.ctx->coordinator, request_timeout(self), batch_atom::value,
                run.queue.front().batch)
      .then(
          [self, job, epoch](batch_atom, const std::string&, std::uint64_t, std::uint64_t through,
                             bool fenced) {
            auto& s = self->state;
            auto i = s.runs.find(job);
            if (i == s.runs.end() || i->second.epoch != epoch) return;
            auto& r = i->second;
            r.in_flight = false;
            r.tries = 0;
            if (fenced) {
              r.fenced = true;
              r.queue.clear();
              log(self) << "job " << job << " epoch " << epoch
                        << " fenced by the coordinator: handing nothing on\n";
              return;
            }
            auto p = std::move(r.queue.front());
            r.queue.pop_front();
            self->send(p.receiver, export_items::ack_atom::value, r.uid, std::min(through, p.last),
                       false);
            pump(self, job);
          },
          [self, job, epoch](caf::error& err) {
            auto& s = self->state;
            auto i = s.runs.find(job);
            if (i == s.runs.end() || i->second.epoch != epoch) return;
            auto& r = i->second;
            r.in_flight = false;
            if (++r.tries <= 3) {
              log(self) << "batch for job " << job << " not acknowledged (" << caf::to_string(err)
                        << "), sending it again\n";
              return pump(self, job);
            }
            // Stop handing on: the stage's downstream deadline fails the job, and its
            // outcome tells the coordinator.
            r.fenced = true;
            r.queue.clear();
            log(self) << "batch for job " << job << " not acknowledged after 4 attempts\n";
          });
}

caf::behavior worker_actor(worker_ptr self, std::shared_ptr<worker_ctx> ctx) {
  self->state.ctx = ctx;
  self->set_default_handler(caf::drop);
  self->monitor(ctx->coordinator);
  self->set_down_handler([self](caf::down_msg& dm) {
    if (dm.source != self->state.ctx->coordinator.address()) return;
    log(self) << "lost the coordinator (" << caf::to_string(dm.reason) << ")\n";
    if (!self->state.registered) {
      self->state.registered = true;
      self->state.ctx->registered.set_value(std::nullopt);
    }
    finish(self, 4);
  });
  worker_hello hello;
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) == 0) hello.name = host;
  hello.pid = static_cast<std::int32_t>(::getpid());
  self->request(ctx->coordinator, std::chrono::milliseconds(ctx->connect_timeout_ms),
                hello_atom::value, hello)
      .then(
          [self](hello_atom, std::uint64_t id, const worker_settings& ws) {
            self->state.ctx->id = id;
            self->state.ctx->settings = ws;
            if (self->state.registered) return;
            self->state.registered = true;
            self->state.ctx->registered.set_value(ws);
          },
          [self](caf::error& err) {
            *self->state.ctx->log << "worker: registration failed: " << caf::to_string(err) << "\n";
            if (!self->state.registered) {
              self->state.registered = true;
              self->state.ctx->registered.set_value(std::nullopt);
            }
            finish(self, 4);
          });
  return {
      [self](go_atom) {
        auto& st = self->state;
        st.ready = true;
        st.last_beat_ok = clock::now();
        for (const auto& a : st.waiting)
          start_job(self, a);
        st.waiting.clear();
        self->send(self, beat_atom::value);
      },
      [self](assign_atom, const assignment& a) -> caf::result<assign_atom, std::string, bool> {
        auto& st = self->state;
        if (st.finished) return {assign_atom::value, a.job_id, false};
        auto it = st.runs.find(a.job_id);
        if (it != st.runs.end()) return {assign_atom::value, a.job_id, false};
        if (st.ready)
          start_job(self, a);
        else
          st.waiting.push_back(a);
        return {assign_atom::value, a.job_id, true};
      },
      [self](beat_atom) {
        auto& st = self->state;
        if (st.finished) return;
        self->request(st.ctx->coordinator, request_timeout(self), beat_atom::value, st.ctx->id)
            .then(
                [self](beat_atom, bool known) {
                  if (!known) {
                    log(self) << "the coordinator declared this worker dead: fenced, stopping\n";
                    return finish(self, 3);
                  }
                  self->state.last_beat_ok = clock::now();
                },
                [self](caf::error& err) {
                  auto& s = self->state;
                  if (clock::now() - s.last_beat_ok >
                      std::chrono::milliseconds(s.ctx->coordinator_timeout_ms)) {
                    log(self) << "heartbeats unanswered (" << caf::to_string(err)
                              << "): giving up\n";
                    finish(self, 4);
                  }
                });
        self->delayed_send(self, std::chrono::milliseconds(st.ctx->settings.heartbeat_ms),
                           beat_atom::value);
      },
      [self](drain_atom) {
        log(self) << "the coordinator finished\n";
        finish(self, 0);
      },
      [self](export_items::items_atom, const export_items::item_batch& batch,
             const export_items::ack_receiver_actor& receiver) {
        auto& st = self->state;
        if (batch.items.empty()) return;
        const auto job = batch.job_id.to_string();
        auto it = st.runs.find(job);
        if (it == st.runs.end() || it->second.fenced) return;  // never acknowledged
        auto& run = it->second;
        pending_batch p;
        p.batch.job_id = job;
        p.batch.epoch = run.epoch;
        p.batch.worker_id = st.ctx->id;
        p.receiver = receiver;
        p.last = batch.items.back().sequence;
        p.batch.items.reserve(batch.items.size());
        for (const auto& item : batch.items) {
          if (item.sequence <= run.resume_from) {
            ++run.dropped;  // acknowledged through an earlier assignment
            continue;
          }
          wire_item w;
          w.sequence = item.sequence;
          ei::actors::append_ndjson_line(w.line, item);
          p.batch.items.push_back(std::move(w));
        }
        run.queue.push_back(std::move(p));
        pump(self, job);
      },
  };
}

}  // namespace

int run_worker(const worker_options& options, const api::credentials& creds, std::ostream& log) {
  std::string host;
  std::uint16_t port = 0;
  if (!split_host_port(options.coordinator, host, port)) {
    log << "worker: --coordinator: expected HOST:PORT, got '" << options.coordinator << "'\n";
    return 2;
  }
  auto ctx = std::make_shared<worker_ctx>();
  ctx->log = &log;
  ctx->connect_timeout_ms = options.connect_timeout_ms;
  ctx->coordinator_timeout_ms = options.coordinator_timeout_ms;
  caf::actor_system_config cfg;
  // BASP heartbeats at the default application rate; the worker's own deadline on its
  // heartbeat replies decides when the coordinator is gone.
  configure_system(cfg, 200, 0, 2);
  caf::actor_system sys{cfg};
  const auto deadline = clock::now() + std::chrono::milliseconds(options.connect_timeout_ms);
  caf::expected<caf::actor> coordinator = caf::error{};
  for (;;) {
    coordinator = sys.middleman().remote_actor(host, port);
    if (coordinator || clock::now() > deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (!coordinator) {
    log << "worker: cannot reach the coordinator at " << options.coordinator << ": "
        << sys.render(coordinator.error()) << "\n";
    return 2;
  }
  ctx->coordinator = *coordinator;
  auto registered = ctx->registered.get_future();
  auto done = ctx->done.get_future();
  auto self = sys.spawn(worker_actor, ctx);
  auto settings = registered.get();
  if (!settings) {
    caf::anon_send_exit(self, caf::exit_reason::user_shutdown);
    return 4;
  }
  export_items::stage_config config;
  config.base_url = options.base_url.empty() ? settings->base_url : options.base_url;
  if (settings->ordering == "entry_id")
    config.settings.ordering = ei::storage::ordering_mode::entry_id;
  else
    config.settings.ordering = ei::storage::ordering_mode::chronological;
  if (settings->page_size != 0) config.settings.page_size = settings->page_size;
  if (settings->batch_size != 0) config.settings.batch_size = settings->batch_size;
  if (settings->credit_window != 0) config.settings.credit_window = settings->credit_window;
  config.settings.request_timeout = std::chrono::seconds(60);
  auto stage = export_items::stage::start(sys, config, creds, options.state_dir,
                                          caf::actor_cast<export_items::downstream_actor>(self));
  if (!stage) {
    log << "worker: " << stage.err().message << "\n";
    caf::anon_send_exit(self, caf::exit_reason::user_shutdown);
    return 2;
  }
  ctx->stage = stage.value().get();
  caf::anon_send(self, go_atom::value);
  const int code = done.get();
  stage.value()->shutdown();
  caf::anon_send_exit(self, caf::exit_reason::user_shutdown);
  // Job actors of a fenced or abandoned job live until their own deadlines (the actor system
  // waits for them), and CAF 0.17's middleman teardown can hang while the peer disconnects.
  // Everything this worker made safe is already in its synced state store, so the teardown
  // is bounded instead of waited for.
  log.flush();
  std::thread([code] {
    std::this_thread::sleep_for(std::chrono::seconds(2));
    std::_Exit(code);
  }).detach();
  return code;
}

}  // namespace ei::distributed
