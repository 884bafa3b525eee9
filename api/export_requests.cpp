#include "api/export_requests.hpp"

namespace ei::api::requests {
namespace {

void add_paging(request& r, std::uint32_t limit, const std::string& after,
                std::optional<std::int64_t> offset) {
  r.query.emplace_back("limit", std::to_string(limit));
  if (offset)
    r.query.emplace_back("offset", std::to_string(*offset));
  else if (!after.empty())
    r.query.emplace_back("after", after);
}

}  // namespace

request get_job(const uuid& job_id) {
  request r;
  r.path = "/v3/export-jobs/" + job_id.to_string();
  return r;
}

request list_jobs(const std::vector<std::string>& statuses, const std::optional<uuid>& company_id,
                  std::uint32_t limit, const std::string& after) {
  request r;
  r.path = "/v3/export-jobs";
  for (const auto& s : statuses)
    r.query.emplace_back("statuses", s);
  if (company_id) r.query.emplace_back("company_id", company_id->to_string());
  add_paging(r, limit, after, std::nullopt);
  return r;
}

request job_items(const uuid& job_id, std::uint32_t limit, const std::string& after,
                  std::optional<std::int64_t> offset) {
  request r;
  r.path = "/v3/export-jobs/" + job_id.to_string() + "/items";
  add_paging(r, limit, after, offset);
  return r;
}

request export_items(const uuid& job_id, std::uint32_t limit, const std::string& after,
                     std::optional<std::int64_t> offset) {
  request r;
  r.path = "/v3/export-items";
  r.accept_gzip = true;  // ~1.3 kB of JSON per item: gzip pays (benchmarks/README.md)
  r.query.emplace_back("job_id", job_id.to_string());
  add_paging(r, limit, after, offset);
  return r;
}

}  // namespace ei::api::requests
