// Request builders for the Export API v3 endpoints this stage calls (see
// docs/api-contract.md §4). They only shape paths and queries; sending is the
// HTTP client's job and decoding the codec's.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "api/http_client.hpp"
#include "api/model.hpp"

namespace ei::api::requests {

/// GET /v3/export-jobs/{jobId}
request get_job(const uuid& job_id);
/// GET /v3/export-jobs?statuses=..&statuses=..&company_id=..&limit=..[&after=..]
request list_jobs(const std::vector<std::string>& statuses, const std::optional<uuid>& company_id,
                  std::uint32_t limit, const std::string& after);
/// GET /v3/export-jobs/{jobId}/items?limit=..[&after=..|&offset=..]
request job_items(const uuid& job_id, std::uint32_t limit, const std::string& after,
                  std::optional<std::int64_t> offset);
/// GET /v3/export-items?job_id=..&limit=..[&after=..|&offset=..]
request export_items(const uuid& job_id, std::uint32_t limit, const std::string& after,
                     std::optional<std::int64_t> offset);

}  // namespace ei::api::requests
