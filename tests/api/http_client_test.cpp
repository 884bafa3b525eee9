// Tests of the HTTP client (api/http_client.hpp): the pure helpers (query encoding, base URL,
// Retry-After, backoff, credentials), then behaviour over loopback against small scripted
// servers written here (one blocking thread per connection), including TLS with a CA and
// certificates generated at run time by the openssl command line.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <list>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <zlib.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "api/credentials.hpp"
#include "api/http_client.hpp"
#include "api/http_date.hpp"
#include "api/query.hpp"
#include "api/retry.hpp"
#include "common/base64.hpp"
#include "simulator/simulator.hpp"

namespace {

using namespace ei::api;
using namespace std::chrono_literals;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;
using std::chrono::milliseconds;

constexpr const char* secret_key = "sk-test-S3CR3T-0123456789abcdef";

credentials test_key() {
  return credentials::from_api_key(secret_key).value();
}

// --- pure helpers --------------------------------------------------------------------------

TEST(query, percent_encoding_keeps_only_unreserved) {
  EXPECT_EQ(percent_encode("AZaz09-._~"), "AZaz09-._~");
  EXPECT_EQ(percent_encode("a b"), "a%20b");
  EXPECT_EQ(percent_encode("ABC=~"), "ABC%3D~");
  EXPECT_EQ(percent_encode("a+b&c=d/e?f#g%"), "a%2Bb%26c%3Dd%2Fe%3Ff%23g%25");
  EXPECT_EQ(percent_encode("\xc3\xa6"), "%C3%A6");  // UTF-8 bytes, upper-case hex
  EXPECT_EQ(percent_encode(std::string("a\0b", 3)), "a%00b");
}

TEST(query, arrays_repeat_the_key_in_order) {
  query_params q{{"statuses", "pending"}, {"statuses", "in_progress"}, {"limit", "10"}};
  EXPECT_EQ(encode_query(q), "statuses=pending&statuses=in_progress&limit=10");
  EXPECT_EQ(encode_query({}), "");
  EXPECT_EQ(encode_query({{"sorting keys", "a&b"}}), "sorting%20keys=a%26b");
}

TEST(query, build_target_joins_prefix_path_and_query) {
  auto u = parse_base_url("http://h/api/").value();
  EXPECT_EQ(build_target(u, "/v3/export-jobs", {}), "/api/v3/export-jobs");
  EXPECT_EQ(build_target(u, "/v3/x", {{"after", "AB=="}}), "/api/v3/x?after=AB%3D%3D");
}

TEST(base_url, parses_scheme_host_port_prefix) {
  auto a = parse_base_url("https://external.pleo.io");
  ASSERT_TRUE(a.ok()) << a.err().message;
  EXPECT_TRUE(a->tls);
  EXPECT_EQ(a->host, "external.pleo.io");
  EXPECT_EQ(a->port, 443);
  EXPECT_EQ(a->prefix, "");
  EXPECT_EQ(a->host_header(), "external.pleo.io");
  EXPECT_FALSE(a->host_is_ip());

  auto b = parse_base_url("HTTP://127.0.0.1:8080/prefix/");
  ASSERT_TRUE(b.ok()) << b.err().message;
  EXPECT_FALSE(b->tls);
  EXPECT_EQ(b->port, 8080);
  EXPECT_EQ(b->prefix, "/prefix");
  EXPECT_EQ(b->host_header(), "127.0.0.1:8080");
  EXPECT_TRUE(b->host_is_ip());

  auto c = parse_base_url("http://[::1]:9000");
  ASSERT_TRUE(c.ok()) << c.err().message;
  EXPECT_EQ(c->host, "::1");
  EXPECT_EQ(c->host_header(), "[::1]:9000");
}

TEST(base_url, rejects_bad_urls_with_clear_messages) {
  for (const char* bad :
       {"external.pleo.io", "ftp://h", "http://", "http://h:0", "http://h:99999", "http://h:x",
        "http://h:", "http://h/p?q=1", "http://h#f", "http://[::1", "http://h st"}) {
    auto r = parse_base_url(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.err().code, http_errc::invalid_url) << bad;
    EXPECT_NE(r.err().message.find("invalid base URL"), std::string::npos) << r.err().message;
  }
  // User info is refused and the URL (which holds a secret) is not echoed.
  auto r = parse_base_url("https://user:hunter2@external.pleo.io");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().message.find("hunter2"), std::string::npos) << r.err().message;
  EXPECT_NE(r.err().message.find("user info"), std::string::npos) << r.err().message;
}

TEST(retry_after, delta_seconds_and_all_three_http_date_forms) {
  using namespace std::chrono;
  auto now = sys_days{year{2026} / 11 / 28} + hours{12};
  EXPECT_EQ(parse_retry_after("0", now), milliseconds{0});
  EXPECT_EQ(parse_retry_after(" 120 ", now), milliseconds{120000});
  EXPECT_EQ(parse_retry_after("Sat, 28 Nov 2026 12:00:30 GMT", now), milliseconds{30000});
  EXPECT_EQ(parse_retry_after("Sun, 29 Nov 2026 12:00:00 GMT", now), milliseconds{86400000});
  // A date in the past means "now".
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), milliseconds{0});
  // Huge values saturate instead of overflowing; the client clamps them.
  EXPECT_GT(parse_retry_after("99999999999999999999", now).value(), milliseconds{86400000});
  // RFC 9110 §5.6.7: the obsolete RFC 850 and asctime forms are accepted too.
  EXPECT_EQ(parse_retry_after("Saturday, 28-Nov-26 12:01:30 GMT", now), milliseconds{90000});
  EXPECT_EQ(parse_retry_after("Sat Nov 28 12:01:30 2026", now), milliseconds{90000});
  EXPECT_EQ(parse_retry_after("Sun Nov  6 08:49:37 1994", now), milliseconds{0});
  for (const char* bad :
       {"", "-1", "1.5", "soon", "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 31 Feb 1994 08:49:37 GMT",
        "Sun, 06 Foo 1994 08:49:37 GMT", "Sun, 06 Nov 1994 25:49:37 GMT",
        "Sunday, 06-Nov-94 08:49:37 UTC", "Sun, 06-Nov-94 08:49:37 GMT",
        "Sunday, 6-Nov-94 08:49:37 GMT", "Sun Nov 6 08:49:37 1994", "Sun Nov  6 08:49:37 94",
        "Sun Nov 31 08:49:37 1994"})
    EXPECT_FALSE(parse_retry_after(bad, now).has_value()) << bad;
}

TEST(http_date, three_forms_are_the_same_instant_and_two_digit_years_look_back) {
  using namespace std::chrono;
  auto now = sys_days{year{2026} / 11 / 28};
  auto expect = sys_days{year{1994} / 11 / 6} + hours{8} + minutes{49} + seconds{37};
  EXPECT_EQ(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT", now), expect);
  EXPECT_EQ(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT", now), expect);
  EXPECT_EQ(parse_http_date("Sun Nov  6 08:49:37 1994", now), expect);
  // "76" is 2076 (50 years ahead at most), "77" is 1977.
  EXPECT_EQ(parse_http_date("Friday, 01-Jan-76 00:00:00 GMT", now), sys_days{year{2076} / 1 / 1});
  EXPECT_EQ(parse_http_date("Saturday, 01-Jan-77 00:00:00 GMT", now), sys_days{year{1977} / 1 / 1});
}

TEST(backoff, ceiling_doubles_and_caps) {
  EXPECT_EQ(backoff_ceiling(1, 100ms, 10s), 100ms);
  EXPECT_EQ(backoff_ceiling(2, 100ms, 10s), 200ms);
  EXPECT_EQ(backoff_ceiling(5, 100ms, 10s), 1600ms);
  EXPECT_EQ(backoff_ceiling(8, 100ms, 10s), 10s);
  EXPECT_EQ(backoff_ceiling(1000, 100ms, 10s), 10s);
  EXPECT_EQ(backoff_ceiling(0, 100ms, 10s), 100ms);
  EXPECT_EQ(backoff_ceiling(3, 0ms, 10s), 0ms);
}

TEST(backoff, full_jitter_stays_in_bounds_and_spreads) {
  std::mt19937_64 rng(42);
  for (std::uint32_t retry = 1; retry < 12; ++retry) {
    milliseconds lo{1 << 30}, hi{0};
    for (int i = 0; i < 2000; ++i) {
      auto w = full_jitter(retry, 100ms, 5s, rng);
      ASSERT_GE(w, 0ms);
      ASSERT_LE(w, backoff_ceiling(retry, 100ms, 5s));
      lo = std::min(lo, w);
      hi = std::max(hi, w);
    }
    // Full jitter covers the whole range, not just the top.
    EXPECT_LT(lo, backoff_ceiling(retry, 100ms, 5s) / 10) << retry;
    EXPECT_GT(hi, backoff_ceiling(retry, 100ms, 5s) * 9 / 10) << retry;
  }
}

TEST(credentials, basic_and_bearer_headers) {
  // base64 itself: tests/common/base64_test.cpp (the RFC 4648 vectors).
  auto k = credentials::from_api_key("abc").value();
  EXPECT_EQ(k.type(), credentials::kind::api_key);
  EXPECT_EQ(k.authorization(), "Basic YWJjOg==");  // base64("abc:"), as `curl -u abc:`
  auto t = credentials::from_access_token("tok.en-1").value();
  EXPECT_EQ(t.authorization(), "Bearer tok.en-1");
  EXPECT_EQ(t.type(), credentials::kind::bearer_token);
}

TEST(credentials, rejects_unusable_secrets_without_echoing_them) {
  for (std::string bad : {std::string(""), std::string("ab c"), std::string("key\r\nX-Evil: 1")}) {
    auto r = credentials::from_api_key(bad);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.err().code, http_errc::invalid_config);
    if (!bad.empty()) {
      EXPECT_EQ(r.err().message.find(bad), std::string::npos);
    }
  }
  EXPECT_FALSE(credentials::from_access_token("").ok());
}

TEST(credentials, from_env_prefers_the_access_token) {
  ::unsetenv("PLEO_API_KEY");
  ::unsetenv("PLEO_ACCESS_TOKEN");
  auto none = credentials::from_env();
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.err().message.find("PLEO_API_KEY"), std::string::npos);
  EXPECT_NE(none.err().message.find("PLEO_ACCESS_TOKEN"), std::string::npos);

  ::setenv("PLEO_API_KEY", secret_key, 1);
  auto key = credentials::from_env();
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(key->type(), credentials::kind::api_key);
  EXPECT_EQ(key->describe(), "api key (from PLEO_API_KEY)");

  ::setenv("PLEO_ACCESS_TOKEN", "token-XYZ", 1);
  auto tok = credentials::from_env();
  ASSERT_TRUE(tok.ok());
  EXPECT_EQ(tok->type(), credentials::kind::bearer_token);
  EXPECT_EQ(tok->authorization(), "Bearer token-XYZ");
  EXPECT_EQ(tok->describe().find("token-XYZ"), std::string::npos);

  ::setenv("PLEO_ACCESS_TOKEN", "", 1);  // empty counts as unset
  EXPECT_EQ(credentials::from_env()->type(), credentials::kind::api_key);
  ::unsetenv("PLEO_API_KEY");
  ::unsetenv("PLEO_ACCESS_TOKEN");
}

