#include "api/http_client.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <deque>
#include <future>
#include <limits>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_set>

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <zlib.h>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <nlohmann/json.hpp>

#include "api/retry.hpp"

namespace ei::api {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;
using clock_type = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::string_view to_string(http_errc c) noexcept {
  switch (c) {
    case http_errc::invalid_url:
      return "invalid_url";
    case http_errc::invalid_config:
      return "invalid_config";
    case http_errc::connect_failed:
      return "connect_failed";
    case http_errc::tls_failed:
      return "tls_failed";
    case http_errc::timeout:
      return "timeout";
    case http_errc::connection_reset:
      return "connection_reset";
    case http_errc::truncated_body:
      return "truncated_body";
    case http_errc::response_too_large:
      return "response_too_large";
    case http_errc::http_status:
      return "http_status";
    case http_errc::retries_exhausted:
      return "retries_exhausted";
    case http_errc::cancelled:
      return "cancelled";
    case http_errc::bad_encoding:
      return "bad_encoding";
  }
  return "unknown";
}

bool http_failure::transient() const noexcept {
  switch (code) {
    case http_errc::retries_exhausted:
    case http_errc::timeout:
    case http_errc::connect_failed:
    case http_errc::connection_reset:
    case http_errc::truncated_body:
      return true;
    default:
      return false;
  }
}

std::string request::describe() const {
  static constexpr std::size_t max_len = 300;
  std::string d = method == verb::get ? "GET " : method == verb::post ? "POST " : "PUT ";
  d += path;
  if (!query.empty()) d += "?" + encode_query(query);
  if (d.size() > max_len) {
    d.resize(max_len);
    d += "...";
  }
  return d;
}

namespace {

constexpr std::size_t simdjson_padding = 64;  // SIMDJSON_PADDING, without the header

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t'))
    v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t'))
    v.remove_suffix(1);
  return v;
}

/// Inflates the gzip stream `in` (one or more members, RFC 1952) into `out`, producing at most
/// `limit` bytes: memory stays bounded by the limit whatever the ratio (a "gzip bomb" stops at
/// limit + 1 bytes). Returns the empty string, or why it failed; `too_large` is set when the
/// limit was the reason.
std::string gunzip(std::string_view in, std::size_t limit, std::string& out, bool& too_large) {
  too_large = false;
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 16) != Z_OK) return "zlib could not start inflating";
  struct end_guard {
    z_stream* z;
    ~end_guard() { inflateEnd(z); }
  } guard{&zs};
  constexpr std::size_t chunk_max = std::numeric_limits<uInt>::max();
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  std::size_t in_left = in.size();
  out.clear();
  out.resize(std::min(limit + 1, std::max<std::size_t>(in.size() * 8, 16384)));
  std::size_t total = 0;
  for (;;) {
    if (total == out.size()) {
      if (total > limit) break;
      out.resize(std::min(limit + 1, out.size() * 2));
    }
    auto in_chunk = static_cast<uInt>(std::min(in_left, chunk_max));
    auto out_chunk = static_cast<uInt>(std::min(out.size() - total, chunk_max));
    zs.avail_in = in_chunk;
    zs.next_out = reinterpret_cast<Bytef*>(out.data() + total);
    zs.avail_out = out_chunk;
    int rc = inflate(&zs, Z_NO_FLUSH);
    in_left -= in_chunk - zs.avail_in;
    total += out_chunk - zs.avail_out;
    if (total > limit) break;
    if (rc == Z_STREAM_END) {
      if (in_left == 0) {
        out.resize(total);
        out.reserve(total + simdjson_padding);
        return {};
      }
      if (inflateReset(&zs) != Z_OK) return "zlib could not restart inflating";
      continue;  // another gzip member follows (trailing garbage fails its header check)
    }
    if (rc == Z_BUF_ERROR && in_left == 0)
      return "gzip stream ends early (" + std::to_string(in.size()) + " compressed bytes)";
    if (rc != Z_OK && rc != Z_BUF_ERROR)
      return "corrupt gzip stream at compressed byte " + std::to_string(in.size() - in_left) +
             ": " + (zs.msg ? zs.msg : "zlib error " + std::to_string(rc));
  }
  too_large = true;
  out.clear();
  return "decoded gzip body exceeds the limit of " + std::to_string(limit) + " bytes";
}
constexpr std::uint32_t header_limit = 64 * 1024;
/// Capacity kept in a connection's read buffer. Beast reads max(512, free capacity) bytes per
/// read_some (capped at 64 KiB); an empty flat_buffer stays at 512 and a 200 KB page took ~400
/// reads (and as many timer and socket syscalls).
constexpr std::size_t read_buffer_bytes = 64 * 1024;

milliseconds remaining(clock_type::time_point deadline) {
  auto r = std::chrono::duration_cast<milliseconds>(deadline - clock_type::now());
  return std::max(r, milliseconds{1});
}

