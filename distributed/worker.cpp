// Two threads of control: the control loop (this function's thread: lease, claims, progress
// writes, completion; blocking etcd calls) and the downstream actor (detached: it appends
// item lines to --out, fsyncs, acknowledges the stage and queues the acknowledged ids for the
// control loop). They share `shared_state` under its mutex. Job runs are requested from the
// stage by one small actor each, which posts the report back to the control loop.
#include "distributed/worker.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <thread>
#include <unordered_set>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include "actors/message_types.hpp"
#include "actors/sink.hpp"
#include "common/durable_file.hpp"
#include "distributed/keys.hpp"
#include "export_items/stage.hpp"

namespace ei::distributed {
namespace {

using clock = std::chrono::steady_clock;
using json = nlohmann::json;

/// The monotonic clock in ns, for log lines that tests line up with other processes' events.
std::string mono() {
  return " mono=" + std::to_string(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                       clock::now().time_since_epoch())
                                       .count());
}

/// One claimed job, as both threads see it.
struct job_slot {
  api::uuid job;
  std::string job_text;
  std::string company;
  std::int64_t claim_rev = 0;  // create_revision of our claim key: the fencing token
  std::int64_t attempt = 1;
  bool takeover = false;  // an earlier claim existed: everything handed on is flagged
  std::unordered_set<api::uuid, api::uuid_hash> acked;  // recorded by earlier claims
  std::optional<api::uuid> watermark;                   // highest recorded order key
  std::uint64_t recorded = 0;                           // acked ids recorded in etcd, all claims
  std::uint64_t groups = 0;                             // progress writes of this claim
  // Filled by the downstream actor, drained by the control loop.
  std::vector<api::uuid> pending;
  std::uint64_t handed = 0;
  std::uint64_t skipped = 0;
  bool dropped = false;  // stop handing on (fenced, or the output failed)
  clock::time_point oldest_pending{};
};

struct shared_state {
  std::mutex mu;
  std::map<api::uuid, std::shared_ptr<job_slot>> jobs;
  std::atomic<std::int64_t> lease_deadline_ns{0};  // steady clock
  std::atomic<bool> fenced{false};
  int out_fd = -1;
  std::ostream* log = nullptr;
  // Finished runs, posted by the run actors.
  std::condition_variable cv;
  std::deque<std::pair<api::uuid, std::optional<export_items::job_outcome>>> finished;
  std::map<api::uuid, std::string> run_errors;

  bool lease_valid() const {
    if (fenced.load()) return false;
    return clock::now().time_since_epoch().count() < lease_deadline_ns.load();
  }
};

struct downstream_state {
  std::shared_ptr<shared_state> sh;
  static inline const char* name = "ei.etcd_downstream";
};

export_items::downstream_actor::behavior_type downstream(
    export_items::downstream_actor::stateful_pointer<downstream_state> self,
    std::shared_ptr<shared_state> shared) {
  self->state.sh = std::move(shared);
  return {
      [self](export_items::items_atom, export_items::item_batch& batch,
             export_items::ack_receiver_actor& receiver) {
        auto& sh = *self->state.sh;
        if (batch.items.empty()) return;
        std::shared_ptr<job_slot> slot;
        std::string buf;
        std::vector<api::uuid> ids;
        {
          std::lock_guard<std::mutex> lk(sh.mu);
          auto it = sh.jobs.find(batch.job_id);
          if (it == sh.jobs.end() || it->second->dropped) return;  // never acknowledged
          slot = it->second;
          if (!sh.lease_valid()) {
            slot->dropped = true;  // the claim may be gone: hand nothing on
            return;
          }
          for (auto& item : batch.items) {
            if (slot->acked.count(item.accounting_entry_id) != 0) {
              ++slot->skipped;  // recorded by an earlier claim: acknowledged, not handed on
              continue;
            }
            if (slot->takeover) {
              item.redelivery = true;
              item.attempt =
                  std::max<std::uint32_t>(item.attempt, static_cast<std::uint32_t>(slot->attempt));
            }
            ei::actors::append_ndjson_line(buf, item);
            buf += '\n';
            ids.push_back(item.accounting_entry_id);
          }
        }
        if (!buf.empty()) {
          if (auto f = durable::append_synced(sh.out_fd, buf)) {
            std::lock_guard<std::mutex> lk(sh.mu);
            slot->dropped = true;
            *sh.log << "worker: writing the output failed (" << std::strerror(f->error) << "): job "
                    << slot->job_text << " stops handing on\n";
            return;
          }
        }
        {
          std::lock_guard<std::mutex> lk(sh.mu);
          if (slot->pending.empty()) slot->oldest_pending = clock::now();
          slot->pending.insert(slot->pending.end(), ids.begin(), ids.end());
          slot->handed += ids.size();
        }
        self->send(receiver, export_items::ack_atom::value, batch.job_id,
                   batch.items.back().sequence, false);
      },
  };
}

struct worker {
  worker(const worker_options& opts, std::ostream& out) : o(opts), log(out) {}
  const worker_options& o;
  std::ostream& log;
  keys k;
  std::unique_ptr<etcd_client> etcd;
  std::shared_ptr<shared_state> sh = std::make_shared<shared_state>();
  std::int64_t lease = 0;
  std::string name;
  std::mt19937_64 rng{std::random_device{}()};
  std::uint64_t claims = 0, completed = 0, released = 0, progress_writes = 0;

