// JSON config files for export-items-sim (common/json_config.hpp), and the fault grammar's
// help text.
#include "simulator/config.hpp"

namespace ei::sim {
namespace {

using json_config::integer;
using json_config::invalid;
using json_config::problem;
using json = json_config::json;

constexpr std::int64_t kMaxItems = std::int64_t{1} << 36;

json_config::setter uuid_of(std::optional<api::uuid>& target) {
  return [&target](const json& v, const std::string& path) -> std::optional<problem> {
    auto u = v.is_string() ? api::uuid::parse(v.get<std::string>()) : std::nullopt;
    if (!u) return invalid(path, "expected a UUID");
    target = *u;
    return std::nullopt;
  };
}

json_config::keys mix_keys(status_mix& m) {
  return {
      {"pending", integer(m.pending, 0, 1000000)},
      {"in_progress", integer(m.in_progress, 0, 1000000)},
      {"successful", integer(m.successful, 0, 1000000)},
      {"failed", integer(m.failed, 0, 1000000)},
      {"abandoned", integer(m.abandoned, 0, 1000000)},
  };
}

/// A mix in a file starts from all-zero weights: only the statuses it names are generated.
json_config::setter mix_of(std::optional<status_mix>& target) {
  return [&target](const json& v, const std::string& path) -> std::optional<problem> {
    status_mix m{0, 0, 0, 0, 0};
    if (!v.is_object()) return invalid(path, "expected an object of status weights");
    if (auto p = json_config::apply(v, mix_keys(m), path)) return p;
    target = m;
    return std::nullopt;
  };
}

json_config::setter job_status_of(api::job_status& target) {
  return [&target](const json& v, const std::string& path) -> std::optional<problem> {
    return json_config::one_of(target, api::job_statuses)(v, path);
  };
}

json_config::setter extra_jobs_of(std::vector<job_spec>& target) {
  return [&target](const json& v, const std::string& path) -> std::optional<problem> {
    if (!v.is_array()) return invalid(path, "expected an array of jobs");
    for (std::size_t i = 0; i < v.size(); ++i) {
      job_spec s;
      const json_config::keys keys{
          {"id", uuid_of(s.id)},
          {"company_id", uuid_of(s.company_id)},
          {"status", job_status_of(s.status)},
          {"items", integer(s.items, 0, kMaxItems)},
          {"mix", mix_of(s.mix)},
      };
      if (auto p = json_config::apply(v[i], keys, path + "[" + std::to_string(i) + "]")) return p;
      target.push_back(std::move(s));
    }
    return std::nullopt;
  };
}

}  // namespace

json_config::keys config_keys(sim_config& c) {
  using json_config::boolean;
  using json_config::number;
  using json_config::text;
  auto mix = [&c](const json& v, const std::string& path) -> std::optional<problem> {
    std::optional<status_mix> m;
    if (auto p = mix_of(m)(v, path)) return p;
    c.mix = *m;
    return std::nullopt;
  };
  auto faults = [&c](const json& v, const std::string& path) -> std::optional<problem> {
    if (!v.is_string()) return invalid(path, "expected a string");
    if (auto st = validate_faults(v.get<std::string>()); !st)
      return invalid(path, st.err().message);
    c.faults = v.get<std::string>();
    return std::nullopt;
  };
  return {
      {"host", text(c.host)},
      {"port", integer(c.port, 0, 65535)},
      {"seed", integer(c.seed, 0, INT64_MAX)},
      {"server_order_seed", integer(c.server_order_seed, 0, INT64_MAX)},
      {"api_key", text(c.api_key)},
      {"access_token", text(c.access_token)},
      {"token_lifetime_ms", integer(c.token_lifetime_ms, 0, INT32_MAX)},
      {"token_file", text(c.token_file)},
      {"request_log_file", text(c.request_log_file)},
      {"rate_limit", number(c.rate_limit, 0, 1e6)},
      {"rate_burst", number(c.rate_burst, 0, 1e6)},
      {"companies", integer(c.companies, 1, 100000)},
      {"jobs", integer(c.jobs, 0, 100000)},
      {"items_per_job", integer(c.items_per_job, 0, kMaxItems)},
      {"items", integer(c.items_per_job, 0, kMaxItems)},
      {"all_in_progress", boolean(c.all_in_progress)},
      {"mix", mix},
      {"extra_jobs", extra_jobs_of(c.extra_jobs)},
      {"default_limit", integer(c.default_limit, 1, 1000000)},
      {"max_limit", integer(c.max_limit, 1, 1000000)},
      {"expires_in_seconds", integer(c.expires_in_seconds, 0, INT32_MAX)},
      {"refuse_limit_above", integer(c.refuse_limit_above, 0, 1000000)},
      {"loose", boolean(c.loose)},
      {"threads", integer(c.threads, 1, 64)},
      {"tls_cert_file", text(c.tls_cert_file)},
      {"tls_key_file", text(c.tls_key_file)},
      {"faults", faults},
  };
}

result<sim_config, sim_errc> parse_config_json(std::string_view doc, sim_config c) {
  const auto root = json::parse(doc, nullptr, false);
  if (root.is_discarded()) return make_error(sim_errc::invalid_config, "config is not valid JSON");
  if (auto p = json_config::apply(root, config_keys(c), "config"))
    return make_error(sim_errc::invalid_config, std::move(p->message));
  return c;
}

std::string fault_help() {
  return R"(Fault plan grammar (--faults, config key "faults", simulator::set_faults):
  plan    := clause (';' clause)*
  clause  := [endpoint ':'] fault ['@' trigger]
  endpoint:= jobs | job | events | items | items_put | export_items | other | *   (default *)
             jobs = GET /v3/export-jobs, job = GET /v3/export-jobs/{id},
             events = POST /v3/export-job-events, items = GET /v3/export-jobs/{id}/items,
             items_put = PUT /v3/export-jobs/{id}/items, export_items = GET /v3/export-items
  fault   := status=CODE       answer CODE (400..599) {"type":"SIMULATED_FAULT"}; not processed
           | throttle[=SECS]   429 {"type":"TOO_MANY_REQUESTS"}, Retry-After: SECS when given
           | latency=DUR       delay the response by DUR (e.g. 50ms, 2s)
           | reset             process the request, then reset the connection (no response)
           | reset_mid_body    process, send headers and half the body, then reset
           | truncate          process, send headers (full Content-Length) and half the body,
                               then close
           | malformed         process, answer 200 with a body that is not valid JSON
           | html              process, answer 200 with an HTML page (Content-Type text/html),
                               as a proxy or gateway in front of the API may
           | cycle             lists: endCursor points back to the cursor that led to the
                               previous page (A->B->A); on page 2 to its own cursor
           | empty_page        lists: "data":[] with hasNextPage=true, endCursor = own cursor
           | duplicate         lists: endCursor is one item early, so the next page repeats
                               this page's last item; an offset page starts one item early
                               (repeats one item, leaves one out, count unchanged)
           | flip_status       lists: after this page is rendered its last item changes
                               status (pending <-> in_progress); items_of() shows the change
           | cycle_fresh       lists: as cycle, but the endCursor's text differs every time
                               (same position: items repeat under new cursor texts)
           | end_early         lists: hasNextPage=false although items
                               follow (a listing that ends short)
           | expired_cursor    lists with after/before: 400 {"type":"CURSOR_EXPIRED"}
           | expire_job        the request's job expires first (failed/job_expired, open
                               items abandoned), then the request is handled
           | complete_job      the request's job is completed elsewhere (if in_progress),
                               then the request is handled
  trigger := all | once | rate=P | nth=N[,M...] | every=N | from=N      (default all)
             counted per clause over requests to its endpoint, 1-based; rate draws from a
             generator seeded by --seed, so runs repeat. `once` fires on the first request
             where the fault applies. Latency adds up; the first status/throttle/
             expired_cursor clause that fires wins.
  example : items:status=503@rate=0.1; items:reset_mid_body@nth=3; jobs:latency=50ms@all;
            items:cycle@once; events:throttle=2@nth=1
)";
}

}  // namespace ei::sim
