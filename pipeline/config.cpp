#include "pipeline/config.hpp"

#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

namespace ei::pipeline {

std::string_view to_string(config_errc c) noexcept {
  switch (c) {
    case config_errc::unreadable:
      return "unreadable";
    case config_errc::malformed:
      return "malformed";
    case config_errc::invalid_value:
      return "invalid_value";
    case config_errc::unknown_key:
      return "unknown_key";
  }
  return "unknown";
}

namespace {

using json = nlohmann::json;
using setter = std::function<std::string(const json&)>;  // returns "" or what was wrong

template <class Int>
setter integer(Int& target, std::int64_t min, std::int64_t max) {
  return [&target, min, max](const json& v) -> std::string {
    if (!v.is_number_integer()) return "expected an integer";
    auto x = v.get<std::int64_t>();
    if (x < min || x > max)
      return "must be between " + std::to_string(min) + " and " + std::to_string(max);
    target = static_cast<Int>(x);
    return {};
  };
}

setter millis(std::chrono::milliseconds& target, std::int64_t min, std::int64_t max) {
  return [&target, min, max](const json& v) -> std::string {
    if (!v.is_number_integer()) return "expected an integer (milliseconds)";
    auto x = v.get<std::int64_t>();
    if (x < min || x > max)
      return "must be between " + std::to_string(min) + " and " + std::to_string(max) + " ms";
    target = std::chrono::milliseconds(x);
    return {};
  };
}

setter text(std::string& target) {
  return [&target](const json& v) -> std::string {
    if (!v.is_string()) return "expected a string";
    target = v.get<std::string>();
    return {};
  };
}

setter boolean(bool& target) {
  return [&target](const json& v) -> std::string {
    if (!v.is_boolean()) return "expected true or false";
    target = v.get<bool>();
    return {};
  };
}

setter number(double& target, double min, double max) {
  return [&target, min, max](const json& v) -> std::string {
    if (!v.is_number()) return "expected a number";
    auto x = v.get<double>();
    if (x < min || x > max) return "out of range";
    target = x;
    return {};
  };
}

status<config_errc> apply_object(const json& obj, const std::map<std::string, setter>& keys,
                                 const std::string& where) {
  if (!obj.is_object())
    return make_error(config_errc::malformed, where + ": expected a JSON object");
  for (const auto& [key, value] : obj.items()) {
    auto it = keys.find(key);
    if (it == keys.end())
      return make_error(config_errc::unknown_key, where + ": unknown key '" + key + "'");
    if (value.is_null()) continue;  // null keeps the default
    if (auto problem = it->second(value); !problem.empty())
      return make_error(config_errc::invalid_value, where + "." + key + ": " + problem);
  }
  return ok_v;
}

}  // namespace

status<config_errc> apply_config_json(stage_config& cfg, std::string_view text_in,
                                      const std::string& origin) {
  json doc = json::parse(text_in, nullptr, false);
  if (doc.is_discarded()) return make_error(config_errc::malformed, origin + ": not valid JSON");
  auto& s = cfg.settings;
  auto& h = cfg.http;
  std::string ordering;
  std::string listing;
  std::string sync;
  std::string ca_file;
  const json* http_obj = nullptr;
  const json* state_obj = nullptr;
  const json* embedded_obj = nullptr;
  std::map<std::string, setter> top{
      {"base_url", text(cfg.base_url)},
      {"ca_file", text(ca_file)},
      {"ordering", text(ordering)},
      {"listing", text(listing)},
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
      {"http",
       [&](const json& v) {
         http_obj = &v;
         return std::string{};
       }},
      {"state",
       [&](const json& v) {
         state_obj = &v;
         return std::string{};
       }},
      {"embedded",
       [&](const json& v) {
         embedded_obj = &v;
         return std::string{};
       }},
      {"comment", [](const json&) { return std::string{}; }},
  };
  if (auto st = apply_object(doc, top, origin); !st.ok()) return st;
  if (!ordering.empty()) {
    if (ordering == "chronological")
      s.ordering = storage::ordering_mode::chronological;
    else if (ordering == "entry_id")
      s.ordering = storage::ordering_mode::entry_id;
    else
      return make_error(config_errc::invalid_value,
                        origin + ".ordering: expected \"chronological\" or \"entry_id\", got \"" +
                            ordering + "\"");
  }
  if (!listing.empty()) {
    if (listing == "cursor")
      s.listing = actors::listing_mode::cursor;
    else if (listing == "parallel")
      s.listing = actors::listing_mode::parallel;
    else
      return make_error(
          config_errc::invalid_value,
          origin + ".listing: expected \"cursor\" or \"parallel\", got \"" + listing + "\"");
  }
  if (!ca_file.empty()) h.ca_file = ca_file;
  if (http_obj) {
    std::map<std::string, setter> keys{
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
    if (auto st = apply_object(*http_obj, keys, origin + ".http"); !st.ok()) return st;
  }
  if (state_obj) {
    std::uint64_t write_buffer_mb = cfg.store.write_buffer_bytes >> 20;
    std::uint64_t memtable_budget_mb = cfg.store.memtable_budget_bytes >> 20;
    std::uint64_t block_cache_mb = cfg.store.block_cache_bytes >> 20;
    std::map<std::string, setter> keys{
        {"sync", text(sync)},
        {"write_buffer_mb", integer(write_buffer_mb, 1, 4096)},
        {"memtable_budget_mb", integer(memtable_budget_mb, 1, 65536)},
        {"block_cache_mb", integer(block_cache_mb, 1, 65536)},
    };
    if (auto st = apply_object(*state_obj, keys, origin + ".state"); !st.ok()) return st;
    cfg.store.write_buffer_bytes = static_cast<std::size_t>(write_buffer_mb) << 20;
    cfg.store.memtable_budget_bytes = static_cast<std::size_t>(memtable_budget_mb) << 20;
    cfg.store.block_cache_bytes = static_cast<std::size_t>(block_cache_mb) << 20;
    if (!sync.empty()) {
      if (sync == "none")
        cfg.store.sync = storage::sync_policy::none;
      else if (sync == "commits")
        cfg.store.sync = storage::sync_policy::commits;
      else if (sync == "always")
        cfg.store.sync = storage::sync_policy::always;
      else
        return make_error(config_errc::invalid_value,
                          origin + ".state.sync: expected \"none\", \"commits\" or \"always\"");
    }
  }
  if (embedded_obj) {
    auto& e = cfg.embedded;
    std::map<std::string, setter> keys{
        {"seed", integer(e.seed, 0, INT64_MAX)},
        {"server_order_seed", integer(e.server_order_seed, 0, INT64_MAX)},
        {"companies", integer(e.companies, 1, 100000)},
        {"jobs", integer(e.jobs, 0, 100000)},
        {"items_per_job", integer(e.items_per_job, 0, 100000000)},
        {"all_in_progress", boolean(e.all_in_progress)},
        {"api_key", text(e.api_key)},
        {"faults", text(e.faults)},
        {"default_limit", integer(e.default_limit, 1, 100000)},
        {"threads", integer(e.threads, 1, 64)},
        {"loose", boolean(e.loose)},
    };
    if (auto st = apply_object(*embedded_obj, keys, origin + ".embedded"); !st.ok()) return st;
  }
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

status<config_errc> validate(const embed_config& cfg) {
  if (cfg.base_url.empty())
    return make_error(config_errc::invalid_value, "base_url: must not be empty");
  if (cfg.settings.batch_size > cfg.settings.credit_window)
    return make_error(config_errc::invalid_value,
                      "batch_size (" + std::to_string(cfg.settings.batch_size) +
                          ") must not exceed credit_window (" +
                          std::to_string(cfg.settings.credit_window) + ")");
  return ok_v;
}

}  // namespace ei::pipeline
