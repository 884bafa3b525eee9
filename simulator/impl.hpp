// Private to the simulator: the server's state (`simulator::impl`) and the request vocabulary
// its three translation units share. `router.cpp` admits and routes a request, injects faults
// and records it; `handlers.cpp` answers each endpoint from the world; `server.cpp` owns the
// sockets (Beast sessions, TLS, deadlines), the threads and the public `simulator` members.
#pragma once

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/http.hpp>

#include "simulator/admission.hpp"
#include "simulator/faults.hpp"
#include "simulator/request_log.hpp"
#include "simulator/simulator.hpp"
#include "simulator/world.hpp"

namespace ei::sim {

namespace detail {

namespace http = boost::beast::http;
using http_request = http::request<http::string_body>;

inline std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

inline std::string_view sv(boost::beast::string_view s) {
  return {s.data(), s.size()};
}

inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

/// A request's query parameters, percent-decoded; a repeated key keeps every value.
using query_map = std::map<std::string, std::vector<std::string>>;

/// The last value of `key`, or null when the query does not have it.
inline const std::string* single(const query_map& q, const std::string& key) {
  auto it = q.find(key);
  if (it == q.end() || it->second.empty()) return nullptr;
  return &it->second.back();
}

/// An error answer: `{"type","message"}` with `status`.
struct api_error {
  unsigned status;
  std::string type;
  std::string message;
};

/// The parsed §3.1 list parameters of one request.
struct list_params {
  page_query q;
  std::optional<std::string> after_text, before_text;
  std::optional<std::int64_t> limit_given;
  std::vector<std::string> sorting_keys, sorting_order;
};

/// The list faults that fired for one request (router.cpp decides, handlers.cpp applies).
struct page_faults {
  bool cycle = false, empty = false, duplicate = false, flip = false, end_early = false;
  std::uint8_t fresh_salt = 0;  // cycle_fresh: 1..15, another cursor text each time
};

/// How the response leaves the server; anything but `normal` is a fault.
enum class delivery { normal, reset, reset_mid_body, truncate };

struct reply {
  http::response<http::string_body> res;
  delivery how = delivery::normal;
  std::chrono::milliseconds delay{0};
};

// handlers.cpp
void set_body(reply& r, unsigned status, std::string body);
void set_error(reply& r, const api_error& e);

}  // namespace detail

struct simulator::impl {
  using reply = detail::reply;
  using query_map = detail::query_map;
  using http_request = detail::http_request;

  sim_config cfg;
  std::unique_ptr<detail::world> data;
  std::uint64_t cursor_key = 0;
  std::string basic_credentials;  // "base64(key:)" or empty
  std::string bearer_token;
  std::unique_ptr<admission> limiter;    // rate limit per credential
  std::unique_ptr<token_issuer> tokens;  // rotating tokens, when they have a lifetime

  // Admission (router.cpp).
  bool authenticated(std::string_view authorization);
  bool admit(const http_request& req, std::string_view endpoint, reply& r);
  void rotate_tokens();

  std::mutex fault_mutex;
  detail::fault_plan faults;
  std::atomic<std::int64_t> extra_latency_ms{0};
  std::atomic<std::uint32_t> fresh_salts_{0};  // cycle_fresh: the next cursor text variant

  mutable std::mutex log_mutex;
  std::deque<request_record> log;
  std::atomic<std::uint64_t> seq{0};
  detail::request_log_file log_file;  // sim_config::request_log_file, when set
  std::atomic<std::uint64_t> n_requests{0}, n_faults{0}, n_unauthorized{0}, n_items{0};

  std::optional<boost::asio::ssl::context> tls;
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::acceptor acceptor{ioc};
  // Declared after ioc: an I/O object must be destroyed before its io_context (ASan found the
  // timer's destructor reading the io_context's freed timer service).
  std::optional<boost::asio::steady_timer> rotation;  // writes each new token to the file
  std::uint16_t port = 0;
  std::vector<std::thread> threads;
  std::atomic<bool> stopped{false};

  explicit impl(int hint) : ioc(hint) {}

  void do_accept();                       // server.cpp
  reply handle(const http_request& req);  // router.cpp

  // Handlers (handlers.cpp; fill `r.res` body and status).
  void list_jobs(reply& r, const query_map& q, const detail::page_faults& pf);
  void get_job(reply& r, const api::uuid& id);
  void post_event(reply& r, const http_request& req);
  void get_items(reply& r, const api::uuid& id, const query_map& q, const detail::page_faults& pf,
                 bool data_layer);
  void put_items(reply& r, const api::uuid& id, const http_request& req, request_record& rec);
  void item_updates_debug(reply& r, const api::uuid& id);

  // Write-back counters (simulator::write_back), fed by note_write_back (router.cpp) as each
  // request finishes.
  mutable std::mutex wb_mutex;
  std::map<api::uuid, write_back_counts> wb;
  void note_write_back(const request_record& rec, const http_request& req, const reply& r);

  // The world moving under the requests (handlers.cpp).
  void expire_due();
  void complete_elsewhere(const std::optional<api::uuid>& job_id);
  std::optional<detail::api_error> parse_list(const query_map& q, detail::list_params& out) const;
  std::optional<detail::api_error> decode(const detail::list_params& p, std::uint32_t tag,
                                          detail::page_query& q) const;
  void append_pagination(std::string& out, const query_map& q, const detail::list_params& p,
                         const detail::page_slice& s, std::uint32_t tag, std::uint64_t total) const;
};

}  // namespace ei::sim