/// ExceptionInfo {"type": ..., "message": ...}; anything else leaves both empty.
void parse_error_body(std::string_view body, std::string& type, std::string& message) {
  auto j = nlohmann::json::parse(body.begin(), body.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return;
  if (auto it = j.find("type"); it != j.end() && it->is_string()) type = it->get<std::string>();
  if (auto it = j.find("message"); it != j.end() && it->is_string())
    message = it->get<std::string>();
  static constexpr std::size_t max_detail = 500;
  if (message.size() > max_detail) message.resize(max_detail);
  if (type.size() > max_detail) type.resize(max_detail);
}

enum class phase : std::uint8_t { resolve, connect, handshake, write, read_header, read_body };

std::string_view to_string(phase p) {
  switch (p) {
    case phase::resolve:
      return "resolving the host";
    case phase::connect:
      return "connecting";
    case phase::handshake:
      return "TLS handshake";
    case phase::write:
      return "sending the request";
    case phase::read_header:
      return "reading the response header";
    case phase::read_body:
      return "reading the response body";
  }
  return "?";
}

/// What one exchange on a connection produced.
struct exchange_outcome {
  beast::error_code ec;
  phase where = phase::resolve;
  bool got_bytes = false;  // any part of a response arrived
  std::string tls_detail;  // certificate verification result, when the handshake failed
  unsigned status = 0;
  std::string body;
  std::string retry_after;
  bool keep_alive = false;
  std::size_t bytes = 0;
  http_errc decode_code = http_errc::bad_encoding;  // meaningful when decode_error is set
  std::string decode_error;  // the Content-Encoding could not be decoded: why (body cleared)
};

struct endpoint_info {
  base_url url;
  std::string port_text;
  milliseconds connect_timeout;
  milliseconds io_timeout;
  std::size_t max_body;
};

/// One keep-alive connection. All socket work runs on the connection's own strand; the owner
/// (the client's bookkeeping strand) hands it one exchange at a time.
class connection : public std::enable_shared_from_this<connection> {
 public:
  using done_fn = std::function<void(exchange_outcome)>;

  connection(net::io_context& ioc, ssl::context* tls, const endpoint_info& ep)
      : strand_(net::make_strand(ioc)),
        ep_(ep),
        resolver_(strand_),
        resolve_timer_(strand_),
        body_timer_(strand_) {
    buffer_.reserve(read_buffer_bytes);
    if (tls)
      tls_ = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(strand_, *tls);
    else
      tcp_ = std::make_unique<beast::tcp_stream>(strand_);
  }

  /// Sends `req` (connecting first if needed) and reads the response. `done` runs on the
  /// connection's strand, exactly once.
  void async_exchange(std::shared_ptr<const http::request<http::string_body>> req,
                      clock_type::time_point deadline, done_fn done) {
    net::post(strand_, [self = shared_from_this(), req = std::move(req), deadline,
                        done = std::move(done)]() mutable {
      self->req_ = std::move(req);
      self->deadline_ = deadline;
      self->done_ = std::move(done);
      self->out_ = exchange_outcome{};
      if (self->closed_) return self->fail(net::error::operation_aborted, phase::write);
      if (self->connected_) return self->write();
      self->resolve();
    });
  }

  /// Closes the socket; a running exchange completes with operation_aborted.
  void close() {
    net::post(strand_, [self = shared_from_this()] { self->close_now(); });
  }

  bool connected_once() const noexcept { return opened_.load(std::memory_order_relaxed); }

 private:
  beast::tcp_stream& lowest() { return tls_ ? beast::get_lowest_layer(*tls_) : *tcp_; }

  template <class F>
  void with_stream(F&& f) {
    if (tls_)
      f(*tls_);
    else
      f(*tcp_);
  }

  milliseconds op_timeout(milliseconds limit) const {
    return std::min(limit, remaining(deadline_));
  }

  void close_now() {
    closed_ = true;
    connected_ = false;
    resolver_.cancel();
    resolve_timer_.cancel();
    body_timer_.cancel();
    beast::error_code ec;
    lowest().socket().shutdown(tcp::socket::shutdown_both, ec);
    lowest().close();
  }

  void resolve() {
    out_.where = phase::resolve;
    boost::system::error_code ec;
    auto addr = net::ip::make_address(ep_.url.host, ec);
    if (!ec) {
      std::vector<tcp::endpoint> eps{tcp::endpoint(addr, ep_.url.port)};
      return connect(eps);
    }
    resolve_timed_out_ = false;
    resolve_timer_.expires_after(op_timeout(ep_.connect_timeout));
    resolve_timer_.async_wait([self = shared_from_this()](beast::error_code tec) {
      if (tec) return;
      self->resolve_timed_out_ = true;
      self->resolver_.cancel();
    });
    resolver_.async_resolve(
        ep_.url.host, ep_.port_text,
        [self = shared_from_this()](beast::error_code rec, tcp::resolver::results_type results) {
          self->resolve_timer_.cancel();
          if (self->resolve_timed_out_) rec = beast::error::timeout;
          if (rec) return self->fail(rec, phase::resolve);
          std::vector<tcp::endpoint> eps;
          for (const auto& r : results)
            eps.push_back(r.endpoint());
          self->connect(eps);
        });
  }

  void connect(const std::vector<tcp::endpoint>& eps) {
    out_.where = phase::connect;
    lowest().expires_after(op_timeout(ep_.connect_timeout));
    lowest().async_connect(eps,
                           [self = shared_from_this()](beast::error_code ec, const tcp::endpoint&) {
                             if (ec) return self->fail(ec, phase::connect);
                             self->opened_ = true;
                             if (self->tls_) return self->handshake();
                             self->connected_ = true;
                             self->write();
                           });
  }

  void handshake() {
    out_.where = phase::handshake;
    auto* native = tls_->native_handle();
    if (!ep_.url.host_is_ip()) {
      // SSL_set_tlsext_host_name is a macro with a C cast; this is its expansion.
      SSL_ctrl(native, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
               const_cast<char*>(ep_.url.host.c_str()));
    }
    // Chain verification is OpenSSL's; the name check is asio's. Remember which one said no,
    // because a failing callback only leaves "unspecified" in the verify result.
    tls_->set_verify_callback([this, check = ssl::host_name_verification(ep_.url.host)](
                                  bool preverified, ssl::verify_context& ctx) mutable {
      bool ok = check(preverified, ctx);
      if (preverified && !ok) name_mismatch_ = true;
      return ok;
    });
    lowest().expires_after(op_timeout(ep_.connect_timeout));
    tls_->async_handshake(
        ssl::stream_base::client, [self = shared_from_this()](beast::error_code ec) {
          if (ec) {
            auto v = SSL_get_verify_result(self->tls_->native_handle());
            if (self->name_mismatch_)
              self->out_.tls_detail =
                  "certificate does not match host name '" + self->ep_.url.host + "'";
            else if (v != X509_V_OK)
              self->out_.tls_detail = X509_verify_cert_error_string(v);
            return self->fail(ec, phase::handshake);
          }
          self->connected_ = true;
          self->write();
        });
  }

  void write() {
    out_.where = phase::write;
    lowest().expires_after(op_timeout(ep_.io_timeout));
    with_stream([this](auto& s) {
      http::async_write(s, *req_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
        if (ec) return self->fail(ec, phase::write);
        self->read_header();
      });
    });
  }

  void read_header() {
    out_.where = phase::read_header;
    parser_.emplace();
    parser_->header_limit(header_limit);
    parser_->body_limit(ep_.max_body);
    lowest().expires_after(op_timeout(ep_.io_timeout));
    with_stream([this](auto& s) {
      http::async_read_header(
          s, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, std::size_t n) {
            self->out_.bytes += n;
            if (n > 0) self->out_.got_bytes = true;
            if (ec) return self->fail(ec, phase::read_header);
            auto& msg = self->parser_->get();
            std::size_t reserve = simdjson_padding;
            if (auto len = self->parser_->content_length(); len && *len <= self->ep_.max_body)
              reserve += static_cast<std::size_t>(*len);
            msg.body().reserve(reserve);
            self->start_body();
          });
    });
  }

  // The body is read without the stream's timeout: Beast arms and cancels its timer around
  // every read_some (a timerfd_settime each time), and a body takes many reads. One watchdog
  // per response instead: it fires at the earliest of (last progress + io_timeout) and the
  // request deadline, re-arms for the rest when bytes came in meanwhile (at most once per
  // io_timeout), and otherwise closes the socket, failing the read with a timeout.
  void start_body() {
    out_.where = phase::read_body;
    lowest().expires_never();
    ++body_generation_;
    body_timed_out_ = false;
    body_progress_ = clock_type::now();
    arm_body_watchdog();
    read_body();
  }

  clock_type::time_point body_deadline() const {
    return std::min(body_progress_ + ep_.io_timeout, deadline_);
  }

  void arm_body_watchdog() {
    body_timer_.expires_at(body_deadline());
    body_timer_.async_wait(
        [self = shared_from_this(), gen = body_generation_](beast::error_code ec) {
          // Cancelled, or a late wake-up of an earlier response on this connection.
          if (ec || gen != self->body_generation_ || !self->parser_) return;
          if (clock_type::now() < self->body_deadline()) return self->arm_body_watchdog();
          self->body_timed_out_ = true;
          self->lowest().close();  // the pending read completes with operation_aborted
        });
  }

  void read_body() {
    if (parser_->is_done()) return finish();
    with_stream([this](auto& s) {
      http::async_read_some(s, buffer_, *parser_,
                            [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                              self->out_.bytes += n;
                              if (self->body_timed_out_)
                                return self->fail(beast::error::timeout, phase::read_body);
                              if (ec) return self->fail(ec, phase::read_body);
                              if (n > 0) self->body_progress_ = clock_type::now();
                              self->read_body();
                            });
    });
  }

  void finish() {
    body_timer_.cancel();
    auto msg = parser_->release();
    parser_.reset();
    out_.status = msg.result_int();
    out_.keep_alive = msg.keep_alive();
    if (auto it = msg.find(http::field::retry_after); it != msg.end())
      out_.retry_after = std::string(it->value());
    out_.body = std::move(msg.body());
    if (auto it = msg.find(http::field::content_encoding); it != msg.end())
      decode(trim(std::string_view(it->value().data(), it->value().size())));
    if (out_.body.capacity() < out_.body.size() + simdjson_padding)
      out_.body.reserve(out_.body.size() + simdjson_padding);
    if (!out_.keep_alive) close_now();
    complete();
  }

  // Content-Encoding (RFC 9110 §8.4): gzip (x-gzip) is inflated here, on the connection's
  // strand, bounded by the body limit; identity is nothing to do; anything else (including a
  // list of codings) is refused rather than handed to a JSON parser as garbage.
  void decode(std::string_view coding) {
    if (coding.empty() || iequals(coding, "identity") || out_.body.empty()) return;
    if (!iequals(coding, "gzip") && !iequals(coding, "x-gzip")) {
      out_.decode_error = "unsupported Content-Encoding '" + std::string(coding.substr(0, 40)) +
                          "' (only gzip is decoded)";
      out_.body.clear();
      return;
    }
    std::string plain;
    bool too_large = false;
    out_.decode_error = gunzip(out_.body, ep_.max_body, plain, too_large);
    if (!out_.decode_error.empty()) {
      out_.decode_code = too_large ? http_errc::response_too_large : http_errc::bad_encoding;
      if (!too_large) out_.decode_error = "response body: " + out_.decode_error;
      out_.body.clear();
      return;
    }
    out_.body = std::move(plain);
  }

  void fail(beast::error_code ec, phase where) {
    body_timer_.cancel();
    out_.ec = ec;
    out_.where = where;
    if (parser_ && parser_->got_some()) out_.got_bytes = true;
    parser_.reset();
    close_now();
    complete();
  }

  void complete() {
    req_.reset();
    auto done = std::move(done_);
    done_ = nullptr;
    if (done) done(std::move(out_));
  }

  net::strand<net::io_context::executor_type> strand_;
  const endpoint_info& ep_;
  tcp::resolver resolver_;
  net::steady_timer resolve_timer_;
  bool resolve_timed_out_ = false;
  bool name_mismatch_ = false;
  std::unique_ptr<beast::tcp_stream> tcp_;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls_;
  beast::flat_buffer buffer_;
  net::steady_timer body_timer_;          // idle watchdog of the body read
  clock_type::time_point body_progress_;  // the body's last read that returned bytes
  std::uint64_t body_generation_ = 0;     // tells a stale watchdog wake-up from the current
  bool body_timed_out_ = false;
  std::optional<http::response_parser<http::string_body>> parser_;
  std::shared_ptr<const http::request<http::string_body>> req_;
  clock_type::time_point deadline_;
  done_fn done_;
  exchange_outcome out_;
  bool connected_ = false;
  bool closed_ = false;
  std::atomic<bool> opened_{false};
};