TEST(credentials, redact_removes_key_and_header) {
  auto c = test_key();
  std::string text = std::string("auth was ") + c.authorization() + " and key " + secret_key;
  c.redact(text);
  EXPECT_EQ(text.find(secret_key), std::string::npos) << text;
  EXPECT_EQ(text.find(ei::base64_encode(std::string(secret_key) + ":")), std::string::npos) << text;
  EXPECT_EQ(c.describe().find(secret_key), std::string::npos);
}

TEST(request, describe_names_method_path_and_query) {
  request r;
  r.method = request::verb::put;
  r.path = "/v3/export-jobs/abc/items";
  r.query = {{"status", "pending"}};
  EXPECT_EQ(r.describe(), "PUT /v3/export-jobs/abc/items?status=pending");
}

// --- a scripted loopback server ------------------------------------------------------------

/// Accepts connections on 127.0.0.1:0 and runs `script` for each one on its own thread with
/// a blocking socket. The destructor shuts every socket down and joins every thread.
class script_server {
 public:
  using script = std::function<void(tcp::socket&, int conn_index)>;

  explicit script_server(script s) : script_(std::move(s)), acceptor_(ioc_) {
    tcp::endpoint ep(net::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(ep.protocol());
    acceptor_.set_option(net::socket_base::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    accept_thread_ = std::thread([this] { accept_loop(); });
  }

  ~script_server() {
    stopping_ = true;
    {
      // Wake the blocking accept() with a connection of our own.
      net::io_context ioc;
      tcp::socket s(ioc);
      boost::system::error_code ec;
      s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port_), ec);
    }
    accept_thread_.join();
    // Scripts end when the client closes its side (clients are destroyed first). Only a
    // script still blocked after that is unblocked by force; shutting down a socket its own
    // thread may be closing is a race, so it is the fallback, not the rule.
    for (int i = 0; i < 500 && running_.load() > 0; ++i)
      std::this_thread::sleep_for(10ms);
    if (running_.load() > 0) {
      std::lock_guard<std::mutex> lock(mutex_);
      for (auto& s : sockets_) {
        boost::system::error_code ec;
        s->shutdown(tcp::socket::shutdown_both, ec);
      }
    }
    for (auto& t : conn_threads_)
      t.join();
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::uint16_t port() const { return port_; }
  int connections() const { return connections_.load(); }

 private:
  void accept_loop() {
    for (int index = 0;; ++index) {
      auto sock = std::make_shared<tcp::socket>(ioc_);
      boost::system::error_code ec;
      acceptor_.accept(*sock, ec);
      if (ec || stopping_) return;
      ++connections_;
      ++running_;
      std::lock_guard<std::mutex> lock(mutex_);
      sockets_.push_back(sock);
      conn_threads_.emplace_back([this, sock, index] {
        try {
          script_(*sock, index);
        } catch (const std::exception&) {
        }
        boost::system::error_code ignored;
        sock->close(ignored);
        --running_;
      });
    }
  }

  script script_;
  net::io_context ioc_;
  tcp::acceptor acceptor_;
  std::uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> connections_{0};
  std::atomic<int> running_{0};
  std::thread accept_thread_;
  std::mutex mutex_;
  std::vector<std::shared_ptr<tcp::socket>> sockets_;
  std::list<std::thread> conn_threads_;
};

using server_request = bhttp::request<bhttp::string_body>;

/// Reads one request; nullopt when the client closed the connection.
template <class Stream>
std::optional<server_request> read_request(Stream& s, beast::flat_buffer& buf) {
  server_request req;
  boost::system::error_code ec;
  bhttp::read(s, buf, req, ec);
  if (ec) return std::nullopt;
  return req;
}

template <class Stream>
void respond(Stream& s, unsigned status, std::string body, bool keep_alive = true,
             std::vector<std::pair<std::string, std::string>> headers = {}) {
  bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(status), 11};
  res.set(bhttp::field::content_type, "application/json");
  for (auto& [k, v] : headers)
    res.set(k, v);
  res.body() = std::move(body);
  res.keep_alive(keep_alive);
  res.prepare_payload();
  boost::system::error_code ec;
  bhttp::write(s, res, ec);
}

void write_raw(tcp::socket& s, std::string_view data) {
  boost::system::error_code ec;
  net::write(s, net::buffer(data), ec);
}

void reset(tcp::socket& s) {
  boost::system::error_code ec;
  s.set_option(net::socket_base::linger(true, 0), ec);
  s.close(ec);
}

/// Answers every request of every connection with 200 `body` and keeps a copy of each.
class recording_server {
 public:
  explicit recording_server(std::string body)
      : body_(std::move(body)), srv_([this](tcp::socket& s, int) {
          beast::flat_buffer buf;
          while (auto req = read_request(s, buf)) {
            {
              std::lock_guard<std::mutex> lock(m_);
              seen_.push_back(*req);
            }
            respond(s, 200, body_);
          }
        }) {}
  std::string url() const { return srv_.url(); }
  int connections() const { return srv_.connections(); }
  auto port() const { return srv_.port(); }
  /// The requests read so far, in order.
  std::vector<server_request> requests() const {
    std::lock_guard<std::mutex> lock(m_);
    return seen_;
  }

 private:
  mutable std::mutex m_;
  std::vector<server_request> seen_;
  std::string body_;
  script_server srv_;  // last: stopped (and its scripts joined) before the members above go
};

/// Serves 200 {"ok":true} on every request of every connection.
script_server::script serve_ok(std::atomic<int>* requests = nullptr) {
  return [requests](tcp::socket& s, int) {
    beast::flat_buffer buf;
    while (auto req = read_request(s, buf)) {
      if (requests) ++*requests;
      respond(s, 200, R"({"ok":true})");
    }
  };
}

client_config fast_config(const std::string& url) {
  client_config c;
  c.base_url = url;
  c.connect_timeout = 2s;
  c.io_timeout = 5s;
  c.request_timeout = 30s;
  c.backoff_base = 5ms;
  c.backoff_cap = 20ms;
  c.retry_after_cap = 2s;
  c.max_attempts = 4;
  return c;
}

std::unique_ptr<http_client> make_client(client_config c, credentials cr = test_key()) {
  auto r = http_client::create(std::move(c), std::move(cr));
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.err().message);
  return r.ok() ? std::move(r.value()) : nullptr;
}

request get(std::string path, query_params q = {}) {
  request r;
  r.path = std::move(path);
  r.query = std::move(q);
  return r;
}

void expect_no_secret(const http_failure& f) {
  for (const auto* s : {&f.message, &f.type, &f.detail}) {
    EXPECT_EQ(s->find(secret_key), std::string::npos) << *s;
    EXPECT_EQ(s->find(ei::base64_encode(std::string(secret_key) + ":")), std::string::npos) << *s;
  }
}

// --- behaviour -----------------------------------------------------------------------------

TEST(http_client, create_validates_config) {
  auto bad_url = http_client::create(fast_config("nope"), test_key());
  ASSERT_FALSE(bad_url.ok());
  EXPECT_EQ(bad_url.err().code, http_errc::invalid_url);
  auto c = fast_config("http://127.0.0.1:1");
  c.io_threads = 0;
  EXPECT_EQ(http_client::create(c, test_key()).err().code, http_errc::invalid_config);
  c = fast_config("http://127.0.0.1:1");
  c.max_attempts = 0;
  EXPECT_EQ(http_client::create(c, test_key()).err().code, http_errc::invalid_config);
  c = fast_config("https://127.0.0.1:1");
  c.ca_file = "/nonexistent/ca.pem";
  auto no_ca = http_client::create(c, test_key());
  ASSERT_FALSE(no_ca.ok());
  EXPECT_EQ(no_ca.err().code, http_errc::invalid_config);
  EXPECT_NE(no_ca.err().message.find("/nonexistent/ca.pem"), std::string::npos);
}

// The gate distributed workers close once their etcd lease may have expired: a refused
// attempt never reaches the server and fails as `cancelled`, without retries; peers that are
// not Pleo's API (etcd) get no Authorization header.
TEST(http_client, admit_gate_refuses_before_the_wire_and_authorization_can_be_left_out) {
  recording_server srv(R"({"ok":true})");
  std::atomic<bool> open{true};
  auto c = fast_config(srv.url());
  c.admit = [&open] { return open.load(); };
  c.send_authorization = false;
  auto client = make_client(c);
  ASSERT_TRUE(client->request_sync(get("/a")).ok());
  open = false;
  auto refused = client->request_sync(get("/b"));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.err().code, http_errc::cancelled);
  EXPECT_NE(refused.err().message.find("admit"), std::string::npos) << refused.err().message;
  open = true;
  ASSERT_TRUE(client->request_sync(get("/c")).ok());
  const auto seen = srv.requests();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].target(), "/a");
  EXPECT_EQ(seen[1].target(), "/c");
  EXPECT_EQ(seen[0].count(bhttp::field::authorization), 0u);
}

