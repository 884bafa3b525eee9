// Behaviour of the in-process simulator over real loopback HTTP.
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "simulator/admission.hpp"
#include "simulator/simulator.hpp"
#include "tests/simulator/test_client.hpp"

namespace ei::sim {
namespace {

using testing::basic;
using testing::http_reply;
using testing::test_client;
using verb = boost::beast::http::verb;
using nlohmann::json;

constexpr const char* kKey = "test-key";
constexpr const char* kToken = "test-token";

sim_config small_config() {
  sim_config c;
  c.seed = 42;
  c.api_key = kKey;
  c.access_token = kToken;
  c.jobs = 5;
  c.companies = 2;
  c.items_per_job = 237;
  c.default_limit = 50;
  return c;
}

std::unique_ptr<simulator> start(sim_config c) {
  auto s = simulator::start(std::move(c));
  EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.err().message);
  return std::move(*s);
}

job_info job_with(const simulator& s, api::job_status st) {
  for (const auto& j : s.jobs())
    if (j.status == st) return j;
  ADD_FAILURE() << "no job in status " << api::to_string(st);
  return {};
}

std::string items_path(const job_info& j) {
  return "/v3/export-jobs/" + j.id.to_string() + "/items";
}

/// Pages through a listing with `after`, returning every page's body.
std::vector<json> page_all(test_client& c, const std::string& first, int max_pages = 1000) {
  std::vector<json> pages;
  std::string target = first;
  const char sep = first.find('?') == std::string::npos ? '?' : '&';
  for (int i = 0; i < max_pages; ++i) {
    http_reply r = c.get(target);
    EXPECT_EQ(r.status, 200u) << r.body;
    if (r.status != 200) break;
    pages.push_back(r.json());
    const json& p = pages.back()["pagination"];
    if (!p["hasNextPage"].get<bool>()) break;
    target = first + sep + "after=" + p["endCursor"].get<std::string>();
  }
  return pages;
}

TEST(Simulator, AuthRequiresValidCredentialsInBothSchemes) {
  auto sim = start(small_config());
  test_client c(sim->port());
  EXPECT_EQ(c.request(verb::get, "/v3/export-jobs", "", "", "").status, 401u);
  EXPECT_EQ(c.request(verb::get, "/v3/export-jobs", "", "", basic("wrong")).status, 401u);
  EXPECT_EQ(c.request(verb::get, "/v3/export-jobs", "", "", "Bearer wrong").status, 401u);
  http_reply r = c.request(verb::get, "/v3/export-jobs", "", "", "Basic " + std::string(kKey));
  EXPECT_EQ(r.status, 401u);
  EXPECT_EQ(r.json()["type"], "UNAUTHORIZED");
  EXPECT_EQ(r.body.find(kKey), std::string::npos);
  EXPECT_EQ(c.request(verb::get, "/v3/export-jobs", "", "", basic(kKey)).status, 200u);
  EXPECT_EQ(c.request(verb::get, "/v3/export-jobs", "", "", "Bearer " + std::string(kToken)).status,
            200u);
  EXPECT_EQ(c.request(verb::get, "/v3/export-jobs", "", "", "bearer " + std::string(kToken)).status,
            200u);
  EXPECT_EQ(sim->stats().unauthorized, 4u);
}

TEST(Simulator, ListsJobsWithFiltersAndEnvelope) {
  auto sim = start(small_config());
  test_client c(sim->port(), basic(kKey));
  json all = c.get("/v3/export-jobs").json();
  ASSERT_EQ(all["data"].size(), 5u);
  EXPECT_EQ(all["pagination"]["total"], 5);
  EXPECT_FALSE(all["pagination"]["hasNextPage"].get<bool>());
  std::set<std::string> statuses;
  for (const auto& j : all["data"]) {
    statuses.insert(j["status"].get<std::string>());
    for (const char* f : {"id", "companyId", "status", "createdAt", "expiresIn", "isInteractive",
                          "numberOfItems", "vendorBasedBookkeeping"})
      EXPECT_TRUE(j.contains(f)) << f;
  }
  EXPECT_EQ(statuses.size(), 5u);  // every ExportJobStatus appears

  json f = c.get("/v3/export-jobs?statuses=pending&statuses=in_progress&limit=1").json();
  EXPECT_EQ(f["pagination"]["total"], 2);
  EXPECT_EQ(f["data"].size(), 1u);
  EXPECT_TRUE(f["pagination"]["hasNextPage"].get<bool>());
  const json& crp = f["pagination"]["currentRequestPagination"];
  EXPECT_EQ(crp["parameters"]["statuses"], json({"pending", "in_progress"}));
  EXPECT_EQ(crp["parameters"]["limit"], json({"1"}));
  EXPECT_EQ(crp["limit"], 1);
  json f2 = c.get("/v3/export-jobs?statuses=pending&statuses=in_progress&limit=1&after=" +
                  f["pagination"]["endCursor"].get<std::string>())
                .json();
  ASSERT_EQ(f2["data"].size(), 1u);
  EXPECT_NE(f2["data"][0]["id"], f["data"][0]["id"]);
  EXPECT_FALSE(f2["pagination"]["hasNextPage"].get<bool>());
  EXPECT_TRUE(f2["pagination"]["hasPreviousPage"].get<bool>());

  const auto company = sim->jobs()[1].company_id;
  json byc = c.get("/v3/export-jobs?company_id=" + company.to_string()).json();
  for (const auto& j : byc["data"])
    EXPECT_EQ(j["companyId"], company.to_string());
  EXPECT_EQ(c.get("/v3/export-jobs?statuses=bogus").status, 400u);
  EXPECT_EQ(c.get("/v3/export-jobs?company_id=nope").status, 400u);
}

TEST(Simulator, GetsOneJobCaseInsensitivelyAnd404sUnknown) {
  auto sim = start(small_config());
  test_client c(sim->port(), basic(kKey));
  const auto j = sim->jobs()[0];
  std::string upper = j.id.to_string();
  for (auto& ch : upper)
    ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  http_reply r = c.get("/v3/export-jobs/" + upper);
  ASSERT_EQ(r.status, 200u) << r.body;
  EXPECT_EQ(r.json()["data"]["id"], j.id.to_string());
  EXPECT_EQ(r.json()["data"]["numberOfItems"], 237);
  r = c.get("/v3/export-jobs/00000000-0000-4000-8000-000000000000");
  EXPECT_EQ(r.status, 404u);
  EXPECT_EQ(r.json()["type"], "EXPORT_NOT_FOUND");
  r = c.get("/v3/export-jobs/not-a-uuid");
  EXPECT_EQ(r.status, 400u);
  EXPECT_EQ(c.get("/v3/export-jobs/00000000-0000-4000-8000-000000000000/items").status, 404u);
  EXPECT_EQ(c.get("/v3/nothing").status, 404u);
}

TEST(Simulator, CursorPagingVisitsEveryItemOnceInServerOrder) {
  auto sim = start(small_config());
  test_client c(sim->port(), basic(kKey));
  const job_info j = job_with(*sim, api::job_status::in_progress);
  auto pages = page_all(c, items_path(j) + "?limit=40");
  ASSERT_EQ(pages.size(), 6u);  // 237 = 5*40 + 37
  std::vector<std::string> got;
  for (const auto& p : pages) {
    EXPECT_EQ(p["pagination"]["total"], 237);
    for (const auto& it : p["data"]) {
      got.push_back(it["accountingEntryId"]);
      EXPECT_EQ(it["exportJobId"], j.id.to_string());
    }
  }
  const auto truth = sim->items_of(j.id);
  ASSERT_EQ(got.size(), truth.size());
  for (std::size_t i = 0; i < got.size(); ++i)
    EXPECT_EQ(got[i], truth[i].accounting_entry_id.to_string());
  EXPECT_EQ(std::set<std::string>(got.begin(), got.end()).size(), 237u);
  // Not chronological: the server order is a permutation.
  bool sorted = std::is_sorted(truth.begin(), truth.end(),
                               [](const auto& a, const auto& b) { return a.date_ms < b.date_ms; });
  EXPECT_FALSE(sorted);
  for (const auto& p : pages) {
    if (p["pagination"]["endCursor"].is_string()) {
      const std::string cur = p["pagination"]["endCursor"];
      EXPECT_EQ(cur.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567=~"), std::string::npos);
    }
  }
  // Backwards from the last page's startCursor gives the previous page.
  const std::string start = pages[5]["pagination"]["startCursor"];
  json back = c.get(items_path(j) + "?limit=40&before=" + start).json();
  EXPECT_EQ(back["data"], pages[4]["data"]);
}

TEST(Simulator, OffsetPagingStatusFilterAndTotal) {
  auto sim = start(small_config());
  test_client c(sim->port(), basic(kKey));
  const job_info j = job_with(*sim, api::job_status::in_progress);
  const auto truth = sim->items_of(j.id);
  json p = c.get(items_path(j) + "?limit=10&offset=100").json();
  ASSERT_EQ(p["data"].size(), 10u);
  for (std::size_t i = 0; i < 10; ++i)
    EXPECT_EQ(p["data"][i]["accountingEntryId"], truth[100 + i].accounting_entry_id.to_string());
  EXPECT_TRUE(p["pagination"]["hasPreviousPage"].get<bool>());
  EXPECT_EQ(p["pagination"]["currentRequestPagination"]["offset"], 100);

  std::size_t pending = 0;
  for (const auto& t : truth)
    pending += t.status == api::item_status::pending ? 1 : 0;
  ASSERT_GT(pending, 0u);
  ASSERT_LT(pending, truth.size());
  std::size_t seen = 0;
  for (const auto& page : page_all(c, items_path(j) + "?status=pending&limit=30")) {
    EXPECT_EQ(page["pagination"]["total"], pending);
    for (const auto& it : page["data"]) {
      EXPECT_EQ(it["status"], "pending");
      ++seen;
    }
  }
  EXPECT_EQ(seen, pending);
  EXPECT_EQ(c.get(items_path(j) + "?status=nope").status, 400u);
  EXPECT_EQ(c.get(items_path(j) + "?limit=-1").status, 400u);
}

TEST(Simulator, RejectsMixedAndInvalidCursors) {
  auto sim = start(small_config());
  test_client c(sim->port(), basic(kKey));
  const job_info j = job_with(*sim, api::job_status::in_progress);
  json p = c.get(items_path(j) + "?limit=5").json();
  const std::string cur = p["pagination"]["endCursor"];
  http_reply r = c.get(items_path(j) + "?after=" + cur + "&before=" + cur);
  EXPECT_EQ(r.status, 400u);
  EXPECT_EQ(c.get(items_path(j) + "?after=" + cur + "&offset=3").status, 400u);
  r = c.get(items_path(j) + "?after=abc");
  EXPECT_EQ(r.status, 400u);
  EXPECT_EQ(r.json()["type"], "INVALID_CURSOR");
  r = c.get(items_path(j) + "?after=AAAAAAAA");
  EXPECT_EQ(r.status, 400u);
  EXPECT_EQ(r.json()["type"], "INVALID_CURSOR");
  // A cursor from another job's listing is foreign.
  const job_info other = job_with(*sim, api::job_status::pending);
  r = c.get(items_path(other) + "?after=" + cur);
  EXPECT_EQ(r.status, 400u);
  EXPECT_EQ(c.get(items_path(j) + "?sorting_keys=a&sorting_keys=b&sorting_order=ASC").status, 400u);
  p = c.get(items_path(j) + "?limit=1&sorting_keys=createdAt&sorting_order=DESC").json();
  EXPECT_EQ(p["pagination"]["currentRequestPagination"]["sortingKeys"], json({"createdAt"}));
  EXPECT_EQ(p["pagination"]["currentRequestPagination"]["sortingOrder"], json({"DESC"}));
}

TEST(Simulator, EventsFollowTheLifecycle) {
  auto sim = start(small_config());
  test_client c(sim->port(), basic(kKey));
  const job_info pending = job_with(*sim, api::job_status::pending);
  const job_info done = job_with(*sim, api::job_status::completed);
  auto event = [&](const std::string& ev, const api::uuid& id,
                   const std::string& ct = "application/json") {
    return c.request(verb::post, "/v3/export-job-events",
                     json{{"event", ev}, {"jobId", id.to_string()}}.dump(), ct);
  };
  EXPECT_EQ(event("completed", pending.id).status, 422u);
  EXPECT_EQ(event("started", pending.id, "application/json;charset=UTF-8").status, 202u);
  // The debug endpoint counts the events of a job by kind, and the refused ones, for
  // harnesses outside the process.
  {
    const json counts =
        c.get("/sim/export-jobs/" + pending.id.to_string() + "/item-updates").json();
    EXPECT_EQ(counts["events"], (json{{"started", 1}})) << counts;
    EXPECT_EQ(counts["eventsRejected"], 1) << counts;
  }
  EXPECT_EQ(c.get("/v3/export-jobs/" + pending.id.to_string()).json()["data"]["status"],
            "in_progress");
  http_reply again = event("started", pending.id);
  EXPECT_EQ(again.status, 422u);
  EXPECT_EQ(again.json()["type"], "INVALID_EXPORT_JOB_STATUS_CHANGE");
  EXPECT_EQ(event("completed_with_errors", pending.id).status, 202u);
  EXPECT_EQ(event("started", done.id).status, 422u);
  EXPECT_EQ(event("failed", done.id).status, 422u);
  EXPECT_EQ(event("started", api::uuid{}).status, 404u);
  EXPECT_EQ(event("started", pending.id, "text/plain").status, 415u);
  EXPECT_EQ(c.request(verb::post, "/v3/export-job-events", "{", "application/json").status, 400u);
  // pending -> failed is allowed and keeps the reason.
  auto sim2 = start(small_config());
  test_client c2(sim2->port(), basic(kKey));
  const job_info fresh = job_with(*sim2, api::job_status::pending);
  http_reply r = c2.request(verb::post, "/v3/export-job-events",
                            json{{"event", "failed"},
                                 {"jobId", fresh.id.to_string()},
                                 {"failureReasonType", "invalid_configuration"},
                                 {"failureReason", "no journal"}}
                                .dump());
  EXPECT_EQ(r.status, 202u);
  json job = c2.get("/v3/export-jobs/" + fresh.id.to_string()).json()["data"];
  EXPECT_EQ(job["status"], "failed");
  EXPECT_EQ(job["failureReasonType"], "invalid_configuration");
}

TEST(Simulator, PutItemsReportsPerItemErrorsAndLimits) {
  auto sim = start(small_config());
  test_client c(sim->port(), basic(kKey));
  const job_info j = job_with(*sim, api::job_status::in_progress);
  const auto truth = sim->items_of(j.id);
  json body = json::array();
  body.push_back({{"accountingEntryId", truth[3].accounting_entry_id.to_string()},
                  {"status", "successful"},
                  {"exportedAt", "2025-01-15T10:00:00Z"},
                  {"externalId", "JE-1"},
                  {"externalUrl", "https://erp.example/je/1"}});
  body.push_back(
      {{"accountingEntryId", "11111111-1111-4111-8111-111111111111"}, {"status", "failed"}});
  http_reply r = c.request(verb::put, items_path(j), body.dump());
  ASSERT_EQ(r.status, 200u) << r.body;
  json out = r.json();
  ASSERT_EQ(out["data"].size(), 1u);
  EXPECT_EQ(out["data"][0]["externalId"], "JE-1");
  ASSERT_EQ(out["errors"].size(), 1u);
  EXPECT_EQ(out["errors"][0]["type"], "ACCOUNTING_ENTRY_DOES_NOT_EXIST");
  EXPECT_EQ(sim->items_of(j.id)[3].status, api::item_status::successful);
  // Item ids of another job are not part of this one.
  const job_info other = job_with(*sim, api::job_status::pending);
  json foreign = json::array(
      {{{"accountingEntryId", sim->items_of(other.id)[0].accounting_entry_id.to_string()},
        {"status", "successful"}}});
  EXPECT_EQ(c.request(verb::put, items_path(j), foreign.dump()).json()["errors"].size(), 1u);

  json big = json::array();
  for (int i = 0; i < 101; ++i)
    big.push_back({{"accountingEntryId", truth[i].accounting_entry_id.to_string()},
                   {"status", "successful"}});
  r = c.request(verb::put, items_path(j), big.dump());
  EXPECT_EQ(r.status, 413u);
  EXPECT_EQ(r.json()["type"], "EXPORT_JOB_ITEMS_UPDATE_LIMIT");
  const job_info done = job_with(*sim, api::job_status::completed);
  r = c.request(verb::put, items_path(done), "[]");
  EXPECT_EQ(r.status, 422u);
  EXPECT_EQ(r.json()["type"], "EXPORT_JOB_STATUS_UNPROCESSABLE");
  EXPECT_EQ(c.request(verb::put, items_path(j), "{}").status, 400u);
  const std::string unknown = "/v3/export-jobs/22222222-2222-4222-8222-222222222222/items";
  r = c.request(verb::put, unknown, "[]");
  EXPECT_EQ(r.status, 404u);
  EXPECT_EQ(r.json()["type"], "EXPORT_NOT_FOUND");
}

// The update contract the live-world crash harness relies on: updates show in later listings
// (status and tracking fields), final is terminal, re-sending a final status is idempotent,
// lastUpdatedAt moves, and every item counts its updates.
TEST(Simulator, PutItemsChangesListingsAndFinalIsTerminal) {
  sim_config cfg = small_config();
  cfg.mix = {.pending = 1, .in_progress = 0, .successful = 0, .failed = 0, .abandoned = 0};
  auto sim = start(cfg);
  test_client c(sim->port(), basic(kKey));
  const job_info j = job_with(*sim, api::job_status::in_progress);
  const auto truth = sim->items_of(j.id);
  const std::string a = truth[0].accounting_entry_id.to_string();
  const std::string b = truth[1].accounting_entry_id.to_string();
  const std::string job_path = "/v3/export-jobs/" + j.id.to_string();
  const std::string before = c.get(job_path).json()["data"]["lastUpdatedAt"];
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // timestamps have seconds

  json ok = json::array({{{"accountingEntryId", a},
                          {"status", "successful"},
                          {"exportedAt", "2025-02-01T08:00:00Z"},
                          {"externalId", "JE-7"},
                          {"externalUrl", "https://erp.example/je/7"}},
                         {{"accountingEntryId", b},
                          {"status", "failed"},
                          {"failureReasonType", "account_mapping_missing"},
                          {"failureReason", "no account for tag"}}});
  http_reply r = c.request(verb::put, items_path(j), ok.dump());
  ASSERT_EQ(r.status, 200u) << r.body;
  EXPECT_EQ(r.json()["data"].size(), 2u);
  EXPECT_TRUE(r.json()["errors"].empty());
  EXPECT_NE(c.get(job_path).json()["data"]["lastUpdatedAt"].get<std::string>(), before);

  // A later listing shows the new statuses and tracking fields.
  std::map<std::string, json> listed;
  for (const json& page : page_all(c, items_path(j) + "?limit=100"))
    for (const json& item : page["data"])
      listed[item["accountingEntryId"].get<std::string>()] = item;
  EXPECT_EQ(listed.at(a)["status"], "successful");
  EXPECT_EQ(listed.at(a)["externalId"], "JE-7");
  EXPECT_EQ(listed.at(a)["externalUrl"], "https://erp.example/je/7");
  EXPECT_EQ(listed.at(b)["status"], "failed");
  EXPECT_EQ(listed.at(b)["failureReasonType"], "account_mapping_missing");
  EXPECT_TRUE(listed.at(b)["externalId"].is_null());
  const std::string filtered = items_path(j) + "?status=pending&limit=1";
  EXPECT_EQ(c.get(filtered).json()["pagination"]["total"], truth.size() - 2);

  // The same final status again: idempotent. Another status on a final item: rejected per item,
  // the item unchanged; a non-final item may move freely.
  const std::string c_id = truth[2].accounting_entry_id.to_string();
  json mixed = json::array({{{"accountingEntryId", a}, {"status", "successful"}},
                            {{"accountingEntryId", a}, {"status", "pending"}},
                            {{"accountingEntryId", b}, {"status", "successful"}},
                            {{"accountingEntryId", c_id}, {"status", "in_progress"}},
                            {{"accountingEntryId", c_id}, {"status", "pending"}}});
  r = c.request(verb::put, items_path(j), mixed.dump());
  ASSERT_EQ(r.status, 200u) << r.body;
  const json out = r.json();
  ASSERT_EQ(out["data"].size(), 3u);
  EXPECT_EQ(out["data"][0]["status"], "successful");
  EXPECT_TRUE(out["data"][0]["externalId"].is_null());  // tracking replaced by the re-send
  ASSERT_EQ(out["errors"].size(), 2u);
  for (const json& e : out["errors"])
    EXPECT_EQ(e["type"], "EXPORT_ENTRY_STATUS_UPDATE_FAILED") << e;
  EXPECT_EQ(out["errors"][0]["accountingEntryId"], a);
  EXPECT_EQ(out["errors"][1]["accountingEntryId"], b);
  EXPECT_EQ(sim->items_of(j.id)[1].status, api::item_status::failed);
  EXPECT_EQ(sim->items_of(j.id)[2].status, api::item_status::pending);

  // Per-item counters, through the API and the debug endpoint.
  std::map<std::string, std::pair<unsigned, unsigned>> counts;
  for (const auto& u : sim->item_updates(j.id))
    counts[u.accounting_entry_id.to_string()] = {u.applied, u.rejected};
  EXPECT_EQ(counts.size(), 3u);
  EXPECT_EQ(counts[a], std::make_pair(2u, 1u));
  EXPECT_EQ(counts[b], std::make_pair(1u, 1u));
  EXPECT_EQ(counts[c_id], std::make_pair(2u, 0u));
  r = c.get("/sim/export-jobs/" + j.id.to_string() + "/item-updates");
  ASSERT_EQ(r.status, 200u) << r.body;
  const json updates = r.json();  // a range-for over a temporary's member would dangle
  ASSERT_EQ(updates["data"].size(), 3u);
  for (const json& u : updates["data"]) {
    const auto& want = counts[u["accountingEntryId"].get<std::string>()];
    EXPECT_EQ(u["applied"], want.first);
    EXPECT_EQ(u["rejected"], want.second);
  }
  auto log = sim->request_log();
  std::uint32_t applied = 0, rejected = 0;
  for (const auto& rec : log) {
    applied += rec.items_updated;
    rejected += rec.items_rejected;
  }
  EXPECT_EQ(applied, 5u);
  EXPECT_EQ(rejected, 2u);
  EXPECT_EQ(log.back().endpoint, "debug");
  EXPECT_EQ(c.get("/sim/export-jobs/22222222-2222-4222-8222-222222222222/item-updates").status,
            404u);
}

// A body that violates the schema is rejected as a whole (400, nothing applied).
TEST(Simulator, PutItemsRejectsSchemaViolationsWhole) {
  auto sim = start(small_config());
  test_client c(sim->port(), basic(kKey));
  const job_info j = job_with(*sim, api::job_status::in_progress);
  const auto truth = sim->items_of(j.id);
  const std::string a = truth[0].accounting_entry_id.to_string();
  const json good = {{"accountingEntryId", a}, {"status", "successful"}};
  for (const json& bad :
       {json(1), json({{"status", "successful"}}), json({{"accountingEntryId", a}}),
        json({{"accountingEntryId", "not-a-uuid"}, {"status", "failed"}}),
        json({{"accountingEntryId", a}, {"status", "done"}}),
        json({{"accountingEntryId", a}, {"status", "failed"}, {"externalId", 5}}),
        json({{"accountingEntryId", a}, {"status", "successful"}, {"exportedAt", "yesterday"}})}) {
    http_reply r = c.request(verb::put, items_path(j), json::array({good, bad}).dump());
    EXPECT_EQ(r.status, 400u) << bad;
    EXPECT_EQ(r.json()["type"], "INVALID_REQUEST_BODY") << bad;
  }
  EXPECT_EQ(sim->items_of(j.id)[0].status, truth[0].status);
  EXPECT_TRUE(sim->item_updates(j.id).empty());
}

TEST(Simulator, ExportItemsServeTheDataLayer) {
  auto sim = start(small_config());
  test_client c(sim->port(), basic(kKey));
  const job_info j = job_with(*sim, api::job_status::in_progress);
  const auto truth = sim->items_of(j.id);
  std::size_t n = 0;
  for (const auto& page :
       page_all(c, "/v3/export-items?job_id=" + j.id.to_string() + "&limit=100")) {
    for (const auto& it : page["data"]) {
      for (const char* f : {"_links", "accountingEntryId", "accountingEntryLines",
                            "additionalInformation", "amount", "companyId", "date", "type"})
        ASSERT_TRUE(it.contains(f)) << f;
      EXPECT_EQ(it["accountingEntryId"], truth[n].accounting_entry_id.to_string());
      EXPECT_EQ(api::parse_timestamp_ms(it["date"].get<std::string>()), truth[n].date_ms);
      EXPECT_EQ(it["companyId"], j.company_id.to_string());
      EXPECT_TRUE(it["amount"]["inSupplierCurrency"]["value"].is_number_integer());
      EXPECT_FALSE(it["accountingEntryLines"].empty());
      ++n;
    }
  }
  EXPECT_EQ(n, truth.size());
  const job_info done = job_with(*sim, api::job_status::completed);
  http_reply r = c.get("/v3/export-items?job_id=" + done.id.to_string());
  EXPECT_EQ(r.status, 422u);
  EXPECT_EQ(c.get("/v3/export-items").status, 400u);
  EXPECT_EQ(c.get("/v3/export-items?job_id=bad").status, 400u);
}

TEST(Simulator, DeterministicFromSeedAndOrderSeedOnlyPermutes) {
  auto a = start(small_config());
  auto b = start(small_config());
  ASSERT_EQ(a->jobs().size(), b->jobs().size());
  const job_info j = job_with(*a, api::job_status::in_progress);
  test_client ca(a->port(), basic(kKey)), cb(b->port(), basic(kKey));
  EXPECT_EQ(ca.get(items_path(j) + "?limit=237").body, cb.get(items_path(j) + "?limit=237").body);
  sim_config other = small_config();
  other.server_order_seed = 777;
  auto d = start(other);
  auto ta = a->items_of(j.id), td = d->items_of(j.id);
  ASSERT_EQ(ta.size(), td.size());
  std::set<std::string> sa, sd;
  bool same_order = true;
  for (std::size_t i = 0; i < ta.size(); ++i) {
    sa.insert(ta[i].accounting_entry_id.to_string());
    sd.insert(td[i].accounting_entry_id.to_string());
    same_order = same_order && ta[i].accounting_entry_id == td[i].accounting_entry_id;
  }
  EXPECT_EQ(sa, sd);
  EXPECT_FALSE(same_order);
}

TEST(Simulator, RequestLogRecordsCompanyStatusAndFault) {
  auto sim = start(small_config());
  test_client c(sim->port(), basic(kKey));
  const job_info j = job_with(*sim, api::job_status::in_progress);
  ASSERT_TRUE(sim->set_faults("items:status=503@nth=2").ok());
  c.get(items_path(j) + "?limit=1");
  c.get(items_path(j) + "?limit=1");
  auto log = sim->request_log();
  ASSERT_EQ(log.size(), 2u);
  EXPECT_EQ(log[0].endpoint, "items");
  EXPECT_EQ(log[0].status, 200u);
  EXPECT_EQ(log[0].company_id, j.company_id);
  EXPECT_EQ(log[0].job_id, j.id);
  EXPECT_TRUE(log[0].fault.empty());
  EXPECT_EQ(log[1].status, 503u);
  EXPECT_EQ(log[1].fault, "status");
  EXPECT_EQ(log[1].target, items_path(j) + "?limit=1");
  EXPECT_EQ(sim->stats().faults_injected, 1u);
  EXPECT_EQ(sim->stats().items_served, 1u);
  sim->clear_request_log();
  EXPECT_TRUE(sim->request_log().empty());
}

TEST(Simulator, FaultSpecsAreValidated) {
  for (const char* bad :
       {"items:status=200", "nowhere:reset", "items:explode", "items:reset@rate=2",
        "items:latency=fast", "events:cycle", "items:reset@nth=0"}) {
    auto st = validate_faults(bad);
    ASSERT_FALSE(st.ok()) << bad;
    EXPECT_EQ(st.err().code, sim_errc::invalid_faults);
    EXPECT_NE(st.err().message.find(bad), std::string::npos) << st.err().message;
  }
  EXPECT_TRUE(validate_faults("items:status=503@rate=0.1; items:reset_mid_body@nth=3; "
                              "jobs:latency=50ms@all; items:cycle@once; throttle=2@every=3")
                  .ok());
  sim_config c = small_config();
  c.faults = "items:boom";
  auto s = simulator::start(c);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.err().code, sim_errc::invalid_faults);
  EXPECT_FALSE(fault_help().empty());
}

class Faults : public ::testing::Test {
 protected:
  void SetUp() override {
    sim_ = start(small_config());
    job_ = job_with(*sim_, api::job_status::in_progress);
  }
  std::string items(const std::string& q = "?limit=20") { return items_path(job_) + q; }
  std::unique_ptr<simulator> sim_;
  job_info job_;
};

TEST_F(Faults, StatusAndThrottle) {
  test_client c(sim_->port(), basic(kKey));
  ASSERT_TRUE(
      sim_->set_faults("items:status=502@once; jobs:throttle=7@nth=1; jobs:throttle@nth=2").ok());
  EXPECT_EQ(c.get(items()).status, 502u);
  EXPECT_EQ(c.get(items()).status, 200u);
  http_reply r = c.get("/v3/export-jobs");
  EXPECT_EQ(r.status, 429u);
  EXPECT_EQ(r.headers["Retry-After"], "7");
  r = c.get("/v3/export-jobs");
  EXPECT_EQ(r.status, 429u);
  EXPECT_EQ(r.headers.count("Retry-After"), 0u);
  EXPECT_EQ(c.get("/v3/export-jobs").status, 200u);
}

TEST_F(Faults, RateIsSeededAndPartial) {
  ASSERT_TRUE(sim_->set_faults("items:status=500@rate=0.5").ok());
  test_client c(sim_->port(), basic(kKey));
  std::string pattern;
  for (int i = 0; i < 40; ++i)
    pattern += c.get(items("?limit=1")).status == 500 ? 'x' : '.';
  EXPECT_NE(pattern.find('x'), std::string::npos);
  EXPECT_NE(pattern.find('.'), std::string::npos);
  ASSERT_TRUE(sim_->set_faults("items:status=500@rate=0.5").ok());
  std::string again;
  for (int i = 0; i < 40; ++i)
    again += c.get(items("?limit=1")).status == 500 ? 'x' : '.';
  EXPECT_EQ(pattern, again);
}

TEST_F(Faults, LatencyIsApplied) {
  ASSERT_TRUE(sim_->set_faults("jobs:latency=30ms").ok());
  test_client c(sim_->port(), basic(kKey));
  EXPECT_EQ(c.get("/v3/export-jobs").status, 200u);
  auto log = sim_->request_log();
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].fault, "latency");
}

