// Credentials for Pleo's API (contract §2), defined in include/export_items/credentials.hpp
// (public: a host starts a stage with them); base64 is common/base64.hpp.
#pragma once

#include <string>
#include <string_view>

#include "api/http_error.hpp"
#include "common/result.hpp"
#include "export_items/credentials.hpp"