  std::string claim_value(std::int64_t attempt) const {
    return json{{"worker", name}, {"lease", std::to_string(lease)}, {"attempt", attempt}}.dump();
  }

  std::atomic<bool> lease_lost{false};
  std::atomic<bool> stop_keepalive{false};
  std::mutex ka_mu;
  std::condition_variable ka_cv;

  /// Renews the lease; the new deadline counts from before the request was sent. False when
  /// the lease is lost: etcd says it is gone, or the old deadline passed before the renewal
  /// came back (the worker already acted as if it were lost: it stays lost).
  bool keepalive() {
    const auto t0 = clock::now();
    auto r = etcd->keepalive(lease);
    if (!r) {
      log << ("worker " + name + ": keep-alive failed: " + r.err() + "\n");
      return clock::now().time_since_epoch().count() < sh->lease_deadline_ns.load();
    }
    if (r.value() <= 0) {
      log << ("worker " + name + ": etcd says the lease is gone\n");
      return false;
    }
    if (clock::now().time_since_epoch().count() >= sh->lease_deadline_ns.load()) {
      log << ("worker " + name + ": the keep-alive came back after the deadline\n");
      return false;
    }
    const auto deadline = t0 + std::chrono::seconds(r.value());
    sh->lease_deadline_ns = deadline.time_since_epoch().count();
    return true;
  }

  /// The keep-alive thread: every ttl/3 (every 100 ms after a failure), independent of the
  /// control loop's etcd calls.
  void keepalive_loop() {
    while (!stop_keepalive.load()) {
      const auto t0 = clock::now();
      const auto before = sh->lease_deadline_ns.load();
      if (!keepalive()) {
        lease_lost = true;
        sh->cv.notify_all();
        return;
      }
      const auto pause = sh->lease_deadline_ns.load() != before
                             ? std::chrono::milliseconds(o.lease_ttl_s * 1000 / 3)
                             : std::chrono::milliseconds(100);
      std::unique_lock<std::mutex> lk(ka_mu);
      ka_cv.wait_until(lk, t0 + pause, [&] { return stop_keepalive.load(); });
    }
  }

  /// The lease may have expired: hand nothing on, send nothing, try to record what was handed
  /// on (a fenced write: refused when the claim is gone), and exit 3.
  [[noreturn]] void fenced(const std::string& why) {
    sh->fenced = true;
    std::vector<std::shared_ptr<job_slot>> slots;
    {
      std::lock_guard<std::mutex> lk(sh->mu);
      for (auto& [id, s] : sh->jobs) {
        s->dropped = true;
        slots.push_back(s);
      }
    }
    log << "worker " << name << ": " << why << ": fenced, handing nothing on\n";
    for (auto& s : slots) {
      auto r = write_progress(*s, true);
      if (r == 0)
        log << "worker " << name << ": job " << s->job_text
            << ": etcd refused the progress write (the claim is gone)\n";
      else if (r > 0)
        log << "worker " << name << ": job " << s->job_text
            << ": the claim was still ours; the last progress is recorded\n";
    }
    log << "worker " << name << ": exiting (3): claims=" << claims << " completed=" << completed
        << "\n";
    log.flush();
    std::_Exit(3);
  }

