// Write-back and completion (writeback.hpp): PUTs of recorded outcomes, several in flight,
// then the job event, exactly once.
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <unordered_map>

#include <simdjson.h>
#include <nlohmann/json.hpp>

#include "api/codec.hpp"
#include "api/export_requests.hpp"
#include "common/crash_point.hpp"
#include "common/json_text.hpp"
#include "writeback/writeback.hpp"

namespace ei::writeback {

std::string_view to_string(completion c) noexcept {
  switch (c) {
    case completion::skipped:
      return "skipped";
    case completion::not_ready:
      return "not_ready";
    case completion::completed:
      return "completed";
    case completion::completed_with_errors:
      return "completed_with_errors";
    case completion::failed:
      return "failed";
    case completion::found_final:
      return "found_final";
    case completion::already_recorded:
      return "already_recorded";
  }
  return "unknown";
}

bool is_final(completion c) noexcept {
  switch (c) {
    case completion::skipped:
    case completion::not_ready:
      return false;
    case completion::completed:
    case completion::completed_with_errors:
    case completion::failed:
    case completion::found_final:
    case completion::already_recorded:
      return true;
  }
  return false;
}

bool report::ok() const {
  for (const auto& j : jobs)
    if (!j.ok()) return false;
  return true;
}

namespace {

constexpr std::string_view does_not_exist = "ACCOUNTING_ENTRY_DOES_NOT_EXIST";

bool final_job(api::job_status s) {
  return s == api::job_status::completed || s == api::job_status::completed_with_errors ||
         s == api::job_status::failed;
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// Completed HTTP requests, handed from the io thread to the caller's thread.
class inbox {
 public:
  void post(std::size_t tag, api::http_result<api::response> r) {
    {
      std::lock_guard lock(mutex_);
      done_.emplace_back(tag, std::move(r));
    }
    cv_.notify_one();
  }
  std::pair<std::size_t, api::http_result<api::response>> take() {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return !done_.empty(); });
    auto r = std::move(done_.front());
    done_.pop_front();
    return r;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::pair<std::size_t, api::http_result<api::response>>> done_;
};

api::http_result<api::response> send_sync(api::http_client& http, api::request req) {
  inbox box;
  http.async_request(std::move(req),
                     [&box](api::http_result<api::response> r) { box.post(0, std::move(r)); });
  return box.take().second;
}

std::string failure_code(const api::http_failure& f) {
  if (f.code == api::http_errc::http_status && !f.type.empty()) return f.type;
  return "http_" + std::string(api::to_string(f.code));
}

std::string put_body(const std::vector<storage::item_outcome>& batch) {
  std::string out;
  out.reserve(batch.size() * 200);
  out.push_back('[');
  auto field = [&out](std::string_view key, std::string_view value) {
    out.push_back(',');
    append_json_string(out, key);
    out.push_back(':');
    append_json_string(out, value);
  };
  for (const auto& o : batch) {
    if (out.size() > 1) out.push_back(',');
    out.append("{\"accountingEntryId\":\"");
    const std::size_t at = out.size();
    out.resize(at + 36);
    o.item.format_to(out.data() + at);
    out.push_back('"');
    field("status", api::to_string(o.status));
    const auto& f = o.fields;
    if (f.exported_at) field("exportedAt", *f.exported_at);
    if (f.external_id) field("externalId", *f.external_id);
    if (f.external_url) field("externalUrl", *f.external_url);
    if (f.failure_reason) field("failureReason", *f.failure_reason);
    if (f.failure_reason_type) field("failureReasonType", *f.failure_reason_type);
    out.push_back('}');
  }
  out.push_back(']');
  return out;
}

/// The 200 body of a PUT: ids in `data`, and `errors[]` entries by id. Validated: both arrays
/// are required, ids must be UUIDs (an error entry without a usable id applies to nobody).
struct put_answer {
  std::vector<api::uuid> updated;
  std::unordered_map<api::uuid, std::pair<std::string, std::string>, api::uuid_hash> errors;
};

std::optional<put_answer> parse_put_answer(std::string_view body, std::string& why) {
  // One parser per thread (write_back runs on its caller's thread); the body is copied once
  // into a padded buffer, as simdjson requires.
  thread_local simdjson::dom::parser parser;
  thread_local std::string padded;
  padded.assign(body);
  padded.append(simdjson::SIMDJSON_PADDING, '\0');
  simdjson::dom::object doc;
  if (parser.parse(padded.data(), body.size(), false).get(doc) != simdjson::SUCCESS) {
    why = "the 200 body is not a JSON object";
    return std::nullopt;
  }
  simdjson::dom::array data, errors;
  if (doc["data"].get(data) != simdjson::SUCCESS ||
      doc["errors"].get(errors) != simdjson::SUCCESS) {
    why = "the 200 body lacks the 'data' and 'errors' arrays";
    return std::nullopt;
  }
  put_answer a;
  std::size_t i = 0;
  for (auto e : data) {
    std::string_view text;
    std::optional<api::uuid> id;
    if (e["accountingEntryId"].get(text) == simdjson::SUCCESS) id = api::uuid::parse(text);
    if (!id) {
      why = "data[" + std::to_string(i) + "].accountingEntryId is not a UUID string";
      return std::nullopt;
    }
    a.updated.push_back(*id);
    ++i;
  }
  i = 0;
  for (auto e : errors) {
    simdjson::dom::object entry;
    if (e.get(entry) != simdjson::SUCCESS) {
      why = "errors[" + std::to_string(i) + "] is not an object";
      return std::nullopt;
    }
    ++i;
    auto str = [&](const char* k) {
      std::string_view v;
      return entry[k].get(v) == simdjson::SUCCESS ? std::string(v) : std::string{};
    };
    auto id = api::uuid::parse(str("accountingEntryId"));
    if (!id) continue;  // names no item of ours: the item stays unanswered (retried)
    std::string type = str("type");
    if (type.empty()) type = "UNKNOWN_ERROR";
    a.errors[*id] = {type, str("message")};
  }
  return a;
}

class job_runner {
 public:
  job_runner(api::http_client& http, storage::state_store& store, const options& opts,
             job_report& rep)
      : http_(http), store_(store), opts_(opts), rep_(rep) {}