TEST(http_client, keep_alive_reuses_one_connection_and_sends_headers) {
  recording_server srv(R"({"data":[]})");
  auto client = make_client(fast_config(srv.url() + "/base"));
  for (int i = 0; i < 20; ++i) {
    auto r = client->request_sync(
        get("/v3/export-jobs",
            {{"statuses", "pending"}, {"statuses", "in_progress"}, {"after", "AB=~"}}));
    ASSERT_TRUE(r.ok()) << r.err().message;
    EXPECT_EQ(r->status, 200u);
    EXPECT_EQ(r->body, R"({"data":[]})");
    EXPECT_EQ(r->attempts, 1u);
    EXPECT_GE(r->body.capacity(), r->body.size() + 64);  // room for SIMDJSON_PADDING
  }
  request put;
  put.method = request::verb::put;
  put.path = "/v3/export-jobs/j/items";
  put.body = R"({"items":[]})";
  ASSERT_TRUE(client->request_sync(put).ok());

  EXPECT_EQ(srv.connections(), 1);
  auto st = client->stats();
  EXPECT_EQ(st.connections_opened, 1u);
  EXPECT_EQ(st.requests, 21u);
  EXPECT_EQ(st.succeeded, 21u);
  EXPECT_EQ(st.attempts, 21u);
  EXPECT_EQ(st.retries, 0u);
  EXPECT_EQ(st.responses_by_class[2], 21u);
  EXPECT_GT(st.bytes_received, 21u * 11);

  const auto seen = srv.requests();
  ASSERT_EQ(seen.size(), 21u);
  const auto& first = seen.front();
  EXPECT_EQ(first.target(),
            "/base/v3/export-jobs?statuses=pending&statuses=in_progress&after=AB%3D~");
  EXPECT_EQ(first[bhttp::field::authorization], test_key().authorization());
  EXPECT_EQ(first[bhttp::field::host], "127.0.0.1:" + std::to_string(srv.port()));
  EXPECT_EQ(first[bhttp::field::accept], "application/json");
  EXPECT_EQ(first[bhttp::field::user_agent], "export-items/0.1");
  const auto& last = seen.back();
  EXPECT_EQ(last.method(), bhttp::verb::put);
  EXPECT_EQ(last.body(), R"({"items":[]})");
  EXPECT_EQ(last[bhttp::field::content_type], "application/json;charset=UTF-8");
}

TEST(http_client, bearer_token_header) {
  std::promise<std::string> auth;
  std::once_flag once;
  script_server srv([&](tcp::socket& s, int) {
    beast::flat_buffer buf;
    while (auto req = read_request(s, buf)) {
      std::call_once(once,
                     [&] { auth.set_value(std::string((*req)[bhttp::field::authorization])); });
      respond(s, 200, "{}");
    }
  });
  auto client =
      make_client(fast_config(srv.url()), credentials::from_access_token("oauth-tok").value());
  ASSERT_TRUE(client->request_sync(get("/v3/export-jobs")).ok());
  EXPECT_EQ(auth.get_future().get(), "Bearer oauth-tok");
}

TEST(http_client, client_errors_are_typed_and_never_retried) {
  for (unsigned status : {400u, 401u, 403u, 404u, 409u, 413u, 422u}) {
    std::atomic<int> requests{0};
    script_server srv([&](tcp::socket& s, int) {
      beast::flat_buffer buf;
      while (auto req = read_request(s, buf)) {
        ++requests;
        respond(s, status, R"({"type":"EXPORT_NOT_FOUND","message":"Export job not found"})");
      }
    });
    auto client = make_client(fast_config(srv.url()));
    auto r = client->request_sync(get("/v3/export-jobs/42"));
    ASSERT_FALSE(r.ok()) << status;
    const auto& f = r.err();
    EXPECT_EQ(f.code, http_errc::http_status) << status;
    EXPECT_EQ(f.cause, http_errc::http_status);
    EXPECT_EQ(f.status, status);
    EXPECT_EQ(f.type, "EXPORT_NOT_FOUND");
    EXPECT_EQ(f.detail, "Export job not found");
    EXPECT_EQ(f.attempts, 1u);
    EXPECT_FALSE(f.transient());
    EXPECT_NE(f.message.find("GET /v3/export-jobs/42"), std::string::npos) << f.message;
    EXPECT_NE(f.message.find(std::to_string(status)), std::string::npos) << f.message;
    expect_no_secret(f);
    EXPECT_EQ(requests.load(), 1) << status;
    EXPECT_EQ(client->stats().responses_by_class[4], 1u);
  }
}

TEST(http_client, error_body_that_is_not_exception_info) {
  script_server srv([](tcp::socket& s, int) {
    beast::flat_buffer buf;
    while (read_request(s, buf))
      respond(s, 404, "<html>not json</html>");
  });
  auto client = make_client(fast_config(srv.url()));
  auto r = client->request_sync(get("/x"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().status, 404u);
  EXPECT_EQ(r.err().type, "");
  EXPECT_EQ(r.err().detail, "");
}

TEST(http_client, secret_echoed_by_the_server_is_redacted) {
  script_server srv([](tcp::socket& s, int) {
    beast::flat_buffer buf;
    while (auto req = read_request(s, buf)) {
      std::string auth((*req)[bhttp::field::authorization]);
      respond(s, 401,
              R"({"type":"UNAUTHORIZED )" + std::string(secret_key) + R"(","message":"bad )" +
                  auth + " " + secret_key + R"("})");
    }
  });
  auto client = make_client(fast_config(srv.url()));
  auto r = client->request_sync(get("/v3/export-jobs"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().status, 401u);
  expect_no_secret(r.err());
  EXPECT_NE(r.err().detail.find("<redacted>"), std::string::npos) << r.err().detail;
}

TEST(http_client, too_many_requests_honours_retry_after_seconds) {
  std::atomic<int> requests{0};
  script_server srv([&](tcp::socket& s, int) {
    beast::flat_buffer buf;
    while (read_request(s, buf)) {
      if (++requests == 1)
        respond(s, 429, R"({"type":"RATE_LIMITED"})", true, {{"Retry-After", "1"}});
      else
        respond(s, 200, "{}");
    }
  });
  auto cfg = fast_config(srv.url());
  cfg.backoff_cap = 5ms;  // so only Retry-After can explain a 1 s wait
  auto client = make_client(cfg);
  auto start = std::chrono::steady_clock::now();
  auto r = client->request_sync(get("/v3/export-jobs"));
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->attempts, 2u);
  EXPECT_EQ(r->waited, 1000ms);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 1000ms);  // lower bound only
  auto st = client->stats();
  EXPECT_EQ(st.retries, 1u);
  EXPECT_EQ(st.retry_wait_ms, 1000u);
  EXPECT_EQ(st.responses_by_class[4], 1u);
  EXPECT_EQ(st.connections_opened, 1u);  // a 429 keeps the connection
}

TEST(http_client, retry_after_is_clamped_and_http_date_is_read) {
  std::atomic<int> requests{0};
  script_server srv([&](tcp::socket& s, int) {
    beast::flat_buffer buf;
    while (read_request(s, buf)) {
      auto n = ++requests;
      if (n == 1)
        respond(s, 503, "{}", true, {{"Retry-After", "3600"}});
      else if (n == 2)  // long past: retry at once
        respond(s, 429, "{}", true, {{"Retry-After", "Sun, 06 Nov 1994 08:49:37 GMT"}});
      else
        respond(s, 200, "{}");
    }
  });
  auto cfg = fast_config(srv.url());
  cfg.retry_after_cap = 30ms;
  auto client = make_client(cfg);
  auto r = client->request_sync(get("/x"));
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->attempts, 3u);
  EXPECT_EQ(r->waited, 30ms);
}