  /// One fenced progress write for `s`: 1 written (or nothing to write), 0 refused (the
  /// claim is gone), -1 etcd unreachable.
  int write_progress(job_slot& s, bool force) {
    std::vector<api::uuid> ids;
    {
      std::lock_guard<std::mutex> lk(sh->mu);
      if (s.pending.empty() && !force) return 1;
      ids.swap(s.pending);
    }
    auto wm = s.watermark;
    std::string blob;
    blob.reserve(ids.size() * 16);
    // Acks come in the job's order, so the last id acknowledged is the resume point in that
    // order, whichever it is: its order key is (its date, its id), fixed by the item itself.
    if (!ids.empty()) wm = ids.back();
    for (const auto& id : ids) {
      blob.append(reinterpret_cast<const char*>(id.bytes.data()), id.bytes.size());
    }
    const auto total = s.recorded + ids.size();
    json compare = json::array({txn::create_revision_is(k.claim(s.job_text), s.claim_rev)});
    json success = json::array();
    if (!ids.empty() || s.groups == 0) {
      json p = {{"acked", total}, {"attempt", s.attempt}, {"worker", name}};
      if (wm) p["watermark"] = wm->to_string();
      success.push_back(txn::put(k.progress(s.job_text), p.dump()));
    }
    if (!ids.empty()) {
      char tail[40];
      std::snprintf(tail, sizeof tail, "%06lld-%08llu", static_cast<long long>(s.attempt),
                    static_cast<unsigned long long>(s.groups));
      success.push_back(txn::put(k.acked(s.job_text) + tail, blob));
    }
    auto r = etcd->run_txn(compare, success, json::array());
    if (!r) {
      // Unknown whether it applied: keep the ids for the next write (same key, same content
      // plus more is fine: the set is a union).
      std::lock_guard<std::mutex> lk(sh->mu);
      s.pending.insert(s.pending.begin(), ids.begin(), ids.end());
      log << "worker " << name << ": progress of job " << s.job_text << ": " << r.err() << "\n";
      return -1;
    }
    ++progress_writes;
    if (!r.value().succeeded) return 0;
    s.watermark = wm;
    s.recorded = total;
    if (!ids.empty()) ++s.groups;
    return 1;
  }

  struct view {
    std::map<std::string, std::string> jobs;  // job -> company
    std::set<std::string> done, claimed, locked;
    std::map<std::string, std::int64_t> attempts;  // job -> version
  };

  /// The batch as etcd has it now: one read-only txn (one round trip, one revision).
  std::optional<view> scan() {
    view v;
    auto r = etcd->run_txn(json::array(),
                           json::array({txn::get_prefix(k.jobs()), txn::get_prefix(k.dones()),
                                        txn::get_prefix(k.claims()), txn::get_prefix(k.locks()),
                                        txn::get_prefix(k.attempts())}),
                           json::array());
    if (!r || r.value().ranges.size() != 5) {
      log << "worker " << name
          << ": reading the batch: " << (r ? std::string("short answer") : r.err()) << "\n";
      return std::nullopt;
    }
    const auto& got = r.value().ranges;
    for (const auto& kv : got[0]) {
      auto j = json::parse(kv.value, nullptr, false);
      if (j.is_discarded() || !j.is_object() || !j.contains("companyId")) {
        log << "worker " << name << ": " << kv.key << ": not a job record, ignored\n";
        continue;
      }
      v.jobs[kv.key.substr(k.jobs().size())] = j.value("companyId", "");
    }
    const std::pair<std::string, std::set<std::string>*> sets[] = {
        {k.dones(), &v.done}, {k.claims(), &v.claimed}, {k.locks(), &v.locked}};
    for (std::size_t i = 0; i < 3; ++i)
      for (const auto& kv : got[i + 1])
        sets[i].second->insert(kv.key.substr(sets[i].first.size()));
    for (const auto& kv : got[4])
      v.attempts[kv.key.substr(k.attempts().size())] = kv.version;
    return v;
  }