bool stale_error(const beast::error_code& ec) {
  return ec == http::error::end_of_stream || ec == net::error::eof ||
         ec == net::error::connection_reset || ec == net::error::broken_pipe ||
         ec == net::error::connection_aborted || ec == net::error::not_connected ||
         ec == ssl::error::stream_truncated;
}

}  // namespace

struct http_client::impl : std::enable_shared_from_this<http_client::impl> {
  /// One request across its attempts. Touched only on the bookkeeping strand.
  struct operation {
    request req;
    std::shared_ptr<const http::request<http::string_body>> msg;
    response_handler handler;
    clock_type::time_point deadline;
    std::uint32_t attempts = 0;
    milliseconds waited{0};
    bool done = false;
    bool queued = false;
    bool fresh_only = false;         // after a stale keep-alive: use a new connection
    bool free_pass = false;          // stale retry: no new rate token
    clock_type::time_point sent_at;  // the current attempt's dispatch
    std::uint64_t auth_version = 0;  // the credentials `msg` carries (0: none yet)
    bool auth_retried = false;       // a 401 was retried with fresh credentials once
    std::shared_ptr<connection> conn;
    std::optional<net::steady_timer> timer;
    std::uint64_t timer_gen = 0;
  };
  using op_ptr = std::shared_ptr<operation>;

  struct idle_conn {
    std::shared_ptr<connection> conn;
    clock_type::time_point since;
  };

  struct counters {
    std::atomic<std::uint64_t> requests{0}, succeeded{0}, failed{0}, attempts{0}, retries{0},
        stale_retries{0}, retry_wait_ms{0}, bytes_received{0}, connections_opened{0},
        peak_in_flight{0}, throttled{0}, throttle_pauses{0};
    std::atomic<double> discovered_rate{0};
    std::array<std::atomic<std::uint64_t>, 6> by_class{};
  };

