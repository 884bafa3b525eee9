#include "apps/distributed_commands.hpp"

#include <iomanip>
#include <iostream>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "api/codec.hpp"
#include "api/export_requests.hpp"
#include "api/http_client.hpp"
#include "apps/job_ids.hpp"
#include "distributed/keys.hpp"
#include "distributed/worker.hpp"

namespace ei::distributed {

struct etcd_args {
  std::vector<std::string> endpoints;
  std::string ca, cert, key;
  std::string prefix = "/export-items/";
};

struct command_set {
  CLI::App* submit = nullptr;
  CLI::App* worker = nullptr;
  CLI::App* batch = nullptr;
  CLI::App* batch_status = nullptr;
  etcd_args etcd;
  // submit
  std::vector<std::string> jobs;
  std::string jobs_file;
  bool discover = false;
  std::string company_id;
  std::string base_url;
  // worker
  worker_options wo;
  std::string ordering = "chronological";
  // batch status
  bool json_out = false;
};

namespace {

using json = nlohmann::json;

int usage(const std::string& message) {
  std::cerr << "export-items: " << message << "\n";
  return 2;
}

void add_etcd_options(CLI::App* app, etcd_args& a) {
  app->add_option("--etcd", a.endpoints,
                  "etcd client URLs of the cluster's members (https://HOST:PORT ...; plain "
                  "http only on loopback); the next one is tried when one fails")
      ->required()
      ->expected(1, -1);
  app->add_option("--etcd-ca", a.ca, "PEM CA of the etcd cluster (default: system store)");
  app->add_option("--etcd-cert", a.cert, "PEM client certificate for etcd");
  app->add_option("--etcd-key", a.key, "PEM private key of --etcd-cert");
  app->add_option("--prefix", a.prefix, "Every key of the batch sits under this prefix")
      ->capture_default_str();
}

etcd_options to_options(const etcd_args& a) {
  etcd_options o;
  o.endpoints = a.endpoints;
  if (!a.ca.empty()) o.ca_file = a.ca;
  if (!a.cert.empty()) o.cert_file = a.cert;
  if (!a.key.empty()) o.key_file = a.key;
  return o;
}

int run_submit(const command_set& c) {
  const auto prefix = keys::normalize(c.etcd.prefix);
  if (prefix.empty()) return usage("--prefix: '" + c.etcd.prefix + "' must start with '/'");
  if (auto why = check_url_scheme(c.base_url, "--base-url"); !why.empty()) return usage(why);
  auto listed = apps::job_ids(c.jobs, c.jobs_file);
  if (!listed) return usage(listed.err());
  const auto& ids = listed.value();
  std::optional<api::uuid> company;
  if (!c.company_id.empty()) {
    company = api::uuid::parse(c.company_id);
    if (!company) return usage("--company-id: '" + c.company_id + "' is not a UUID");
  }
  if (ids.empty() && !c.discover)
    return usage("no jobs: give --job ID, --jobs-file FILE or --discover");
  auto creds = api::credentials::from_env();
  if (!creds) return usage(creds.err().message);
  api::client_config hc;
  hc.base_url = c.base_url;
  auto client = api::http_client::create(hc, creds.value());
  if (!client) return usage("--base-url: " + client.err().message);
  // job -> company, from the API (the worker's lock key is the company's).
  std::map<std::string, std::string> batch;
  for (const auto& id : ids) {
    auto req = api::requests::get_job(id);
    const auto where = req.describe();
    auto r = client.value()->request_sync(std::move(req));
    if (!r) return usage(where + ": " + r.err().message);
    auto job = api::decode_job(r.value().body, where);
    if (!job) return usage(job.err().message);
    batch[id.to_string()] = job.value().company_id.to_string();
  }
  if (c.discover) {
    std::string after;
    for (int pages = 0; pages < 100000; ++pages) {
      auto req = api::requests::list_jobs({"in_progress"}, company, 100, after);
      const auto where = req.describe();
      auto r = client.value()->request_sync(std::move(req));
      if (!r) return usage(where + ": " + r.err().message);
      auto page = api::decode_job_list(r.value().body, where);
      if (!page) return usage(page.err().message);
      for (const auto& j : page.value().data)
        batch[j.id.to_string()] = j.company_id.to_string();
      if (!page.value().pagination.has_next_page || !page.value().pagination.end_cursor ||
          page.value().data.empty())
        break;
      after = *page.value().pagination.end_cursor;
    }
  }
  client.value()->stop();
  auto etcd = etcd_client::connect(to_options(c.etcd));
  if (!etcd) return usage(etcd.err());
  keys k{prefix};
  std::size_t added = 0, present = 0;
  for (const auto& [job, comp] : batch) {
    json rec = {{"jobId", job}, {"companyId", comp}};
    auto r = etcd.value()->run_txn(json::array({txn::create_revision_is(k.job(job), 0)}),
                                   json::array({txn::put(k.job(job), rec.dump())}), json::array());
    if (!r) {
      std::cerr << "export-items submit: " << r.err() << "\n";
      return 1;
    }
    (r.value().succeeded ? added : present) += 1;
  }
  // The summary of a command that does work goes to stderr, as for run, report and complete.
  std::cerr << "submitted " << added << " jobs under " << prefix << " (" << present
            << " were there already)\n";
  return 0;
}

int run_worker_command(const command_set& c) {
  auto o = c.wo;
  o.etcd = to_options(c.etcd);
  o.prefix = c.etcd.prefix;
  if (o.lease_ttl_s < 2) return usage("--lease-ttl: at least 2 seconds (etcd's minimum)");
  // A member that hangs must cost a fraction of the lease, so the next one is tried in time.
  o.etcd.timeout = std::min<std::chrono::milliseconds>(
      std::chrono::milliseconds(2000), std::chrono::milliseconds(o.lease_ttl_s * 250));
  if (o.max_jobs == 0 || o.max_attempts == 0) return usage("--max-jobs and --max-attempts: > 0");
  if (auto mode = storage::parse_ordering_mode(c.ordering))
    o.ordering = *mode;
  else
    return usage("--ordering: expected chronological or entry_id, got '" + c.ordering + "'");
  if (keys::normalize(o.prefix).empty())
    return usage("--prefix: '" + o.prefix + "' must start with '/'");
  if (auto why = check_url_scheme(o.base_url, "--base-url"); !why.empty()) return usage(why);
  auto creds = api::credentials::from_env();
  if (!creds) return usage(creds.err().message);
  // Its lines go through the structured log (--log-format, --log-level; docs/operations.md).
  return run_worker(o, creds.value());
}

int run_batch_status(const command_set& c) {
  const auto prefix = keys::normalize(c.etcd.prefix);
  if (prefix.empty()) return usage("--prefix: '" + c.etcd.prefix + "' must start with '/'");
  auto etcd = etcd_client::connect(to_options(c.etcd));
  if (!etcd) return usage(etcd.err());
  keys k{prefix};
  auto& e = *etcd.value();
  auto jobs = e.range(k.jobs(), true);
  auto done = e.range(k.dones(), true);
  auto claims = e.range(k.claims(), true);
  auto progress = e.range(k.progresses(), true);
  for (const auto* r : {&jobs, &done, &claims, &progress})
    if (!*r) {
      std::cerr << "export-items batch status: " << r->err() << "\n";
      return 1;
    }
  auto by_job = [](const std::vector<key_value>& kvs, std::size_t cut) {
    std::map<std::string, json> m;
    for (const auto& kv : kvs) {
      auto j = json::parse(kv.value, nullptr, false);
      m[kv.key.substr(cut)] = j.is_discarded() ? json(kv.value) : j;
    }
    return m;
  };
  auto J = by_job(jobs.value(), k.jobs().size());
  auto D = by_job(done.value(), k.dones().size());
  auto C = by_job(claims.value(), k.claims().size());
  auto P = by_job(progress.value(), k.progresses().size());
  json out = {{"prefix", prefix}, {"jobs", json::array()}};
  std::map<std::string, std::size_t> by_state;
  std::map<std::string, std::size_t> by_worker;
  for (const auto& [id, rec] : J) {
    json row = {{"jobId", id}, {"companyId", rec.value("companyId", "")}};
    std::string state = "pending";
    if (auto d = D.find(id); d != D.end()) {
      state = d->second.value("result", "done");
      row["worker"] = d->second.value("worker", "");
      row["attempt"] = d->second.value("attempt", 0);
    } else if (auto cl = C.find(id); cl != C.end()) {
      state = "running";
      row["worker"] = cl->second.value("worker", "");
      row["attempt"] = cl->second.value("attempt", 0);
      ++by_worker[cl->second.value("worker", "")];
    }
    if (auto p = P.find(id); p != P.end()) {
      row["acked"] = p->second.value("acked", 0);
      if (p->second.contains("watermark")) row["watermark"] = p->second["watermark"];
    }
    row["state"] = state;
    ++by_state[state];
    out["jobs"].push_back(row);
  }
  out["byState"] = by_state;
  out["runningByWorker"] = by_worker;
  if (c.json_out) {
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  std::cout << "batch " << prefix << ": " << J.size() << " jobs";
  for (const auto& [s, n] : by_state)
    std::cout << ", " << n << " " << s;
  std::cout << "\n";
  for (const auto& [w, n] : by_worker)
    std::cout << "  worker " << w << ": " << n << " running\n";
  for (const auto& row : out["jobs"]) {
    std::cout << "  " << row["jobId"].get<std::string>() << "  " << std::left << std::setw(9)
              << row["state"].get<std::string>();
    if (row.contains("worker")) std::cout << " worker " << row["worker"].get<std::string>();
    if (row.contains("attempt")) std::cout << " attempt " << row["attempt"];
    if (row.contains("acked")) std::cout << " acked " << row["acked"];
    std::cout << "\n";
  }
  return 0;
}

}  // namespace

std::shared_ptr<command_set> add_commands(CLI::App& app) {
  auto c = std::make_shared<command_set>();
  auto* s = app.add_subcommand("submit", "Write a batch's jobs as keys into etcd");
  c->submit = s;
  add_etcd_options(s, c->etcd);
  s->add_option("--job", c->jobs, "Export job id (repeatable)");
  s->add_option("--jobs-file", c->jobs_file, "File with one job id per line");
  s->add_flag("--discover", c->discover, "Every in_progress job the API lists");
  s->add_option("--company-id", c->company_id, "With --discover: only this company");
  s->add_option("--base-url", c->base_url, "API base URL (to look up each job's company)")
      ->required();

  auto* w = app.add_subcommand(
      "worker", "Claim and run the jobs of a batch in etcd (any number of identical workers)");
  c->worker = w;
  add_etcd_options(w, c->etcd);
  w->add_option("--state-dir", c->wo.state_dir, "This worker's state directory (RocksDB)")
      ->required();
  w->add_option("--out", c->wo.out, "This worker's NDJSON output (appended, locked)")->required();
  w->add_option("--base-url", c->wo.base_url,
                "API base URL (credentials from PLEO_API_KEY / PLEO_ACCESS_TOKEN)")
      ->required();
  w->add_option("--name", c->wo.name, "Worker name in etcd and logs (default host:pid)");
  w->add_option("--lease-ttl", c->wo.lease_ttl_s, "etcd lease TTL in seconds")
      ->capture_default_str();
  w->add_option("--max-jobs", c->wo.max_jobs, "Jobs this worker runs at once")
      ->capture_default_str();
  w->add_option("--max-attempts", c->wo.max_attempts,
                "Claims of one job before it is recorded failed")
      ->capture_default_str();
  w->add_option("--page-size", c->wo.page_size, "Items per page")->capture_default_str();
  w->add_option("--ordering", c->ordering,
                "Order items are handed on in: chronological (default) or entry_id")
      ->check(CLI::IsMember({"chronological", "entry_id"}));
  w->add_option("--flush-items", c->wo.flush_items, "Progress write once this many acks wait")
      ->capture_default_str();
  w->add_option("--metrics-file", c->wo.metrics_file,
                "Write OpenMetrics text here (node_exporter textfile collector: name it *.prom), "
                "rewritten atomically every 5 s and at exit");

  auto* b = app.add_subcommand("batch", "Operate on a batch in etcd");
  c->batch = b;
  auto* bs = b->add_subcommand("status", "Jobs by state and worker (read-only)");
  c->batch_status = bs;
  add_etcd_options(bs, c->etcd);
  bs->add_flag("--json", c->json_out, "JSON output");
  return c;
}

std::optional<int> dispatch(const command_set& c) {
  if (c.submit->parsed()) return run_submit(c);
  if (c.worker->parsed()) return run_worker_command(c);
  if (c.batch_status->parsed()) return run_batch_status(c);
  if (c.batch->parsed()) return usage("batch: expected a subcommand (status)");
  return std::nullopt;
}

}  // namespace ei::distributed