TEST_F(Faults, ConnectionFaultsBreakTheTransport) {
  ASSERT_TRUE(
      sim_->set_faults("items:reset@nth=1; items:reset_mid_body@nth=2; items:truncate@nth=3; "
                       "items:malformed@nth=4")
          .ok());
  test_client c(sim_->port(), basic(kKey));
  http_reply r = c.get(items());
  EXPECT_FALSE(r.transport_ok);
  r = c.get(items());
  EXPECT_FALSE(r.transport_ok);
  r = c.get(items());
  EXPECT_FALSE(r.transport_ok);
  EXPECT_EQ(r.status, 200u);  // headers arrived, body cut short
  r = c.get(items());
  ASSERT_TRUE(r.transport_ok);
  EXPECT_EQ(r.status, 200u);
  EXPECT_FALSE(json::accept(r.body));
  EXPECT_EQ(c.get(items()).status, 200u);
  auto log = sim_->request_log();
  ASSERT_EQ(log.size(), 5u);
  EXPECT_EQ(log[0].status, 0u);
  EXPECT_EQ(log[0].fault, "reset");
  EXPECT_EQ(log[1].fault, "reset_mid_body");
  EXPECT_EQ(log[2].fault, "truncate");
  EXPECT_EQ(log[3].fault, "malformed");
}