  // Declaration order is destruction order in reverse: the pool goes before the io_context,
  // which goes before the TLS context its streams use.
  client_config cfg;
  credentials creds;
  endpoint_info ep;
  std::optional<ssl::context> tls;
  net::io_context ioc;
  net::strand<net::io_context::executor_type> strand{net::make_strand(ioc)};
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  std::vector<std::thread> threads;
  std::vector<std::thread::id> thread_ids;  // written once before any request
  bool stop_requested = false;              // guarded by submit_mutex
  std::mutex submit_mutex;                  // orders async_request against stop()
  std::mutex stop_mutex;
  counters stats;

  // Bookkeeping state, strand only.
  bool stopping = false;
  std::deque<op_ptr> queue;
  std::unordered_set<op_ptr> live;
  std::vector<idle_conn> idle;
  std::uint32_t open = 0;  // connections owned: idle + in use
  std::uint32_t in_flight = 0;
  double tokens = 0;
  clock_type::time_point last_refill;
  // Throttle (strand only): the rate and in-flight window the client keeps to, what the
  // server admitted since the last cut, and the pause every request waits out.
  double rate = 0;  // requests/s; 0 = unlimited
  std::uint32_t window = 0;
  double latency_s = 0;                         // moving average of an attempt's time on the wire
  std::deque<clock_type::time_point> admitted;  // non-429 responses of the last second
  // The last cut was made on a few responses (probe_below): its rate is a guess, so it
  // grows fast (slow start) until the next 429 measures the server.
  bool probing = false;
  // A request waited for the rate since the rate last grew: the rate, not the demand, is what
  // limits the client (requests sent one after another never queue behind each other).
  bool held_by_rate = false;
  std::uint64_t admitted_since_cut = 0;
  bool cut_once = false;
  clock_type::time_point last_cut, last_growth;
  bool paused = false;
  clock_type::time_point pause_until;  // on the wait clock
  std::uint64_t pause_gen = 0;
  std::optional<net::steady_timer> rate_timer;
  bool rate_timer_armed = false;
  std::optional<net::steady_timer> pause_timer;  // the real clock's pause (no cfg.clock)
  // Credentials that rotate (strand only): the version requests are stamped with, when the
  // token file was last looked at, and the requests waiting for a reload after a 401.
  std::uint64_t auth_version = 1;
  clock_type::time_point last_file_check;
  bool reloading = false;
  std::vector<std::pair<op_ptr, http_failure>> auth_waiters;
  std::mt19937_64 rng{std::random_device{}()};

  impl(client_config c, credentials cr, base_url url) : cfg(std::move(c)), creds(std::move(cr)) {
    ep.url = std::move(url);
    ep.port_text = std::to_string(ep.url.port);
    ep.connect_timeout = cfg.connect_timeout;
    ep.io_timeout = cfg.io_timeout;
    ep.max_body = cfg.max_response_bytes;
    tokens = cfg.rate_burst;
    last_refill = clock_type::now();
    rate = cfg.requests_per_second;
    window = cfg.max_in_flight;
    last_growth = last_refill;
    rate_timer.emplace(strand);
    pause_timer.emplace(strand);
  }

  bool on_io_thread() const {
    auto id = std::this_thread::get_id();
    return std::find(thread_ids.begin(), thread_ids.end(), id) != thread_ids.end();
  }

  void start_threads() {
    work.emplace(ioc.get_executor());
    for (std::uint32_t i = 0; i < cfg.io_threads; ++i) {
      threads.emplace_back([self = shared_from_this()] {
        // A throwing handler breaks its own request only; keep serving the others.
        for (;;) {
          try {
            self->ioc.run();
            return;
          } catch (...) {
          }
        }
      });
      thread_ids.push_back(threads.back().get_id());
    }
  }

  std::shared_ptr<const http::request<http::string_body>> build(const request& r) const {
    auto m = std::make_shared<http::request<http::string_body>>();
    m->version(11);
    m->method(r.method == request::verb::get    ? http::verb::get
              : r.method == request::verb::post ? http::verb::post
                                                : http::verb::put);
    m->target(build_target(ep.url, r.path, r.query));
    m->set(http::field::host, ep.url.host_header());
    m->set(http::field::user_agent, cfg.user_agent);
    m->set(http::field::accept, "application/json");
    if (r.accept_gzip && cfg.accept_gzip) m->set(http::field::accept_encoding, "gzip");
    // Authorization is set at dispatch, on the strand: the credentials may rotate
    // (stamp_credentials; never for peers that are not Pleo, cfg.send_authorization).
    if (!r.body.empty() || r.method != request::verb::get) {
      m->set(http::field::content_type, "application/json;charset=UTF-8");
      m->body() = r.body;
    }
    m->keep_alive(true);
    m->prepare_payload();
    return m;
  }

  // --- completion ------------------------------------------------------------------------

  http_failure make_failure(const operation& op, http_errc code, std::string what) const {
    http_failure f;
    f.code = code;
    f.cause = code;
    f.attempts = op.attempts;
    f.message = op.req.describe() + ": " + what;
    creds.redact(f.message);
    return f;
  }

  void complete(const op_ptr& op, http_result<response> r) {
    if (op->done) return;
    op->done = true;
    op->queued = false;
    ++op->timer_gen;
    if (op->timer) op->timer->cancel();
    live.erase(op);
    (r.ok() ? stats.succeeded : stats.failed).fetch_add(1, std::memory_order_relaxed);
    // Outside the strand, so a slow handler does not stall the bookkeeping.
    net::post(ioc, [h = std::move(op->handler), r = std::move(r)]() mutable { h(std::move(r)); });
  }

  // --- admission: in-flight limit, rate budget, connection pool ------------------------------

  void submit(const op_ptr& op) {
    if (stopping) return complete(op, make_failure(*op, http_errc::cancelled, "client stopped"));
    live.insert(op);
    op->timer.emplace(strand);
    enqueue(op, false);
  }

  void enqueue(const op_ptr& op, bool front) {
    op->queued = true;
    if (front)
      queue.push_front(op);
    else
      queue.push_back(op);
    arm_timer(op, op->deadline, [this](const op_ptr& o) { on_queue_deadline(o); });
    pump();
  }

  void on_queue_deadline(const op_ptr& o) {
    if (!o->queued) return;
    if (paused && !(o->req.not_after && wall_now() >= *o->req.not_after)) {
      // Held by a server-requested pause, not by us: the deadline starts again after it.
      o->deadline = clock_type::now() + cfg.request_timeout;
      arm_timer(o, o->deadline, [this](const op_ptr& x) { on_queue_deadline(x); });
      return;
    }
    fail_deadline(o, "waited for a connection or the rate budget until the deadline");
  }

