// The endpoints (simulator/README.md "Endpoints"): each handler answers one routed, admitted
// request from the world (world.hpp) and fills the reply's status and body. Routing, admission
// and faults come before (router.cpp); the connections after (server.cpp).
#include <algorithm>
#include <charconv>
#include <mutex>
#include <shared_mutex>

#include <nlohmann/json.hpp>

#include "common/json_text.hpp"
#include "simulator/cursor.hpp"
#include "simulator/impl.hpp"

namespace ei::sim {

using namespace detail;

namespace {

constexpr std::size_t kMaxPutItems = 100;

std::string error_json(std::string_view type, std::string_view message) {
  std::string out = "{\"type\":";
  append_json_string(out, type);
  out += ",\"message\":";
  append_json_string(out, message);
  out += '}';
  return out;
}

constexpr std::string_view kPageOrders[] = {"ASC",  "ASC_NULLS_FIRST",  "ASC_NULLS_LAST",
                                            "DESC", "DESC_NULLS_FIRST", "DESC_NULLS_LAST"};

bool json_content_type(const http_request& req) {
  std::string_view ct = sv(req[http::field::content_type]);
  const std::size_t semi = ct.find(';');
  std::string_view media = ct.substr(0, semi);
  while (!media.empty() && media.back() == ' ')
    media.remove_suffix(1);
  return iequals(media, "application/json");
}

}  // namespace

void detail::set_body(reply& r, unsigned status, std::string body) {
  r.res.result(static_cast<http::status>(status));
  r.res.body() = std::move(body);
}

void detail::set_error(reply& r, const api_error& e) {
  set_body(r, e.status, error_json(e.type, e.message));
}

// Faults that change the world: the request's job is completed by someone else (as the ERP
// step or a person in Pleo's web app would) before the request is handled.
void simulator::impl::complete_elsewhere(const std::optional<api::uuid>& job_id) {
  if (!job_id) return;
  std::unique_lock lock(data->mutex);
  job_state* j = data->find(*job_id);
  if (j == nullptr || j->info.status != api::job_status::in_progress) return;
  j->info.status = api::job_status::completed;
  j->completed_ms = now_ms();
  j->last_updated_ms = *j->completed_ms;
}

void simulator::impl::expire_due() {
  if (data->expires_in <= 0) return;  // expiry off: no scan of every job per request
  const std::int64_t now = now_ms();
  bool due = false;
  {
    std::shared_lock lock(data->mutex);
    for (const auto& j : data->jobs) {
      const bool open = j.info.status == api::job_status::pending ||
                        j.info.status == api::job_status::in_progress;
      if (open && data->expires_in > 0 &&
          now >= j.last_updated_ms + std::int64_t{data->expires_in} * 1000)
        due = true;
    }
  }
  if (!due) return;
  std::unique_lock lock(data->mutex);
  for (auto& j : data->jobs)
    data->maybe_expire(j, now);
}

std::optional<api_error> simulator::impl::parse_list(const query_map& q, list_params& out) const {
  auto bad = [](std::string m) { return api_error{400, "INVALID_PARAMETER", std::move(m)}; };
  auto number = [&](const char* key, std::int64_t max,
                    std::optional<std::int64_t>& v) -> std::optional<api_error> {
    const std::string* s = single(q, key);
    if (s == nullptr) return std::nullopt;
    std::int64_t x = 0;
    auto [p, ec] = std::from_chars(s->data(), s->data() + s->size(), x);
    if (ec != std::errc{} || p != s->data() + s->size() || x < 0 || x > max)
      return bad(std::string("query parameter '") + key + "' must be an integer in [0, " +
                 std::to_string(max) + "], got '" + *s + "'");
    v = x;
    return std::nullopt;
  };
  std::optional<std::int64_t> offset;
  if (auto e = number("limit", 2147483647, out.limit_given)) return e;
  if (auto e = number("offset", INT64_MAX, offset)) return e;
  if (const std::string* s = single(q, "after")) out.after_text = *s;
  if (const std::string* s = single(q, "before")) out.before_text = *s;
  const int given = (out.after_text ? 1 : 0) + (out.before_text ? 1 : 0) + (offset ? 1 : 0);
  if (given > 1)
    return api_error{400, "INVALID_PAGINATION",
                     "'after', 'before' and 'offset' cannot be combined"};
  if (offset) out.q.offset = static_cast<std::uint64_t>(*offset);
  if (cfg.refuse_limit_above > 0 && out.limit_given &&
      *out.limit_given > static_cast<std::int64_t>(cfg.refuse_limit_above))
    return bad("query parameter 'limit' must be at most " + std::to_string(cfg.refuse_limit_above) +
               ", got " + std::to_string(*out.limit_given));
  std::uint64_t limit =
      out.limit_given ? static_cast<std::uint64_t>(*out.limit_given) : cfg.default_limit;
  out.q.limit = std::min<std::uint64_t>(limit, cfg.max_limit);
  if (auto it = q.find("sorting_keys"); it != q.end()) out.sorting_keys = it->second;
  if (auto it = q.find("sorting_order"); it != q.end()) out.sorting_order = it->second;
  if (out.sorting_order.size() != out.sorting_keys.size())
    return api_error{400, "INVALID_SORTING",
                     "'sorting_order' must have one value per 'sorting_keys' value"};
  for (const auto& o : out.sorting_order)
    if (std::find(std::begin(kPageOrders), std::end(kPageOrders), o) == std::end(kPageOrders))
      return api_error{400, "INVALID_SORTING", "unknown sorting_order '" + o + "'"};
  return std::nullopt;
}

std::optional<api_error> simulator::impl::decode(const list_params& p, std::uint32_t tag,
                                                 page_query& q) const {
  auto one = [&](const char* name, const std::optional<std::string>& text,
                 std::optional<std::uint64_t>& pos) -> std::optional<api_error> {
    if (!text) return std::nullopt;
    const decoded_cursor d = decode_cursor(*text, tag, cursor_key);
    if (d.position) {
      pos = d.position;
      return std::nullopt;
    }
    switch (d.problem) {
      case cursor_problem::alphabet:
        return api_error{400, "INVALID_CURSOR",
                         std::string("cursor '") + name + "' must match ^[A-Z2-7=~]+$"};
      case cursor_problem::foreign:
        return api_error{400, "INVALID_CURSOR",
                         std::string("cursor '") + name + "' belongs to another listing"};
      default:
        return api_error{400, "INVALID_CURSOR",
                         std::string("cursor '") + name + "' is not a cursor this server issued"};
    }
  };
  if (auto e = one("after", p.after_text, q.after)) return e;
  return one("before", p.before_text, q.before);
}

void simulator::impl::append_pagination(std::string& out, const query_map& q, const list_params& p,
                                        const page_slice& s, std::uint32_t tag,
                                        std::uint64_t total) const {
  out += ",\"pagination\":{\"currentRequestPagination\":{\"parameters\":{";
  bool first = true;
  for (const auto& [k, vs] : q) {
    if (!first) out += ',';
    first = false;
    append_json_string(out, k);
    out += ":[";
    for (std::size_t i = 0; i < vs.size(); ++i) {
      if (i > 0) out += ',';
      append_json_string(out, vs[i]);
    }
    out += ']';
  }
  out += "},\"after\":";
  if (p.after_text)
    append_json_string(out, *p.after_text);
  else
    out += "null";
  out += ",\"before\":";
  if (p.before_text)
    append_json_string(out, *p.before_text);
  else
    out += "null";
  out += ",\"limit\":";
  append_int(out, static_cast<std::int64_t>(p.q.limit));
  out += ",\"offset\":";
  if (p.q.offset)
    append_int(out, static_cast<std::int64_t>(*p.q.offset));
  else
    out += "null";
  auto list = [&](const std::vector<std::string>& v) {
    if (v.empty()) {
      out += "null";
      return;
    }
    out += '[';
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (i > 0) out += ',';
      append_json_string(out, v[i]);
    }
    out += ']';
  };
  out += ",\"sortingKeys\":";
  list(p.sorting_keys);
  out += ",\"sortingOrder\":";
  list(p.sorting_order);
  out += "},\"hasNextPage\":";
  out += s.has_next ? "true" : "false";
  out += ",\"hasPreviousPage\":";
  out += s.has_prev ? "true" : "false";
  const bool have_end = !s.positions.empty() || s.has_next;
  out += ",\"endCursor\":";
  if (have_end) {
    out += '"';
    out += encode_cursor(tag, s.end, cursor_key, s.end_salt);
    out += '"';
  } else {
    out += "null";
  }
  out += ",\"startCursor\":";
  if (!s.positions.empty()) {
    out += '"';
    out += encode_cursor(tag, s.start, cursor_key);
    out += '"';
  } else {
    out += "null";
  }
  out += ",\"total\":";
  append_int(out, static_cast<std::int64_t>(total));
  out += '}';
}