TEST_F(Faults, CycleEmptyDuplicateAndExpiredCursor) {
  test_client c(sim_->port(), basic(kKey));
  json p1 = c.get(items()).json();
  const std::string a = p1["pagination"]["endCursor"];
  json p2 = c.get(items("?limit=20&after=" + a)).json();
  const std::string b = p2["pagination"]["endCursor"];
  ASSERT_TRUE(sim_->set_faults("items:cycle@once").ok());
  json p3 = c.get(items("?limit=20&after=" + b)).json();
  EXPECT_EQ(p3["pagination"]["endCursor"], a);  // A -> B -> A
  EXPECT_TRUE(p3["pagination"]["hasNextPage"].get<bool>());

  ASSERT_TRUE(sim_->set_faults("items:empty_page@once").ok());
  json e = c.get(items("?limit=20&after=" + a)).json();
  EXPECT_TRUE(e["data"].empty());
  EXPECT_TRUE(e["pagination"]["hasNextPage"].get<bool>());
  EXPECT_EQ(e["pagination"]["endCursor"], a);

  ASSERT_TRUE(sim_->set_faults("items:duplicate@once").ok());
  json d1 = c.get(items()).json();
  json d2 =
      c.get(items("?limit=20&after=" + d1["pagination"]["endCursor"].get<std::string>())).json();
  EXPECT_EQ(d2["data"][0]["accountingEntryId"], d1["data"][19]["accountingEntryId"]);

  ASSERT_TRUE(sim_->set_faults("items:expired_cursor@once").ok());
  EXPECT_EQ(c.get(items()).status, 200u);  // no cursor: not applicable yet
  http_reply r = c.get(items("?limit=20&after=" + a));
  EXPECT_EQ(r.status, 400u);
  EXPECT_EQ(r.json()["type"], "CURSOR_EXPIRED");
  EXPECT_EQ(c.get(items("?limit=20&after=" + a)).status, 200u);
}

