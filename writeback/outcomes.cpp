// Outcomes in: parsing NDJSON outcome lines and validating outcomes against the state store.
#include <algorithm>
#include <map>
#include <unordered_map>

#include <simdjson.h>

#include "common/crash_point.hpp"
#include "writeback/writeback.hpp"

namespace ei::writeback {

std::string_view to_string(wb_errc c) noexcept {
  switch (c) {
    case wb_errc::invalid_input:
      return "invalid_input";
    case wb_errc::store:
      return "store";
    case wb_errc::usage:
      return "usage";
  }
  return "unknown";
}

namespace {

error<wb_errc> bad(std::string message) {
  return make_error(wb_errc::invalid_input, std::move(message));
}

std::string_view json_type(simdjson::dom::element_type t) {
  using et = simdjson::dom::element_type;
  switch (t) {
    case et::ARRAY:
      return "array";
    case et::OBJECT:
      return "object";
    case et::INT64:
    case et::UINT64:
    case et::DOUBLE:
      return "number";
    case et::STRING:
      return "string";
    case et::BOOL:
      return "boolean";
    case et::NULL_VALUE:
      return "null";
  }
  return "value";
}

std::string clip(std::string_view s, std::size_t n) {
  return std::string(s.substr(0, n));
}

/// One parser and one padded line buffer per thread: outcome lines come by the hundred
/// thousand, and the DOM parser (full validation, unlike on-demand) reuses its memory.
struct line_parser {
  simdjson::dom::parser parser;
  std::string padded;
};

line_parser& local_parser() {
  thread_local line_parser p;
  return p;
}

}  // namespace

result<outcome_input, wb_errc> parse_outcome_line(std::string_view line) {
  auto& lp = local_parser();
  lp.padded.assign(line);
  lp.padded.append(simdjson::SIMDJSON_PADDING, '\0');
  simdjson::dom::element doc;
  if (lp.parser.parse(lp.padded.data(), line.size(), false).get(doc) != simdjson::SUCCESS)
    return bad("not JSON");
  simdjson::dom::object obj;
  if (doc.get_object().get(obj) != simdjson::SUCCESS)
    return bad("expected a JSON object, got " + std::string(json_type(doc.type())));

  // Every field once, the last of a repeated key standing (as a DOM reader would keep it).
  std::optional<simdjson::dom::element> job_id, entry_id, status;
  outcome_input in;
  auto& f = in.outcome.fields;
  std::optional<simdjson::dom::element> exported_at, external_id, external_url, failure_reason,
      failure_reason_type;
  for (auto field : obj) {
    const auto key = field.key;
    if (key == "jobId")
      job_id = field.value;
    else if (key == "accountingEntryId")
      entry_id = field.value;
    else if (key == "status")
      status = field.value;
    else if (key == "exportedAt")
      exported_at = field.value;
    else if (key == "externalId")
      external_id = field.value;
    else if (key == "externalUrl")
      external_url = field.value;
    else if (key == "failureReason")
      failure_reason = field.value;
    else if (key == "failureReasonType")
      failure_reason_type = field.value;
  }
  auto uuid_field = [&](const char* key, const std::optional<simdjson::dom::element>& v,
                        api::uuid& out) -> std::optional<error<wb_errc>> {
    if (!v || v->is_null()) return bad(std::string("field '") + key + "' is required");
    std::string_view text;
    if (v->get_string().get(text) != simdjson::SUCCESS)
      return bad(std::string("field '") + key + "': expected a UUID string, got " +
                 std::string(json_type(v->type())));
    auto id = api::uuid::parse(text);
    if (!id) return bad(std::string("field '") + key + "': '" + clip(text, 60) + "' is not a UUID");
    out = *id;
    return std::nullopt;
  };
  if (auto e = uuid_field("jobId", job_id, in.job_id)) return *e;
  if (auto e = uuid_field("accountingEntryId", entry_id, in.outcome.item)) return *e;
  if (!status || status->is_null()) return bad("field 'status' is required");
  std::string_view text;
  if (status->get_string().get(text) != simdjson::SUCCESS)
    return bad("field 'status': expected a string, got " + std::string(json_type(status->type())));
  in.outcome.status = api::parse_item_status(text);
  if (in.outcome.status != api::item_status::successful &&
      in.outcome.status != api::item_status::failed)
    return bad("field 'status': '" + clip(text, 40) +
               "' is not a final status (expected successful or failed)");
  auto opt = [&](const char* key, const std::optional<simdjson::dom::element>& v,
                 std::optional<std::string>& out) -> std::optional<error<wb_errc>> {
    if (!v || v->is_null()) return std::nullopt;
    std::string_view value;
    if (v->get_string().get(value) != simdjson::SUCCESS)
      return bad(std::string("field '") + key + "': expected a string, got " +
                 std::string(json_type(v->type())));
    out = std::string(value);
    return std::nullopt;
  };
  if (auto e = opt("exportedAt", exported_at, f.exported_at)) return *e;
  if (auto e = opt("externalId", external_id, f.external_id)) return *e;
  if (auto e = opt("externalUrl", external_url, f.external_url)) return *e;
  if (auto e = opt("failureReason", failure_reason, f.failure_reason)) return *e;
  if (auto e = opt("failureReasonType", failure_reason_type, f.failure_reason_type)) return *e;
  if (f.exported_at && !api::parse_timestamp_ms(*f.exported_at))
    return bad("field 'exportedAt': '" + clip(*f.exported_at, 40) + "' is not a date-time");
  // Tracking fields belong to one kind of outcome: keep only those (the stage's own output
  // lines carry every field, mostly null).
  if (in.outcome.status == api::item_status::successful) {
    f.failure_reason.reset();
    f.failure_reason_type.reset();
  } else {
    f.external_id.reset();
    f.external_url.reset();
  }
  return in;
}

// -- recorder -------------------------------------------------------------------------------

namespace {

struct order_slot {
  std::uint64_t seq = 0;
  api::item_status remote = api::item_status::unknown;
  bool handed_on = false;
};

struct job_view {
  bool usable = false;
  std::string why;  // when not usable
  std::uint64_t dispatched_through = 0;
  std::unordered_map<api::uuid, order_slot, api::uuid_hash> order;
};

}  // namespace

struct outcome_recorder::impl {
  storage::state_store& store;
  std::map<api::uuid, job_view> views;
  std::map<api::uuid, std::vector<storage::item_outcome>> queued;
  std::map<std::pair<api::uuid, api::uuid>, storage::item_outcome> queued_index;
  std::vector<api::uuid> jobs;