  void run() {
    auto done = store_.load_completion(rep_.job_id);
    if (!done) return stop("store", done.err().message);
    if (*done) {
      completion_ = **done;
      tally();
      rep_.completion = completion::already_recorded;
      rep_.job_status = std::string(api::to_string(completion_->status));
      return;
    }
    put_outcomes();
    tally();
    if (!rep_.ok()) return;
    if (opts_.fail_reason_type)
      finish(api::job_status::failed);
    else if (opts_.complete)
      complete_if_ready();
  }

 private:
  void stop(std::string code, std::string message) {
    if (rep_.stop_code.empty()) {
      rep_.stop_code = std::move(code);
      rep_.stop_message = std::move(message);
    }
  }

  /// PUTs every `recorded` outcome, retrying items answered in errors[] (or not at all).
  void put_outcomes() {
    std::deque<storage::item_outcome> queue;
    auto st = store_.for_each_outcome(rep_.job_id, [&](storage::item_outcome&& o) {
      if (o.state == storage::outcome_state::recorded) queue.push_back(std::move(o));
      return true;
    });
    if (!st) return stop("store", st.err().message);
    std::map<std::size_t, std::vector<storage::item_outcome>> in_flight;
    std::size_t next_tag = 0;
    // Each item is sent at most this many times per run (errors[] answers and unanswered).
    std::unordered_map<api::uuid, std::uint32_t, api::uuid_hash> sent_count;
    inbox box;
    const std::size_t per_request = std::clamp<std::size_t>(opts_.items_per_request, 1, 100);
    while ((!queue.empty() && rep_.ok()) || !in_flight.empty()) {
      while (rep_.ok() && !queue.empty() && in_flight.size() < opts_.requests_in_flight) {
        std::vector<storage::item_outcome> batch;
        while (!queue.empty() && batch.size() < per_request) {
          batch.push_back(std::move(queue.front()));
          queue.pop_front();
        }
        api::request req;
        req.method = api::request::verb::put;
        req.path = "/v3/export-jobs/" + rep_.job_id.to_string() + "/items";
        req.body = put_body(batch);
        for (const auto& o : batch)
          ++sent_count[o.item];
        rep_.updates_sent += batch.size();
        ++rep_.requests;
        const auto tag = next_tag++;
        in_flight.emplace(tag, std::move(batch));
        http_.async_request(std::move(req), [&box, tag](api::http_result<api::response> r) {
          box.post(tag, std::move(r));
        });
        crash_point("after_put_sent");
      }
      if (in_flight.empty()) break;
      auto [tag, result] = box.take();
      auto batch = std::move(in_flight.at(tag));
      in_flight.erase(tag);
      if (!result) {
        const auto& f = result.err();
        if (f.status == 422) {
          stop(f.type.empty() ? "EXPORT_JOB_STATUS_UNPROCESSABLE" : f.type,
               "Pleo no longer takes item updates for this job (finished): " + f.detail);
        } else {
          stop(failure_code(f), f.message);
        }
        continue;  // the batch stays recorded: a later run sends it again
      }
      std::string why;
      auto answer = parse_put_answer(result->body, why);
      if (!answer) {
        stop("invalid_response",
             "PUT /v3/export-jobs/" + rep_.job_id.to_string() + "/items: " + why);
        continue;
      }
      crash_point("after_put_ok_before_record");
      std::unordered_map<api::uuid, bool, api::uuid_hash> updated;
      for (const auto& id : answer->updated)
        updated[id] = true;
      std::vector<storage::item_outcome> changed;
      std::vector<storage::item_outcome> retry;
      for (auto& o : batch) {
        if (updated.contains(o.item)) {
          o.state = storage::outcome_state::reported;
          changed.push_back(o);
          continue;
        }
        auto e = answer->errors.find(o.item);
        if (e == answer->errors.end()) {
          // Unanswered: neither updated nor refused. Try again (bounded per run).
          if (sent_count[o.item] < opts_.max_rejections) retry.push_back(std::move(o));
          continue;
        }
        ++o.rejections;
        o.error_type = e->second.first;
        o.error_message = e->second.second;
        const bool final = o.error_type == does_not_exist || o.rejections >= opts_.max_rejections;
        if (final) o.state = storage::outcome_state::rejected;
        rep_.errors.push_back({o.item, o.error_type, o.error_message, final});
        changed.push_back(o);
        if (!final) retry.push_back(std::move(o));
      }
      if (!changed.empty()) {
        auto w = store_.put_outcomes(rep_.job_id, changed);
        if (!w) {
          stop("store", w.err().message);
          continue;
        }
      }
      for (auto& o : retry)
        queue.push_back(std::move(o));
    }
  }

