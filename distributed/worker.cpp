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
#include "common/log.hpp"
#include "distributed/keys.hpp"
#include "export_items/stage.hpp"
#include "pipeline/monitor.hpp"

namespace ei::distributed {
namespace {

using clock = std::chrono::steady_clock;
using json = nlohmann::json;

/// The monotonic clock in ns (the `mono` field of the lines that open and close a claim), so
/// its window lines up with other processes' events on the host (tests/distributed/).
std::string mono() {
  return std::to_string(
      std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now().time_since_epoch())
          .count());
}

/// Blocks until every line logged so far is on stderr: the lines that open and close a claim
/// are out before etcd hears of the claim's end and before the run starts, and the last lines
/// before an exit are not lost in the logging thread's queue. Only the control loop (a plain
/// thread) calls it; bounded so a stuck stderr cannot hold the loop for long.
void log_out() {
  (void)ei::log::flush(1000);
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
  std::string worker_name;
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
            ei::log::error("output_failed",
                           std::string("writing the output failed (") + std::strerror(f->error) +
                               "): the job stops handing on",
                           {{"worker", sh.worker_name},
                            {"jobId", slot->job_text},
                            {"companyId", slot->company}});
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
  explicit worker(const worker_options& opts) : o(opts) {}
  const worker_options& o;
  keys k;
  std::unique_ptr<etcd_client> etcd;
  std::shared_ptr<shared_state> sh = std::make_shared<shared_state>();
  std::int64_t lease = 0;
  std::string name;
  std::mt19937_64 rng{std::random_device{}()};
  // Read by the monitor's thread for the metrics file.
  std::atomic<std::uint64_t> claims{0}, completed{0}, recorded_failed{0}, released{0},
      progress_writes{0};
  std::unique_ptr<pipeline::run_monitor> monitor;  // the metrics file and the HTTP events

  /// The worker's own families of the metrics file (docs/operations.md).
  void write_metrics(pipeline::openmetrics_writer& e) {
    e.counter("export_items_worker_claims", "", "Jobs this worker claimed", claims.load());
    e.family("export_items_worker_jobs_recorded", "counter", "",
             "Jobs this worker recorded done in etcd, by result");
    const auto failed = recorded_failed.load();
    const auto done = completed.load();
    e.sample("export_items_worker_jobs_recorded_total",
             pipeline::openmetrics_label("result", "complete"), done - std::min(done, failed));
    e.sample("export_items_worker_jobs_recorded_total",
             pipeline::openmetrics_label("result", "failed"), failed);
    e.counter("export_items_worker_releases", "",
              "Claims this worker gave back for another attempt", released.load());
    e.counter("export_items_worker_progress_writes", "",
              "Fenced progress writes (acknowledged ids) to etcd", progress_writes.load());
    std::size_t held = 0;
    {
      std::lock_guard<std::mutex> lk(sh->mu);
      held = sh->jobs.size();
    }
    e.gauge("export_items_worker_jobs_claimed", "", "Jobs this worker holds a claim on now",
            static_cast<double>(held));
    e.gauge("export_items_worker_fenced", "",
            "1 once the lease may have expired (the worker exits 3)", sh->fenced.load() ? 1 : 0);
    e.counter("export_items_worker_etcd_requests", "", "Requests sent to etcd", etcd->requests());
    e.counter("export_items_worker_etcd_failovers", "", "Switches to another etcd member",
              etcd->failovers());
  }

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
    const auto lease_text = std::to_string(lease);
    if (!r) {
      ei::log::warn("keepalive_failed", "keep-alive failed: " + r.err(),
                    {{"worker", name}, {"lease", lease_text}});
      return clock::now().time_since_epoch().count() < sh->lease_deadline_ns.load();
    }
    if (r.value() <= 0) {
      ei::log::error("lease_lost", "etcd says the lease is gone",
                     {{"worker", name}, {"lease", lease_text}});
      return false;
    }
    if (clock::now().time_since_epoch().count() >= sh->lease_deadline_ns.load()) {
      ei::log::error("lease_lost", "the keep-alive came back after the lease's deadline",
                     {{"worker", name}, {"lease", lease_text}});
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

  /// The worker's last line (what it did; its summary), then everything on stderr.
  void log_exit(int code) {
    const auto c = std::to_string(code), n_claims = std::to_string(claims),
               n_completed = std::to_string(completed), n_released = std::to_string(released),
               n_writes = std::to_string(progress_writes),
               n_requests = std::to_string(etcd->requests()),
               latency = std::to_string(etcd->latency_us() / 1000),
               n_failovers = std::to_string(etcd->failovers());
    ei::log::write(code == 0 ? ei::log::level::info : ei::log::level::error, "worker_exiting",
                   code == 0 ? "every job of the batch is done; exiting"
                             : "fenced: exiting without touching the batch again",
                   {{"worker", name},
                    {"exitCode", c},
                    {"claims", n_claims},
                    {"completed", n_completed},
                    {"released", n_released},
                    {"progressWrites", n_writes},
                    {"etcdRequests", n_requests},
                    {"etcdLatencyMs", latency},
                    {"failovers", n_failovers}});
    log_out();
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
    ei::log::error("fenced", why + ": fenced, handing nothing on",
                   {{"worker", name}, {"jobs", std::to_string(slots.size())}});
    for (auto& s : slots) {
      auto r = write_progress(*s, true);
      const auto attempt = std::to_string(s->attempt);
      if (r == 0)
        ei::log::error("progress_refused", "etcd refused the progress write (the claim is gone)",
                       {{"worker", name},
                        {"jobId", s->job_text},
                        {"companyId", s->company},
                        {"attempt", attempt}});
      else if (r > 0)
        ei::log::warn("progress_recorded",
                      "the claim was still ours; the last progress is recorded",
                      {{"worker", name},
                       {"jobId", s->job_text},
                       {"companyId", s->company},
                       {"attempt", attempt},
                       {"acked", std::to_string(s->recorded)}});
    }
    if (monitor) monitor->stop();  // the final metrics file says fenced
    log_exit(3);
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
      ei::log::warn("progress_write_failed", "writing the job's progress: " + r.err(),
                    {{"worker", name},
                     {"jobId", s.job_text},
                     {"companyId", s.company},
                     {"attempt", std::to_string(s.attempt)}});
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
      ei::log::warn("batch_read_failed",
                    "reading the batch: " + (r ? std::string("short answer") : r.err()),
                    {{"worker", name}, {"prefix", k.prefix}});
      return std::nullopt;
    }
    const auto& got = r.value().ranges;
    for (const auto& kv : got[0]) {
      auto j = json::parse(kv.value, nullptr, false);
      if (j.is_discarded() || !j.is_object() || !j.contains("companyId")) {
        ei::log::warn("job_record_ignored", "not a job record, ignored",
                      {{"worker", name}, {"key", kv.key}});
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
      ei::log::warn("claim_failed", "the claim txn failed: " + r.err(),
                    {{"worker", name},
                     {"jobId", job},
                     {"companyId", company},
                     {"attempt", std::to_string(attempt)}});
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
        ei::log::warn("job_released", "cannot read the job's progress; released",
                      {{"worker", name},
                       {"jobId", job},
                       {"companyId", company},
                       {"attempt", std::to_string(attempt)},
                       {"reasonCode", "progress_unreadable"},
                       {"mono", mono()}});
        log_out();
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
    const auto resume = slot->watermark ? slot->watermark->to_string() : std::string();
    ei::log::info("job_claimed",
                  resume.empty() ? "claimed the job; it starts from the beginning"
                                 : "claimed the job; it resumes after the last acknowledged item",
                  {{"worker", name},
                   {"jobId", job},
                   {"companyId", company},
                   {"attempt", std::to_string(attempt)},
                   {"claimRevision", std::to_string(rev)},
                   {"resumeAfter", resume},
                   {"ackedBefore", std::to_string(slot->acked.size())},
                   {"mono", mono()}});
    log_out();  // on stderr before the run sends its first request
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
int open_output(const std::string& path, const std::string& name) {
  const int fd = ::open(path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    ei::log::error("worker_failed", "--out " + path + ": " + std::strerror(errno),
                   {{"worker", name}, {"output", path}});
    return -1;
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ei::log::error("worker_failed", "--out " + path + ": another process writes it (locked)",
                   {{"worker", name}, {"output", path}});
    ::close(fd);
    return -1;
  }
  struct stat st {};
  if (::fstat(fd, &st) == 0 && st.st_size > 0) {
    const auto size = static_cast<std::uint64_t>(st.st_size);
    const auto end = durable::whole_lines_end(fd);
    if (end && *end != size) {
      if (durable::cut_to(fd, *end)) {
        ei::log::error("worker_failed", "--out " + path + ": cannot cut a partial last line",
                       {{"worker", name}, {"output", path}});
        ::close(fd);
        return -1;
      }
      ei::log::warn("output_cut",
                    "cut a partial last line (written by a worker that died mid-write; it "
                    "was never acknowledged, so it comes again)",
                    {{"worker", name}, {"output", path}, {"bytes", std::to_string(size - *end)}});
    }
  }
  return fd;
}

}  // namespace

int run_worker(const worker_options& o, const api::credentials& creds) {
  worker w{o};
  w.name = o.name.empty() ? default_name() : o.name;
  w.sh->worker_name = w.name;
  // Before the worker holds anything: exit 2, the reason on stderr.
  auto fail = [&w](const std::string& why) {
    ei::log::error("worker_failed", why, {{"worker", w.name}});
    log_out();
    return 2;
  };
  w.k.prefix = keys::normalize(o.prefix);
  if (w.k.prefix.empty()) return fail("--prefix: '" + o.prefix + "' must start with '/'");
  if (auto why = check_url_scheme(o.base_url, "--base-url"); !why.empty()) return fail(why);
  auto connected = etcd_client::connect(o.etcd);
  if (!connected) return fail(connected.err());
  w.etcd = std::move(connected.value());
  auto granted = w.etcd->grant(o.lease_ttl_s);
  if (!granted) return fail("cannot get a lease: " + granted.err());
  w.lease = granted.value();
  w.sh->lease_deadline_ns = (clock::now() + std::chrono::seconds(o.lease_ttl_s) -
                             std::chrono::milliseconds(o.etcd.timeout))
                                .time_since_epoch()
                                .count();
  if (!w.keepalive()) return fail("the first keep-alive of the lease failed");
  w.sh->out_fd = open_output(o.out, w.name);
  if (w.sh->out_fd < 0) {
    log_out();
    return 2;
  }
  ei::log::info("worker_started", "worker started",
                {{"worker", w.name},
                 {"lease", std::to_string(w.lease)},
                 {"leaseTtlSeconds", std::to_string(o.lease_ttl_s)},
                 {"prefix", w.k.prefix},
                 {"maxJobs", std::to_string(o.max_jobs)},
                 {"ordering", storage::to_string(o.ordering)}});

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
    caf::anon_send_exit(ds, caf::exit_reason::user_shutdown);
    return fail(stage.err().message);
  }

  // The run's metrics (from the stage's counters and the jobs' outcomes) and the worker's own;
  // throttled / retry_storm events as for run.
  auto outcomes = std::make_shared<pipeline::outcome_metrics>();
  {
    pipeline::monitor_options mon;
    mon.metrics_file = o.metrics_file;
    mon.metrics_interval = o.metrics_interval;
    mon.extra = [&w](pipeline::openmetrics_writer& e) { w.write_metrics(e); };
    w.monitor = std::make_unique<pipeline::run_monitor>(
        std::move(mon), [st = stage.value().get()] { return st->stats(); }, outcomes);
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
      bool complete = false;
      std::string reason_code, reason;
      std::uint64_t in_scope = 0, emitted = 0;
      bool final_result = true;
      if (outcome) {
        outcomes->add(*outcome);
        in_scope = outcome->stats.in_scope;
        emitted = outcome->stats.emitted;
        reason_code = outcome->reason_code;
        reason = outcome->reason;
        if (outcome->result != export_items::job_result::failed) {
          complete = true;
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
      const auto attempt = std::to_string(s->attempt);
      if (!final_result && s->attempt < static_cast<std::int64_t>(o.max_attempts)) {
        ei::log::warn("job_released",
                      "the run failed (" + reason + "); released for another attempt",
                      {{"worker", w.name},
                       {"jobId", s->job_text},
                       {"companyId", s->company},
                       {"attempt", attempt},
                       {"reasonCode", reason_code},
                       {"mono", mono()}});
        log_out();  // on stderr before etcd frees the company
        w.release(*s);
      } else {
        // A failure that could have gone to another attempt but used the last one says so in
        // its own field: reasonCode stays the job's code (export_items/errors.hpp).
        const std::string result = complete ? "complete" : "failed";  // the record's text
        json rec = {{"result", result},     {"worker", w.name},         {"attempt", s->attempt},
                    {"inScope", in_scope},  {"emitted", emitted},       {"handedOn", s->handed},
                    {"acked", s->recorded}, {"reasonCode", reason_code}};
        if (!final_result) rec["attemptsExhausted"] = true;
        ei::log::info("job_run_ended", "the run ended; recording it",
                      {{"worker", w.name},
                       {"jobId", s->job_text},
                       {"companyId", s->company},
                       {"attempt", attempt},
                       {"result", result},
                       {"reasonCode", reason_code},
                       {"mono", mono()}});
        log_out();  // on stderr before etcd frees the company
        int r = -1;
        while ((r = w.record_done(*s, rec)) < 0) {
          if (!w.sh->lease_valid()) w.fenced("the lease may have expired");
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        if (r == 0) w.fenced("etcd refused the completion of job " + s->job_text);
        ++w.completed;
        if (!complete) ++w.recorded_failed;
        ei::log::write(complete ? ei::log::level::info : ei::log::level::error, "job_recorded",
                       complete ? std::string("the job is recorded complete")
                                : "the job is recorded failed (" + reason + ")",
                       {{"worker", w.name},
                        {"jobId", s->job_text},
                        {"companyId", s->company},
                        {"attempt", attempt},
                        {"result", result},
                        {"reasonCode", reason_code},
                        {"attemptsExhausted", final_result ? "false" : "true"},
                        {"handedOn", std::to_string(s->handed)},
                        {"skipped", std::to_string(s->skipped)},
                        {"mono", mono()}});
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
          ei::log::info("batch_done", "every job of the batch is done",
                        {{"worker", w.name},
                         {"prefix", w.k.prefix},
                         {"jobs", std::to_string(v->jobs.size())}});
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

  w.monitor->stop();  // the final metrics file
  w.log_exit(code);
  {
    std::lock_guard<std::mutex> lk(w.ka_mu);
    w.stop_keepalive = true;
  }
  w.ka_cv.notify_all();
  keepalive_thread.join();
  (void)w.etcd->revoke(w.lease);
  stage.value()->shutdown();
  caf::anon_send_exit(ds, caf::exit_reason::user_shutdown);
  log_out();
  // Bounded teardown: everything made safe is in etcd, the output and the state store.
  std::thread([code] {
    std::this_thread::sleep_for(std::chrono::seconds(2));
    std::_Exit(code);
  }).detach();
  return code;
}

}  // namespace ei::distributed
