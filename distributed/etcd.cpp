#include "distributed/etcd.hpp"

#include <algorithm>

#include "api/credentials.hpp"
#include "api/http_client.hpp"
#include "common/base64.hpp"

namespace ei::distributed {

bool is_loopback_host(std::string_view host) {
  if (host == "localhost" || host == "::1" || host == "[::1]") return true;
  if (host.substr(0, 4) != "127.") return false;
  return std::all_of(host.begin(), host.end(),
                     [](char c) { return c == '.' || (c >= '0' && c <= '9'); });
}

std::string check_url_scheme(std::string_view url, std::string_view what) {
  if (url.substr(0, 8) == "https://") return {};
  if (url.substr(0, 7) != "http://")
    return std::string(what) + ": '" + std::string(url) + "' is not an http(s) URL";
  auto rest = url.substr(7);
  auto end = rest.find('/');
  auto hostport = rest.substr(0, end);
  std::string_view host = hostport;
  if (!hostport.empty() && hostport.front() == '[') {
    host = hostport.substr(0, hostport.find(']') + 1);
  } else if (auto colon = hostport.rfind(':'); colon != std::string_view::npos) {
    host = hostport.substr(0, colon);
  }
  if (is_loopback_host(host)) return {};
  return std::string(what) + ": '" + std::string(url) +
         "' is plain http to a host other than loopback; use https://";
}

namespace {
std::string range_end_of(std::string prefix);
}

namespace txn {
nlohmann::json get_prefix(const std::string& prefix) {
  return {{"request_range",
           {{"key", base64_encode(prefix)}, {"range_end", base64_encode(range_end_of(prefix))}}}};
}
nlohmann::json create_revision_is(const std::string& key, std::int64_t rev) {
  return {{"key", base64_encode(key)},
          {"target", "CREATE"},
          {"result", "EQUAL"},
          {"create_revision", std::to_string(rev)}};
}
nlohmann::json version_is(const std::string& key, std::int64_t version) {
  return {{"key", base64_encode(key)},
          {"target", "VERSION"},
          {"result", "EQUAL"},
          {"version", std::to_string(version)}};
}
nlohmann::json put(const std::string& key, const std::string& value, std::int64_t lease) {
  nlohmann::json p = {{"key", base64_encode(key)}, {"value", base64_encode(value)}};
  if (lease != 0) p["lease"] = std::to_string(lease);
  return {{"request_put", std::move(p)}};
}
nlohmann::json del(const std::string& key) {
  return {{"request_delete_range", {{"key", base64_encode(key)}}}};
}
nlohmann::json get(const std::string& key) {
  return {{"request_range", {{"key", base64_encode(key)}}}};
}
}  // namespace txn

namespace {

std::int64_t as_int(const nlohmann::json& j, const char* field) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) return 0;
  if (it->is_string()) {
    try {
      return std::stoll(it->get<std::string>());
    } catch (...) {
      return 0;
    }
  }
  if (it->is_number_integer()) return it->get<std::int64_t>();
  return 0;
}

std::string range_end_of(std::string prefix) {
  // The smallest key after every key starting with prefix.
  while (!prefix.empty()) {
    auto& c = prefix.back();
    if (static_cast<unsigned char>(c) < 0xff) {
      c = static_cast<char>(static_cast<unsigned char>(c) + 1);
      return prefix;
    }
    prefix.pop_back();
  }
  return std::string(1, '\0');
}

eres<std::vector<key_value>> decode_kvs(const nlohmann::json& j) {
  std::vector<key_value> out;
  auto it = j.find("kvs");
  if (it == j.end() || !it->is_array()) return out;
  for (const auto& kv : *it) {
    key_value v;
    auto k = base64_decode(kv.value("key", ""));
    auto val = base64_decode(kv.value("value", ""));
    if (!k || !val) return std::string("etcd: a key or value is not base64");
    v.key = std::move(*k);
    v.value = std::move(*val);
    v.create_revision = as_int(kv, "create_revision");
    v.mod_revision = as_int(kv, "mod_revision");
    v.version = as_int(kv, "version");
    v.lease = as_int(kv, "lease");
    out.push_back(std::move(v));
  }
  return out;
}

}  // namespace