namespace {

void apply_page_faults(page_slice& s, const page_query& q, const page_faults& pf) {
  if (pf.empty) {
    s.positions.clear();
    s.has_next = true;
    s.end = q.after.value_or(q.offset.value_or(0));
    return;
  }
  if (pf.end_early) {
    s.has_next = false;
    return;
  }
  if (pf.cycle) {
    // Point back to the cursor that led to the previous page (own cursor on page 2).
    const std::uint64_t c = q.after.value_or(0);
    s.end = c > q.limit ? c - q.limit : c;
    s.has_next = true;
    s.end_salt = pf.fresh_salt;
  }
  if (pf.duplicate && !s.positions.empty()) {
    if (q.offset && !q.after && !q.before) {
      // An offset page that starts one item early: it repeats the previous page's last item
      // and leaves out its own last one, so the count still adds up to `total`.
      if (s.positions.front() > 0)
        for (auto& pos : s.positions)
          --pos;
    } else {
      s.end = s.positions.back();
      s.has_next = true;
    }
  }
}

}  // namespace

void simulator::impl::list_jobs(reply& r, const query_map& q, const page_faults& pf) {
  list_params p;
  if (auto e = parse_list(q, p)) return set_error(r, *e);
  std::optional<api::uuid> company;
  if (const std::string* s = single(q, "company_id")) {
    company = api::uuid::parse(*s);
    if (!company)
      return set_error(r, {400, "INVALID_PARAMETER", "'company_id' is not a UUID: '" + *s + "'"});
  }
  unsigned mask = 0;
  if (auto it = q.find("statuses"); it != q.end()) {
    for (const auto& v : it->second) {
      const api::job_status st = api::parse_job_status(v);
      if (st == api::job_status::unknown)
        return set_error(r, {400, "INVALID_PARAMETER", "'statuses' has unknown value '" + v + "'"});
      mask |= 1u << static_cast<unsigned>(st);
    }
  }
  std::uint64_t ctag = company ? hash2(company->bytes[0] | (company->bytes[15] << 8), 7) : 0;
  if (company)
    for (auto b : company->bytes)
      ctag = hash2(ctag, b);
  const auto tag = static_cast<std::uint32_t>(hash3(cursor_key, 0x10B5 + ctag, mask));
  if (auto e = decode(p, tag, p.q)) return set_error(r, *e);
  std::shared_lock lock(data->mutex);
  const auto& jobs = data->jobs;
  auto match = [&](std::uint64_t i) {
    const auto& j = jobs[i];
    if (company && j.info.company_id != *company) return false;
    if (mask != 0 && (mask & (1u << static_cast<unsigned>(j.info.status))) == 0) return false;
    return true;
  };
  std::uint64_t total = 0;
  for (std::uint64_t i = 0; i < jobs.size(); ++i)
    total += match(i) ? 1 : 0;
  page_slice s = select_page(jobs.size(), p.q, &match);
  apply_page_faults(s, p.q, pf);
  std::string out = "{\"data\":[";
  for (std::size_t i = 0; i < s.positions.size(); ++i) {
    if (i > 0) out += ',';
    data->render_job(out, jobs[s.positions[i]]);
  }
  out += ']';
  append_pagination(out, q, p, s, tag, total);
  out += '}';
  set_body(r, 200, std::move(out));
}

