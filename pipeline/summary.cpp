#include "pipeline/summary.hpp"

#include <ostream>

#include <nlohmann/json.hpp>

namespace ei::pipeline {
namespace {

using nlohmann::json;

json entry_of(const actors::job_outcome& j) {
  json by_status = json::object();
  for (auto s :
       {api::item_status::pending, api::item_status::in_progress, api::item_status::successful,
        api::item_status::failed, api::item_status::abandoned, api::item_status::unknown}) {
    by_status[std::string(api::to_string(s))] =
        j.stats.by_remote_status[static_cast<std::size_t>(s)];
  }
  json out_of_scope = json::object();
  for (auto s : {api::item_status::successful, api::item_status::failed,
                 api::item_status::abandoned, api::item_status::unknown})
    out_of_scope[std::string(api::to_string(s))] =
        j.stats.by_remote_status[static_cast<std::size_t>(s)];
  const bool interrupted = actors::is_interrupted(j);
  json entry{
      {"jobId", j.job_id.is_nil() ? json(nullptr) : json(j.job_id.to_string())},
      {"companyId", j.company_id.is_nil() ? json(nullptr) : json(j.company_id.to_string())},
      {"result",
       interrupted ? std::string("interrupted") : std::string(actors::to_string(j.result))},
      {"listed", j.stats.listed},
      {"inScope", j.stats.in_scope},
      {"outOfScope", out_of_scope},
      {"byRemoteStatus", by_status},
      {"duplicates", j.stats.duplicates},
      {"undated", j.stats.undated},
      {"needsReconciliation", j.stats.needs_reconciliation},
      {"skippedOutOfScope", j.stats.skipped_out_of_scope},
      {"outOfScopeReported", j.stats.out_of_scope_reported},
      {"acked", j.stats.acked},
      {"skippedFinalRemotely", j.stats.skipped_final_remotely},
      {"reported", j.stats.reported},
      {"absent", j.stats.absent},
      {"emitted", j.stats.emitted},
      {"redelivered", j.stats.redelivered},
      {"pages", j.stats.pages},
      {"requests", j.stats.requests},
      {"retries", j.stats.retries},
      {"totalReported", j.stats.total_reported < 0 ? json(nullptr) : json(j.stats.total_reported)},
      {"durationSeconds", j.stats.duration_seconds}};
  json by_path = json::object();
  for (const auto& d : j.stats.deviations.by_path)
    by_path[d.path] = d.count;
  entry["contractDeviations"] = std::move(by_path);
  if (j.result == actors::job_result::failed) {
    entry["reasonCode"] = j.reason_code;
    entry["reason"] = j.reason;
  } else if (!j.reason.empty()) {
    entry["note"] = j.reason;
  }
  return entry;
}

/// `text` (a dump(2)) with every line but the first indented by `indent` spaces, as it reads
/// nested that deep in the document.
void put_nested(std::string& to, const std::string& text, std::size_t indent) {
  std::size_t start = 0;
  while (true) {
    const auto nl = text.find('\n', start);
    to.append(text, start, nl == std::string::npos ? std::string::npos : nl - start + 1);
    if (nl == std::string::npos) break;
    to.append(indent, ' ');
    start = nl + 1;
  }
}

}  // namespace

summary_spool::summary_spool() : file_(std::tmpfile()) {}

summary_spool::~summary_spool() {
  if (file_ != nullptr) std::fclose(file_);
}

void summary_spool::add(const actors::job_outcome& j) {
  std::string text = jobs_ == 0 ? "\n    " : ",\n    ";
  put_nested(text, entry_of(j).dump(2), 4);
  if (file_ != nullptr) {
    if (std::fwrite(text.data(), 1, text.size(), file_) != text.size()) ok_ = false;
  } else {
    memory_ += text;
  }
  ++jobs_;
  emitted_ += j.stats.emitted;
  deviations_.merge(j.stats.deviations);
  const bool interrupted = actors::is_interrupted(j);
  if (j.result == actors::job_result::complete) ++complete_;
  if (j.result == actors::job_result::already_complete) ++already_;
  if (interrupted)
    ++interrupted_;
  else if (j.result == actors::job_result::failed)
    ++failed_;
}

void summary_spool::write(std::ostream& out, const summary_header& h) const {
  // nlohmann orders an object's keys by name: baseUrl, jobs, out, reconcileOut, totals.
  out << "{\n  \"baseUrl\": " << json(h.base_url).dump() << ",\n  \"jobs\": [";
  if (jobs_ > 0) {
    if (file_ != nullptr) {
      std::fflush(file_);
      std::rewind(file_);
      char buf[1 << 16];
      std::size_t n;
      while ((n = std::fread(buf, 1, sizeof buf, file_)) > 0)
        out.write(buf, static_cast<std::streamsize>(n));
      std::fseek(file_, 0, SEEK_END);
    } else {
      out << memory_;
    }
    out << "\n  ";
  }
  json totals{{"jobs", jobs_},
              {"complete", complete_},
              {"alreadyComplete", already_},
              {"failed", failed_},
              {"interrupted", interrupted_},
              {"emitted", emitted_},
              {"durationSeconds", h.duration_seconds},
              {"httpRequests", h.http.requests},
              {"httpAttempts", h.http.attempts},
              {"httpRetries", h.http.retries},
              {"httpRetryWaitMs", h.http.retry_wait_ms},
              {"connectionsOpened", h.http.connections_opened},
              {"contractDeviations", [&] {
                 json all = json::object();
                 for (const auto& d : deviations_.by_path)
                   all[d.path] = {{"count", d.count}, {"example", d.example}};
                 return all;
               }()}};
  std::string tail = "],\n  \"out\": " + json(h.out).dump() + ",\n  \"reconcileOut\": " +
                     (h.reconcile_out.empty() ? json(nullptr) : json(h.reconcile_out)).dump() +
                     ",\n  \"totals\": ";
  put_nested(tail, totals.dump(2), 2);
  tail += "\n}";
  out << tail;
}

}  // namespace ei::pipeline
