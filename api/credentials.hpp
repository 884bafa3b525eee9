// Credentials for Pleo's API (contract §2), defined in include/export_items/credentials.hpp
// (public: a host starts a stage with them), plus base64 for tests.
#pragma once

#include <string>
#include <string_view>

#include "api/http_error.hpp"
#include "common/result.hpp"
#include "export_items/credentials.hpp"

namespace ei::api {

/// Standard base64 with padding (exposed for tests).
std::string base64_encode(std::string_view in);

}  // namespace ei::api