void simulator::impl::get_job(reply& r, const api::uuid& id) {
  std::shared_lock lock(data->mutex);
  const job_state* j = data->find(id);
  if (j == nullptr)
    return set_error(r, {404, "EXPORT_NOT_FOUND", "no export job " + id.to_string()});
  std::string out = "{\"data\":";
  data->render_job(out, *j);
  out += '}';
  set_body(r, 200, std::move(out));
}

void simulator::impl::post_event(reply& r, const http_request& req) {
  if (!json_content_type(req))
    return set_error(r, {415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json"});
  nlohmann::json body = nlohmann::json::parse(req.body(), nullptr, false);
  if (body.is_discarded() || !body.is_object())
    return set_error(r, {400, "INVALID_REQUEST_BODY", "body must be a JSON object"});
  auto str = [&](const char* key) -> std::optional<std::string> {
    auto it = body.find(key);
    if (it == body.end() || !it->is_string()) return std::nullopt;
    return it->get<std::string>();
  };
  const auto event = str("event");
  const auto job_text = str("jobId");
  if (!event)
    return set_error(r, {400, "INVALID_REQUEST_BODY", "'event' is required and must be a string"});
  if (!job_text)
    return set_error(r, {400, "INVALID_REQUEST_BODY", "'jobId' is required and must be a string"});
  const auto id = api::uuid::parse(*job_text);
  if (!id) return set_error(r, {400, "INVALID_REQUEST_BODY", "'jobId' is not a UUID"});
  api::job_status target;
  if (*event == "started")
    target = api::job_status::in_progress;
  else if (*event == "completed")
    target = api::job_status::completed;
  else if (*event == "completed_with_errors")
    target = api::job_status::completed_with_errors;
  else if (*event == "failed")
    target = api::job_status::failed;
  else
    return set_error(r, {400, "INVALID_REQUEST_BODY", "unknown event '" + *event + "'"});
  std::unique_lock lock(data->mutex);
  job_state* j = data->find(*id);
  if (j == nullptr)
    return set_error(r, {404, "EXPORT_NOT_FOUND", "no export job " + id->to_string()});
  const api::job_status from = j->info.status;
  const bool legal =
      (target == api::job_status::in_progress && from == api::job_status::pending) ||
      (target == api::job_status::failed &&
       (from == api::job_status::pending || from == api::job_status::in_progress)) ||
      ((target == api::job_status::completed || target == api::job_status::completed_with_errors) &&
       from == api::job_status::in_progress);
  if (!legal)
    return set_error(r, {422, "INVALID_EXPORT_JOB_STATUS_CHANGE",
                         "cannot apply event '" + *event + "' to a job in status '" +
                             std::string(api::to_string(from)) + "'"});
  const std::int64_t now = now_ms();
  j->info.status = target;
  j->last_updated_ms = now;
  if (target == api::job_status::in_progress) {
    j->started_ms = now;
  } else {
    j->completed_ms = now;
  }
  if (target == api::job_status::failed) {
    j->failure_reason = str("failureReason");
    j->failure_reason_type = str("failureReasonType");
  }
  set_body(r, 202, "");
}

void simulator::impl::get_items(reply& r, const api::uuid& id, const query_map& q,
                                const page_faults& pf, bool data_layer) {
  list_params p;
  if (auto e = parse_list(q, p)) return set_error(r, *e);
  std::optional<api::item_status> filter;
  if (!data_layer) {
    if (const std::string* s = single(q, "status")) {
      const api::item_status st = api::parse_item_status(*s);
      if (st == api::item_status::unknown)
        return set_error(r, {400, "INVALID_PARAMETER", "'status' has unknown value '" + *s + "'"});
      filter = st;
    }
  }
  std::optional<std::pair<api::uuid, std::uint64_t>> flip;
  {
    std::shared_lock lock(data->mutex);
    const job_state* j = data->find(id);
    if (j == nullptr)
      return set_error(r, {404, "EXPORT_NOT_FOUND", "no export job " + id.to_string()});
    if (data_layer && j->info.status != api::job_status::pending &&
        j->info.status != api::job_status::in_progress)
      return set_error(r, {422, "EXPORT_JOB_STATUS_UNPROCESSABLE",
                           "export items can be read only while the job is pending or "
                           "in_progress; it is " +
                               std::string(api::to_string(j->info.status))});
    const auto tag = static_cast<std::uint32_t>(hash3(
        j->key, data_layer ? 0xDA7A : 0xC7A1, filter ? static_cast<unsigned>(*filter) + 1 : 0));
    if (auto e = decode(p, tag, p.q)) return set_error(r, *e);
    page_slice s;
    std::uint64_t total = j->info.items;
    if (filter) {
      auto match = [&](std::uint64_t pos) { return data->status_of(*j, j->order(pos)) == *filter; };
      s = select_page(j->info.items, p.q, &match);
      total = j->counts[static_cast<std::size_t>(*filter)];  // slots follow item_status order
    } else {
      const std::function<bool(std::uint64_t)>* none = nullptr;
      s = select_page(j->info.items, p.q, none);
    }
    apply_page_faults(s, p.q, pf);
    std::string out;
    out.reserve(64 + s.positions.size() * (data_layer ? 3000 : 290) + 1024);
    out += "{\"data\":[";
    for (std::size_t i = 0; i < s.positions.size(); ++i) {
      if (i > 0) out += ',';
      const std::uint64_t k = j->order(s.positions[i]);
      if (data_layer)
        data->render_export_item(out, *j, k);
      else
        data->render_item(out, *j, k);
    }
    out += ']';
    append_pagination(out, q, p, s, tag, total);
    out += '}';
    n_items += data_layer ? 0 : s.positions.size();
    if (pf.flip && !s.positions.empty()) flip.emplace(id, j->order(s.positions.back()));
    set_body(r, 200, std::move(out));
  }
  if (flip) {
    std::unique_lock lock(data->mutex);
    if (job_state* j = data->find(flip->first)) {
      const api::item_status cur = data->status_of(*j, flip->second);
      data->set_item_status(*j, flip->second,
                            cur == api::item_status::pending ? api::item_status::in_progress
                                                             : api::item_status::pending);
    }
  }
}

namespace {

/// One element of a PUT body, validated against the schema.
struct item_update {
  std::string entry;  // accountingEntryId as sent
  api::uuid id;
  item_override o;
};

bool is_final(api::item_status s) noexcept {
  return s != api::item_status::pending && s != api::item_status::in_progress;
}

/// Validates a PUT body against the schema (an array of ExportJobItemUpdate); the whole request
/// is rejected (400, nothing applied) on the first violation, as a typed API would.
std::optional<api_error> parse_updates(const nlohmann::json& body, std::vector<item_update>& out) {
  auto bad = [](std::size_t i, const std::string& m) {
    return api_error{400, "INVALID_REQUEST_BODY", "element " + std::to_string(i) + ": " + m};
  };
  out.reserve(std::min(body.size(), kMaxPutItems + 1));
  for (std::size_t i = 0; i < body.size(); ++i) {
    const nlohmann::json& e = body[i];
    if (!e.is_object()) return bad(i, "must be an object");
    const auto id_it = e.find("accountingEntryId");
    if (id_it == e.end() || !id_it->is_string())
      return bad(i, "'accountingEntryId' is required and must be a string");
    item_update u;
    u.entry = id_it->get<std::string>();
    const auto id = api::uuid::parse(u.entry);
    if (!id) return bad(i, "'accountingEntryId' is not a UUID: '" + u.entry + "'");
    u.id = *id;
    const auto st_it = e.find("status");
    if (st_it == e.end() || !st_it->is_string())
      return bad(i, "'status' is required and must be a string");
    u.o.status = api::parse_item_status(st_it->get<std::string>());
    if (u.o.status == api::item_status::unknown)
      return bad(i, "'status' is not an ExportJobItemStatus: '" + st_it->get<std::string>() + "'");
    std::optional<api_error> err;
    auto opt = [&](const char* key, std::optional<std::string>& field) {
      const auto it = e.find(key);
      if (err || it == e.end() || it->is_null()) return;
      if (!it->is_string()) {
        err = bad(i, std::string("'") + key + "' must be a string or null");
        return;
      }
      field = it->get<std::string>();
    };
    opt("exportedAt", u.o.tracking.exported_at);
    opt("externalId", u.o.tracking.external_id);
    opt("externalUrl", u.o.tracking.external_url);
    opt("failureReason", u.o.tracking.failure_reason);
    opt("failureReasonType", u.o.tracking.failure_reason_type);
    if (err) return err;
    if (u.o.tracking.exported_at && !api::parse_timestamp_ms(*u.o.tracking.exported_at))
      return bad(i, "'exportedAt' is not a date-time: '" + *u.o.tracking.exported_at + "'");
    out.push_back(std::move(u));
  }
  return std::nullopt;
}

}  // namespace

// PUT /v3/export-jobs/{id}/items. Checks, in order: 415 (Content-Type), 400 (not a JSON
// array, or an element that violates the schema: nothing is applied), 404 (unknown job),
// 413 (more than 100 elements), 422 (job not pending/in_progress). Then every element is
// applied on its own; the 200 lists the updated items (as a listing now shows them) in
// `data` and the rejected ones in `errors`:
//   ACCOUNTING_ENTRY_DOES_NOT_EXIST    the id is not an item of this job
//   EXPORT_ENTRY_STATUS_UPDATE_FAILED  the item is final (successful/failed/abandoned) and the
//                                      update names another status: final is terminal.
// Re-sending an item's current final status succeeds (idempotent; tracking fields are
// replaced by the new ones). Non-final items may take any status. Every 200 refreshes the
// job's lastUpdatedAt; each item counts its applied and rejected updates (item_updates()).
void simulator::impl::put_items(reply& r, const api::uuid& id, const http_request& req,
                                request_record& rec) {
  if (!json_content_type(req))
    return set_error(r, {415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json"});
  nlohmann::json body = nlohmann::json::parse(req.body(), nullptr, false);
  if (body.is_discarded() || !body.is_array())
    return set_error(r, {400, "INVALID_REQUEST_BODY", "body must be a JSON array of item updates"});
  std::vector<item_update> updates;
  if (auto e = parse_updates(body, updates)) return set_error(r, *e);
  std::unique_lock lock(data->mutex);
  job_state* j = data->find(id);
  if (j == nullptr)
    return set_error(r, {404, "EXPORT_NOT_FOUND", "no export job " + id.to_string()});
  if (updates.size() > kMaxPutItems)
    return set_error(r, {413, "EXPORT_JOB_ITEMS_UPDATE_LIMIT",
                         "at most 100 items per update, got " + std::to_string(updates.size())});
  if (j->info.status != api::job_status::pending && j->info.status != api::job_status::in_progress)
    return set_error(r, {422, "EXPORT_JOB_STATUS_UNPROCESSABLE",
                         "items of a job in status '" +
                             std::string(api::to_string(j->info.status)) + "' cannot be updated"});
  std::string data_out = "{\"data\":[";
  std::string errors_out = "],\"errors\":[";
  bool first_data = true, first_error = true;
  auto add_error = [&](std::string_view entry, std::string_view type, std::string_view msg) {
    if (!first_error) errors_out += ',';
    first_error = false;
    errors_out += "{\"accountingEntryId\":";
    append_json_string(errors_out, entry);
    errors_out += ",\"message\":";
    append_json_string(errors_out, msg);
    errors_out += ",\"type\":";
    append_json_string(errors_out, type);
    errors_out += '}';
  };
  for (std::size_t i = 0; i < updates.size(); ++i) {
    item_update& u = updates[i];
    const std::string where = "element " + std::to_string(i);
    const auto k = data->item_index(*j, u.id);
    if (!k) {
      add_error(u.entry, "ACCOUNTING_ENTRY_DOES_NOT_EXIST",
                where + ": accounting entry is not part of job " + j->id_text);
      continue;
    }
    const api::item_status current = data->status_of(*j, *k);
    if (is_final(current) && u.o.status != current) {
      ++j->put_counts[*k].rejected;
      ++rec.items_rejected;
      add_error(u.entry, "EXPORT_ENTRY_STATUS_UPDATE_FAILED",
                where + ": the item is " + std::string(api::to_string(current)) +
                    ", a final status; it cannot become " +
                    std::string(api::to_string(u.o.status)));
      continue;
    }
    data->set_item(*j, *k, std::move(u.o));
    ++j->put_counts[*k].applied;
    ++rec.items_updated;
    if (!first_data) data_out += ',';
    first_data = false;
    data->render_item(data_out, *j, *k);
  }
  j->last_updated_ms = now_ms();
  data_out += errors_out;
  data_out += "]}";
  set_body(r, 200, std::move(data_out));
}

void simulator::impl::item_updates_debug(reply& r, const api::uuid& id) {
  std::shared_lock lock(data->mutex);
  const job_state* j = data->find(id);
  if (j == nullptr)
    return set_error(r, {404, "EXPORT_NOT_FOUND", "no export job " + id.to_string()});
  std::vector<std::pair<std::string, std::uint64_t>> items;
  items.reserve(j->put_counts.size());
  for (const auto& [k, c] : j->put_counts)
    items.emplace_back(data->item_id(*j, k).to_string(), k);
  std::sort(items.begin(), items.end());
  std::string out = "{\"data\":[";
  for (std::size_t i = 0; i < items.size(); ++i) {
    const put_count& c = j->put_counts.at(items[i].second);
    if (i > 0) out += ',';
    out += "{\"accountingEntryId\":";
    append_json_string(out, items[i].first);
    out += ",\"status\":";
    append_json_string(out, api::to_string(data->status_of(*j, items[i].second)));
    out += ",\"applied\":";
    append_int(out, c.applied);
    out += ",\"rejected\":";
    append_int(out, c.rejected);
    out += '}';
  }
  out += "]";
  lock.unlock();  // the write-back counters have their own mutex; never hold both
  // Job events accepted (202) by kind, and those refused: what a crash harness outside the
  // process checks "exactly one completion event" against.
  const write_back_counts counts = [&] {
    std::lock_guard wb_lock(wb_mutex);
    auto it = wb.find(id);
    return it == wb.end() ? write_back_counts{} : it->second;
  }();
  out += ",\"events\":{";
  bool first = true;
  for (const auto& [event, n] : counts.events) {
    if (!first) out += ',';
    first = false;
    append_json_string(out, event);
    out += ':';
    append_int(out, n);
  }
  out += "},\"eventsRejected\":";
  append_int(out, counts.events_rejected);
  out += '}';
  set_body(r, 200, std::move(out));
}

}  // namespace ei::sim
