// export-items-sim: serves the simulated Export API v3 until SIGTERM/SIGINT.
// The first stdout line is exactly "listening on HOST:PORT". The API key is never printed.
// With --request-log FILE every answered request is also a line of FILE, written out by exit.
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "simulator/simulator.hpp"

namespace {

int fail(const std::string& what) {
  std::cerr << "export-items-sim: " << what << "\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using ei::sim::sim_config;
  CLI::App app{"Simulator of Pleo's Export API v3 (deterministic data, fault injection).\n" +
               ei::sim::fault_help()};
  std::uint16_t port = 0;
  std::string api_key, access_token, faults, config_file, tls_cert, tls_key, host;
  std::uint64_t seed = 1, order_seed = 0, items = 0;
  std::uint32_t jobs = 0, companies = 0, threads = 1, default_limit = 0;
  std::int32_t expires_in = 0;
  double rate_limit = 0, rate_burst = 0;
  std::int64_t token_lifetime_ms = 0;
  std::string token_file, request_log;
  bool print_jobs = false, all_in_progress = false, loose = false;
  auto* o_host = app.add_option("--host", host, "address to bind (default 127.0.0.1)");
  auto* o_port = app.add_option("--port", port, "TCP port, 0 lets the OS pick (default 0)");
  auto* o_key = app.add_option("--api-key", api_key,
                               "API key accepted as Basic base64(KEY:); default from env "
                               "PLEO_API_KEY");
  auto* o_token = app.add_option("--access-token", access_token, "Bearer token accepted");
  auto* o_seed = app.add_option("--seed", seed, "data seed (default 1)");
  auto* o_order = app.add_option("--server-order-seed", order_seed,
                                 "seed of the items' server order (default: from --seed)");
  auto* o_jobs = app.add_option("--jobs", jobs, "number of generated jobs (default 6)");
  auto* o_items = app.add_option("--items", items, "items per generated job (default 1000)");
  auto* o_comp = app.add_option("--companies", companies, "number of companies (default 3)");
  auto* o_faults = app.add_option("--faults", faults, "fault plan, grammar above");
  auto* o_threads = app.add_option("--threads", threads, "io threads (default 1)");
  auto* o_cert = app.add_option("--tls-cert", tls_cert, "PEM certificate chain: serve HTTPS");
  auto* o_tkey = app.add_option("--tls-key", tls_key, "PEM private key for --tls-cert");
  auto* o_limit = app.add_option("--default-limit", default_limit,
                                 "page size when a request has no limit (default 100)");
  auto* o_exp = app.add_option("--expires-in", expires_in,
                               "job expiresIn seconds; 0 disables expiry (default 3600)");
  auto* o_rate = app.add_option("--rate-limit", rate_limit,
                                "requests per second per credential, 429 beyond (default off)");
  auto* o_burst = app.add_option("--rate-burst", rate_burst,
                                 "rate limit bucket size (default: one second's worth)");
  auto* o_tlife = app.add_option("--token-lifetime-ms", token_lifetime_ms,
                                 "issue rotating Bearer tokens with this lifetime (default off)");
  auto* o_tfile = app.add_option("--token-file", token_file,
                                 "write each issued token to this file (atomically replaced)");
  auto* o_rlog = app.add_option(
      "--request-log", request_log,
      "append one NDJSON line per answered request to this file (created or truncated; "
      "endpoint, method, jobId, companyId, receivedUs, finishedUs, status; complete at exit)");
  auto* o_aip = app.add_flag("--all-in-progress", all_in_progress,
                             "generate every job in status in_progress");
  auto* o_loose = app.add_flag("--loose", loose,
                               "loose mode: fields the stage does not read are sometimes "
                               "missing, null or of another type; null statuses; dates with "
                               "offsets, without a zone, or date-only (deterministic from --seed)");
  app.add_option("--config", config_file,
                 "JSON config file with the same settings (keys as in simulator/README.md); "
                 "command-line options override it");
  app.add_flag("--print-jobs", print_jobs,
               "print the generated jobs as JSON (id, companyId, status, numberOfItems), exit");
  CLI11_PARSE(app, argc, argv);

  sim_config cfg;
  if (!config_file.empty()) {
    std::ifstream in(config_file);
    if (!in) return fail("cannot read config file '" + config_file + "'");
    std::stringstream ss;
    ss << in.rdbuf();
    auto parsed = ei::sim::parse_config_json(ss.str(), cfg);
    if (!parsed) return fail(config_file + ": " + parsed.err().message);
    cfg = std::move(*parsed);
  }
  if (*o_host) cfg.host = host;
  if (*o_port) cfg.port = port;
  if (*o_key) {
    cfg.api_key = api_key;
  } else if (cfg.api_key.empty()) {
    if (const char* env = std::getenv("PLEO_API_KEY")) cfg.api_key = env;
  }
  if (*o_token) cfg.access_token = access_token;
  if (*o_seed) cfg.seed = seed;
  if (*o_order) cfg.server_order_seed = order_seed;
  if (*o_jobs) cfg.jobs = jobs;
  if (*o_items) cfg.items_per_job = items;
  if (*o_comp) cfg.companies = companies;
  if (*o_faults) cfg.faults = faults;
  if (*o_threads) cfg.threads = threads;
  if (*o_cert) cfg.tls_cert_file = tls_cert;
  if (*o_tkey) cfg.tls_key_file = tls_key;
  if (*o_limit) cfg.default_limit = default_limit;
  if (*o_exp) cfg.expires_in_seconds = expires_in;
  if (*o_aip) cfg.all_in_progress = all_in_progress;
  if (*o_rate) cfg.rate_limit = rate_limit;
  if (*o_burst) cfg.rate_burst = rate_burst;
  if (*o_tlife) cfg.token_lifetime_ms = token_lifetime_ms;
  if (*o_tfile) cfg.token_file = token_file;
  if (*o_loose) cfg.loose = loose;
  if (*o_rlog) cfg.request_log_file = request_log;

  if (print_jobs) {
    auto js = ei::sim::preview_jobs(cfg);
    if (!js) return fail(js.err().message);
    nlohmann::json out = nlohmann::json::array();
    for (const auto& j : *js)
      out.push_back({{"id", j.id.to_string()},
                     {"companyId", j.company_id.to_string()},
                     {"status", std::string(ei::api::to_string(j.status))},
                     {"numberOfItems", j.items}});
    std::cout << out.dump(2) << std::endl;
    return 0;
  }
  if (auto st = ei::sim::validate_faults(cfg.faults); !st) return fail(st.err().message);

  // Block the signals before any thread starts so only sigwait below sees them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  auto sim = ei::sim::simulator::start(cfg);
  if (!sim) return fail(std::string(to_string(sim.err().code)) + ": " + sim.err().message);
  std::cout << "listening on " << cfg.host << ":" << (*sim)->port() << std::endl;
  int sig = 0;
  sigwait(&set, &sig);
  (*sim)->stop();
  auto st = (*sim)->stats();
  std::cerr << "export-items-sim: stopped by signal " << sig << "; requests " << st.requests
            << ", throttled (429) " << st.throttled << ", unauthorized " << st.unauthorized << "\n";
  if (auto err = (*sim)->request_log_file_error(); !err.empty()) return fail(err);
  return 0;
}