  job_view& view(const api::uuid& job) {
    auto it = views.find(job);
    if (it != views.end()) return it->second;
    job_view& v = views[job];
    auto rec = store.load_job(job);
    if (!rec) {
      v.why = "the state store cannot read job " + job.to_string() + ": " + rec.err().message;
      return v;
    }
    if (!*rec) {
      v.why = "unknown job " + job.to_string() + " (not in this state directory)";
      return v;
    }
    const auto phase = (*rec)->phase;
    if (phase != storage::job_phase::dispatching && phase != storage::job_phase::complete) {
      v.why = "job " + job.to_string() + " has handed nothing on yet (phase " +
              std::string(storage::to_string(phase)) + ")";
      return v;
    }
    auto wm = store.load_watermarks(job);
    if (!wm) {
      v.why = wm.err().message;
      return v;
    }
    v.dispatched_through = wm->dispatched_through;
    const std::size_t cs = storage::state_store::order_chunk_size;
    for (std::uint64_t first = 1; first <= (*rec)->order_size; first += cs) {
      auto entries = store.read_order(job, first, cs);
      if (!entries) {
        v.why = entries.err().message;
        return v;
      }
      std::uint64_t seq = first;
      for (const auto& e : *entries)
        v.order[e.id] = {seq++, e.remote_status, e.handed_on || e.absent};
      if (entries->empty()) break;
    }
    v.usable = true;
    return v;
  }
};

outcome_recorder::outcome_recorder(storage::state_store& store)
    : impl_(std::make_unique<impl>(impl{store, {}, {}, {}, {}})) {}
outcome_recorder::~outcome_recorder() = default;

const std::vector<api::uuid>& outcome_recorder::jobs() const {
  return impl_->jobs;
}

verdict outcome_recorder::add(outcome_input in, std::string& why) {
  auto& v = impl_->view(in.job_id);
  if (!v.usable) {
    why = v.why;
    return verdict::refused;
  }
  auto slot = v.order.find(in.outcome.item);
  if (slot == v.order.end()) {
    why = "field 'accountingEntryId': item " + in.outcome.item.to_string() +
          " is not in the order of job " + in.job_id.to_string() + " (unknown item)";
    return verdict::refused;
  }
  const bool in_scope = slot->second.remote == api::item_status::pending ||
                        slot->second.remote == api::item_status::in_progress;
  if (slot->second.seq > v.dispatched_through || (!in_scope && !slot->second.handed_on)) {
    why = "field 'accountingEntryId': item " + in.outcome.item.to_string() + " of job " +
          in.job_id.to_string() + " was never handed on";
    return verdict::refused;
  }
  if (!in_scope) {
    why = "item " + in.outcome.item.to_string() + " is final in Pleo already (" +
          std::string(api::to_string(slot->second.remote)) + "); nothing to send";
    return verdict::duplicate;
  }
  in.outcome.seq = slot->second.seq;
  in.outcome.state = storage::outcome_state::recorded;
  // An earlier outcome (queued in this input, or recorded before) stands.
  const auto key = std::pair{in.job_id, in.outcome.item};
  std::optional<storage::item_outcome> earlier;
  if (auto q = impl_->queued_index.find(key); q != impl_->queued_index.end()) {
    earlier = q->second;
  } else {
    auto stored = impl_->store.load_outcome(in.job_id, in.outcome.item);
    if (!stored) {
      why = stored.err().message;
      return verdict::refused;
    }
    earlier = *stored;
  }
  if (std::find(impl_->jobs.begin(), impl_->jobs.end(), in.job_id) == impl_->jobs.end())
    impl_->jobs.push_back(in.job_id);  // a repeat still writes back what is left of the job
  if (earlier) {
    if (earlier->same_outcome(in.outcome)) return verdict::duplicate;
    why = "item " + in.outcome.item.to_string() + " of job " + in.job_id.to_string() +
          " already has a different outcome (" + std::string(api::to_string(earlier->status)) +
          "); the first one stands";
    return verdict::refused;
  }
  impl_->queued_index.emplace(key, in.outcome);
  impl_->queued[in.job_id].push_back(std::move(in.outcome));
  return verdict::recorded;
}

status<wb_errc> outcome_recorder::flush() {
  for (auto& [job, list] : impl_->queued) {
    if (list.empty()) continue;
    auto st = impl_->store.put_outcomes(job, list);
    if (!st) return make_error(wb_errc::store, st.err().message);
    list.clear();
  }
  impl_->queued.clear();
  impl_->queued_index.clear();
  crash_point("after_outcome_commit");
  return ok_v;
}

}  // namespace ei::writeback