  // --- time ----------------------------------------------------------------------------------

  std::chrono::system_clock::time_point wall_now() const {
    return cfg.clock ? cfg.clock->wall_now() : std::chrono::system_clock::now();
  }
  clock_type::time_point wait_now() const {
    return cfg.clock ? cfg.clock->now() : clock_type::now();
  }

  /// Runs `fn(op)` on the strand after `wait` on the wait clock, unless the op completed or
  /// was re-armed meanwhile.
  template <class F>
  void after(const op_ptr& op, milliseconds wait, F fn) {
    if (!cfg.clock) return arm_timer(op, clock_type::now() + wait, std::move(fn));
    auto gen = ++op->timer_gen;
    op->timer->cancel();
    cfg.clock->after(wait, [w = weak_from_this(), op, gen, fn]() mutable {
      auto self = w.lock();
      if (!self) return;
      net::post(self->strand, [self, op, gen, fn = std::move(fn)]() mutable {
        if (op->done || gen != op->timer_gen) return;
        fn(op);
      });
    });
  }

  // --- throttle: the server's limit, discovered ------------------------------------------------

  static constexpr double min_rate = 0.1;            // requests/s
  static constexpr double cut_margin = 0.95;         // keep below what the server admitted
  static constexpr double growth_per_second = 1.02;  // probe upwards while no 429 comes
  static constexpr std::uint64_t cut_evidence = 20;  // admitted responses between two cuts
  // Fewer responses than this admitted in the second before a 429 measure nothing: the rate
  // cut on them is a guess that probes upwards (slow start). More is a measurement (the
  // server's burst or its rate): probing from it overshoots into 429s that each wait their
  // Retry-After (measured: share of bound 1.07 -> 0.35-0.69 at 500 requests/s).
  static constexpr double probe_below = 8;
  static constexpr double probe_growth = 2.0;                  // slow start: doubles ...
  static constexpr std::chrono::milliseconds probe_step{250};  // ... four times a second

  /// Requests in flight that keep `rate` busy over the measured latency (twice, and one
  /// more), within max_in_flight.
  std::uint32_t window_for_rate() const {
    const double need = std::ceil(rate * latency_s * 2) + 1;
    return static_cast<std::uint32_t>(
        std::clamp(need, 1.0, static_cast<double>(cfg.max_in_flight)));
  }

  void note_response(const operation& op, unsigned status) {
    auto now = clock_type::now();
    double took = std::chrono::duration<double>(now - op.sent_at).count();
    latency_s = latency_s == 0 ? took : 0.9 * latency_s + 0.1 * took;
    if (status == 429) return;
    admitted.push_back(now);
    while (!admitted.empty() && now - admitted.front() > std::chrono::seconds{1})
      admitted.pop_front();
    ++admitted_since_cut;
    if (!cfg.adaptive_rate || !cut_once || (queue.empty() && !held_by_rate)) return;
    if (now - last_growth < (probing ? probe_step : std::chrono::seconds{1})) return;
    last_growth = now;
    held_by_rate = false;
    rate *= probing ? probe_growth : growth_per_second;
    if (cfg.requests_per_second > 0) rate = std::min(rate, cfg.requests_per_second);
    window = std::min(cfg.max_in_flight, std::max(window + 1, window_for_rate()));
    stats.discovered_rate.store(rate, std::memory_order_relaxed);
  }

  void on_throttled(std::optional<milliseconds> hint) {
    stats.throttled.fetch_add(1, std::memory_order_relaxed);
    if (cfg.adaptive_rate) cut_rate();
    // A Retry-After of one second is the least the header can say ("one token away"), and an
    // HTTP date, truncated to the second, can make that up to two: the rate cut covers those.
    // Anything longer holds every request of the credential.
    if (hint) {
      auto wait = std::min(*hint, cfg.retry_after_cap);
      if (wait > std::chrono::seconds{2}) pause_all(wait);
    }
  }

  void cut_rate() {
    auto now = clock_type::now();
    double since = std::chrono::duration<double>(now - last_cut).count();
    // Wait for evidence of the last cut: responses to requests sent before it come back as
    // 429 too and say nothing new.
    if (cut_once && admitted_since_cut < cut_evidence && since < 1.0) return;
    double estimate;
    if (cut_once && !probing) {
      // Since the last cut the server's bucket was empty: what it admitted is its rate.
      estimate = static_cast<double>(admitted_since_cut) / std::max(since, 1e-3);
    } else {
      // First 429 (or the first after a guess): what was admitted over the last second. It
      // may include the server's burst; the next cut corrects that. A few responses are a
      // guess (one response before a 429 in the first milliseconds of a run is no limit of
      // 1 request/s; taken as one, it held a whole run to it), so the rate then probes
      // upwards fast until a 429 measures it.
      estimate = static_cast<double>(admitted.size());
    }
    // Nothing admitted lately and no rate yet: no evidence of a rate; the Retry-After wait
    // (and the pause when it is long) is all we know.
    if (rate <= 0 && estimate <= 0) return;
    double base = rate > 0 ? (estimate > 0 ? std::min(rate, estimate) : rate) : estimate;
    rate = std::max(min_rate, base * cut_margin);
    if (cfg.requests_per_second > 0) rate = std::min(rate, cfg.requests_per_second);
    tokens = std::min(tokens, 0.0);
    window = window_for_rate();
    cut_once = true;
    probing = estimate < probe_below;
    last_cut = last_growth = now;
    admitted_since_cut = 0;
    stats.discovered_rate.store(rate, std::memory_order_relaxed);
  }

  void pause_all(milliseconds wait) {
    auto until = wait_now() + wait;
    if (paused && until <= pause_until) return;
    paused = true;
    pause_until = until;
    auto gen = ++pause_gen;
    stats.throttle_pauses.fetch_add(1, std::memory_order_relaxed);
    auto wake = [w = weak_from_this(), gen] {
      auto self = w.lock();
      if (!self) return;
      net::post(self->strand, [self, gen] {
        if (gen != self->pause_gen || self->stopping) return;
        self->paused = false;
        self->pump();
      });
    };
    if (cfg.clock) return cfg.clock->after(wait, std::move(wake));
    pause_timer->expires_after(wait);
    pause_timer->async_wait([wake](beast::error_code ec) {
      if (!ec) wake();
    });
  }

  template <class F>
  void arm_timer(const op_ptr& op, clock_type::time_point at, F on_fire) {
    auto gen = ++op->timer_gen;
    op->timer->expires_at(at);
    op->timer->async_wait([this, op, gen, on_fire](beast::error_code ec) {
      if (ec || op->done || gen != op->timer_gen) return;
      on_fire(op);
    });
  }