  /// Counts the job's outcomes by state and status.
  void tally() {
    rep_.reported = rep_.rejected = rep_.recorded = rep_.successful = rep_.failed = 0;
    any_error_ = false;
    auto st = store_.for_each_outcome(rep_.job_id, [&](storage::item_outcome&& o) {
      switch (o.state) {
        case storage::outcome_state::reported:
          ++rep_.reported;
          break;
        case storage::outcome_state::rejected:
          ++rep_.rejected;
          any_error_ = true;
          break;
        case storage::outcome_state::recorded:
          ++rep_.recorded;
          break;
      }
      if (o.status == api::item_status::successful) ++rep_.successful;
      if (o.status == api::item_status::failed) {
        ++rep_.failed;
        any_error_ = true;
      }
      return true;
    });
    if (!st) stop("store", st.err().message);
  }

  /// Ready: the stage finished the job (every item acked) and every in-scope item of its
  /// order has an outcome Pleo confirmed (or refused for good).
  void complete_if_ready() {
    auto rec = store_.load_job(rep_.job_id);
    if (!rec) return stop("store", rec.err().message);
    if (!*rec) return stop("unknown_job", "no job " + rep_.job_id.to_string() + " in the store");
    if ((*rec)->phase != storage::job_phase::complete) {
      rep_.completion = completion::not_ready;
      rep_.stop_message = "the stage has not finished the job (phase " +
                          std::string(storage::to_string((*rec)->phase)) + ")";
      return;
    }
    std::unordered_map<api::uuid, storage::outcome_state, api::uuid_hash> states;
    auto st = store_.for_each_outcome(rep_.job_id, [&](storage::item_outcome&& o) {
      states[o.item] = o.state;
      return true;
    });
    if (!st) return stop("store", st.err().message);
    std::uint64_t awaiting = 0, unconfirmed = 0;
    const std::size_t cs = storage::state_store::order_chunk_size;
    for (std::uint64_t first = 1; first <= (*rec)->order_size; first += cs) {
      auto entries = store_.read_order(rep_.job_id, first, cs);
      if (!entries) return stop("store", entries.err().message);
      if (entries->empty()) break;
      for (const auto& e : *entries) {
        if (e.remote_status != api::item_status::pending &&
            e.remote_status != api::item_status::in_progress)
          continue;  // final in Pleo already: needs no outcome from us
        auto it = states.find(e.id);
        if (it == states.end())
          ++awaiting;
        else if (it->second == storage::outcome_state::recorded)
          ++unconfirmed;
      }
    }
    rep_.awaiting_outcome = awaiting;
    if (awaiting > 0 || unconfirmed > 0) {
      rep_.completion = completion::not_ready;
      rep_.stop_message = std::to_string(awaiting) + " item(s) without an outcome, " +
                          std::to_string(unconfirmed) + " outcome(s) not yet confirmed by Pleo";
      return;
    }
    finish(any_error_ ? api::job_status::completed_with_errors : api::job_status::completed);
  }

