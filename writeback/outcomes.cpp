// Outcomes in: parsing NDJSON outcome lines and validating outcomes against the state store.
#include <algorithm>
#include <map>
#include <unordered_map>

#include <nlohmann/json.hpp>

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

std::string json_type(const nlohmann::json& v) {
  return v.type_name();
}

}  // namespace

result<outcome_input, wb_errc> parse_outcome_line(std::string_view line) {
  nlohmann::json doc = nlohmann::json::parse(line, nullptr, false);
  if (doc.is_discarded()) return bad("not JSON");
  if (!doc.is_object()) return bad("expected a JSON object, got " + json_type(doc));
  outcome_input in;
  auto uuid_field = [&](const char* key, api::uuid& out) -> std::optional<error<wb_errc>> {
    auto it = doc.find(key);
    if (it == doc.end() || it->is_null())
      return bad(std::string("field '") + key + "' is required");
    if (!it->is_string())
      return bad(std::string("field '") + key + "': expected a UUID string, got " + json_type(*it));
    auto id = api::uuid::parse(it->get<std::string>());
    if (!id)
      return bad(std::string("field '") + key + "': '" + it->get<std::string>().substr(0, 60) +
                 "' is not a UUID");
    out = *id;
    return std::nullopt;
  };
  if (auto e = uuid_field("jobId", in.job_id)) return *e;
  if (auto e = uuid_field("accountingEntryId", in.outcome.item)) return *e;
  auto st = doc.find("status");
  if (st == doc.end() || st->is_null()) return bad("field 'status' is required");
  if (!st->is_string()) return bad("field 'status': expected a string, got " + json_type(*st));
  const auto text = st->get<std::string>();
  in.outcome.status = api::parse_item_status(text);
  if (in.outcome.status != api::item_status::successful &&
      in.outcome.status != api::item_status::failed)
    return bad("field 'status': '" + text.substr(0, 40) +
               "' is not a final status (expected successful or failed)");
  auto opt = [&](const char* key,
                 std::optional<std::string>& out) -> std::optional<error<wb_errc>> {
    auto it = doc.find(key);
    if (it == doc.end() || it->is_null()) return std::nullopt;
    if (!it->is_string())
      return bad(std::string("field '") + key + "': expected a string, got " + json_type(*it));
    out = it->get<std::string>();
    return std::nullopt;
  };
  auto& f = in.outcome.fields;
  for (auto [key, field] :
       {std::pair{"exportedAt", &f.exported_at}, std::pair{"externalId", &f.external_id},
        std::pair{"externalUrl", &f.external_url}, std::pair{"failureReason", &f.failure_reason},
        std::pair{"failureReasonType", &f.failure_reason_type}})
    if (auto e = opt(key, *field)) return *e;
  if (f.exported_at && !api::parse_timestamp_ms(*f.exported_at))
    return bad("field 'exportedAt': '" + f.exported_at->substr(0, 40) + "' is not a date-time");
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