/// A wait clock the test moves by hand: waits of minutes take no time.
class manual_clock : public wait_clock {
 public:
  std::chrono::system_clock::time_point wall_now() const override {
    std::lock_guard<std::mutex> lock(m_);
    return wall0_ + elapsed_;
  }
  std::chrono::steady_clock::time_point now() const override {
    std::lock_guard<std::mutex> lock(m_);
    return steady0_ + elapsed_;
  }
  void after(milliseconds delay, std::function<void()> fn) override {
    std::lock_guard<std::mutex> lock(m_);
    pending_.push_back({elapsed_ + delay, std::move(fn)});
    ++registered_;
    cv_.notify_all();
  }
  milliseconds elapsed() const {
    std::lock_guard<std::mutex> lock(m_);
    return elapsed_;
  }
  /// Waits (bounded) until `n` waits were registered since the clock was made.
  bool await_registered(std::size_t n) {
    std::unique_lock<std::mutex> lock(m_);
    return cv_.wait_for(lock, 10s, [&] { return registered_ >= n; });
  }
  void advance(milliseconds d) {
    std::vector<std::function<void()>> due;
    {
      std::lock_guard<std::mutex> lock(m_);
      elapsed_ += d;
      for (auto it = pending_.begin(); it != pending_.end();) {
        if (it->first <= elapsed_) {
          due.push_back(std::move(it->second));
          it = pending_.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (auto& f : due)
      f();
  }

 private:
  mutable std::mutex m_;
  std::condition_variable cv_;
  // A whole second, so an HTTP date 90 s ahead is exactly 90 s ahead.
  std::chrono::system_clock::time_point wall0_ =
      std::chrono::sys_days{std::chrono::year{2026} / 11 / 28} + std::chrono::hours{12};
  std::chrono::steady_clock::time_point steady0_ = std::chrono::steady_clock::now();
  milliseconds elapsed_{0};
  std::vector<std::pair<milliseconds, std::function<void()>>> pending_;
  std::size_t registered_ = 0;
};

TEST(http_client, retry_after_of_90_s_as_an_http_date_is_honoured_on_an_injected_clock) {
  // Request A gets 429 with "Retry-After: <HTTP date 90 s ahead>", then 429 with
  // "Retry-After: 90", then 200. The request deadline is 1 s: neither long wait may end it
  // as a timeout. B, sent while A's first wait runs, is held by the same pause (a 429 slows
  // every request of the credential). Nothing waits for real: the test moves the clock.
  auto clock = std::make_shared<manual_clock>();
  std::mutex m;
  std::vector<std::pair<std::string, milliseconds>> arrivals;  // path, clock time
  std::atomic<int> a_count{0};
  script_server srv([&](tcp::socket& s, int) {
    beast::flat_buffer buf;
    while (auto req = read_request(s, buf)) {
      std::string path(req->target());
      {
        std::lock_guard<std::mutex> lock(m);
        arrivals.emplace_back(path, clock->elapsed());
      }
      if (path == "/a" && ++a_count == 1)
        respond(s, 429, R"({"type":"TOO_MANY_REQUESTS"})", true,
                {{"Retry-After", format_http_date(clock->wall_now() + 90s)}});
      else if (path == "/a" && a_count == 2)
        respond(s, 429, R"({"type":"TOO_MANY_REQUESTS"})", true, {{"Retry-After", "90"}});
      else
        respond(s, 200, "{}");
    }
  });
  auto cfg = fast_config(srv.url());
  cfg.clock = clock;
  cfg.request_timeout = 1s;
  cfg.retry_after_cap = 10min;
  cfg.backoff_cap = 5ms;
  auto client = make_client(cfg);
  std::promise<http_result<response>> a_done, b_done;
  client->async_request(get("/a"),
                        [&](http_result<response> r) { a_done.set_value(std::move(r)); });
  ASSERT_TRUE(clock->await_registered(2));  // A's own wait and the pause of every request
  client->async_request(get("/b"),
                        [&](http_result<response> r) { b_done.set_value(std::move(r)); });
  clock->advance(89s);
  EXPECT_EQ(a_count.load(), 1);  // not a second early
  clock->advance(1s);
  ASSERT_TRUE(clock->await_registered(4));  // the second 429: "Retry-After: 90"
  clock->advance(90s);
  auto a = a_done.get_future().get();
  auto b = b_done.get_future().get();
  ASSERT_TRUE(a.ok()) << a.err().message;
  ASSERT_TRUE(b.ok()) << b.err().message;
  EXPECT_EQ(a->attempts, 3u);
  EXPECT_EQ(a->waited, 180s);
  std::lock_guard<std::mutex> lock(m);
  ASSERT_EQ(arrivals.size(), 4u);
  std::vector<milliseconds> a_times;
  for (auto& [path, at] : arrivals)
    if (path == "/a")
      a_times.push_back(at);
    else
      EXPECT_GE(at, 90s) << "B went out during the pause";
  EXPECT_EQ(a_times, (std::vector<milliseconds>{0s, 90s, 180s}));
  EXPECT_EQ(client->stats().throttled, 2u);
  EXPECT_EQ(client->stats().throttle_pauses, 2u);
}

TEST(http_client, request_timeout_408_is_retried) {
  std::atomic<int> requests{0};
  script_server srv([&](tcp::socket& s, int) {
    beast::flat_buffer buf;
    while (read_request(s, buf)) {
      if (++requests == 1)
        respond(s, 408, R"({"type":"REQUEST_TIMEOUT"})", false);
      else
        respond(s, 200, "{}");
    }
  });
  auto client = make_client(fast_config(srv.url()));
  auto r = client->request_sync(get("/x"));
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->attempts, 2u);
}

TEST(http_client, plain_http_is_refused_for_hosts_other_than_loopback) {
  for (const char* url :
       {"http://external.pleo.io", "http://10.0.0.1:8080", "http://[2001:db8::1]"}) {
    auto c = http_client::create(fast_config(url), test_key());
    ASSERT_FALSE(c.ok()) << url;
    EXPECT_EQ(c.err().code, http_errc::invalid_config);
    EXPECT_NE(c.err().message.find("--allow-insecure-http"), std::string::npos) << c.err().message;
    EXPECT_EQ(c.err().message.find(secret_key), std::string::npos);
    auto allowed = fast_config(url);
    allowed.allow_insecure_http = true;
    EXPECT_TRUE(http_client::create(allowed, test_key()).ok()) << url;
  }
  for (const char* url :
       {"http://localhost:1", "http://127.0.0.2:1", "http://[::1]:1", "https://external.pleo.io"})
    EXPECT_TRUE(http_client::create(fast_config(url), test_key()).ok()) << url;
}

TEST(http_client, too_many_requests_without_retry_after_backs_off_with_jitter) {
  std::atomic<int> requests{0};
  script_server srv([&](tcp::socket& s, int) {
    beast::flat_buffer buf;
    while (read_request(s, buf)) {
      if (++requests <= 3)
        respond(s, 429, "{}");
      else
        respond(s, 200, "{}");
    }
  });
  auto cfg = fast_config(srv.url());
  cfg.backoff_base = 10ms;
  cfg.backoff_cap = 15ms;
  auto client = make_client(cfg);
  auto r = client->request_sync(get("/x"));
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->attempts, 4u);
  EXPECT_LE(r->waited, 10ms + 15ms + 15ms);  // each wait is within its ceiling
}

TEST(http_client, server_errors_are_retried_then_succeed) {
  std::atomic<int> requests{0};
  script_server srv([&](tcp::socket& s, int) {
    beast::flat_buffer buf;
    while (read_request(s, buf)) {
      auto n = ++requests;
      respond(s, n == 1 ? 500 : n == 2 ? 502 : n == 3 ? 504 : 200, "{}");
    }
  });
  auto client = make_client(fast_config(srv.url()));
  auto r = client->request_sync(get("/x"));
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->attempts, 4u);
  auto st = client->stats();
  EXPECT_EQ(st.retries, 3u);
  EXPECT_EQ(st.responses_by_class[5], 3u);
  EXPECT_EQ(st.responses_by_class[2], 1u);
}

TEST(http_client, retries_exhausted_carries_the_last_status) {
  std::atomic<int> requests{0};
  script_server srv([&](tcp::socket& s, int) {
    beast::flat_buffer buf;
    while (read_request(s, buf)) {
      ++requests;
      respond(s, 503, R"({"type":"UNAVAILABLE","message":"try later"})");
    }
  });
  auto cfg = fast_config(srv.url());
  cfg.max_attempts = 3;
  auto client = make_client(cfg);
  auto r = client->request_sync(get("/x"));
  ASSERT_FALSE(r.ok());
  const auto& f = r.err();
  EXPECT_EQ(f.code, http_errc::retries_exhausted);
  EXPECT_EQ(f.cause, http_errc::http_status);
  EXPECT_EQ(f.status, 503u);
  EXPECT_EQ(f.type, "UNAVAILABLE");
  EXPECT_EQ(f.attempts, 3u);
  EXPECT_TRUE(f.transient());
  EXPECT_EQ(requests.load(), 3);
  expect_no_secret(f);
}

TEST(http_client, connection_reset_or_closed_before_response_is_retried) {
  for (bool rst : {false, true}) {
    std::atomic<int> requests{0};
    script_server srv([&](tcp::socket& s, int) {
      beast::flat_buffer buf;
      while (read_request(s, buf)) {
        if (++requests == 1) {
          if (rst)
            reset(s);
          else
            s.close();
          return;
        }
        respond(s, 200, "{}");
      }
    });
    auto client = make_client(fast_config(srv.url()));
    auto r = client->request_sync(get("/x"));
    ASSERT_TRUE(r.ok()) << r.err().message;
    // A fresh connection failing is a real attempt (it was not a stale keep-alive).
    EXPECT_EQ(r->attempts, 2u) << rst;
    EXPECT_EQ(client->stats().stale_retries, 0u);
    EXPECT_EQ(srv.connections(), 2);
  }
}

TEST(http_client, truncated_body_is_retried) {
  std::atomic<int> requests{0};
  script_server srv([&](tcp::socket& s, int) {
    beast::flat_buffer buf;
    while (read_request(s, buf)) {
      if (++requests == 1) {
        write_raw(s, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"data\":[1,2");
        reset(s);
        return;
      }
      respond(s, 200, R"({"data":[1,2,3]})");
    }
  });
  auto client = make_client(fast_config(srv.url()));
  auto r = client->request_sync(get("/x"));
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->attempts, 2u);
  EXPECT_EQ(r->body, R"({"data":[1,2,3]})");
}

TEST(http_client, always_truncated_reports_the_cause) {
  script_server srv([](tcp::socket& s, int) {
    beast::flat_buffer buf;
    if (read_request(s, buf)) {
      write_raw(s, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"data\"");
      s.close();
    }
  });
  auto cfg = fast_config(srv.url());
  cfg.max_attempts = 2;
  auto client = make_client(cfg);
  auto r = client->request_sync(get("/x"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, http_errc::retries_exhausted);
  EXPECT_EQ(r.err().cause, http_errc::truncated_body);
  EXPECT_EQ(r.err().attempts, 2u);
}

TEST(http_client, stale_keep_alive_is_retried_on_a_fresh_connection_for_free) {
  std::atomic<int> requests{0};
  script_server srv([&](tcp::socket& s, int) {
    beast::flat_buffer buf;
    if (read_request(s, buf)) {
      ++requests;
      // Promises keep-alive, then closes: the next request finds the pooled connection dead.
      respond(s, 200, "{}", true);
      s.close();
    }
  });
  auto cfg = fast_config(srv.url());
  cfg.max_attempts = 1;  // a counted retry would fail the request
  auto client = make_client(cfg);
  ASSERT_TRUE(client->request_sync(get("/a")).ok());
  std::this_thread::sleep_for(50ms);  // let the FIN arrive (the race also works without it)
  auto r = client->request_sync(get("/b"));
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->attempts, 1u);
  auto st = client->stats();
  EXPECT_EQ(st.stale_retries, 1u);
  EXPECT_EQ(st.attempts, 2u);
  EXPECT_EQ(st.connections_opened, 2u);
  EXPECT_EQ(requests.load(), 2);
}

