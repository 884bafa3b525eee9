#include "pipeline/config.hpp"
#include "pipeline/sim_config.hpp"

#include <fstream>
#include <sstream>

#include "common/json_config.hpp"
#include "simulator/config.hpp"

namespace ei::pipeline {

namespace {

using json = json_config::json;
using json_config::boolean;
using json_config::integer;
using json_config::millis;
using json_config::number;
using json_config::one_of;
using json_config::text;

config_errc code_of(json_config::problem_kind k) noexcept {
  switch (k) {
    case json_config::problem_kind::malformed:
      return config_errc::malformed;
    case json_config::problem_kind::unknown_key:
      return config_errc::unknown_key;
    case json_config::problem_kind::invalid_value:
      return config_errc::invalid_value;
  }
  return config_errc::malformed;
}

json_config::keys http_keys(api::client_config& h) {
  return {
      {"connect_timeout_ms", millis(h.connect_timeout, 1, 600000)},
      {"io_timeout_ms", millis(h.io_timeout, 1, 3600000)},
      {"request_timeout_ms", millis(h.request_timeout, 1, 86400000)},
      {"max_attempts", integer(h.max_attempts, 1, 100)},
      {"backoff_base_ms", millis(h.backoff_base, 1, 600000)},
      {"backoff_cap_ms", millis(h.backoff_cap, 1, 3600000)},
      {"retry_after_cap_ms", millis(h.retry_after_cap, 0, 3600000)},
      {"max_connections", integer(h.max_connections, 1, 1024)},
      {"max_in_flight", integer(h.max_in_flight, 1, 65536)},
      {"requests_per_second", number(h.requests_per_second, 0, 1e9)},
      {"rate_burst", integer(h.rate_burst, 1, 100000)},
      {"adaptive_rate", boolean(h.adaptive_rate)},
      {"allow_insecure_http", boolean(h.allow_insecure_http)},
      {"accept_gzip", boolean(h.accept_gzip)},
      {"io_threads", integer(h.io_threads, 1, 64)},
      {"max_response_bytes", integer(h.max_response_bytes, 1024, std::int64_t{1} << 34)},
  };
}

/// Sizes in MiB, stored in bytes.
json_config::setter mebibytes(std::size_t& bytes, std::int64_t min, std::int64_t max) {
  return [&bytes, min, max](const json& v, const std::string& path) {
    std::uint64_t mb = 0;
    auto p = integer(mb, min, max)(v, path);
    if (!p) bytes = static_cast<std::size_t>(mb) << 20;
    return p;
  };
}

json_config::keys state_keys(storage::store_options& s) {
  return {
      {"sync", one_of(s.sync, storage::sync_policies)},
      {"write_buffer_mb", mebibytes(s.write_buffer_bytes, 1, 4096)},
      {"memtable_budget_mb", mebibytes(s.memtable_budget_bytes, 1, 65536)},
      {"block_cache_mb", mebibytes(s.block_cache_bytes, 1, 65536)},
  };
}

/// The embedded simulator's keys are the simulator's own (simulator/config.hpp: one range per
/// key), except `api_key`, which is the key the stage and its simulator share. Each key is
/// read through the simulator's setter into a sim_config made from `cfg.embedded`, and copied
/// back (ei_pipeline keeps its own struct, so that it does not link the simulator).
constexpr const char* kEmbeddedKeys[] = {
    "seed",   "server_order_seed", "companies", "jobs", "items_per_job", "all_in_progress",
    "faults", "default_limit",     "threads",   "loose"};

void from_sim(const sim::sim_config& sc, embedded_simulator& e) {
  e.seed = sc.seed;
  e.server_order_seed = sc.server_order_seed;
  e.companies = sc.companies;
  e.jobs = sc.jobs;
  e.items_per_job = sc.items_per_job;
  e.all_in_progress = sc.all_in_progress;
  e.faults = sc.faults;
  e.default_limit = sc.default_limit;
  e.threads = sc.threads;
  e.loose = sc.loose;
}

json_config::keys embedded_keys(stage_config& cfg) {
  json_config::keys keys{{"api_key", text(cfg.embedded.api_key)}};
  for (const char* k : kEmbeddedKeys)
    keys.emplace(k,
                 [&cfg, key = std::string(k)](const json_config::json& v, const std::string& path) {
                   auto sc = to_sim(cfg.embedded);
                   auto sim_keys = sim::config_keys(sc);
                   auto problem = sim_keys.at(key)(v, path);
                   if (!problem) from_sim(sc, cfg.embedded);
                   return problem;
                 });
  return keys;
}

}  // namespace

sim::sim_config to_sim(const embedded_simulator& e) {
  sim::sim_config sc;
  sc.seed = e.seed;
  sc.server_order_seed = e.server_order_seed;
  sc.companies = e.companies;
  sc.jobs = e.jobs;
  sc.items_per_job = e.items_per_job;
  sc.all_in_progress = e.all_in_progress;
  sc.faults = e.faults;
  sc.default_limit = e.default_limit;
  sc.threads = e.threads;
  sc.loose = e.loose;
  return sc;
}

status<config_errc> apply_config_json(stage_config& cfg, std::string_view text_in,
                                      const std::string& origin) {
  json doc = json::parse(text_in, nullptr, false);
  if (doc.is_discarded()) return make_error(config_errc::malformed, origin + ": not valid JSON");
  auto& s = cfg.settings;
  std::string ca_file;
  const json_config::keys top{
      {"base_url", text(cfg.base_url)},
      {"ca_file", text(ca_file)},
      {"ordering", one_of(s.ordering, storage::ordering_modes)},
      {"listing", one_of(s.listing, actors::listing_modes)},
      {"parallel_requests", integer(s.parallel_requests, 1, 256)},
      {"page_size", integer(s.page_size, 1, 100000)},
      {"max_jobs", integer(s.max_jobs, 1, 4096)},
      {"max_window_items", integer(s.max_window_items, 1, 1u << 30)},
      {"credit_window", integer(s.credit_window, 1, 1 << 24)},
      {"batch_size", integer(s.batch_size, 1, 1 << 20)},
      {"max_empty_pages", integer(s.max_empty_pages, 0, 1000)},
      {"page_attempts", integer(s.page_attempts, 1, 100)},
      {"page_retry_backoff_ms", millis(s.page_retry_backoff, 0, 600000)},
      {"job_check_interval_ms", millis(s.job_check_interval, 10, 86400000)},
      {"job_check_fresh_for_ms", millis(s.job_check_fresh_for, 0, 86400000)},
      {"sort_run_items", integer(s.sort_run_items, 64, 1 << 24)},
      {"request_timeout_ms", millis(s.request_timeout, 100, 86400000)},
      {"stop_timeout_ms", millis(s.stop_timeout, 0, 86400000)},
      {"dispatch_unreconciled", boolean(s.dispatch_unreconciled)},
      {"scheduler_threads", integer(cfg.scheduler_threads, 1, 256)},
      {"fetchers", integer(cfg.fetchers, 1, 256)},
      {"http", json_config::object(cfg.http, http_keys)},
      {"state", json_config::object(cfg.store, state_keys)},
      {"embedded", json_config::object(cfg, embedded_keys)},
      {"comment", json_config::ignored()},
  };
  if (auto p = json_config::apply(doc, top, origin))
    return make_error(code_of(p->kind), p->message);
  if (!ca_file.empty()) cfg.http.ca_file = ca_file;
  return ok_v;
}

result<stage_config, config_errc> load_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) return make_error(config_errc::unreadable, "cannot read config file '" + path + "'");
  std::stringstream buf;
  buf << in.rdbuf();
  stage_config cfg;
  if (auto st = apply_config_json(cfg, buf.str(), path); !st.ok()) return std::move(st).err();
  return cfg;
}

}  // namespace ei::pipeline
