// URL pieces for the HTTP client: the base URL (scheme, host, port, path prefix) and request
// targets with RFC 3986 percent-encoded query strings. Pure functions, no I/O, thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "api/http_error.hpp"
#include "common/result.hpp"

namespace ei::api {

/// Query parameters in order. An array parameter is the same key repeated
/// (OpenAPI `style: form, explode: true`): {{"statuses","pending"},{"statuses","failed"}}.
using query_params = std::vector<std::pair<std::string, std::string>>;

/// Percent-encodes everything except RFC 3986 unreserved characters (A-Z a-z 0-9 - . _ ~),
/// with upper-case hex digits; a space becomes %20 (never '+').
std::string percent_encode(std::string_view s);

/// "k1=v1&k2=v2" with keys and values percent-encoded; empty for no parameters.
std::string encode_query(const query_params& q);

/// A parsed base URL such as "https://external.pleo.io" or "http://127.0.0.1:8080/prefix".
struct base_url {
  bool tls = false;
  std::string host;        // without brackets for IPv6 literals
  std::uint16_t port = 0;  // the scheme's default when the URL has none
  std::string prefix;      // path prefix without trailing '/', "" when none

  /// Value of the Host header: host, plus ":port" when not the scheme's default.
  std::string host_header() const;
  /// True when host is an IPv4 or IPv6 literal (no SNI is sent for those).
  bool host_is_ip() const;
  /// True for "localhost" (any case) and loopback literals (127.0.0.0/8, ::1).
  bool host_is_loopback() const;
};

/// Accepts scheme http or https (case-insensitive), a host (name, IPv4, [IPv6]), an optional
/// port 1-65535 and an optional path prefix. Rejects user info (credentials never go in the
/// URL), query strings and fragments. Errors are invalid_url with a message naming the part;
/// a URL containing '@' is not echoed back.
result<base_url, http_errc> parse_base_url(std::string_view url);

/// prefix + path + ("?" + encode_query(q) when q is not empty). `path` must start with '/'
/// and is used as given (callers put only safe characters in it, e.g. UUIDs).
std::string build_target(const base_url& base, std::string_view path, const query_params& q);

}  // namespace ei::api