TEST_F(Faults, FlipStatusChangesAnItemBetweenPages) {
  test_client c(sim_->port(), basic(kKey));
  ASSERT_TRUE(sim_->set_faults("items:flip_status@once").ok());
  json p1 = c.get(items()).json();
  const std::string id = p1["data"][19]["accountingEntryId"];
  const std::string before = p1["data"][19]["status"];
  json again = c.get(items()).json();
  EXPECT_EQ(again["data"][19]["accountingEntryId"], id);
  EXPECT_NE(again["data"][19]["status"], before);
}

TEST_F(Faults, ExpireJobAbandonsOpenItems) {
  test_client c(sim_->port(), basic(kKey));
  ASSERT_TRUE(sim_->set_faults("export_items:expire_job@nth=2").ok());
  const std::string q = "/v3/export-items?job_id=" + job_.id.to_string() + "&limit=5";
  EXPECT_EQ(c.get(q).status, 200u);
  http_reply r = c.get(q);
  EXPECT_EQ(r.status, 422u);
  json job = c.get("/v3/export-jobs/" + job_.id.to_string()).json()["data"];
  EXPECT_EQ(job["status"], "failed");
  EXPECT_EQ(job["failureReasonType"], "job_expired");
  EXPECT_TRUE(job["expiredAt"].is_string());
  for (const auto& t : sim_->items_of(job_.id)) {
    EXPECT_NE(t.status, api::item_status::pending);
    EXPECT_NE(t.status, api::item_status::in_progress);
  }
  json pend = c.get(items("?status=pending")).json();
  EXPECT_EQ(pend["pagination"]["total"], 0);
}