TEST(http_client, idle_connections_past_idle_timeout_are_not_reused) {
  script_server srv(serve_ok());
  auto cfg = fast_config(srv.url());
  cfg.idle_timeout = 20ms;
  auto client = make_client(cfg);
  ASSERT_TRUE(client->request_sync(get("/a")).ok());
  std::this_thread::sleep_for(60ms);  // longer than idle_timeout: the pooled one is dropped
  ASSERT_TRUE(client->request_sync(get("/b")).ok());
  auto st = client->stats();
  EXPECT_EQ(st.connections_opened, 2u);
  EXPECT_EQ(st.stale_retries, 0u);
}

TEST(http_client, connect_to_a_closed_port_fails_fast) {
  std::uint16_t port = 0;
  {
    net::io_context ioc;
    tcp::acceptor a(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    port = a.local_endpoint().port();
  }
  auto cfg = fast_config("http://127.0.0.1:" + std::to_string(port));
  cfg.max_attempts = 2;
  auto client = make_client(cfg);
  auto r = client->request_sync(get("/x"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, http_errc::retries_exhausted);
  EXPECT_EQ(r.err().cause, http_errc::connect_failed);
  EXPECT_EQ(r.err().attempts, 2u);
  EXPECT_NE(r.err().message.find("127.0.0.1:" + std::to_string(port)), std::string::npos)
      << r.err().message;
  EXPECT_EQ(client->stats().connections_opened, 0u);
}

TEST(http_client, silent_server_times_out_per_read_and_per_request) {
  std::atomic<int> requests{0};
  script_server srv([&](tcp::socket& s, int) {
    beast::flat_buffer buf;
    while (read_request(s, buf))
      ++requests;  // never answers
  });
  auto cfg = fast_config(srv.url());
  cfg.io_timeout = 150ms;
  cfg.max_attempts = 2;
  auto client = make_client(cfg);
  auto r = client->request_sync(get("/x"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, http_errc::retries_exhausted);
  EXPECT_EQ(r.err().cause, http_errc::timeout);
  EXPECT_EQ(r.err().attempts, 2u);
  EXPECT_EQ(requests.load(), 2);

  // The whole-request deadline ends it even when io_timeout and attempts would allow more.
  cfg.io_timeout = 10s;
  cfg.max_attempts = 6;
  cfg.request_timeout = 300ms;
  auto client2 = make_client(cfg);
  auto r2 = client2->request_sync(get("/y"));
  ASSERT_FALSE(r2.ok());
  EXPECT_EQ(r2.err().code, http_errc::timeout);
  EXPECT_TRUE(r2.err().transient());
}

TEST(http_client, stalled_body_times_out_and_is_retried) {
  std::atomic<int> requests{0};
  script_server srv([&](tcp::socket& s, int) {
    beast::flat_buffer buf;
    while (read_request(s, buf)) {
      ++requests;  // half a body, then silence until the client gives up and closes
      write_raw(s, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"data\":[1,2");
    }
  });
  auto cfg = fast_config(srv.url());
  cfg.io_timeout = 150ms;
  cfg.max_attempts = 2;
  auto client = make_client(cfg);
  auto r = client->request_sync(get("/x"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, http_errc::retries_exhausted);
  EXPECT_EQ(r.err().cause, http_errc::timeout) << r.err().message;
  EXPECT_EQ(r.err().attempts, 2u);
  EXPECT_EQ(requests.load(), 2);

  // The whole-request deadline also ends a body that keeps stalling.
  cfg.io_timeout = 10s;
  cfg.request_timeout = 300ms;
  auto client2 = make_client(cfg);
  auto r2 = client2->request_sync(get("/y"));
  ASSERT_FALSE(r2.ok());
  EXPECT_EQ(r2.err().code, http_errc::timeout);
}

TEST(http_client, body_arriving_slowly_is_not_cut_by_the_io_timeout) {
  // io_timeout bounds the silence between body bytes, not the whole body: 12 pieces 60 ms
  // apart take longer than io_timeout in total, and every gap is far below it.
  std::string body(12 * 20000, 'x');
  body.front() = '"';
  body.back() = '"';
  script_server srv([&](tcp::socket& s, int) {
    beast::flat_buffer buf;
    while (read_request(s, buf)) {
      write_raw(s, "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) +
                       "\r\nContent-Type: application/json\r\n\r\n");
      for (std::size_t off = 0; off < body.size(); off += 20000) {
        std::this_thread::sleep_for(60ms);
        write_raw(s, std::string_view(body).substr(off, 20000));
      }
    }
  });
  auto cfg = fast_config(srv.url());
  cfg.io_timeout = 400ms;
  cfg.max_attempts = 1;
  auto client = make_client(cfg);
  auto r = client->request_sync(get("/x"));
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r.value().body, body);
  // The connection is still usable afterwards.
  auto again = client->request_sync(get("/y"));
  ASSERT_TRUE(again.ok()) << again.err().message;
  EXPECT_EQ(again.value().body, body);
}

TEST(http_client, oversized_response_is_refused_and_not_retried) {
  std::atomic<int> requests{0};
  script_server srv([&](tcp::socket& s, int) {
    beast::flat_buffer buf;
    while (read_request(s, buf)) {
      ++requests;
      respond(s, 200, std::string(2 << 20, 'x'));
    }
  });
  auto cfg = fast_config(srv.url());
  cfg.max_response_bytes = 1 << 20;
  auto client = make_client(cfg);
  auto r = client->request_sync(get("/x"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, http_errc::response_too_large);
  EXPECT_EQ(r.err().attempts, 1u);
  EXPECT_EQ(requests.load(), 1);
}

// --- Content-Encoding: gzip --------------------------------------------------------------

std::string gzip(std::string_view in, int level = 6) {
  z_stream zs{};
  EXPECT_EQ(deflateInit2(&zs, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(deflateBound(&zs, static_cast<uLong>(in.size())), '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

/// Answers every request with `body` (sent as is) and `Content-Encoding: <coding>`; records
/// each request's Accept-Encoding ("-" when absent).
struct encoded_server {
  std::mutex m;
  std::vector<std::string> accept_encodings;
  std::atomic<int> requests{0};
  script_server srv;
  encoded_server(std::function<std::string(const server_request&)> body, std::string coding)
      : srv([this, body = std::move(body), coding](tcp::socket& s, int) {
          beast::flat_buffer buf;
          while (auto req = read_request(s, buf)) {
            ++requests;
            {
              std::lock_guard<std::mutex> lock(m);
              auto it = req->find(bhttp::field::accept_encoding);
              accept_encodings.push_back(it == req->end() ? "-" : std::string(it->value()));
            }
            respond(s, 200, body(*req), true, {{"Content-Encoding", coding}});
          }
        }) {}
};

TEST(http_client_gzip, body_is_decoded_whatever_was_asked_and_accept_encoding_is_opt_in) {
  std::string json = R"({"data":[)";
  for (int i = 0; i < 2000; ++i)
    json += (i ? "," : "") + std::string(R"({"accountingEntryId":"e-)") + std::to_string(i) +
            R"(","date":"2024-01-01T00:00:00Z"})";
  json += "]}";
  // Two gzip members back to back (RFC 1952 allows it) for /two, one otherwise.
  encoded_server es(
      [&](const server_request& req) {
        if (req.target() == "/two") return gzip(json.substr(0, 100)) + gzip(json.substr(100));
        return gzip(json);
      },
      "GZip");
  auto cfg = fast_config(es.srv.url());
  auto client = make_client(cfg);
  auto asked = get("/x");
  asked.accept_gzip = true;
  for (const auto& req : {asked, get("/x"), get("/two")}) {
    auto r = client->request_sync(req);
    ASSERT_TRUE(r.ok()) << r.err().message;
    EXPECT_EQ(r->body, json) << req.describe();
    EXPECT_GE(r->body.capacity(), r->body.size() + 64);  // still padded for simdjson
  }
  // bytes_received counts the wire: far less than the decoded JSON.
  EXPECT_LT(client->stats().bytes_received, json.size());
  cfg.accept_gzip = false;  // http.accept_gzip = false: never asked, still decoded
  auto quiet = make_client(cfg);
  auto r = quiet->request_sync(asked);
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->body, json);
  std::lock_guard<std::mutex> lock(es.m);
  EXPECT_EQ(es.accept_encodings, (std::vector<std::string>{"gzip", "-", "-", "-"}));
}

TEST(http_client_gzip, corrupt_truncated_or_unknown_encodings_fail_clearly_without_retry) {
  std::string good = gzip(R"({"data":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]})");
  std::string flipped = good;
  flipped[12] = static_cast<char>(flipped[12] ^ 0x5a);  // inside the deflate data
  struct variant {
    std::string body, coding, expect;
  };
  for (const auto& v : {variant{flipped, "gzip", "gzip"},
                        variant{good.substr(0, good.size() - 6), "gzip", "ends early"},
                        variant{"{\"not\":\"gzip\"}", "gzip", "corrupt gzip stream"},
                        variant{good, "br", "unsupported Content-Encoding 'br'"}}) {
    encoded_server es([&](const server_request&) { return v.body; }, v.coding);
    auto client = make_client(fast_config(es.srv.url()));
    auto r = client->request_sync(get("/v3/export-items", {{"job_id", "j"}}));
    ASSERT_FALSE(r.ok()) << v.expect;
    EXPECT_EQ(r.err().code, http_errc::bad_encoding) << r.err().message;
    EXPECT_NE(r.err().message.find(v.expect), std::string::npos) << r.err().message;
    EXPECT_EQ(r.err().message.rfind("GET /v3/export-items?job_id=j: ", 0), 0u) << r.err().message;
    EXPECT_EQ(r.err().attempts, 1u);
    EXPECT_EQ(es.requests.load(), 1);
  }
}

TEST(http_client_gzip, a_bomb_beyond_the_size_limit_is_response_too_large) {
  constexpr std::size_t limit = 1 << 20;
  std::string exact = gzip(std::string(limit, '0'), 9);
  std::string bomb = gzip(std::string(std::size_t{32} << 20, '0'), 9);  // 32 MiB in ~32 kB
  ASSERT_LT(bomb.size(), std::size_t{64} << 10);
  encoded_server es(
      [&](const server_request& req) { return req.target() == "/exact" ? exact : bomb; }, "gzip");
  auto cfg = fast_config(es.srv.url());
  cfg.max_response_bytes = limit;
  auto client = make_client(cfg);
  auto ok = client->request_sync(get("/exact"));  // exactly at the limit: fine
  ASSERT_TRUE(ok.ok()) << ok.err().message;
  EXPECT_EQ(ok->body.size(), limit);
  auto r = client->request_sync(get("/bomb"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, http_errc::response_too_large);
  EXPECT_NE(r.err().message.find("decoded gzip body exceeds the limit of 1048576 bytes"),
            std::string::npos)
      << r.err().message;
  EXPECT_EQ(r.err().attempts, 1u);
  EXPECT_EQ(es.requests.load(), 2);
}

TEST(http_client, in_flight_limit_and_connection_pool_are_respected) {
  std::atomic<int> active{0}, peak{0}, requests{0};
  script_server srv([&](tcp::socket& s, int) {
    beast::flat_buffer buf;
    while (read_request(s, buf)) {
      auto now = ++active;
      for (int p = peak.load(); now > p && !peak.compare_exchange_weak(p, now);) {
      }
      std::this_thread::sleep_for(20ms);
      --active;
      ++requests;
      respond(s, 200, "{}");
    }
  });
  auto cfg = fast_config(srv.url());
  cfg.max_connections = 8;
  cfg.max_in_flight = 2;
  cfg.io_threads = 2;
  auto client = make_client(cfg);
  constexpr int n = 24;
  std::vector<std::future<http_result<response>>> futures;
  std::vector<std::promise<http_result<response>>> promises(n);
  for (int i = 0; i < n; ++i) {
    futures.push_back(promises[i].get_future());
    client->async_request(get("/x"), [&promises, i](http_result<response> r) {
      promises[i].set_value(std::move(r));
    });
  }
  for (auto& f : futures)
    EXPECT_TRUE(f.get().ok());
  EXPECT_EQ(requests.load(), n);
  EXPECT_LE(peak.load(), 2);
  EXPECT_LE(client->stats().peak_in_flight, 2u);
  EXPECT_LE(srv.connections(), 2);  // no more connections than attempts on the wire
}

TEST(http_client, connection_pool_caps_connections) {
  std::atomic<int> requests{0};
  script_server srv([&](tcp::socket& s, int) {
    beast::flat_buffer buf;
    while (read_request(s, buf)) {
      std::this_thread::sleep_for(5ms);
      ++requests;
      respond(s, 200, "{}");
    }
  });
  auto cfg = fast_config(srv.url());
  cfg.max_connections = 3;
  cfg.io_threads = 2;
  auto client = make_client(cfg);
  constexpr int n = 60;
  std::atomic<int> ok{0};
  std::promise<void> all;
  std::atomic<int> left{n};
  for (int i = 0; i < n; ++i)
    client->async_request(get("/x"), [&](http_result<response> r) {
      if (r.ok()) ++ok;
      if (--left == 0) all.set_value();
    });
  all.get_future().wait();
  EXPECT_EQ(ok.load(), n);
  EXPECT_LE(srv.connections(), 3);
  EXPECT_EQ(client->stats().connections_opened, static_cast<std::uint64_t>(srv.connections()));
}

TEST(http_client, rate_budget_spaces_attempts) {
  std::atomic<int> requests{0};
  script_server srv(serve_ok(&requests));
  auto cfg = fast_config(srv.url());
  cfg.requests_per_second = 40;
  cfg.rate_burst = 1;
  auto client = make_client(cfg);
  constexpr int n = 9;
  auto start = std::chrono::steady_clock::now();
  std::vector<std::promise<bool>> done(n);
  for (int i = 0; i < n; ++i)
    client->async_request(get("/x"),
                          [&done, i](http_result<response> r) { done[i].set_value(r.ok()); });
  for (auto& d : done)
    EXPECT_TRUE(d.get_future().get());
  // With a bucket of 1 at 40/s, 9 attempts cannot finish before 8/40 s (a lower bound only).
  EXPECT_GE(std::chrono::steady_clock::now() - start, 190ms);
  EXPECT_EQ(requests.load(), n);
}

TEST(http_client, waits_that_would_pass_the_deadline_end_the_request_early) {
  // A Retry-After beyond the request's deadline (the job's): give up now instead of sleeping
  // into it; the failure is transient (a later run may try again).
  script_server srv([](tcp::socket& s, int) {
    beast::flat_buffer buf;
    while (read_request(s, buf))
      respond(s, 503, "{}", true, {{"Retry-After", "5"}});
  });
  auto cfg = fast_config(srv.url());
  cfg.request_timeout = 1s;
  cfg.retry_after_cap = 60s;
  auto client = make_client(cfg);
  auto req = get("/x");
  req.not_after = std::chrono::system_clock::now() + 1s;
  auto r = client->request_sync(req);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, http_errc::retries_exhausted);
  EXPECT_TRUE(r.err().transient());
  EXPECT_NE(r.err().message.find("reaches past the request's deadline"), std::string::npos)
      << r.err().message;
  EXPECT_EQ(r.err().cause, http_errc::http_status);
  EXPECT_EQ(r.err().status, 503u);
  EXPECT_EQ(r.err().attempts, 1u);
  EXPECT_EQ(client->stats().retry_wait_ms, 0u);

  // Waiting for the rate budget counts against the deadline too.
  script_server ok_srv(serve_ok());
  auto slow = fast_config(ok_srv.url());
  slow.requests_per_second = 0.5;
  slow.request_timeout = 300ms;
  auto limited = make_client(slow);
  std::vector<std::promise<http_result<response>>> done(3);
  for (auto& d : done)
    limited->async_request(get("/x"),
                           [&d](http_result<response> res) { d.set_value(std::move(res)); });
  int ok = 0, timed_out = 0;
  for (auto& d : done) {
    auto res = d.get_future().get();
    if (res.ok())
      ++ok;
    else if (res.err().code == http_errc::timeout && res.err().attempts == 0)
      ++timed_out;
  }
  EXPECT_EQ(ok, 1);
  EXPECT_EQ(timed_out, 2);
}

TEST(http_client, stop_cancels_outstanding_requests) {
  std::atomic<int> requests{0};
  script_server srv([&](tcp::socket& s, int) {
    beast::flat_buffer buf;
    while (read_request(s, buf))
      ++requests;  // never answers
  });
  auto cfg = fast_config(srv.url());
  cfg.max_connections = 2;  // some requests wait in the queue, some are on the wire
  auto client = make_client(cfg);
  constexpr int n = 6;
  std::mutex m;
  std::vector<http_errc> codes;
  for (int i = 0; i < n; ++i)
    client->async_request(get("/x"), [&](http_result<response> r) {
      std::lock_guard<std::mutex> lock(m);
      codes.push_back(r.ok() ? http_errc::invalid_config : r.err().code);
    });
  for (int i = 0; i < 500 && requests.load() < 2; ++i)
    std::this_thread::sleep_for(5ms);
  ASSERT_EQ(requests.load(), 2);
  client->stop();
  {
    std::lock_guard<std::mutex> lock(m);
    ASSERT_EQ(codes.size(), static_cast<std::size_t>(n));
    for (auto c : codes)
      EXPECT_EQ(c, http_errc::cancelled);
  }
  client->stop();  // idempotent
  auto late = client->request_sync(get("/late"));
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.err().code, http_errc::cancelled);
  EXPECT_EQ(client->stats().failed, static_cast<std::uint64_t>(n + 1));
}

TEST(http_client, stop_from_a_handler_does_not_deadlock) {
  script_server srv(serve_ok());
  auto client = make_client(fast_config(srv.url()));
  std::promise<void> stopped;
  client->async_request(get("/x"), [&](http_result<response>) {
    client->stop();  // on an io thread: cancels, does not wait for itself
    stopped.set_value();
  });
  stopped.get_future().wait();
  auto late = client->request_sync(get("/late"));
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.err().code, http_errc::cancelled);
  client.reset();  // the destructor's stop() returns; the threads end on their own
}

TEST(http_client, request_sync_on_an_io_thread_is_refused) {
  script_server srv(serve_ok());
  auto client = make_client(fast_config(srv.url()));
  std::promise<http_errc> inner;
  client->async_request(get("/x"), [&](http_result<response>) {
    auto r = client->request_sync(get("/y"));
    inner.set_value(r.ok() ? http_errc::cancelled : r.err().code);
  });
  EXPECT_EQ(inner.get_future().get(), http_errc::invalid_config);
}

TEST(http_client, many_concurrent_requests_over_two_threads) {
  std::atomic<int> requests{0};
  script_server srv(serve_ok(&requests));
  auto cfg = fast_config(srv.url());
  cfg.io_threads = 2;
  auto client = make_client(cfg);
  constexpr int n = 400;
  std::atomic<int> ok{0}, left{n};
  std::promise<void> all;
  for (int i = 0; i < n; ++i)
    client->async_request(get("/x", {{"i", std::to_string(i)}}), [&](http_result<response> r) {
      if (r.ok()) ++ok;
      if (--left == 0) all.set_value();
    });
  all.get_future().wait();
  EXPECT_EQ(ok.load(), n);
  EXPECT_LE(client->stats().connections_opened, 4u);
  EXPECT_EQ(client->stats().attempts, static_cast<std::uint64_t>(n));
}

// --- TLS -----------------------------------------------------------------------------------

/// A CA and two server certificates (one for 127.0.0.1/localhost, one for wrong.example)
/// made with the openssl command line in a temporary directory, removed afterwards.
class tls_files {
 public:
  tls_files() {
    dir_ = std::filesystem::temp_directory_path() /
           ("ei-http-tls-" + std::to_string(::getpid()) + "-" +
            std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
    std::filesystem::create_directories(dir_);
    auto d = dir_.string();
    std::ofstream(dir_ / "good.ext") << "subjectAltName=IP:127.0.0.1,DNS:localhost\n";
    std::ofstream(dir_ / "wrong.ext") << "subjectAltName=DNS:wrong.example\n";
    std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes ";
    std::string cmd =
        "(cd '" + d + "' && openssl req -x509" + ec +
        "-keyout ca.key -out ca.pem -days 2 -subj /CN=ei-test-ca"
        " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=keyCertSign,cRLSign" +
        " && for n in good wrong; do openssl req" + ec +
        "-keyout $n.key -out $n.csr -subj /CN=$n && openssl x509 -req -in $n.csr -CA ca.pem "
        "-CAkey ca.key -CAcreateserial -out $n.pem -days 2 -extfile $n.ext || exit 1; done)"
        " >/dev/null 2>&1";
    ok_ = std::system(cmd.c_str()) == 0;
  }
  ~tls_files() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  bool ok() const { return ok_; }
  std::string path(const char* name) const { return (dir_ / name).string(); }

 private:
  std::filesystem::path dir_;
  bool ok_ = false;
};

/// Serves 200 over TLS with the given certificate; counts handshakes that succeeded.
script_server::script serve_tls(ssl::context& ctx, std::atomic<int>& handshakes) {
  return [&ctx, &handshakes](tcp::socket& s, int) {
    beast::ssl_stream<tcp::socket&> tls(s, ctx);
    boost::system::error_code ec;
    tls.handshake(ssl::stream_base::server, ec);
    if (ec) return;
    ++handshakes;
    beast::flat_buffer buf;
    while (read_request(tls, buf))
      respond(tls, 200, R"({"tls":true})");
  };
}

ssl::context server_context(const tls_files& files, const char* name) {
  ssl::context ctx(ssl::context::tls_server);
  ctx.use_certificate_chain_file(files.path((std::string(name) + ".pem").c_str()));
  ctx.use_private_key_file(files.path((std::string(name) + ".key").c_str()), ssl::context::pem);
  return ctx;
}

TEST(http_client_tls, verifies_chain_and_host_name) {
  tls_files files;
  ASSERT_TRUE(files.ok()) << "openssl could not generate the test certificates";
  auto good_ctx = server_context(files, "good");
  auto wrong_ctx = server_context(files, "wrong");
  std::atomic<int> good_handshakes{0}, wrong_handshakes{0};
  script_server good(serve_tls(good_ctx, good_handshakes));
  script_server wrong(serve_tls(wrong_ctx, wrong_handshakes));
  auto https = [](const script_server& s, const char* host) {
    return "https://" + std::string(host) + ":" + std::to_string(s.port());
  };

  // Trusted CA, IP SAN: works, keep-alive over TLS.
  {
    auto cfg = fast_config(https(good, "127.0.0.1"));
    cfg.ca_file = files.path("ca.pem");
    auto client = make_client(cfg);
    for (int i = 0; i < 5; ++i) {
      auto r = client->request_sync(get("/v3/export-jobs"));
      ASSERT_TRUE(r.ok()) << r.err().message;
      EXPECT_EQ(r->body, R"({"tls":true})");
    }
    EXPECT_EQ(client->stats().connections_opened, 1u);
  }
  // Trusted CA, DNS name (resolver + SNI path).
  {
    auto cfg = fast_config(https(good, "localhost"));
    cfg.ca_file = files.path("ca.pem");
    auto client = make_client(cfg);
    auto r = client->request_sync(get("/x"));
    ASSERT_TRUE(r.ok()) << r.err().message;
  }
  // The system store does not know the test CA: tls_failed, one attempt.
  {
    auto client = make_client(fast_config(https(good, "127.0.0.1")));
    auto r = client->request_sync(get("/x"));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.err().code, http_errc::tls_failed) << r.err().message;
    EXPECT_EQ(r.err().attempts, 1u);
    EXPECT_FALSE(r.err().transient());
    expect_no_secret(r.err());
  }
  // Trusted chain, wrong name: tls_failed.
  {
    auto cfg = fast_config(https(wrong, "127.0.0.1"));
    cfg.ca_file = files.path("ca.pem");
    auto client = make_client(cfg);
    auto r = client->request_sync(get("/x"));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.err().code, http_errc::tls_failed) << r.err().message;
    EXPECT_EQ(r.err().attempts, 1u);
    EXPECT_NE(r.err().message.find("does not match host name"), std::string::npos)
        << r.err().message;
  }
  EXPECT_EQ(wrong_handshakes.load(), 0);
  // A plain-HTTP server behind an https URL is a TLS failure too, not a retry loop.
  {
    script_server plain([](tcp::socket& s, int) {
      std::array<char, 512> hello{};
      boost::system::error_code ec;
      s.read_some(net::buffer(hello), ec);
      write_raw(s, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    });
    auto cfg = fast_config(https(plain, "127.0.0.1"));
    cfg.ca_file = files.path("ca.pem");
    auto client = make_client(cfg);
    auto r = client->request_sync(get("/x"));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.err().code, http_errc::tls_failed) << r.err().message;
  }
}

// --- against the simulator -----------------------------------------------------------------

constexpr const char* sim_token = "oauth-access-token-for-tests";

std::unique_ptr<ei::sim::simulator> start_sim(ei::sim::sim_config c = {}) {
  c.api_key = secret_key;
  c.access_token = sim_token;
  c.jobs = 2;
  c.items_per_job = 50;
  auto s = ei::sim::simulator::start(std::move(c));
  EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.err().message);
  return s.ok() ? std::move(s.value()) : nullptr;
}

TEST(http_client_sim, the_client_discovers_the_rate_limit_of_its_credential) {
  // The simulator admits 100 requests/s (burst 10) per credential; the client does not know
  // it. After the first 429s every request of the client slows down (not only the one that
  // got a 429): the rate it keeps to settles below the limit and 429s stay a small share.
  // Bounds are loose on purpose (shared CI cores); the benchmark measures the real figures.
  ei::sim::sim_config c;
  c.rate_limit = 100;
  c.rate_burst = 10;
  auto sim = start_sim(c);
  ASSERT_TRUE(sim);
  auto cfg = fast_config(sim->base_url());
  cfg.max_in_flight = 16;
  cfg.max_attempts = 10;
  auto client = make_client(cfg);
  constexpr int n = 300;
  std::atomic<int> ok{0}, left{n};
  std::promise<void> all;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i)
    client->async_request(get("/v3/export-jobs", {{"limit", "1"}}), [&](http_result<response> r) {
      if (r.ok()) ++ok;
      if (--left == 0) all.set_value();
    });
  ASSERT_EQ(all.get_future().wait_for(30s), std::future_status::ready);
  auto took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(ok.load(), n);
  auto st = client->stats();
  EXPECT_GT(st.throttled, 0u);  // the limit was found by hitting it
  EXPECT_EQ(st.throttled, sim->stats().throttled);
  EXPECT_GT(st.discovered_rate, 0.0);
  EXPECT_LE(st.discovered_rate, 100.0 * 1.1);
  EXPECT_LT(st.throttled, static_cast<std::uint64_t>(n) / 5) << "429s: " << st.throttled;
  EXPECT_GE(took, (n - 10) / 100.0 * 0.9);  // the limit holds: no faster than it allows
}