  void refill() {
    if (rate <= 0) return;
    auto now = clock_type::now();
    std::chrono::duration<double> dt = now - last_refill;
    last_refill = now;
    tokens = std::min<double>(cfg.rate_burst, tokens + dt.count() * rate);
  }

  std::shared_ptr<connection> take_connection(bool fresh_only) {
    auto now = clock_type::now();
    while (!fresh_only && !idle.empty()) {
      auto c = std::move(idle.back());
      idle.pop_back();
      if (now - c.since < cfg.idle_timeout) return c.conn;
      c.conn->close();
      --open;
    }
    if (open >= cfg.max_connections && fresh_only && !idle.empty()) {
      // Make room for the fresh connection by dropping the oldest idle one.
      idle.front().conn->close();
      idle.erase(idle.begin());
      --open;
    }
    if (open >= cfg.max_connections) return nullptr;
    ++open;
    auto tls_ctx = tls ? &*tls : nullptr;
    return std::make_shared<connection>(ioc, tls_ctx, ep);
  }

  void pump() {
    refill();
    while (!queue.empty() && !stopping) {
      auto op = queue.front();
      if (op->done || !op->queued) {
        queue.pop_front();
        continue;
      }
      if (paused) return;  // a long Retry-After holds every request; its timer pumps again
      if (in_flight >= std::min(cfg.max_in_flight, window)) return;
      bool limited = rate > 0 && !op->free_pass;
      if (limited && tokens < 1.0) {
        held_by_rate = true;
        return arm_rate_timer();
      }
      auto conn = take_connection(op->fresh_only);
      if (!conn) return;
      queue.pop_front();
      if (limited) tokens -= 1.0;
      dispatch(op, std::move(conn));
    }
  }

  void arm_rate_timer() {
    if (rate_timer_armed) return;
    rate_timer_armed = true;
    auto wait = std::chrono::duration<double>((1.0 - tokens) / rate);
    rate_timer->expires_after(std::chrono::ceil<std::chrono::microseconds>(wait));
    rate_timer->async_wait([this](beast::error_code) {
      rate_timer_armed = false;
      if (!stopping) pump();
    });
  }

  // --- one attempt -----------------------------------------------------------------------

  void stamp_credentials(const op_ptr& op) {
    if (!cfg.send_authorization) return;
    auto now = clock_type::now();
    if (creds.refreshable() && now - last_file_check >= milliseconds{200}) {
      last_file_check = now;
      if (creds.file_changed()) {
        // A small local file: read on the strand. An unreadable one keeps the old token.
        if (auto changed = creds.reload(); changed && *changed) ++auth_version;
      }
    }
    if (op->auth_version == auth_version) return;
    auto m = std::make_shared<http::request<http::string_body>>(*op->msg);
    m->set(http::field::authorization, creds.authorization());
    op->msg = std::move(m);
    op->auth_version = auth_version;
  }

  /// A 401 on credentials that can rotate: once per request, retry with fresh ones (reloaded
  /// off the io threads: a token command may take a while).
  void reauthenticate(const op_ptr& op, http_failure f) {
    op->auth_retried = true;
    if (op->auth_version < auth_version) return enqueue(op, true);  // already newer ones
    auth_waiters.emplace_back(op, std::move(f));
    if (reloading) return;
    reloading = true;
    std::thread([w = weak_from_this(), copy = creds]() mutable {
      auto r = copy.reload();
      auto self = w.lock();
      if (!self) return;
      net::post(self->strand, [self, r = std::move(r), copy = std::move(copy)]() mutable {
        self->reloading = false;
        bool changed = r.ok() && r.value();
        if (changed) {
          self->creds = std::move(copy);
          ++self->auth_version;
        }
        auto waiters = std::move(self->auth_waiters);
        self->auth_waiters.clear();
        for (auto& [o, failure] : waiters) {
          if (o->done) continue;
          if (changed) {
            self->enqueue(o, true);
          } else {
            if (!r.ok()) {
              std::string why = r.err().message;
              self->creds.redact(why);
              failure.message += " (new credentials: " + why + ")";
            }
            self->complete(o, std::move(failure));
          }
        }
      });
    }).detach();
  }

  void dispatch(const op_ptr& op, std::shared_ptr<connection> conn) {
    op->queued = false;
    stamp_credentials(op);
    ++op->timer_gen;
    op->timer->cancel();
    if (cfg.admit && !cfg.admit()) {
      const bool connected = conn->connected_once();
      release(std::move(conn), connected);
      return complete(op, make_failure(*op, http_errc::cancelled, "refused by the admit gate"));
    }
    if (!op->free_pass) {
      ++op->attempts;
      stats.attempts.fetch_add(1, std::memory_order_relaxed);
      if (op->attempts > 1) stats.retries.fetch_add(1, std::memory_order_relaxed);
    }
    op->free_pass = false;
    op->fresh_only = false;
    bool reused = conn->connected_once();
    op->conn = conn;
    op->sent_at = clock_type::now();
    ++in_flight;
    if (in_flight > stats.peak_in_flight.load(std::memory_order_relaxed))
      stats.peak_in_flight.store(in_flight, std::memory_order_relaxed);
    conn->async_exchange(op->msg, op->deadline,
                         [self = shared_from_this(), op, reused](exchange_outcome out) mutable {
                           net::post(self->strand,
                                     [self, op, reused, out = std::move(out)]() mutable {
                                       self->on_exchange(op, reused, std::move(out));
                                     });
                         });
  }

  void release(std::shared_ptr<connection> conn, bool reusable) {
    if (reusable && !stopping) {
      idle.push_back({std::move(conn), clock_type::now()});
    } else {
      conn->close();
      --open;
    }
  }

  void on_exchange(const op_ptr& op, bool reused, exchange_outcome out) {
    auto conn = std::exchange(op->conn, nullptr);
    --in_flight;
    if (!out.ec) note_response(*op, out.status);
    stats.bytes_received.fetch_add(out.bytes, std::memory_order_relaxed);
    if (!reused && conn->connected_once())
      stats.connections_opened.fetch_add(1, std::memory_order_relaxed);
    if (op->done || stopping) {
      release(std::move(conn), false);
      complete(op, make_failure(*op, http_errc::cancelled, "client stopped"));
      return pump();
    }
    if (!out.ec) {
      release(std::move(conn), out.keep_alive);
      on_response(op, std::move(out));
    } else {
      release(std::move(conn), false);
      on_error(op, reused, std::move(out));
    }
    pump();
  }