TEST_F(Faults, CompleteJobHtmlAndRefusedLimit) {
  test_client c(sim_->port(), basic(kKey));
  ASSERT_TRUE(sim_->set_faults("job:complete_job@nth=2; items:html@nth=1").ok());
  const std::string job_path = "/v3/export-jobs/" + job_.id.to_string();
  EXPECT_EQ(c.get(job_path).json()["data"]["status"], "in_progress");
  EXPECT_EQ(c.get(job_path).json()["data"]["status"], "completed");
  http_reply html = c.get(items());
  EXPECT_EQ(html.status, 200u);
  EXPECT_EQ(html.headers["Content-Type"].rfind("text/html", 0), 0u) << html.headers["Content-Type"];
  EXPECT_EQ(html.body.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_EQ(c.get(items()).status, 200u);

  sim_config cfg = small_config();
  cfg.refuse_limit_above = 40;
  auto refusing = start(cfg);
  test_client r(refusing->port(), basic(kKey));
  http_reply refused = r.get(items_path(job_) + "?limit=41");
  EXPECT_EQ(refused.status, 400u);
  EXPECT_EQ(refused.json()["type"], "INVALID_PARAMETER");
  EXPECT_NE(refused.json()["message"].get<std::string>().find("'limit'"), std::string::npos);
  EXPECT_EQ(r.get(items_path(job_) + "?limit=40").status, 200u);
}

TEST(Simulator, LooseModeStraysOnlyWhereTheStageTolerates) {
  // Same seed, strict and loose: the loose answers are deterministic, keep every field the
  // stage reads (ids, statuses but null for pending, dates as the same instant, hasNextPage,
  // endCursor, total) and make some required fields missing, null or of another type.
  sim_config cfg = small_config();
  auto strict = start(cfg);
  cfg.loose = true;
  auto loose = start(cfg);
  test_client sc(strict->port(), basic(kKey)), lc(loose->port(), basic(kKey));
  const job_info j = job_with(*strict, api::job_status::in_progress);
  std::map<std::string, int> deviating;  // field -> answers where it strays
  auto strays = [&](const json& obj, const json& ref, const char* f) {
    if (!obj.contains(f) || obj[f].type() != ref[f].type()) ++deviating[f];
  };
  for (const std::string& target :
       {items_path(j) + "?limit=237", "/v3/export-items?job_id=" + j.id.to_string() + "&limit=237",
        std::string("/v3/export-jobs?limit=5")}) {
    const json a = sc.get(target).json(), b = lc.get(target).json();
    EXPECT_EQ(b.dump(), lc.get(target).json().dump()) << "loose answers are deterministic";
    ASSERT_EQ(a["data"].size(), b["data"].size());
    for (const char* f : {"hasNextPage", "endCursor", "total"})
      EXPECT_EQ(a["pagination"][f], b["pagination"][f]) << f;
    strays(b["pagination"], a["pagination"], "hasPreviousPage");
    strays(b["pagination"], a["pagination"], "currentRequestPagination");
    for (std::size_t i = 0; i < a["data"].size(); ++i) {
      const json& x = a["data"][i];
      const json& y = b["data"][i];
      if (x.contains("accountingEntryId")) {
        EXPECT_EQ(x["accountingEntryId"], y["accountingEntryId"]);
      } else {
        EXPECT_EQ(x["id"], y["id"]);
        EXPECT_EQ(x["status"], y["status"]);
        EXPECT_EQ(x["numberOfItems"], y["numberOfItems"]);
        for (const char* f : {"expiresIn", "isInteractive", "vendorBasedBookkeeping"})
          strays(y, x, f);
      }
      if (x.contains("exportJobId")) {
        if (y["status"].is_null()) {
          EXPECT_EQ(x["status"], "pending");
          ++deviating["status"];
        } else {
          EXPECT_EQ(x["status"], y["status"]);
        }
        strays(y, x, "exportJobId");
      }
      if (x.contains("date")) {
        const std::string d = y["date"];
        const auto lenient = api::parse_date_lenient(d);
        EXPECT_EQ(lenient.epoch_ms, api::parse_timestamp_ms(x["date"].get<std::string>())) << d;
        if (lenient.form == api::date_form::date_only) ++deviating["date only"];
        if (lenient.form == api::date_form::zoneless) ++deviating["date without zone"];
        if (d.size() == 25 && d[19] != 'Z') ++deviating["date with offset"];
        for (const char* f : {"_links", "accountingEntryLines", "additionalInformation", "amount",
                              "companyId", "type"})
          strays(y, x, f);
      }
    }
  }
  for (const char* f : {"hasPreviousPage", "status", "exportJobId", "amount", "_links",
                        "date with offset", "date only", "date without zone"})
    EXPECT_GT(deviating[f], 0) << f;
}

TEST(Simulator, JobsExpireAfterExpiresIn) {
  sim_config cfg = small_config();
  cfg.expires_in_seconds = 1;
  auto sim = start(cfg);
  test_client c(sim->port(), basic(kKey));
  const job_info j = job_with(*sim, api::job_status::in_progress);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  json job = c.get("/v3/export-jobs/" + j.id.to_string()).json()["data"];
  EXPECT_EQ(job["status"], "failed");
  EXPECT_EQ(job["failureReasonType"], "job_expired");
}

TEST(Simulator, MillionItemJobServesDeepPages) {
  sim_config cfg = small_config();
  cfg.jobs = 1;
  cfg.items_per_job = 1000000;
  auto sim = start(cfg);
  ASSERT_NE(sim, nullptr);
  test_client c(sim->port(), basic(kKey));
  const job_info j = sim->jobs()[0];
  json p = c.get(items_path(j) + "?limit=500&offset=999700").json();
  ASSERT_EQ(p["data"].size(), 300u);
  EXPECT_FALSE(p["pagination"]["hasNextPage"].get<bool>());
  EXPECT_EQ(p["pagination"]["total"], 1000000);
  // The item there is addressable by PUT without any per-item table.
  const std::string id = p["data"][299]["accountingEntryId"];
  json body = json::array({{{"accountingEntryId", id}, {"status", "successful"}}});
  json out = c.request(verb::put, items_path(j), body.dump()).json();
  EXPECT_EQ(out["data"].size(), 1u);
  EXPECT_TRUE(out["errors"].empty());
  sim->set_item_status(j.id, *api::uuid::parse(id), api::item_status::failed);
  json again = c.get(items_path(j) + "?limit=1&offset=999999").json();
  EXPECT_EQ(again["data"][0]["status"], "failed");
}

TEST(Simulator, ConfigJsonIsValidatedWithKeyNames) {
  auto ok = parse_config_json(R"({"seed":7,"jobs":2,"items":10,"mix":{"pending":1,"failed":1},
      "extra_jobs":[{"status":"pending","items":3}],"faults":"items:reset@once"})");
  ASSERT_TRUE(ok.ok()) << ok.err().message;
  EXPECT_EQ(ok->seed, 7u);
  EXPECT_EQ(ok->items_per_job, 10u);
  EXPECT_EQ(ok->extra_jobs.size(), 1u);
  EXPECT_FALSE(ok->loose);
  auto loose = parse_config_json(R"({"loose":true,"refuse_limit_above":40})");
  ASSERT_TRUE(loose.ok()) << loose.err().message;
  EXPECT_TRUE(loose->loose);
  EXPECT_EQ(loose->refuse_limit_above, 40u);
  auto logged = parse_config_json(R"({"request_log_file":"/tmp/requests.ndjson"})");
  ASSERT_TRUE(logged.ok()) << logged.err().message;
  EXPECT_EQ(logged->request_log_file, "/tmp/requests.ndjson");
  auto bad = parse_config_json(R"({"sead":7})");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.err().message.find("sead"), std::string::npos);
  bad = parse_config_json(R"({"jobs":"many"})");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.err().message.find("jobs"), std::string::npos);
  bad = parse_config_json(R"({"extra_jobs":[{"status":"done"}]})");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.err().message.find("extra_jobs[0].status"), std::string::npos);
  bad = parse_config_json(R"({"faults":"x:y"})");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.err().message.find("faults"), std::string::npos);
}