TEST(http_client_sim, a_rate_guessed_from_a_429_in_the_first_milliseconds_grows_back) {
  // A throttled answer right after the first response: one request admitted "in the last
  // second" is a fast server seen for a few milliseconds, not a limit of one request a second.
  // The client may start from that guess, but requests sent one after another (a job's pages)
  // must then raise it quickly; before, they never queued behind each other, so the rate
  // never grew and a whole run kept to ~1 request/s.
  auto sim = start_sim();
  ASSERT_TRUE(sim);
  auto client = make_client(fast_config(sim->base_url()));
  ASSERT_TRUE(client->request_sync(get("/v3/export-jobs", {{"limit", "1"}})).ok());
  ASSERT_TRUE(sim->set_faults("jobs:throttle=0@nth=1").ok());
  auto until = std::chrono::steady_clock::now() + 10s;  // bounds the failing case
  int sent = 0;
  while (sent < 60 && std::chrono::steady_clock::now() < until) {
    ASSERT_TRUE(client->request_sync(get("/v3/export-jobs", {{"limit", "1"}})).ok());
    ++sent;
    auto rate = client->stats().discovered_rate;
    if (rate == 0 || rate > 20.0) break;  // no rate kept, or one well past the guess
  }
  auto st = client->stats();
  EXPECT_EQ(st.throttled, 1u);
  EXPECT_TRUE(st.discovered_rate == 0 || st.discovered_rate > 20.0)
      << "after " << sent << " requests the client still keeps to " << st.discovered_rate
      << " requests/s";
}

