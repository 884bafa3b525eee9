// The error vocabulary of the HTTP client (api/http_client.hpp) and its helpers: a code for
// programs, a message for people, and the HTTP details a caller needs to decide what to do
// (status, the ExceptionInfo `type`/`message` of the body, how many attempts were made).
// Messages name the request ("GET /v3/export-jobs/...") and never contain a secret.
#pragma once

#include <cassert>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "common/result.hpp"
#include "export_items/credentials.hpp"  // http_errc

namespace ei::api {

/// Why a request failed. For `http_status` (and for `retries_exhausted`/`timeout` whose last
/// attempt got a response) `status` is the HTTP status and `type`/`detail` are the
/// ExceptionInfo body's `type` and `message` when the body had them (empty otherwise).
struct http_failure {
  http_errc code = http_errc::invalid_config;
  std::string message;
  unsigned status = 0;         // 0 when no response was received
  std::string type;            // ExceptionInfo.type, e.g. "EXPORT_NOT_FOUND"
  std::string detail;          // ExceptionInfo.message
  std::uint32_t attempts = 0;  // attempts made (stale keep-alive retries are not counted)
  http_errc cause = http_errc::invalid_config;  // the last attempt's own failure; == code
                                                // unless code is retries_exhausted/timeout

  /// True when trying again later may succeed (the server or the network was at fault):
  /// retries_exhausted, timeout, connect_failed, connection_reset, truncated_body.
  bool transient() const noexcept;
};

/// Converts to the project-wide error type (drops the HTTP details).
inline error<http_errc> to_error(const http_failure& f) {
  return error<http_errc>{f.code, f.message};
}

/// A value or an http_failure (ei::result carries only code + message; this boundary needs
/// the HTTP details too).
template <class T>
using http_result = basic_result<T, http_failure>;

}  // namespace ei::api
