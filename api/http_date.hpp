// HTTP dates as a server writes them (Retry-After, Date): IMF-fixdate, RFC 9110 §5.6.7.
// Reading them (all three forms) is api/retry.hpp's parse_http_date.
#pragma once

#include <chrono>
#include <string>

namespace ei::api {

/// "Sun, 06 Nov 1994 08:49:37 GMT" for `t` (whole seconds; the fraction is dropped).
std::string format_http_date(std::chrono::system_clock::time_point t);

}  // namespace ei::api