/// Requests one after another until the simulator has issued `tokens` tokens (bounded);
/// every one must succeed although the token they started with expired meanwhile.
void request_across_rotations(http_client& client, ei::sim::simulator& sim, std::uint64_t tokens) {
  auto until = std::chrono::steady_clock::now() + 10s;
  int n = 0;
  while (sim.stats().tokens_issued < tokens && std::chrono::steady_clock::now() < until) {
    auto r = client.request_sync(get("/v3/export-jobs", {{"limit", "1"}}));
    ASSERT_TRUE(r.ok()) << "request " << n << ": " << r.err().message;
    ++n;
  }
  EXPECT_GE(sim.stats().tokens_issued, tokens);
}

TEST(http_client_sim, a_token_file_is_followed_across_rotations) {
  auto dir =
      std::filesystem::temp_directory_path() / ("ei-http-token-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto file = (dir / "token").string();
  ei::sim::sim_config c;
  c.token_lifetime_ms = 200;
  c.token_file = file;
  auto sim = start_sim(c);
  ASSERT_TRUE(sim);
  {
    // From the file: re-read when it changes (and after a 401).
    auto cr = credentials::from_token_file(file);
    ASSERT_TRUE(cr.ok()) << cr.err().message;
    EXPECT_EQ(cr->describe().find("simtok-"), std::string::npos);
    auto client = make_client(fast_config(sim->base_url()), cr.value());
    request_across_rotations(*client, *sim, 4);
  }
  {
    // From a command, run again after a 401.
    auto cr = credentials::from_token_command("cat '" + file + "'");
    ASSERT_TRUE(cr.ok()) << cr.err().message;
    auto client = make_client(fast_config(sim->base_url()), cr.value());
    request_across_rotations(*client, *sim, sim->stats().tokens_issued + 3);
  }
  {
    // A command that keeps printing a refused token: the command is run again after the 401,
    // the token did not change, so the 401 is the answer; the token appears nowhere in it.
    auto cr = credentials::from_token_command("echo simtok-refused-0123");
    ASSERT_TRUE(cr.ok());
    auto client = make_client(fast_config(sim->base_url()), cr.value());
    auto r = client->request_sync(get("/v3/export-jobs"));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.err().status, 401u);
    EXPECT_EQ(r.err().attempts, 1u);
    for (const auto* t : {&r.err().message, &r.err().type, &r.err().detail})
      EXPECT_EQ(t->find("simtok-refused"), std::string::npos) << *t;
  }
  auto failing = credentials::from_token_command("echo secret-in-stdout; exit 3");
  ASSERT_FALSE(failing.ok());
  EXPECT_NE(failing.err().message.find("exit status 3"), std::string::npos);
  EXPECT_EQ(failing.err().message.find("secret-in-stdout"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(http_client_sim, basic_and_bearer_accepted_wrong_key_is_401) {
  auto sim = start_sim();
  ASSERT_TRUE(sim);
  for (auto cr : {test_key(), credentials::from_access_token(sim_token).value()}) {
    auto client = make_client(fast_config(sim->base_url()), cr);
    auto r = client->request_sync(get("/v3/export-jobs", {{"limit", "1"}}));
    ASSERT_TRUE(r.ok()) << r.err().message;
    EXPECT_EQ(r->status, 200u);
    EXPECT_NE(r->body.find("\"data\""), std::string::npos);
  }
  auto wrong = credentials::from_api_key("sk-test-WRONG-key").value();
  auto client = make_client(fast_config(sim->base_url()), wrong);
  auto r = client->request_sync(get("/v3/export-jobs"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, http_errc::http_status);
  EXPECT_EQ(r.err().status, 401u);
  EXPECT_EQ(r.err().type, "UNAUTHORIZED");
  EXPECT_EQ(r.err().attempts, 1u);
  EXPECT_EQ(r.err().message.find("sk-test-WRONG-key"), std::string::npos) << r.err().message;
  EXPECT_EQ(sim->stats().unauthorized, 1u);
}

TEST(http_client_sim, unknown_job_is_a_typed_404) {
  auto sim = start_sim();
  ASSERT_TRUE(sim);
  auto client = make_client(fast_config(sim->base_url()));
  auto r = client->request_sync(get("/v3/export-jobs/00000000-0000-4000-8000-000000000000"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, http_errc::http_status);
  EXPECT_EQ(r.err().status, 404u);
  EXPECT_EQ(r.err().type, "EXPORT_NOT_FOUND") << r.err().message;
  EXPECT_EQ(sim->request_log().size(), 1u);
}

TEST(http_client_sim, keep_alive_over_one_connection) {
  auto sim = start_sim();
  ASSERT_TRUE(sim);
  auto job = sim->jobs().front().id.to_string();
  auto client = make_client(fast_config(sim->base_url()));
  constexpr int n = 300;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    auto r = client->request_sync(get("/v3/export-jobs/" + job + "/items", {{"limit", "10"}}));
    ASSERT_TRUE(r.ok()) << r.err().message;
  }
  std::chrono::duration<double> dt = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(client->stats().connections_opened, 1u);
  EXPECT_EQ(sim->request_log().size(), static_cast<std::size_t>(n));
  EXPECT_EQ(sim->request_log().back().target, "/v3/export-jobs/" + job + "/items?limit=10");
  std::printf("[ figure ] %d sequential keep-alive requests: %.0f requests/s\n", n, n / dt.count());
}

TEST(http_client_sim, concurrent_requests_over_the_pool) {
  auto sim = start_sim();
  ASSERT_TRUE(sim);
  auto job = sim->jobs().front().id.to_string();
  auto cfg = fast_config(sim->base_url());
  cfg.max_connections = 4;
  auto client = make_client(cfg);
  constexpr int n = 1000;
  std::atomic<int> ok{0}, left{n};
  std::promise<void> all;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i)
    client->async_request(get("/v3/export-jobs/" + job + "/items", {{"limit", "10"}}),
                          [&](http_result<response> r) {
                            if (r.ok()) ++ok;
                            if (--left == 0) all.set_value();
                          });
  all.get_future().wait();
  std::chrono::duration<double> dt = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(ok.load(), n);
  EXPECT_LE(client->stats().connections_opened, 4u);
  EXPECT_EQ(sim->request_log().size(), static_cast<std::size_t>(n));
  std::printf("[ figure ] %d requests over 4 keep-alive connections: %.0f requests/s\n", n,
              n / dt.count());
}

TEST(http_client_sim, injected_faults_are_retried) {
  auto sim = start_sim();
  ASSERT_TRUE(sim);
  auto cfg = fast_config(sim->base_url());
  cfg.max_attempts = 4;
  auto client = make_client(cfg);
  struct plan {
    const char* faults;
    std::uint32_t attempts;  // as the client counts them
    std::size_t served;      // requests the simulator saw
  };
  // A reset before any response byte on a reused keep-alive connection looks exactly like
  // a stale connection, so it is repeated on a fresh one without counting an attempt (the
  // server did see it twice: the reason POSTs must be safe to repeat, see http_client.hpp).
  for (auto p : {plan{"jobs:status=503@nth=1,2", 3, 3}, plan{"jobs:status=500@once", 2, 2},
                 plan{"jobs:throttle@once", 2, 2}, plan{"jobs:reset@once", 1, 2},
                 plan{"jobs:reset_mid_body@once", 2, 2}, plan{"jobs:truncate@once", 2, 2}}) {
    ASSERT_TRUE(sim->set_faults(p.faults).ok()) << p.faults;
    sim->clear_request_log();
    auto r = client->request_sync(get("/v3/export-jobs"));
    ASSERT_TRUE(r.ok()) << p.faults << ": " << r.err().message;
    EXPECT_EQ(r->attempts, p.attempts) << p.faults;
    EXPECT_EQ(sim->request_log().size(), p.served) << p.faults;
  }
  EXPECT_EQ(client->stats().stale_retries, 1u);

  ASSERT_TRUE(sim->set_faults("jobs:throttle=1@once").ok());
  auto r = client->request_sync(get("/v3/export-jobs"));
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->waited, 1000ms);

  ASSERT_TRUE(sim->set_faults("jobs:status=502@all").ok());
  auto bad = client->request_sync(get("/v3/export-jobs"));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.err().code, http_errc::retries_exhausted);
  EXPECT_EQ(bad.err().status, 502u);
  EXPECT_EQ(bad.err().type, "SIMULATED_FAULT");
  EXPECT_EQ(bad.err().attempts, 4u);

  ASSERT_TRUE(sim->set_faults("jobs:status=422@all").ok());
  auto unprocessable = client->request_sync(get("/v3/export-jobs"));
  ASSERT_FALSE(unprocessable.ok());
  EXPECT_EQ(unprocessable.err().code, http_errc::http_status);
  EXPECT_EQ(unprocessable.err().attempts, 1u);
}

TEST(http_client_sim, https_with_a_generated_ca) {
  tls_files files;
  ASSERT_TRUE(files.ok());
  ei::sim::sim_config c;
  c.tls_cert_file = files.path("good.pem");
  c.tls_key_file = files.path("good.key");
  auto sim = start_sim(c);
  ASSERT_TRUE(sim);
  ASSERT_EQ(sim->base_url().rfind("https://", 0), 0u) << sim->base_url();
  auto cfg = fast_config(sim->base_url());
  cfg.ca_file = files.path("ca.pem");
  auto client = make_client(cfg);
  for (int i = 0; i < 3; ++i) {
    auto r = client->request_sync(get("/v3/export-jobs"));
    ASSERT_TRUE(r.ok()) << r.err().message;
  }
  EXPECT_EQ(client->stats().connections_opened, 1u);
  auto untrusted = make_client(fast_config(sim->base_url()));
  auto r = untrusted->request_sync(get("/v3/export-jobs"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, http_errc::tls_failed);
}

}  // namespace