  /// One claim txn. nullopt: not claimed.
  std::shared_ptr<job_slot> claim(const std::string& job, const std::string& company,
                                  std::int64_t attempts_version) {
    const auto attempt = attempts_version + 1;
    json compare = json::array({txn::create_revision_is(k.claim(job), 0),
                                txn::create_revision_is(k.lock(company), 0),
                                txn::create_revision_is(k.done(job), 0),
                                txn::version_is(k.attempt(job), attempts_version)});
    json success = json::array({txn::put(k.claim(job), claim_value(attempt), lease),
                                txn::put(k.lock(company), job, lease),
                                txn::put(k.attempt(job), name), txn::get(k.progress(job))});
    json failure = json::array({txn::get(k.claim(job))});
    auto r = etcd->run_txn(compare, success, failure);
    if (!r) {
      log << "worker " << name << ": claim of job " << job << ": " << r.err() << "\n";
      return nullptr;
    }
    std::int64_t rev = 0;
    if (r.value().succeeded) {
      rev = r.value().revision;
    } else {
      // A txn re-sent to another member after a lost answer: the claim may be ours already.
      const auto& got = r.value().ranges;
      if (got.empty() || got.front().empty()) return nullptr;
      const auto& kv = got.front().front();
      if (kv.lease != lease || kv.value != claim_value(attempt)) return nullptr;
      rev = kv.create_revision;
    }
    auto slot = std::make_shared<job_slot>();
    slot->job = *api::uuid::parse(job);
    slot->job_text = job;
    slot->company = company;
    slot->claim_rev = rev;
    slot->attempt = attempt;
    slot->takeover = attempt > 1;
    if (slot->takeover) {
      auto p = etcd->range(k.progress(job));
      auto acked = etcd->range(k.acked(job), true);
      if (!p || !acked) {
        log << "worker " << name << ": job " << job << ": cannot read its progress; releasing\n";
        release(*slot);
        return nullptr;
      }
      if (!p.value().empty()) {
        auto pj = json::parse(p.value().front().value, nullptr, false);
        if (pj.is_object() && pj.contains("watermark"))
          slot->watermark = api::uuid::parse(pj.value("watermark", ""));
      }
      for (const auto& kv : acked.value()) {
        for (std::size_t off = 0; off + 16 <= kv.value.size(); off += 16) {
          api::uuid id;
          std::memcpy(id.bytes.data(), kv.value.data() + off, 16);
          slot->acked.insert(id);
        }
      }
      slot->recorded = slot->acked.size();
    }
    ++claims;
    // A pause between the txn and here (the claim applied, then SIGSTOP) must not start a run
    // on a lease that may be gone.
    if (lease_lost.load() || !sh->lease_valid()) {
      {
        std::lock_guard<std::mutex> lk(sh->mu);
        sh->jobs[slot->job] = slot;
      }
      fenced("the lease may have expired while claiming job " + job);
    }
    log << "worker " << name << ": claimed job " << job << " (company " << company << ") attempt "
        << attempt << " rev " << rev << "; resuming after "
        << (slot->watermark ? slot->watermark->to_string() : std::string("the start")) << " with "
        << slot->acked.size() << " acked ids" << mono() << "\n";
    return slot;
  }

  void release(job_slot& s) {
    json compare = json::array({txn::create_revision_is(k.claim(s.job_text), s.claim_rev)});
    json success = json::array({txn::del(k.claim(s.job_text)), txn::del(k.lock(s.company))});
    auto r = etcd->run_txn(compare, success, json::array());
    if (r && !r.value().succeeded) fenced("releasing job " + s.job_text + " was refused");
    ++released;
  }