  /// GET the job: its status, or nullopt after stopping with the failure.
  std::optional<api::export_job> read_job() {
    auto r = send_sync(http_, api::requests::get_job(rep_.job_id));
    if (!r) {
      stop(failure_code(r.err()), r.err().message);
      return std::nullopt;
    }
    auto job = api::decode_job(r->body, "GET /v3/export-jobs/" + rep_.job_id.to_string());
    if (!job) {
      stop("invalid_response", job.err().message);
      return std::nullopt;
    }
    return std::move(job.value());
  }

  /// The event that was sent: finish() sends only the three final statuses.
  static completion sent_completion(api::job_status s) noexcept {
    switch (s) {
      case api::job_status::completed:
        return completion::completed;
      case api::job_status::completed_with_errors:
        return completion::completed_with_errors;
      case api::job_status::failed:
      case api::job_status::pending:
      case api::job_status::in_progress:
      case api::job_status::unknown:
        return completion::failed;
    }
    return completion::failed;
  }

  void record(api::job_status s, bool sent, const api::export_job* seen) {
    storage::completion_record c;
    c.status = s;
    c.sent = sent;
    c.at_ms = now_ms();
    if (s == api::job_status::failed) {
      if (sent) {
        c.failure_reason_type = *opts_.fail_reason_type;
        c.failure_reason = opts_.fail_reason;
      } else if (seen != nullptr) {
        c.failure_reason_type = seen->failure_reason_type.value_or("");
        c.failure_reason = seen->failure_reason.value_or("");
      }
    }
    auto st = store_.put_completion(rep_.job_id, c);
    if (!st) return stop("store", st.err().message);
    rep_.job_status = std::string(api::to_string(s));
    rep_.completion = sent ? sent_completion(s) : completion::found_final;
  }

  /// Sends the final event exactly once: re-read the job first; on 422, read it again.
  void finish(api::job_status target) {
    crash_point("before_event");
    auto job = read_job();
    if (!job) return;
    if (final_job(job->status)) return record(job->status, false, &*job);
    if (job->status != api::job_status::in_progress && target != api::job_status::failed)
      return stop("job_not_in_progress", "job is " + job->status_text + ", not in_progress");
    nlohmann::json body{{"event", std::string(api::to_string(target))},
                        {"jobId", rep_.job_id.to_string()}};
    if (target == api::job_status::failed) {
      body["failureReasonType"] = *opts_.fail_reason_type;
      if (!opts_.fail_reason.empty()) body["failureReason"] = opts_.fail_reason;
    }
    api::request req;
    req.method = api::request::verb::post;
    req.path = "/v3/export-job-events";
    req.body = body.dump();
    auto r = send_sync(http_, std::move(req));
    if (r) {
      crash_point("after_event_before_record");
      return record(target, true, nullptr);
    }
    if (r.err().status == 422) {
      // A retried POST whose first attempt took effect, or someone else finished the job.
      auto again = read_job();
      if (!again) return;
      if (final_job(again->status)) return record(again->status, false, &*again);
    }
    stop(failure_code(r.err()), r.err().message);
  }