  void on_response(const op_ptr& op, exchange_outcome out) {
    auto cls = std::min<unsigned>(out.status / 100, 5);
    stats.by_class[cls].fetch_add(1, std::memory_order_relaxed);
    if (out.status >= 200 && out.status < 300) {
      // Not retried: the server sent this body on purpose (a corrupt stream would come again).
      if (!out.decode_error.empty())
        return complete(op, make_failure(*op, out.decode_code, out.decode_error));
      return complete(op, response{out.status, std::move(out.body), op->attempts, op->waited});
    }
    auto f = make_failure(*op, http_errc::http_status, "HTTP " + std::to_string(out.status));
    f.status = out.status;
    parse_error_body(out.body, f.type, f.detail);
    creds.redact(f.type);
    creds.redact(f.detail);
    if (!f.type.empty()) f.message += " " + f.type;
    if (!f.detail.empty()) f.message += ": " + f.detail;
    if (out.status == 401 && creds.refreshable() && !op->auth_retried)
      return reauthenticate(op, std::move(f));
    if (out.status == 408 || out.status == 429 || out.status >= 500) {
      std::optional<milliseconds> hint;
      if (!out.retry_after.empty()) hint = parse_retry_after(out.retry_after, wall_now());
      if (out.status == 429) on_throttled(hint);
      return retry_later(op, std::move(f), hint);
    }
    complete(op, std::move(f));
  }

  void on_error(const op_ptr& op, bool reused, exchange_outcome out) {
    const auto& ec = out.ec;
    // A pooled connection the server already closed: the request never reached it.
    if (reused && !out.got_bytes &&
        (out.where == phase::write || out.where == phase::read_header) && stale_error(ec)) {
      stats.stale_retries.fetch_add(1, std::memory_order_relaxed);
      op->fresh_only = true;
      op->free_pass = true;  // the repeat keeps this attempt's number and rate token
      return enqueue(op, true);
    }
    std::string what = std::string(to_string(out.where)) + ": " + ec.message();
    http_errc code;
    if (ec == beast::error::timeout) {
      code = http_errc::timeout;
      what = std::string(to_string(out.where)) + " timed out";
    } else if (ec == http::error::body_limit) {
      code = http_errc::response_too_large;
      what =
          "response body exceeds the limit of " + std::to_string(cfg.max_response_bytes) + " bytes";
    } else if (ec == http::error::header_limit) {
      code = http_errc::response_too_large;
      what = "response header exceeds the limit of " + std::to_string(header_limit) + " bytes";
    } else if (out.where == phase::resolve || out.where == phase::connect) {
      code = http_errc::connect_failed;
      what = std::string(to_string(out.where)) + " to " + ep.url.host_header() +
             " failed: " + ec.message();
    } else if (out.where == phase::handshake && !stale_error(ec)) {
      code = http_errc::tls_failed;
      what = "TLS handshake with " + ep.url.host_header() + " failed: " + ec.message();
      if (!out.tls_detail.empty()) what += " (" + out.tls_detail + ")";
    } else if (out.where == phase::read_body) {
      code = http_errc::truncated_body;
      what = "response body ended early: " + ec.message();
    } else {
      code = http_errc::connection_reset;
    }
    auto f = make_failure(*op, code, what);
    bool retryable = code == http_errc::timeout || code == http_errc::connect_failed ||
                     code == http_errc::connection_reset || code == http_errc::truncated_body;
    if (!retryable) return complete(op, std::move(f));
    if (clock_type::now() >= op->deadline)
      return fail_deadline(op,
                           "request deadline of " + std::to_string(cfg.request_timeout.count()) +
                               " ms passed; last: " + what,
                           code);
    retry_later(op, std::move(f), std::nullopt);
  }

  void fail_deadline(const op_ptr& op, std::string what, http_errc cause = http_errc::timeout) {
    auto f = make_failure(*op, http_errc::timeout, std::move(what));
    f.cause = cause;
    complete(op, std::move(f));
  }

  void retry_later(const op_ptr& op, http_failure last, std::optional<milliseconds> hint) {
    if (op->attempts >= cfg.max_attempts) {
      last.cause = last.code;
      last.code = http_errc::retries_exhausted;
      last.message += " (gave up after " + std::to_string(op->attempts) + " attempt" +
                      (op->attempts == 1 ? "" : "s") + ")";
      return complete(op, std::move(last));
    }
    if (hint) {
      // Honoured as given (up to the cap). The server asked for the wait, so it does not count
      // against request_timeout: the deadline moves by it. A second long wait is no timeout.
      milliseconds wait = std::min(*hint, cfg.retry_after_cap);
      if (op->req.not_after && wall_now() + wait > *op->req.not_after) {
        last.cause = last.code;
        last.code = http_errc::retries_exhausted;
        last.message += " (Retry-After of " + std::to_string(wait.count()) +
                        " ms reaches past the request's deadline)";
        return complete(op, std::move(last));
      }
      op->deadline += wait;
      return wait_then_retry(op, wait);
    }
    milliseconds wait = full_jitter(op->attempts, cfg.backoff_base, cfg.backoff_cap, rng);
    if (clock_type::now() + wait >= op->deadline) {
      last.cause = last.code;
      last.code = http_errc::timeout;
      last.message += " (retry wait of " + std::to_string(wait.count()) +
                      " ms would pass the request deadline)";
      return complete(op, std::move(last));
    }
    wait_then_retry(op, wait);
  }

  void wait_then_retry(const op_ptr& op, milliseconds wait) {
    op->waited += wait;
    stats.retry_wait_ms.fetch_add(static_cast<std::uint64_t>(wait.count()),
                                  std::memory_order_relaxed);
    after(op, wait, [this](const op_ptr& o) { enqueue(o, false); });
  }

  // --- shutdown --------------------------------------------------------------------------

  void cancel_all() {
    stopping = true;
    auto ops = std::vector<op_ptr>(live.begin(), live.end());
    for (auto& op : ops) {
      if (op->conn) op->conn->close();
      complete(op, make_failure(*op, http_errc::cancelled, "client stopped"));
    }
    queue.clear();
    for (auto& c : idle)
      c.conn->close();
    open -= static_cast<std::uint32_t>(idle.size());
    idle.clear();
    rate_timer->cancel();
    pause_timer->cancel();
    ++pause_gen;
  }
};

// --- http_client ---------------------------------------------------------------------------

http_client::http_client(std::shared_ptr<impl> p) : impl_(std::move(p)) {}

http_client::~http_client() {
  stop();
}