TEST(Simulator, OpenWhenNoCredentialsConfigured) {
  sim_config cfg = small_config();
  cfg.api_key.clear();
  cfg.access_token.clear();
  auto sim = start(cfg);
  test_client c(sim->port());
  EXPECT_EQ(c.get("/v3/export-jobs").status, 200u);
}

}  // namespace
}  // namespace ei::sim

// --- admission: the rate limit per credential and rotating tokens ---------------------------

namespace {

TEST(sim_admission, token_bucket_per_credential_with_both_retry_after_forms) {
  using namespace std::chrono;
  ei::sim::admission a(2.0, 3.0, 7);  // 2/s, burst 3
  auto t0 = steady_clock::now();
  auto wall = sys_days{year{2026} / 11 / 28} + hours{12};
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(a.admit("Bearer A", t0, wall).admitted) << i;  // the burst
  auto refused = a.admit("Bearer A", t0, wall);
  EXPECT_FALSE(refused.admitted);
  EXPECT_TRUE(a.admit("Bearer B", t0, wall).admitted);          // another credential, own bucket
  EXPECT_TRUE(a.admit("Bearer A", t0 + 500ms, wall).admitted);  // one token per 0.5 s
  EXPECT_FALSE(a.admit("Bearer A", t0 + 500ms, wall).admitted);
  // Over many refusals both forms appear (which one is a function of the seed): delta-seconds
  // of the whole seconds to the next token, or that moment as an IMF-fixdate.
  bool seconds_form = false, date_form = false;
  for (int i = 0; i < 64; ++i) {
    auto v = a.admit("Bearer A", t0 + 500ms, wall);
    ASSERT_FALSE(v.admitted);
    if (v.retry_after == "1")
      seconds_form = true;
    else if (v.retry_after == "Sat, 28 Nov 2026 12:00:01 GMT")
      date_form = true;
    else
      ADD_FAILURE() << v.retry_after;
  }
  EXPECT_TRUE(seconds_form);
  EXPECT_TRUE(date_form);
  EXPECT_EQ(a.throttled(), 66u);
  ei::sim::admission same_seed(2.0, 3.0, 7);
  for (int i = 0; i < 3; ++i)
    same_seed.admit("Bearer A", t0, wall);
  EXPECT_EQ(same_seed.admit("Bearer A", t0, wall).retry_after, refused.retry_after);
}

TEST(sim_admission, rotating_tokens_expire_and_are_written_to_the_file) {
  using namespace std::chrono;
  auto dir =
      std::filesystem::temp_directory_path() / ("ei-sim-token-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto file = (dir / "token").string();
  auto t0 = steady_clock::now();
  ei::sim::token_issuer issuer(1000ms, file, 3, t0);
  auto first = issuer.current(t0);
  auto second = issuer.current(t0 + 1000ms);
  EXPECT_NE(first, second);
  EXPECT_TRUE(issuer.valid(first, t0 + 999ms));
  EXPECT_TRUE(issuer.valid(first, t0 + 1249ms));   // a quarter lifetime of overlap
  EXPECT_FALSE(issuer.valid(first, t0 + 1250ms));  // expired
  EXPECT_TRUE(issuer.valid(second, t0 + 1500ms));
  std::string err;
  ASSERT_TRUE(issuer.write_file(err)) << err;
  std::ifstream in(file);
  std::string written;
  std::getline(in, written);
  EXPECT_EQ(written, issuer.current(steady_clock::now()));
  std::filesystem::remove_all(dir);
}

}  // namespace
