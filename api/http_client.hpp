// An asynchronous HTTP/1.1 client for Pleo's Export API v3 (contract §1, §2, §9), built on
// Boost.Beast over Asio with OpenSSL. One client talks to one base URL.
//
// Threads: the client owns an io_context and `io_threads` threads that run it. Every socket
// operation, timer and completion handler runs on those threads; callers never block except
// in request_sync() and stop().
//
// Connections: keep-alive, pooled (at most `max_connections`, reused most-recently-used
// first). Requests beyond the pool, the in-flight limit or the rate budget wait FIFO,
// asynchronously. HTTPS verifies the peer chain (system CA store or `ca_file`) and the host
// name (SNI is sent for DNS names).
//
// Retries: 408, 429, 5xx, timeouts, connections closed or reset before a complete response
// and truncated bodies are retried up to `max_attempts` attempts with capped exponential
// backoff and full jitter, or after `Retry-After` (delta-seconds or an HTTP-date in any of
// RFC 9110's three forms, clamped to `retry_after_cap`). A Retry-After wait does not count
// against `request_timeout` (the server asked for it; the deadline moves by the wait); it is
// bounded by the request's `not_after` instead.
//
// Throttling: one client is one credential, and a 429 slows every request of the client, not
// only the one that got it. With `adaptive_rate` the client discovers the server's limit: on a
// 429 its rate drops to what the server admitted over the last seconds (times a margin) and
// its in-flight window to what that rate needs; both grow again slowly while no 429 comes
// (AIMD). A Retry-After longer than two seconds pauses every request until it has passed. A reused
// keep-alive connection found closed by the server before any response byte ("stale") is retried at
// once on a fresh connection and not counted as an attempt. Other statuses (400, 401, 403, 404,
// 409, 413, 422, ...), TLS failures and oversized responses are never retried. Every attempt,
// including queueing and backoff, is bounded by `request_timeout`.
//
// Requests are re-sent as they are: a POST whose response was lost may be applied twice by
// the server (contract §9: read the job back on a 422 after a retried event).
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "api/credentials.hpp"
#include "api/http_error.hpp"
#include "api/query.hpp"
#include "api/retry.hpp"
#include "common/result.hpp"
#include "export_items/config.hpp"  // client_config

namespace ei::api {

/// One request. `path` starts with '/' and is appended to the base URL's prefix; `query` is
/// percent-encoded by the client (repeat a key for array parameters).
struct request {
  enum class verb : std::uint8_t { get, post, put };
  verb method = verb::get;
  std::string path;
  query_params query;
  std::string body;  // sent as application/json;charset=UTF-8 when not empty
  /// The latest time a retry may be waited for (e.g. the job's deadline); a Retry-After
  /// reaching past it ends the request at once (`retries_exhausted`, cause `http_status`).
  /// Compared with the client's wall clock.
  std::optional<std::chrono::system_clock::time_point> not_after;
  /// Send `Accept-Encoding: gzip` (when the client's `accept_gzip` allows it too). Worth it for
  /// large JSON bodies (data-layer item pages, ~1.3 kB per item); a gzip response body is
  /// decoded whatever this says.
  bool accept_gzip = false;

  /// "GET /v3/export-jobs?limit=10" (without the base URL's prefix); for messages, holds no
  /// secret. Long targets are shortened.
  std::string describe() const;
};

/// A 2xx response. A `Content-Encoding: gzip` body is decoded (bounded by
/// `max_response_bytes`: beyond it `response_too_large`; a corrupt stream or an unknown coding
/// is `bad_encoding`). `body` has at least 64 spare bytes of capacity beyond its size
/// (SIMDJSON_PADDING), so simdjson can parse it in place:
/// `parser.iterate(body.data(), body.size(), body.capacity())`.
struct response {
  unsigned status = 0;
  std::string body;
  std::uint32_t attempts = 0;           // attempts it took (1 when no retry)
  std::chrono::milliseconds waited{0};  // total backoff / Retry-After wait
};

using response_handler = std::function<void(http_result<response>)>;

/// Counters since creation; a consistent-enough snapshot (each field is read atomically).
struct client_stats {
  std::uint64_t requests = 0;            // async_request calls
  std::uint64_t succeeded = 0;           // completed with a 2xx
  std::uint64_t failed = 0;              // completed with an http_failure (incl. cancelled)
  std::uint64_t attempts = 0;            // attempts sent (stale retries not counted)
  std::uint64_t retries = 0;             // attempts after the first, per request
  std::uint64_t stale_retries = 0;       // immediate retries after a stale keep-alive
  std::uint64_t retry_wait_ms = 0;       // sum of backoff / Retry-After waits
  std::uint64_t bytes_received = 0;      // response bytes read (header + body), as on the wire
  std::uint64_t connections_opened = 0;  // TCP (+TLS) connections established
  std::uint64_t peak_in_flight = 0;      // most attempts on the wire at once
  std::uint64_t throttled = 0;           // 429 responses
  std::uint64_t throttle_pauses = 0;     // Retry-After waits that paused every request
  double discovered_rate = 0;            // requests/s the client now keeps to; 0 = none yet
  std::array<std::uint64_t, 6> responses_by_class{};  // [1]..[5]: 1xx..5xx responses
};

class http_client {
 public:
  /// Validates the config (invalid_url, invalid_config; an unreadable ca_file is
  /// invalid_config naming the file) and starts the io threads.
  static result<std::unique_ptr<http_client>, http_errc> create(client_config config,
                                                                credentials creds);

  ~http_client();  // stop()
  http_client(const http_client&) = delete;
  http_client& operator=(const http_client&) = delete;

  /// Starts a request; returns at once. `handler` is called exactly once, on an io thread;
  /// it must not block and must not throw. After stop() it is called at once, on the
  /// calling thread, with `cancelled`. Thread-safe.
  void async_request(request req, response_handler handler);

  /// Blocks until the request completes. For CLI tools and tests only: never call it from an
  /// io thread (returns invalid_config) or from an actor.
  http_result<response> request_sync(request req);

  client_stats stats() const;
  const client_config& config() const noexcept;

  /// Cancels everything outstanding (handlers get `cancelled`), closes connections and joins
  /// the io threads. Idempotent, thread-safe. Called from a handler it does not wait; the
  /// threads then finish on their own.
  void stop();

 private:
  struct impl;
  explicit http_client(std::shared_ptr<impl> p);
  std::shared_ptr<impl> impl_;
};

}  // namespace ei::api