result<std::unique_ptr<http_client>, http_errc> http_client::create(client_config config,
                                                                    credentials creds) {
  auto bad = [](std::string m) { return make_error(http_errc::invalid_config, std::move(m)); };
  auto url = parse_base_url(config.base_url);
  if (!url) return url.err();
  if (config.io_threads < 1 || config.io_threads > 64) return bad("io_threads must be 1-64");
  if (config.max_connections < 1) return bad("max_connections must be at least 1");
  if (config.max_in_flight < 1) return bad("max_in_flight must be at least 1");
  if (config.max_attempts < 1) return bad("max_attempts must be at least 1");
  if (config.rate_burst < 1) return bad("rate_burst must be at least 1");
  if (config.max_response_bytes < 1) return bad("max_response_bytes must be positive");
  if (config.connect_timeout.count() <= 0 || config.io_timeout.count() <= 0 ||
      config.request_timeout.count() <= 0)
    return bad("connect_timeout, io_timeout and request_timeout must be positive");
  if (config.backoff_base.count() < 0 || config.backoff_cap.count() < 0 ||
      config.retry_after_cap.count() < 0)
    return bad("backoff_base, backoff_cap and retry_after_cap must not be negative");
  if (!std::isfinite(config.requests_per_second) || config.requests_per_second < 0)
    return bad("requests_per_second must be a finite number >= 0");
  for (char c : config.user_agent)
    if (static_cast<unsigned char>(c) < 0x20) return bad("user_agent contains a control character");
  if (!url->tls && !config.allow_insecure_http && !url->host_is_loopback())
    return bad("base URL " + config.base_url +
               " is plain http:// to a host other than loopback: the credentials would travel "
               "in clear text; use https:// (or allow it explicitly with --allow-insecure-http)");

  auto p = std::make_shared<impl>(std::move(config), std::move(creds), std::move(url.value()));
  if (p->ep.url.tls) {
    p->tls.emplace(ssl::context::tls_client);
    auto& ctx = *p->tls;
    ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                    ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    ctx.set_verify_mode(ssl::verify_peer);
    boost::system::error_code ec;
    if (p->cfg.ca_file) {
      ctx.load_verify_file(*p->cfg.ca_file, ec);
      if (ec) return bad("cannot load ca_file '" + *p->cfg.ca_file + "': " + ec.message());
    } else {
      ctx.set_default_verify_paths(ec);
      if (ec) return bad("cannot load the system CA store: " + ec.message());
    }
    if (p->cfg.cert_file.has_value() != p->cfg.key_file.has_value())
      return bad("cert_file and key_file go together (a client certificate needs its key)");
    if (p->cfg.cert_file) {
      ctx.use_certificate_chain_file(*p->cfg.cert_file, ec);
      if (ec) return bad("cannot load cert_file '" + *p->cfg.cert_file + "': " + ec.message());
      ctx.use_private_key_file(*p->cfg.key_file, ssl::context::pem, ec);
      if (ec) return bad("cannot load key_file '" + *p->cfg.key_file + "': " + ec.message());
    }
  }
  p->start_threads();
  return std::unique_ptr<http_client>(new http_client(std::move(p)));
}

void http_client::async_request(request req, response_handler handler) {
  auto op = std::make_shared<impl::operation>();
  op->deadline = clock_type::now() + impl_->cfg.request_timeout;
  op->msg = impl_->build(req);
  op->req = std::move(req);
  op->handler = std::move(handler);
  impl_->stats.requests.fetch_add(1, std::memory_order_relaxed);
  {
    // Posting under the lock puts every accepted request ahead of stop()'s cancel_all on
    // the strand, so none is left behind when the threads end.
    std::lock_guard<std::mutex> lock(impl_->submit_mutex);
    if (!impl_->stop_requested) {
      net::post(impl_->strand, [p = impl_, op] { p->submit(op); });
      return;
    }
  }
  impl_->stats.failed.fetch_add(1, std::memory_order_relaxed);
  auto h = std::move(op->handler);
  h(impl_->make_failure(*op, http_errc::cancelled, "client stopped"));
}

http_result<response> http_client::request_sync(request req) {
  if (impl_->on_io_thread()) {
    http_failure f;
    f.code = f.cause = http_errc::invalid_config;
    f.message = req.describe() + ": request_sync called on an io thread of the same client";
    return f;
  }
  std::promise<http_result<response>> done;
  auto fut = done.get_future();
  async_request(std::move(req), [&done](http_result<response> r) { done.set_value(std::move(r)); });
  return fut.get();
}

client_stats http_client::stats() const {
  const auto& s = impl_->stats;
  auto ld = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  client_stats out;
  out.requests = ld(s.requests);
  out.succeeded = ld(s.succeeded);
  out.failed = ld(s.failed);
  out.attempts = ld(s.attempts);
  out.retries = ld(s.retries);
  out.stale_retries = ld(s.stale_retries);
  out.retry_wait_ms = ld(s.retry_wait_ms);
  out.bytes_received = ld(s.bytes_received);
  out.connections_opened = ld(s.connections_opened);
  out.peak_in_flight = ld(s.peak_in_flight);
  out.throttled = ld(s.throttled);
  out.throttle_pauses = ld(s.throttle_pauses);
  out.discovered_rate = s.discovered_rate.load(std::memory_order_relaxed);
  for (std::size_t i = 0; i < out.responses_by_class.size(); ++i)
    out.responses_by_class[i] = ld(s.by_class[i]);
  return out;
}

const client_config& http_client::config() const noexcept {
  return impl_->cfg;
}

void http_client::stop() {
  auto& p = impl_;
  std::unique_lock<std::mutex> lock(p->stop_mutex, std::defer_lock);
  if (p->on_io_thread()) {
    // Another thread may be in stop() joining this very thread: do not wait for it.
    if (!lock.try_lock()) return;
  } else {
    lock.lock();
  }
  if (p->threads.empty()) return;
  {
    std::lock_guard<std::mutex> submit_lock(p->submit_mutex);
    p->stop_requested = true;
  }
  if (p->on_io_thread()) {
    // Cannot wait for ourselves: cancel, let the threads drain and end on their own (they
    // hold the impl alive).
    net::post(p->strand, [q = p] { q->cancel_all(); });
    p->work.reset();
    for (auto& t : p->threads)
      t.detach();
    p->threads.clear();
    return;
  }
  std::promise<void> cancelled;
  net::post(p->strand, [q = p, &cancelled] {
    q->cancel_all();
    cancelled.set_value();
  });
  cancelled.get_future().wait();
  p->work.reset();
  for (auto& t : p->threads)
    t.join();
  p->threads.clear();
}

}  // namespace ei::api
