// JSON config files for export-items-sim, and the fault grammar's help text.
#include <nlohmann/json.hpp>

#include "simulator/simulator.hpp"

namespace ei::sim {
namespace {

using json = nlohmann::json;

struct config_error {
  std::string message;
};

template <class T>
T number(const json& v, const std::string& key, T lo, T hi) {
  if (!v.is_number_integer()) throw config_error{"'" + key + "' must be an integer"};
  const auto x = v.get<std::int64_t>();
  if (x < static_cast<std::int64_t>(lo) ||
      (hi >= 0 && static_cast<std::uint64_t>(x) > static_cast<std::uint64_t>(hi)))
    throw config_error{"'" + key + "' must be in [" + std::to_string(lo) + ", " +
                       std::to_string(hi) + "]"};
  return static_cast<T>(x);
}

double real(const json& v, const std::string& key, double lo, double hi) {
  if (!v.is_number()) throw config_error{"'" + key + "' must be a number"};
  const auto x = v.get<double>();
  if (!(x >= lo && x <= hi))
    throw config_error{"'" + key + "' must be in [" + std::to_string(lo) + ", " +
                       std::to_string(hi) + "]"};
  return x;
}

std::string text(const json& v, const std::string& key) {
  if (!v.is_string()) throw config_error{"'" + key + "' must be a string"};
  return v.get<std::string>();
}

bool boolean(const json& v, const std::string& key) {
  if (!v.is_boolean()) throw config_error{"'" + key + "' must be true or false"};
  return v.get<bool>();
}

api::uuid uuid_of(const json& v, const std::string& key) {
  auto u = api::uuid::parse(text(v, key));
  if (!u) throw config_error{"'" + key + "' is not a UUID"};
  return *u;
}

status_mix mix_of(const json& v, const std::string& key) {
  if (!v.is_object()) throw config_error{"'" + key + "' must be an object of status weights"};
  status_mix m{0, 0, 0, 0, 0};
  for (const auto& [k, x] : v.items()) {
    const std::string name = key + "." + k;
    const auto w = number<std::uint32_t>(x, name, 0, 1000000);
    if (k == "pending")
      m.pending = w;
    else if (k == "in_progress")
      m.in_progress = w;
    else if (k == "successful")
      m.successful = w;
    else if (k == "failed")
      m.failed = w;
    else if (k == "abandoned")
      m.abandoned = w;
    else
      throw config_error{"unknown key '" + name + "'"};
  }
  return m;
}

}  // namespace

result<sim_config, sim_errc> parse_config_json(std::string_view doc, sim_config c) {
  const json root = json::parse(doc, nullptr, false);
  if (root.is_discarded()) return make_error(sim_errc::invalid_config, "config is not valid JSON");
  if (!root.is_object())
    return make_error(sim_errc::invalid_config, "config must be a JSON object");
  try {
    for (const auto& [key, v] : root.items()) {
      if (key == "host")
        c.host = text(v, key);
      else if (key == "port")
        c.port = number<std::uint16_t>(v, key, 0, 65535);
      else if (key == "seed")
        c.seed = number<std::uint64_t>(v, key, 0, INT64_MAX);
      else if (key == "server_order_seed")
        c.server_order_seed = number<std::uint64_t>(v, key, 0, INT64_MAX);
      else if (key == "api_key")
        c.api_key = text(v, key);
      else if (key == "access_token")
        c.access_token = text(v, key);
      else if (key == "token_lifetime_ms")
        c.token_lifetime_ms = number<std::int64_t>(v, key, 0, INT32_MAX);
      else if (key == "token_file")
        c.token_file = text(v, key);
      else if (key == "rate_limit")
        c.rate_limit = real(v, key, 0, 1e6);
      else if (key == "rate_burst")
        c.rate_burst = real(v, key, 0, 1e6);
      else if (key == "companies")
        c.companies = number<std::uint32_t>(v, key, 1, 100000);
      else if (key == "jobs")
        c.jobs = number<std::uint32_t>(v, key, 0, 100000);
      else if (key == "items_per_job" || key == "items")
        c.items_per_job = number<std::uint64_t>(v, key, 0, std::int64_t{1} << 36);
      else if (key == "all_in_progress")
        c.all_in_progress = boolean(v, key);
      else if (key == "mix")
        c.mix = mix_of(v, key);
      else if (key == "default_limit")
        c.default_limit = number<std::uint32_t>(v, key, 1, 1000000);
      else if (key == "max_limit")
        c.max_limit = number<std::uint32_t>(v, key, 1, 1000000);
      else if (key == "expires_in_seconds")
        c.expires_in_seconds = number<std::int32_t>(v, key, 0, INT32_MAX);
      else if (key == "refuse_limit_above")
        c.refuse_limit_above = number<std::uint32_t>(v, key, 0, 1000000);
      else if (key == "loose")
        c.loose = boolean(v, key);
      else if (key == "threads")
        c.threads = number<std::uint32_t>(v, key, 1, 64);
      else if (key == "tls_cert_file")
        c.tls_cert_file = text(v, key);
      else if (key == "tls_key_file")
        c.tls_key_file = text(v, key);
      else if (key == "faults") {
        c.faults = text(v, key);
        if (auto st = validate_faults(c.faults); !st)
          throw config_error{"'faults': " + st.err().message};
      } else if (key == "extra_jobs") {
        if (!v.is_array()) throw config_error{"'extra_jobs' must be an array"};
        for (std::size_t i = 0; i < v.size(); ++i) {
          const std::string base = "extra_jobs[" + std::to_string(i) + "]";
          if (!v[i].is_object()) throw config_error{"'" + base + "' must be an object"};
          job_spec s;
          for (const auto& [k, x] : v[i].items()) {
            const std::string name = base + "." + k;
            if (k == "id")
              s.id = uuid_of(x, name);
            else if (k == "company_id")
              s.company_id = uuid_of(x, name);
            else if (k == "status") {
              s.status = api::parse_job_status(text(x, name));
              if (s.status == api::job_status::unknown)
                throw config_error{"'" + name + "' is not an ExportJobStatus"};
            } else if (k == "items")
              s.items = number<std::uint64_t>(x, name, 0, std::int64_t{1} << 36);
            else if (k == "mix")
              s.mix = mix_of(x, name);
            else
              throw config_error{"unknown key '" + name + "'"};
          }
          c.extra_jobs.push_back(std::move(s));
        }
      } else {
        throw config_error{"unknown key '" + key + "'"};
      }
    }
  } catch (const config_error& e) {
    return make_error(sim_errc::invalid_config, "config: " + e.message);
  } catch (const json::exception& e) {
    return make_error(sim_errc::invalid_config, std::string("config: ") + e.what());
  }
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
