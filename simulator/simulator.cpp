#include "simulator/simulator.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include <zlib.h>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <nlohmann/json.hpp>

#include "simulator/admission.hpp"
#include "simulator/cursor.hpp"
#include "simulator/faults.hpp"
#include "simulator/loose.hpp"
#include "simulator/world.hpp"

namespace ei::sim {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using namespace detail;

std::string_view to_string(sim_errc c) noexcept {
  switch (c) {
    case sim_errc::invalid_config:
      return "invalid_config";
    case sim_errc::invalid_faults:
      return "invalid_faults";
    case sim_errc::bind_failed:
      return "bind_failed";
    case sim_errc::tls_failed:
      return "tls_failed";
  }
  return "unknown";
}

namespace {

constexpr std::size_t kLogCapacity = 200000;
constexpr std::size_t kMaxPutItems = 100;
constexpr auto kIdleTimeout = std::chrono::seconds(30);

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string base64(std::string_view in) {
  static constexpr char kTable[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(in[i]) << 16) |
                       (static_cast<unsigned char>(in[i + 1]) << 8) |
                       static_cast<unsigned char>(in[i + 2]);
    out += kTable[v >> 18];
    out += kTable[(v >> 12) & 63];
    out += kTable[(v >> 6) & 63];
    out += kTable[v & 63];
  }
  if (i + 1 == in.size()) {
    const unsigned v = static_cast<unsigned char>(in[i]) << 16;
    out += kTable[v >> 18];
    out += kTable[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    const unsigned v =
        (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8);
    out += kTable[v >> 18];
    out += kTable[(v >> 12) & 63];
    out += kTable[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

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

using query_map = std::map<std::string, std::vector<std::string>>;

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

const std::string* single(const query_map& q, const std::string& key) {
  auto it = q.find(key);
  if (it == q.end() || it->second.empty()) return nullptr;
  return &it->second.back();
}

struct api_error {
  unsigned status;
  std::string type;
  std::string message;
};

std::string_view sv(boost::beast::string_view s) {
  return {s.data(), s.size()};
}

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

/// The parsed §3.1 list parameters of one request.
struct list_params {
  page_query q;
  std::optional<std::string> after_text, before_text;
  std::optional<std::int64_t> limit_given;
  std::vector<std::string> sorting_keys, sorting_order;
};

struct page_faults {
  bool cycle = false, empty = false, duplicate = false, flip = false, end_early = false;
  std::uint8_t fresh_salt = 0;  // cycle_fresh: 1..15, another cursor text each time
};

}  // namespace

/// How the response leaves the server; anything but `normal` is a fault.
enum class delivery { normal, reset, reset_mid_body, truncate };

struct reply {
  http::response<http::string_body> res;
  delivery how = delivery::normal;
  std::chrono::milliseconds delay{0};
};

namespace {

/// Gzips a 200 body (zlib level 1: the cheapest that still shrinks item JSON ~8×) when the
/// request's Accept-Encoding names gzip, and sets Content-Encoding. True when it did.
bool gzip_if_accepted(const http::request<http::string_body>& req, reply& r) {
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

struct simulator::impl {
  sim_config cfg;
  std::unique_ptr<world> data;
  std::uint64_t cursor_key = 0;
  std::string basic_credentials;  // "base64(key:)" or empty
  std::string bearer_token;
  std::unique_ptr<admission> limiter;    // rate limit per credential
  std::unique_ptr<token_issuer> tokens;  // rotating tokens, when they have a lifetime
  bool authenticated(std::string_view authorization);
  bool admit(const http::request<http::string_body>& req, std::string_view endpoint, reply& r);
  void rotate_tokens();

  std::mutex fault_mutex;
  fault_plan faults;
  std::atomic<std::int64_t> extra_latency_ms{0};
  std::atomic<std::uint32_t> fresh_salts_{0};  // cycle_fresh: the next cursor text variant

  mutable std::mutex log_mutex;
  std::deque<request_record> log;
  std::atomic<std::uint64_t> seq{0};
  std::atomic<std::uint64_t> n_requests{0}, n_faults{0}, n_unauthorized{0}, n_items{0};

  std::optional<ssl::context> tls;
  net::io_context ioc;
  tcp::acceptor acceptor{ioc};
  // Declared after ioc: an I/O object must be destroyed before its io_context (ASan found the
  // timer's destructor reading the io_context's freed timer service).
  std::optional<net::steady_timer> rotation;  // writes each new token to the file
  std::uint16_t port = 0;
  std::vector<std::thread> threads;
  std::atomic<bool> stopped{false};

  explicit impl(int hint) : ioc(hint) {}

  void do_accept();
  reply handle(const http::request<http::string_body>& req);

  // Handlers (fill `r.res` body and status).
  void list_jobs(reply& r, const query_map& q, const page_faults& pf);
  void get_job(reply& r, const api::uuid& id);
  void post_event(reply& r, const http::request<http::string_body>& req);
  void get_items(reply& r, const api::uuid& id, const query_map& q, const page_faults& pf,
                 bool data_layer);
  void put_items(reply& r, const api::uuid& id, const http::request<http::string_body>& req,
                 request_record& rec);
  void item_updates_debug(reply& r, const api::uuid& id);

  // Write-back counters (simulator::write_back), fed by note_write_back from `finish`.
  mutable std::mutex wb_mutex;
  std::map<api::uuid, write_back_counts> wb;
  void note_write_back(const request_record& rec, const http::request<http::string_body>& req,
                       const reply& r);

  void expire_due();
  void complete_elsewhere(const std::optional<api::uuid>& job_id);
  std::optional<api_error> parse_list(const query_map& q, list_params& out) const;
  std::optional<api_error> decode(const list_params& p, std::uint32_t tag, page_query& q) const;
  void append_pagination(std::string& out, const query_map& q, const list_params& p,
                         const page_slice& s, std::uint32_t tag, std::uint64_t total) const;
};

namespace {

void set_body(reply& r, unsigned status, std::string body) {
  r.res.result(static_cast<http::status>(status));
  r.res.body() = std::move(body);
}

void set_error(reply& r, const api_error& e) {
  set_body(r, e.status, error_json(e.type, e.message));
}

bool json_content_type(const http::request<http::string_body>& req) {
  std::string_view ct = sv(req[http::field::content_type]);
  const std::size_t semi = ct.find(';');
  std::string_view media = ct.substr(0, semi);
  while (!media.empty() && media.back() == ' ')
    media.remove_suffix(1);
  return iequals(media, "application/json");
}

}  // namespace

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

void simulator::impl::post_event(reply& r, const http::request<http::string_body>& req) {
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
void simulator::impl::put_items(reply& r, const api::uuid& id,
                                const http::request<http::string_body>& req, request_record& rec) {
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

bool simulator::impl::admit(const http::request<http::string_body>& req, std::string_view endpoint,
                            reply& r) {
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
  rotation->async_wait([this](beast::error_code ec) {
    if (!ec && !stopped) rotate_tokens();
  });
}

std::string simulator::token_current() const {
  return impl_->tokens ? impl_->tokens->current(std::chrono::steady_clock::now()) : std::string{};
}

reply simulator::impl::handle(const http::request<http::string_body>& req) {
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

// ---------------------------------------------------------------------------------------------
// Connections: one session per connection on its own strand; every operation has a deadline.

namespace {

std::string serialize(const http::response<http::string_body>& res, std::size_t& header_size) {
  std::string raw =
      "HTTP/1.1 " + std::to_string(res.result_int()) + " " + std::string(res.reason()) + "\r\n";
  for (const auto& f : res) {
    raw += std::string(f.name_string());
    raw += ": ";
    raw += std::string(f.value());
    raw += "\r\n";
  }
  raw += "\r\n";
  header_size = raw.size();
  raw += res.body();
  return raw;
}

template <class Stream>
class session : public std::enable_shared_from_this<session<Stream>> {
 public:
  session(simulator::impl& owner, Stream stream)
      : owner_(owner), stream_(std::move(stream)), timer_(stream_.get_executor()) {}

  void run() {
    net::dispatch(stream_.get_executor(), [self = this->shared_from_this()] { self->start(); });
  }

 private:
  auto& tcp() { return beast::get_lowest_layer(stream_); }

  void start() {
    if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
      do_read();
    } else {
      tcp().expires_after(kIdleTimeout);
      stream_.async_handshake(ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                if (!ec) self->do_read();
                              });
    }
  }

  void do_read() {
    parser_.emplace();
    parser_->body_limit(16 * 1024 * 1024);
    tcp().expires_after(kIdleTimeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                       self->on_read(ec);
                     });
  }

  void on_read(beast::error_code ec) {
    if (ec == http::error::end_of_stream) return close();
    if (ec) return;
    reply_ = owner_.handle(parser_->get());
    if (reply_.delay.count() > 0) {
      timer_.expires_after(reply_.delay);
      timer_.async_wait([self = this->shared_from_this()](beast::error_code) { self->send(); });
    } else {
      send();
    }
  }

  void send() {
    tcp().expires_after(kIdleTimeout);
    switch (reply_.how) {
      case delivery::normal:
        http::async_write(stream_, reply_.res,
                          [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                            if (ec) return;
                            if (!self->reply_.res.keep_alive()) return self->close();
                            self->do_read();
                          });
        return;
      case delivery::reset:
        return reset();
      case delivery::reset_mid_body:
      case delivery::truncate: {
        std::size_t header = 0;
        raw_ = serialize(reply_.res, header);
        const std::size_t cut = header + reply_.res.body().size() / 2;
        net::async_write(stream_, net::buffer(raw_.data(), cut),
                         [self = this->shared_from_this()](beast::error_code, std::size_t) {
                           if (self->reply_.how == delivery::reset_mid_body) return self->reset();
                           beast::error_code ignored;
                           self->tcp().socket().shutdown(tcp::socket::shutdown_send, ignored);
                           self->tcp().socket().close(ignored);
                         });
        return;
      }
    }
  }

  void reset() {
    beast::error_code ignored;
    tcp().socket().set_option(net::socket_base::linger(true, 0), ignored);
    tcp().socket().close(ignored);
  }

  void close() {
    beast::error_code ignored;
    if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
      tcp().socket().shutdown(tcp::socket::shutdown_send, ignored);
    } else {
      tcp().expires_after(std::chrono::seconds(5));
      stream_.async_shutdown([self = this->shared_from_this()](beast::error_code) {
        beast::error_code e;
        self->tcp().socket().close(e);
      });
    }
  }

  simulator::impl& owner_;
  Stream stream_;
  net::steady_timer timer_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  reply reply_;
  std::string raw_;
};

}  // namespace

void simulator::impl::do_accept() {
  acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (ec) {
      if (ec == net::error::operation_aborted || stopped) return;
      return do_accept();
    }
    socket.set_option(tcp::no_delay(true), ec);
    if (tls) {
      std::make_shared<session<beast::ssl_stream<beast::tcp_stream>>>(
          *this, beast::ssl_stream<beast::tcp_stream>(std::move(socket), *tls))
          ->run();
    } else {
      std::make_shared<session<beast::tcp_stream>>(*this, beast::tcp_stream(std::move(socket)))
          ->run();
    }
    do_accept();
  });
}

// ---------------------------------------------------------------------------------------------

result<std::vector<job_info>, sim_errc> preview_jobs(const sim_config& config) {
  auto w = world::generate(config, now_ms());
  if (!w) return std::move(w).err();
  std::vector<job_info> out;
  for (const auto& j : (*w)->jobs)
    out.push_back(j.info);
  return out;
}

status<sim_errc> validate_faults(const std::string& spec) {
  auto f = parse_faults(spec);
  if (!f) return std::move(f).err();
  return ok_v;
}

result<std::unique_ptr<simulator>, sim_errc> simulator::start(sim_config config) {
  auto fail = [](sim_errc c, std::string m) { return make_error(c, std::move(m)); };
  if (config.threads == 0 || config.threads > 64)
    return fail(sim_errc::invalid_config, "threads must be in 1..64");
  if (config.default_limit == 0) return fail(sim_errc::invalid_config, "default_limit must be > 0");
  if (config.max_limit < config.default_limit)
    return fail(sim_errc::invalid_config, "max_limit must be >= default_limit");
  if (config.tls_cert_file.empty() != config.tls_key_file.empty())
    return fail(sim_errc::invalid_config, "tls_cert_file and tls_key_file must be set together");
  auto plan = parse_faults(config.faults);
  if (!plan) return std::move(plan).err();
  auto w = world::generate(config, now_ms());
  if (!w) return std::move(w).err();

  auto p = std::make_unique<impl>(static_cast<int>(config.threads));
  p->cfg = config;
  p->data = std::move(*w);
  p->cursor_key = hash2(config.seed, 0xC5);
  if (!config.api_key.empty()) p->basic_credentials = base64(config.api_key + ":");
  p->bearer_token = config.access_token;
  p->limiter = std::make_unique<admission>(
      config.rate_limit, config.rate_burst > 0 ? config.rate_burst : config.rate_limit,
      config.seed);
  if (config.token_lifetime_ms > 0) {
    p->tokens = std::make_unique<token_issuer>(std::chrono::milliseconds{config.token_lifetime_ms},
                                               config.token_file, config.seed,
                                               std::chrono::steady_clock::now());
    std::string err;
    if (!p->tokens->write_file(err)) return fail(sim_errc::invalid_config, err);
  }
  p->faults = fault_plan(std::move(*plan), config.seed);

  if (!config.tls_cert_file.empty()) {
    p->tls.emplace(ssl::context::tls_server);
    beast::error_code ec;
    p->tls->use_certificate_chain_file(config.tls_cert_file, ec);
    if (ec)
      return fail(sim_errc::tls_failed,
                  "cannot load TLS certificate '" + config.tls_cert_file + "': " + ec.message());
    p->tls->use_private_key_file(config.tls_key_file, ssl::context::pem, ec);
    if (ec)
      return fail(sim_errc::tls_failed,
                  "cannot load TLS key '" + config.tls_key_file + "': " + ec.message());
  }

  beast::error_code ec;
  const auto addr = net::ip::make_address(config.host, ec);
  if (ec) return fail(sim_errc::invalid_config, "host '" + config.host + "' is not an IP address");
  const tcp::endpoint ep(addr, config.port);
  p->acceptor.open(ep.protocol(), ec);
  if (!ec) p->acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) p->acceptor.bind(ep, ec);
  if (!ec) p->acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec)
    return fail(sim_errc::bind_failed, "cannot listen on " + config.host + ":" +
                                           std::to_string(config.port) + ": " + ec.message());
  p->port = p->acceptor.local_endpoint().port();
  p->do_accept();
  if (p->tokens) {
    p->rotation.emplace(p->ioc);
    p->rotate_tokens();
  }
  for (std::uint32_t i = 0; i < config.threads; ++i)
    p->threads.emplace_back([raw = p.get()] { raw->ioc.run(); });
  return std::unique_ptr<simulator>(new simulator(std::move(p)));
}

simulator::simulator(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

simulator::~simulator() {
  stop();
}

void simulator::stop() {
  if (impl_->stopped.exchange(true)) return;
  net::post(impl_->ioc, [p = impl_.get()] {
    beast::error_code ignored;
    p->acceptor.close(ignored);
  });
  impl_->ioc.stop();
  for (auto& t : impl_->threads)
    if (t.joinable()) t.join();
}

std::uint16_t simulator::port() const noexcept {
  return impl_->port;
}

std::string simulator::base_url() const {
  return std::string(impl_->tls ? "https://" : "http://") + impl_->cfg.host + ":" +
         std::to_string(impl_->port);
}

std::vector<job_info> simulator::jobs() const {
  std::shared_lock lock(impl_->data->mutex);
  std::vector<job_info> out;
  for (const auto& j : impl_->data->jobs)
    out.push_back(j.info);
  return out;
}

std::vector<item_truth> simulator::items_of(const api::uuid& job_id) const {
  std::shared_lock lock(impl_->data->mutex);
  std::vector<item_truth> out;
  const job_state* j = impl_->data->find(job_id);
  if (j == nullptr) return out;
  out.reserve(j->info.items);
  for (std::uint64_t p = 0; p < j->info.items; ++p) {
    const std::uint64_t k = j->order(p);
    out.push_back(
        {impl_->data->item_id(*j, k), impl_->data->status_of(*j, k), impl_->data->date_of(*j, k)});
  }
  return out;
}

status<sim_errc> simulator::set_faults(const std::string& spec) {
  auto plan = parse_faults(spec);
  if (!plan) return std::move(plan).err();
  std::lock_guard lock(impl_->fault_mutex);
  impl_->faults = fault_plan(std::move(*plan), impl_->cfg.seed);
  return ok_v;
}

void simulator::set_latency(std::chrono::milliseconds latency) {
  impl_->extra_latency_ms = latency.count();
}

void simulator::set_job_status(const api::uuid& job_id, api::job_status s) {
  std::unique_lock lock(impl_->data->mutex);
  if (job_state* j = impl_->data->find(job_id)) {
    j->info.status = s;
    j->last_updated_ms = now_ms();
  }
}

void simulator::expire_job(const api::uuid& job_id) {
  std::unique_lock lock(impl_->data->mutex);
  if (job_state* j = impl_->data->find(job_id)) impl_->data->expire(*j, now_ms());
}

void simulator::set_item_status(const api::uuid& job_id, const api::uuid& item_id,
                                api::item_status s) {
  std::unique_lock lock(impl_->data->mutex);
  job_state* j = impl_->data->find(job_id);
  if (j == nullptr) return;
  if (auto k = impl_->data->item_index(*j, item_id)) impl_->data->set_item_status(*j, *k, s);
}

std::vector<item_update_count> simulator::item_updates(const api::uuid& job_id) const {
  std::vector<item_update_count> out;
  std::shared_lock lock(impl_->data->mutex);
  const job_state* j = impl_->data->find(job_id);
  if (j == nullptr) return out;
  out.reserve(j->put_counts.size());
  for (const auto& [k, c] : j->put_counts)
    out.push_back(
        {impl_->data->item_id(*j, k), impl_->data->status_of(*j, k), c.applied, c.rejected});
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return a.accounting_entry_id.to_string() < b.accounting_entry_id.to_string();
  });
  return out;
}

// Write-back counters: read what a processed PUT / event did from its request and response,
// apart from the handlers.
void simulator::impl::note_write_back(const request_record& rec,
                                      const http::request<http::string_body>& req, const reply& r) {
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

write_back_counts simulator::write_back(const api::uuid& job_id) const {
  std::lock_guard lock(impl_->wb_mutex);
  auto it = impl_->wb.find(job_id);
  return it == impl_->wb.end() ? write_back_counts{} : it->second;
}

std::vector<request_record> simulator::request_log() const {
  std::lock_guard lock(impl_->log_mutex);
  return {impl_->log.begin(), impl_->log.end()};
}

void simulator::clear_request_log() {
  std::lock_guard lock(impl_->log_mutex);
  impl_->log.clear();
}

counters simulator::stats() const {
  counters c;
  c.requests = impl_->n_requests;
  c.faults_injected = impl_->n_faults;
  c.unauthorized = impl_->n_unauthorized;
  c.items_served = impl_->n_items;
  c.throttled = impl_->limiter ? impl_->limiter->throttled() : 0;
  c.tokens_issued = impl_->tokens ? impl_->tokens->issued() : 0;
  return c;
}

}  // namespace ei::sim