  api::http_client& http_;
  storage::state_store& store_;
  const options& opts_;
  job_report& rep_;
  std::optional<storage::completion_record> completion_;
  bool any_error_ = false;
};

}  // namespace

result<report, wb_errc> write_back(api::http_client& http, storage::state_store& store,
                                   const options& opts) {
  if (opts.fail_reason_type && opts.jobs.empty())
    return make_error(wb_errc::usage, "failing jobs needs the jobs named (--job)");
  if (opts.fail_reason_type && opts.fail_reason_type->empty())
    return make_error(wb_errc::usage, "the failureReasonType must not be empty");
  if (opts.requests_in_flight == 0) return make_error(wb_errc::usage, "requests in flight: 0");
  std::vector<api::uuid> jobs = opts.jobs;
  if (jobs.empty()) {
    auto all = store.load_jobs();
    if (!all) return make_error(wb_errc::store, all.err().message);
    for (const auto& j : *all)
      if (j.phase == storage::job_phase::complete || j.phase == storage::job_phase::dispatching)
        jobs.push_back(j.job_id);
  }
  report out;
  for (const auto& id : jobs) {
    job_report rep;
    rep.job_id = id;
    job_runner(http, store, opts, rep).run();
    out.jobs.push_back(std::move(rep));
  }
  return out;
}

std::string summary_json(const report& r, std::uint64_t lines_read, std::uint64_t lines_recorded,
                         std::uint64_t lines_duplicate, std::uint64_t lines_refused) {
  using nlohmann::json;
  json jobs = json::array();
  std::uint64_t reported = 0, rejected = 0, recorded = 0, sent = 0, completed = 0;
  for (const auto& j : r.jobs) {
    json errors = json::array();
    for (const auto& e : j.errors)
      errors.push_back({{"accountingEntryId", e.item.to_string()},
                        {"type", e.type},
                        {"message", e.message},
                        {"final", e.final}});
    json entry{{"jobId", j.job_id.to_string()},
               {"updatesSent", j.updates_sent},
               {"requests", j.requests},
               {"reported", j.reported},
               {"rejected", j.rejected},
               {"recorded", j.recorded},
               {"successful", j.successful},
               {"failed", j.failed},
               {"awaitingOutcome", j.awaiting_outcome},
               {"errors", errors},
               {"completion", to_string(j.completion)},
               {"jobStatus", j.job_status.empty() ? json(nullptr) : json(j.job_status)}};
    if (!j.stop_code.empty()) {
      entry["stopCode"] = j.stop_code;
      entry["stopReason"] = j.stop_message;
    } else if (!j.stop_message.empty()) {
      entry["note"] = j.stop_message;
    }
    reported += j.reported;
    rejected += j.rejected;
    recorded += j.recorded;
    sent += j.updates_sent;
    if (is_final(j.completion)) ++completed;
    jobs.push_back(std::move(entry));
  }
  json doc{{"jobs", jobs},
           {"totals",
            {{"jobs", r.jobs.size()},
             {"updatesSent", sent},
             {"reported", reported},
             {"rejected", rejected},
             {"recorded", recorded},
             {"jobsFinal", completed}}}};
  if (lines_read > 0 || lines_refused > 0)
    doc["lines"] = {{"read", lines_read},
                    {"recorded", lines_recorded},
                    {"duplicate", lines_duplicate},
                    {"refused", lines_refused}};
  return doc.dump(2);
}

}  // namespace ei::writeback