eres<std::unique_ptr<etcd_client>> etcd_client::connect(const etcd_options& o) {
  if (o.endpoints.empty()) return std::string("--etcd: at least one endpoint is required");
  auto creds = api::credentials::from_api_key("unused");  // never sent: send_authorization
  if (!creds) return std::string("etcd: ") + creds.err().message;
  std::unique_ptr<etcd_client> c(new etcd_client());
  for (const auto& ep : o.endpoints) {
    if (auto why = check_url_scheme(ep, "--etcd"); !why.empty()) return why;
    api::client_config cfg;
    cfg.base_url = ep;
    cfg.ca_file = o.ca_file;
    cfg.cert_file = o.cert_file;
    cfg.key_file = o.key_file;
    cfg.send_authorization = false;
    cfg.connect_timeout = std::min(o.timeout, std::chrono::milliseconds(1000));
    cfg.io_timeout = o.timeout;
    cfg.request_timeout = o.timeout;
    cfg.max_attempts = 1;  // the next member is the retry
    cfg.max_connections = 2;
    cfg.user_agent = "export-items-worker/0.1";
    auto client = api::http_client::create(cfg, creds.value());
    if (!client) return "--etcd " + ep + ": " + client.err().message;
    c->members_.push_back(std::move(client.value()));
    c->names_.push_back(ep);
  }
  return c;
}

etcd_client::~etcd_client() {
  for (auto& m : members_)
    m->stop();
}

eres<nlohmann::json> etcd_client::call(const std::string& path, const nlohmann::json& body) {
  std::string last;
  const std::size_t n = members_.size();
  const std::size_t first = current_.load();
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t m = (first + i) % n;
    api::request req;
    req.method = api::request::verb::post;
    req.path = path;
    req.body = body.dump();
    const auto t0 = std::chrono::steady_clock::now();
    auto r = members_[m]->request_sync(std::move(req));
    const auto us =
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0)
            .count();
    if (r.ok()) {
      ++requests_;
      latency_us_ += static_cast<std::uint64_t>(us);
      if (m != first) {
        current_ = m;
        ++failovers_;
      }
      auto j = nlohmann::json::parse(r.value().body, nullptr, false);
      if (j.is_discarded() || !j.is_object())
        return "etcd " + names_[m] + " " + path + ": the answer is not a JSON object";
      return j;
    }
    const auto& f = r.err();
    last = "etcd " + names_[m] + " " + path + ": " + f.message;
    // 4xx is the request's own fault (a lease not found, a bad key): the same on every member.
    if (f.code == api::http_errc::http_status && f.status >= 400 && f.status < 500) return last;
  }
  return last + (n > 1 ? " (and every other member failed too)" : "");
}

eres<std::vector<key_value>> etcd_client::range(const std::string& key, bool prefix) {
  nlohmann::json body = {{"key", base64_encode(key)}};
  if (prefix) body["range_end"] = base64_encode(range_end_of(key));
  auto r = call("/v3/kv/range", body);
  if (!r) return std::move(r).err();
  return decode_kvs(r.value());
}

eres<txn_result> etcd_client::run_txn(const nlohmann::json& compare, const nlohmann::json& success,
                                      const nlohmann::json& failure) {
  nlohmann::json body = {{"compare", compare}, {"success", success}, {"failure", failure}};
  auto r = call("/v3/kv/txn", body);
  if (!r) return std::move(r).err();
  const auto& j = r.value();
  txn_result out;
  out.succeeded = j.value("succeeded", false);
  if (auto h = j.find("header"); h != j.end()) out.revision = as_int(*h, "revision");
  if (auto rs = j.find("responses"); rs != j.end() && rs->is_array()) {
    for (const auto& resp : *rs) {
      auto rr = resp.find("response_range");
      if (rr == resp.end()) continue;
      auto kvs = decode_kvs(*rr);
      if (!kvs) return std::move(kvs).err();
      out.ranges.push_back(std::move(kvs.value()));
    }
  }
  return out;
}

eres<std::int64_t> etcd_client::put(const std::string& key, const std::string& value) {
  auto r = call("/v3/kv/put", {{"key", base64_encode(key)}, {"value", base64_encode(value)}});
  if (!r) return std::move(r).err();
  auto h = r.value().find("header");
  return h == r.value().end() ? std::int64_t{0} : as_int(*h, "revision");
}

eres<std::int64_t> etcd_client::grant(std::int64_t ttl_seconds) {
  auto r = call("/v3/lease/grant", {{"TTL", std::to_string(ttl_seconds)}});
  if (!r) return std::move(r).err();
  const auto id = as_int(r.value(), "ID");
  if (id == 0) return std::string("etcd: lease grant answered without an ID");
  return id;
}

eres<std::int64_t> etcd_client::keepalive(std::int64_t lease) {
  auto r = call("/v3/lease/keepalive", {{"ID", std::to_string(lease)}});
  if (!r) return std::move(r).err();
  auto res = r.value().find("result");
  if (res == r.value().end()) return std::string("etcd: keepalive answered without a result");
  return as_int(*res, "TTL");
}

eres<bool> etcd_client::revoke(std::int64_t lease) {
  auto r = call("/v3/lease/revoke", {{"ID", std::to_string(lease)}});
  if (!r) return std::move(r).err();
  return true;
}

}  // namespace ei::distributed