  /// The done key, exactly once: 1 recorded by us, 0 refused (fenced), -1 unreachable.
  int record_done(job_slot& s, const json& outcome) {
    json compare = json::array({txn::create_revision_is(k.claim(s.job_text), s.claim_rev),
                                txn::create_revision_is(k.done(s.job_text), 0)});
    json success = json::array({txn::put(k.done(s.job_text), outcome.dump()),
                                txn::del(k.claim(s.job_text)), txn::del(k.lock(s.company))});
    json failure = json::array({txn::get(k.done(s.job_text))});
    auto r = etcd->run_txn(compare, success, failure);
    if (!r) return -1;
    if (r.value().succeeded) return 1;
    // Re-sent after a lost answer: ours if the done key says so.
    const auto& got = r.value().ranges;
    if (!got.empty() && !got.front().empty() && got.front().front().value == outcome.dump())
      return 1;
    return 0;
  }
};

std::string default_name() {
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) != 0) std::strcpy(host, "worker");
  return std::string(host) + ":" + std::to_string(::getpid());
}

/// Opens --out for appending under an exclusive lock and cuts a partial last line (written
/// when a worker died mid-write: never acknowledged, so it comes again).
int open_output(const std::string& path, std::ostream& log) {
  const int fd = ::open(path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    log << "worker: --out " << path << ": " << std::strerror(errno) << "\n";
    return -1;
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    log << "worker: --out " << path << ": another process writes it (locked)\n";
    ::close(fd);
    return -1;
  }
  struct stat st {};
  if (::fstat(fd, &st) == 0 && st.st_size > 0) {
    const auto size = static_cast<std::uint64_t>(st.st_size);
    const auto end = durable::whole_lines_end(fd);
    if (end && *end != size) {
      if (durable::cut_to(fd, *end)) {
        log << "worker: --out " << path << ": cannot cut a partial line\n";
        ::close(fd);
        return -1;
      }
      log << "worker: --out " << path << ": cut a partial last line (" << (size - *end)
          << " bytes)\n";
    }
  }
  return fd;
}

}  // namespace

