// Every request's way in (simulator/README.md): parse the target, route it to an endpoint,
// admit it (credentials, then the rate limit: admission.hpp), decide its faults (faults.hpp),
// call the endpoint's handler (handlers.cpp), loosen or garble the answer, and record it in
// the request log and the write-back counters.
#include <algorithm>
#include <cstdio>

#include <zlib.h>
#include <nlohmann/json.hpp>

#include "simulator/impl.hpp"
#include "simulator/loose.hpp"

namespace ei::sim {

using namespace detail;

namespace {

constexpr std::size_t kLogCapacity = 200000;

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      const int hi = hex_digit(s[i + 1]);
      const int lo = hex_digit(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(s[i] == '+' ? ' ' : s[i]);
  }
  return out;
}

query_map parse_query(std::string_view q) {
  query_map out;
  std::size_t start = 0;
  while (start < q.size()) {
    std::size_t end = q.find('&', start);
    if (end == std::string_view::npos) end = q.size();
    std::string_view pair = q.substr(start, end - start);
    start = end + 1;
    if (pair.empty()) continue;
    const std::size_t eq = pair.find('=');
    std::string key = percent_decode(pair.substr(0, eq));
    std::string value = eq == std::string_view::npos ? "" : percent_decode(pair.substr(eq + 1));
    out[std::move(key)].push_back(std::move(value));
  }
  return out;
}

/// Gzips a 200 body (zlib level 1: the cheapest that still shrinks item JSON ~8×) when the
/// request's Accept-Encoding names gzip, and sets Content-Encoding. True when it did.
bool gzip_if_accepted(const http_request& req, reply& r) {
  if (r.res.result() != http::status::ok || r.res.body().empty()) return false;
  auto it = req.find(http::field::accept_encoding);
  if (it == req.end()) return false;
  std::string accept(it->value().data(), it->value().size());
  std::transform(accept.begin(), accept.end(), accept.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (accept.find("gzip") == std::string::npos) return false;
  const std::string& in = r.res.body();
  z_stream zs{};
  if (deflateInit2(&zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return false;
  std::string out(deflateBound(&zs, static_cast<uLong>(in.size())), '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) return false;
  r.res.body() = std::move(out);
  r.res.set(http::field::content_encoding, "gzip");
  return true;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Admission, before routing (simulator/admission.hpp): who may call, and how often.

bool simulator::impl::authenticated(std::string_view auth) {
  if (basic_credentials.empty() && bearer_token.empty() && !tokens) return true;  // auth off
  const std::size_t sp = auth.find(' ');
  const std::string_view scheme = auth.substr(0, sp);
  std::string_view cred = sp == std::string_view::npos ? "" : auth.substr(sp + 1);
  while (!cred.empty() && cred.front() == ' ')
    cred.remove_prefix(1);
  if (!basic_credentials.empty() && iequals(scheme, "basic") && cred == basic_credentials)
    return true;
  if (!iequals(scheme, "bearer")) return false;
  if (tokens) return tokens->valid(cred, std::chrono::steady_clock::now());
  return !bearer_token.empty() && cred == bearer_token;
}

bool simulator::impl::admit(const http_request& req, std::string_view endpoint, reply& r) {
  const std::string_view auth = sv(req[http::field::authorization]);
  if (!authenticated(auth)) {
    ++n_unauthorized;
    r.res.set(http::field::www_authenticate, "Basic realm=\"pleo\", Bearer");
    set_error(r, {401, "UNAUTHORIZED", "missing or invalid credentials"});
    return false;
  }
  if (endpoint == "debug" || !limiter->limiting()) return true;  // the debug view is never limited
  auto v = limiter->admit(auth, std::chrono::steady_clock::now(), std::chrono::system_clock::now());
  if (v.admitted) return true;
  r.res.set(http::field::retry_after, v.retry_after);
  set_error(r, {429, "TOO_MANY_REQUESTS", "rate limit exceeded; retry after " + v.retry_after});
  return false;
}

void simulator::impl::rotate_tokens() {
  std::string err;
  if (!tokens->write_file(err)) std::fprintf(stderr, "export-items-sim: %s\n", err.c_str());
  rotation->expires_at(tokens->next_rotation(std::chrono::steady_clock::now()));
  rotation->async_wait([this](boost::system::error_code ec) {
    if (!ec && !stopped) rotate_tokens();
  });
}

reply simulator::impl::handle(const http_request& req) {
  reply r;
  r.res.version(11);
  r.res.set(http::field::server, "export-items-sim");
  r.res.set(http::field::content_type, "application/json;charset=UTF-8");
  r.res.keep_alive(req.keep_alive());

  request_record rec;
  rec.seq = ++seq;
  rec.received = std::chrono::steady_clock::now();
  rec.method = std::string(req.method_string());
  rec.target = std::string(req.target());
  ++n_requests;

  const std::string_view target = sv(req.target());
  const std::size_t qpos = target.find('?');
  const std::string_view path = target.substr(0, qpos);
  const query_map q =
      qpos == std::string_view::npos ? query_map{} : parse_query(target.substr(qpos + 1));

  // Route.
  std::optional<std::string_view> job_text;
  constexpr std::string_view kJobsPrefix = "/v3/export-jobs/";
  constexpr std::string_view kDebugPrefix = "/sim/export-jobs/";
  constexpr std::string_view kDebugSuffix = "/item-updates";
  http::verb expected = http::verb::get;
  if (path == "/v3/export-jobs" || path == "/v3/export-jobs/") {
    rec.endpoint = "jobs";
  } else if (path.starts_with(kJobsPrefix)) {
    std::string_view rest = path.substr(kJobsPrefix.size());
    if (rest.ends_with("/items")) {
      job_text = rest.substr(0, rest.size() - 6);
      rec.endpoint = req.method() == http::verb::put ? "items_put" : "items";
      if (req.method() == http::verb::put) expected = http::verb::put;
    } else if (rest.find('/') == std::string_view::npos) {
      job_text = rest;
      rec.endpoint = "job";
    } else {
      rec.endpoint = "other";
    }
  } else if (path.starts_with(kDebugPrefix) && path.ends_with(kDebugSuffix) &&
             path.size() > kDebugPrefix.size() + kDebugSuffix.size()) {
    job_text =
        path.substr(kDebugPrefix.size(), path.size() - kDebugPrefix.size() - kDebugSuffix.size());
    rec.endpoint = "debug";
  } else if (path == "/v3/export-job-events") {
    rec.endpoint = "events";
    expected = http::verb::post;
  } else if (path == "/v3/export-items") {
    rec.endpoint = "export_items";
    if (const std::string* s = single(q, "job_id")) job_text = *s;
  } else {
    rec.endpoint = "other";
  }

  std::optional<api::uuid> job_id;
  if (job_text) job_id = api::uuid::parse(*job_text);
  if (rec.endpoint == "events") {
    nlohmann::json b = nlohmann::json::parse(req.body(), nullptr, false);
    if (b.is_object() && b.contains("jobId") && b["jobId"].is_string())
      job_id = api::uuid::parse(b["jobId"].get<std::string>());
  }
  rec.job_id = job_id;
  if (job_id) {
    std::shared_lock lock(data->mutex);
    if (const job_state* j = data->find(*job_id)) rec.company_id = j->info.company_id;
  }

  auto finish = [&]() -> reply {
    note_write_back(rec, req, r);
    rec.gzipped = gzip_if_accepted(req, r);
    r.res.prepare_payload();
    rec.status = r.how == delivery::normal || r.how == delivery::truncate
                     ? (r.how == delivery::normal ? r.res.result_int() : 0)
                     : 0;
    rec.finished = std::chrono::steady_clock::now();
    if (!rec.fault.empty()) ++n_faults;
    if (log_file.is_open()) log_file.append(rec);
    std::lock_guard lock(log_mutex);
    log.push_back(std::move(rec));
    if (log.size() > kLogCapacity) log.pop_front();
    return std::move(r);
  };

  // Admission (simulator/admission.hpp): credentials, then the rate limit.
  if (!admit(req, rec.endpoint, r)) return finish();

  if (rec.endpoint == "other") {
    set_error(r, {404, "NOT_FOUND", "no such endpoint: " + std::string(path)});
    return finish();
  }
  if (req.method() != expected) {
    set_error(r, {405, "METHOD_NOT_ALLOWED",
                  std::string(req.method_string()) + " is not allowed on " + std::string(path)});
    return finish();
  }
  if (job_text && !job_id) {
    set_error(r, {400, "INVALID_JOB_ID", "job id is not a UUID: '" + std::string(*job_text) + "'"});
    return finish();
  }
  if (rec.endpoint == "export_items" && !job_text) {
    set_error(r, {400, "INVALID_PARAMETER", "query parameter 'job_id' is required"});
    return finish();
  }

  // Faults.
  page_faults pf;
  std::vector<const fault_clause*> fired;
  const bool is_list =
      rec.endpoint == "jobs" || rec.endpoint == "items" || rec.endpoint == "export_items";
  {
    std::lock_guard lock(fault_mutex);
    if (!faults.empty() && rec.endpoint != "debug") {
      fault_plan::context ctx{rec.endpoint, is_list, q.contains("after") || q.contains("before"),
                              job_id.has_value()};
      fired = faults.decide(ctx);
    }
  }
  r.delay = std::chrono::milliseconds(extra_latency_ms.load());
  const fault_clause* terminal = nullptr;
  for (const fault_clause* c : fired) {
    if (!rec.fault.empty()) rec.fault += ',';
    rec.fault += to_string(c->kind);
    switch (c->kind) {
      case fault_kind::latency:
        r.delay += c->latency;
        break;
      case fault_kind::status:
      case fault_kind::throttle:
      case fault_kind::expired_cursor:
        if (terminal == nullptr) terminal = c;
        break;
      case fault_kind::reset:
        r.how = delivery::reset;
        break;
      case fault_kind::reset_mid_body:
        r.how = delivery::reset_mid_body;
        break;
      case fault_kind::truncate:
        r.how = delivery::truncate;
        break;
      case fault_kind::malformed:
      case fault_kind::html:
        break;
      case fault_kind::cycle:
        pf.cycle = true;
        break;
      case fault_kind::empty_page:
        pf.empty = true;
        break;
      case fault_kind::duplicate:
        pf.duplicate = true;
        break;
      case fault_kind::end_early:
        pf.end_early = true;
        break;
      case fault_kind::cycle_fresh:
        pf.cycle = true;
        pf.fresh_salt = static_cast<std::uint8_t>(1 + fresh_salts_++ % 15);
        break;
      case fault_kind::flip_status:
        pf.flip = true;
        break;
      case fault_kind::expire_job:
        if (job_id) {
          std::unique_lock lock(data->mutex);
          if (job_state* j = data->find(*job_id)) data->expire(*j, now_ms());
        }
        break;
      case fault_kind::complete_job:
        complete_elsewhere(job_id);
        break;
    }
  }
  if (terminal != nullptr) {
    if (terminal->kind == fault_kind::throttle) {
      if (terminal->retry_after)
        r.res.set(http::field::retry_after, std::to_string(*terminal->retry_after));
      set_error(r, {429, "TOO_MANY_REQUESTS", "simulated rate limit (" + terminal->text + ")"});
    } else if (terminal->kind == fault_kind::expired_cursor) {
      set_error(r, {400, "CURSOR_EXPIRED", "the cursor has expired; restart paging"});
    } else {
      set_error(r,
                {terminal->code, "SIMULATED_FAULT", "simulated failure (" + terminal->text + ")"});
    }
    r.how = delivery::normal;
    return finish();
  }

  expire_due();
  if (rec.endpoint == "jobs")
    list_jobs(r, q, pf);
  else if (rec.endpoint == "job")
    get_job(r, *job_id);
  else if (rec.endpoint == "events")
    post_event(r, req);
  else if (rec.endpoint == "items")
    get_items(r, *job_id, q, pf, false);
  else if (rec.endpoint == "items_put")
    put_items(r, *job_id, req, rec);
  else if (rec.endpoint == "export_items")
    get_items(r, *job_id, q, pf, true);
  else if (rec.endpoint == "debug")
    item_updates_debug(r, *job_id);

  if (cfg.loose && r.res.result_int() == 200)
    loosen_body(r.res.body(), rec.endpoint, cfg.seed, rec.target);
  for (const fault_clause* c : fired) {
    if (c->kind == fault_kind::malformed) {
      std::string& b = r.res.body();
      b = b.substr(0, b.size() / 2) + "{\"malformed";
    }
    if (c->kind == fault_kind::html) {
      r.res.set(http::field::content_type, "text/html; charset=utf-8");
      r.res.result(http::status::ok);
      r.res.body() =
          "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad "
          "Gateway</h1><p>The upstream server did not answer in time.</p></body></html>";
    }
  }
  return finish();
}

// Write-back counters: read what a processed PUT / event did from its request and response,
// apart from the handlers.
void simulator::impl::note_write_back(const request_record& rec, const http_request& req,
                                      const reply& r) {
  if (!rec.job_id || (rec.endpoint != "items_put" && rec.endpoint != "events")) return;
  const unsigned status = r.res.result_int();
  if (rec.endpoint == "events") {
    if (status == 202) {
      nlohmann::json b = nlohmann::json::parse(req.body(), nullptr, false);
      if (!b.is_object() || !b.contains("event") || !b["event"].is_string()) return;
      std::lock_guard lock(wb_mutex);
      ++wb[*rec.job_id].events[b["event"].get<std::string>()];
    } else if (status >= 400 && status < 500) {
      std::lock_guard lock(wb_mutex);
      ++wb[*rec.job_id].events_rejected;
    }
    return;
  }
  if (status != 200) return;
  nlohmann::json b = nlohmann::json::parse(r.res.body(), nullptr, false);
  if (!b.is_object()) return;
  std::lock_guard lock(wb_mutex);
  auto& c = wb[*rec.job_id];
  ++c.put_requests;
  auto count = [&](const char* key, std::map<api::uuid, std::uint32_t>& into) {
    auto it = b.find(key);
    if (it == b.end() || !it->is_array()) return;
    for (const auto& e : *it) {
      if (!e.is_object() || !e.contains("accountingEntryId") || !e["accountingEntryId"].is_string())
        continue;
      if (auto id = api::uuid::parse(e["accountingEntryId"].get<std::string>())) ++into[*id];
    }
  };
  count("data", c.item_updates);
  count("errors", c.item_errors);
}

}  // namespace ei::sim