int run_worker(const worker_options& o, const api::credentials& creds, std::ostream& log) {
  worker w{o, log};
  w.k.prefix = keys::normalize(o.prefix);
  if (w.k.prefix.empty()) {
    log << "worker: --prefix: '" << o.prefix << "' must start with '/'\n";
    return 2;
  }
  if (auto why = check_url_scheme(o.base_url, "--base-url"); !why.empty()) {
    log << "worker: " << why << "\n";
    return 2;
  }
  w.name = o.name.empty() ? default_name() : o.name;
  auto connected = etcd_client::connect(o.etcd);
  if (!connected) {
    log << "worker: " << connected.err() << "\n";
    return 2;
  }
  w.etcd = std::move(connected.value());
  auto granted = w.etcd->grant(o.lease_ttl_s);
  if (!granted) {
    log << "worker: cannot get a lease: " << granted.err() << "\n";
    return 2;
  }
  w.lease = granted.value();
  w.sh->log = &log;
  w.sh->lease_deadline_ns = (clock::now() + std::chrono::seconds(o.lease_ttl_s) -
                             std::chrono::milliseconds(o.etcd.timeout))
                                .time_since_epoch()
                                .count();
  if (!w.keepalive()) return 2;
  w.sh->out_fd = open_output(o.out, log);
  if (w.sh->out_fd < 0) return 2;
  log << "worker " << w.name << ": lease " << w.lease << " (ttl " << o.lease_ttl_s << " s), prefix "
      << w.k.prefix << "\n";

  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", 2);
  ei::actors::add_message_types(cfg);
  caf::actor_system sys{cfg};
  export_items::stage_config config;
  config.base_url = o.base_url;
  config.settings.ordering = o.ordering;
  config.settings.page_size = o.page_size;
  config.settings.max_jobs = std::max<std::uint32_t>(o.max_jobs, 1);
  config.settings.request_timeout = std::chrono::seconds(60);
  // No API request once the lease may have expired: another worker may hold the company.
  config.http.admit = [sh = w.sh] { return sh->lease_valid(); };
  auto ds = sys.spawn<caf::detached>(downstream, w.sh);
  auto stage = export_items::stage::start(sys, config, creds, o.state_dir, ds);
  if (!stage) {
    log << "worker: " << stage.err().message << "\n";
    caf::anon_send_exit(ds, caf::exit_reason::user_shutdown);
    return 2;
  }

  std::map<api::uuid, std::shared_ptr<job_slot>> running;
  std::thread keepalive_thread([&w] { w.keepalive_loop(); });
  auto next_scan = clock::now();
  int code = 0;
  for (;;) {
    if (w.lease_lost.load()) w.fenced("the lease is lost");
    if (!w.sh->lease_valid()) w.fenced("the lease may have expired (no keep-alive in time)");

    // Progress: grouped, fenced by the claim.
    for (auto& [id, s] : running) {
      bool due = false;
      {
        std::lock_guard<std::mutex> lk(w.sh->mu);
        due = !s->pending.empty() && (s->pending.size() >= o.flush_items ||
                                      clock::now() - s->oldest_pending >= o.flush_interval);
      }
      if (due && w.write_progress(*s, false) == 0)
        w.fenced("etcd refused the progress write of job " + s->job_text);
    }

    // Finished runs.
    std::deque<std::pair<api::uuid, std::optional<export_items::job_outcome>>> done;
    {
      std::lock_guard<std::mutex> lk(w.sh->mu);
      done.swap(w.sh->finished);
    }
    for (auto& [id, outcome] : done) {
      auto it = running.find(id);
      if (it == running.end()) continue;
      auto s = it->second;
      // A run that ended because the lease was gone (its requests refused by the admit gate)
      // is not this worker's to record or release any more.
      if (w.lease_lost.load() || !w.sh->lease_valid()) w.fenced("the lease may have expired");
      for (int tries = 0;; ++tries) {
        const int r = w.write_progress(*s, false);
        if (r == 1) break;
        if (r == 0) w.fenced("etcd refused the progress write of job " + s->job_text);
        if (!w.sh->lease_valid()) w.fenced("the lease may have expired");
        std::this_thread::sleep_for(std::chrono::milliseconds(100));  // etcd unreachable
      }
      std::string result = "failed", reason_code, reason;
      std::uint64_t in_scope = 0, emitted = 0;
      bool final_result = true;
      if (outcome) {
        in_scope = outcome->stats.in_scope;
        emitted = outcome->stats.emitted;
        reason_code = outcome->reason_code;
        reason = outcome->reason;
        if (outcome->result != export_items::job_result::failed) {
          result = "complete";
        } else {
          const auto kind = export_items::failure_of(*outcome);
          final_result = kind == export_items::failure_kind::job_not_in_progress ||
                         kind == export_items::failure_kind::unknown_job ||
                         kind == export_items::failure_kind::unauthorized;
        }
      } else {
        reason_code = to_string(export_items::job_errc::internal);
        std::lock_guard<std::mutex> lk(w.sh->mu);
        reason = w.sh->run_errors[id];
        final_result = false;
      }
      if (!final_result && s->attempt < static_cast<std::int64_t>(o.max_attempts)) {
        log << "worker " << w.name << ": job " << s->job_text << " failed (" << reason_code << ": "
            << reason << "); released for another attempt" << mono() << "\n";
        w.release(*s);
      } else {
        // A failure that could have gone to another attempt but used the last one says so in
        // its own field: reasonCode stays the job's code (export_items/errors.hpp).
        json rec = {{"result", result},     {"worker", w.name},         {"attempt", s->attempt},
                    {"inScope", in_scope},  {"emitted", emitted},       {"handedOn", s->handed},
                    {"acked", s->recorded}, {"reasonCode", reason_code}};
        if (!final_result) rec["attemptsExhausted"] = true;
        log << "worker " << w.name << ": job " << s->job_text << " run ended (" << result
            << "), recording" << mono() << "\n";
        int r = -1;
        while ((r = w.record_done(*s, rec)) < 0) {
          if (!w.sh->lease_valid()) w.fenced("the lease may have expired");
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        if (r == 0) w.fenced("etcd refused the completion of job " + s->job_text);
        ++w.completed;
        log << "worker " << w.name << ": job " << s->job_text << " " << result
            << " recorded (attempt " << s->attempt << ", handed on " << s->handed
            << ", skipped as acked before " << s->skipped << ")" << mono() << "\n";
      }
      {
        std::lock_guard<std::mutex> lk(w.sh->mu);
        w.sh->jobs.erase(id);
      }
      running.erase(it);
      next_scan = clock::now();
    }

    // Claims.
    if (running.size() < o.max_jobs && clock::now() >= next_scan) {
      auto v = w.scan();
      next_scan = clock::now() + std::chrono::milliseconds(200);
      if (v) {
        std::vector<std::pair<std::string, std::string>> candidates;
        bool all_done = true;
        for (const auto& [job, company] : v->jobs) {
          if (v->done.count(job) != 0) continue;
          all_done = false;
          if (v->claimed.count(job) != 0 || v->locked.count(company) != 0) continue;
          if (running.count(*api::uuid::parse(job)) != 0) continue;
          candidates.emplace_back(job, company);
        }
        if (all_done && running.empty()) {
          log << "worker " << w.name << ": every job of the batch is done (" << v->jobs.size()
              << " jobs)\n";
          break;
        }
        std::shuffle(candidates.begin(), candidates.end(), w.rng);
        std::set<std::string> companies_taken;
        for (const auto& [job, company] : candidates) {
          if (running.size() >= o.max_jobs) break;
          if (companies_taken.count(company) != 0) continue;
          if (!api::uuid::parse(job)) continue;
          auto a = v->attempts.find(job);
          auto slot = w.claim(job, company, a == v->attempts.end() ? 0 : a->second);
          if (!slot) continue;
          companies_taken.insert(company);
          {
            std::lock_guard<std::mutex> lk(w.sh->mu);
            w.sh->jobs[slot->job] = slot;
          }
          running[slot->job] = slot;
          auto runner = stage.value()->batch_runner();
          sys.spawn([runner, id = slot->job, sh = w.sh](caf::event_based_actor* self) {
            self->request(runner, caf::infinite, export_items::run_atom::value,
                          export_items::batch_request{{id}, false, {}, std::nullopt})
                .then(
                    [id, sh](export_items::batch_report& r) {
                      std::lock_guard<std::mutex> lk(sh->mu);
                      if (r.jobs.empty()) {
                        sh->run_errors[id] = "empty batch report";
                        sh->finished.emplace_back(id, std::nullopt);
                      } else {
                        sh->finished.emplace_back(id, r.jobs.front());
                      }
                      sh->cv.notify_all();
                    },
                    [id, sh](caf::error& err) {
                      std::lock_guard<std::mutex> lk(sh->mu);
                      sh->run_errors[id] = "batch runner: " + caf::to_string(err);
                      sh->finished.emplace_back(id, std::nullopt);
                      sh->cv.notify_all();
                    });
          });
        }
      }
    }

    std::unique_lock<std::mutex> lk(w.sh->mu);
    w.sh->cv.wait_for(lk, std::chrono::milliseconds(20), [&] { return !w.sh->finished.empty(); });
  }

  log << "worker " << w.name << ": claims=" << w.claims << " completed=" << w.completed
      << " released=" << w.released << " progressWrites=" << w.progress_writes
      << " etcdRequests=" << w.etcd->requests() << " etcdLatencyMs=" << w.etcd->latency_us() / 1000
      << " failovers=" << w.etcd->failovers() << "\n";
  {
    std::lock_guard<std::mutex> lk(w.ka_mu);
    w.stop_keepalive = true;
  }
  w.ka_cv.notify_all();
  keepalive_thread.join();
  (void)w.etcd->revoke(w.lease);
  stage.value()->shutdown();
  caf::anon_send_exit(ds, caf::exit_reason::user_shutdown);
  log.flush();
  // Bounded teardown: everything made safe is in etcd, the output and the state store.
  std::thread([code] {
    std::this_thread::sleep_for(std::chrono::seconds(2));
    std::_Exit(code);
  }).detach();
  return code;
}

}  // namespace ei::distributed
