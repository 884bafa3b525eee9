#include "simulator/world.hpp"

#include <charconv>
#include <cstring>

namespace ei::sim::detail {
namespace {

constexpr std::int64_t kItemEpochMs = 1704067200000;  // 2024-01-01T00:00:00Z
constexpr std::int64_t kJobEpochMs = 1735689600000;   // 2025-01-01T00:00:00Z
constexpr std::uint64_t kYearSeconds = 365ULL * 86400ULL;
constexpr std::uint64_t kMask62 = (std::uint64_t{1} << 62) - 1;

constexpr std::string_view kItemStatus[] = {"pending", "in_progress", "failed", "successful",
                                            "abandoned"};
constexpr std::string_view kItemFailureTypes[] = {"receipt_upload_failure",
                                                  "receipt_download_failure",
                                                  "receipt_file_size_limit_exceeded",
                                                  "receipt_conversion_failure",
                                                  "unexpected_failure",
                                                  "invalid_configuration",
                                                  "missing_configuration",
                                                  "accounting_system_authentication_failure",
                                                  "accounting_system_rate_limit",
                                                  "accounting_system_unreachable",
                                                  "validation_failure",
                                                  "accounting_system_validation_failure",
                                                  "authorization_failure",
                                                  "accounting_system_timeout",
                                                  "vendor_unknown",
                                                  "account_unknown",
                                                  "tax_code_unknown",
                                                  "tag_unknown"};
constexpr std::string_view kTypes[] = {
    "card_purchase", "card_purchase",  "card_purchase", "card_purchase",   "out_of_pocket",
    "mileage",       "per_diem",       "invoice",       "invoice_payment", "refund",
    "fee",           "atm_withdrawal", "cashback",      "wallet_topup"};
constexpr std::string_view kCurrencies[] = {"DKK", "SEK", "EUR", "GBP", "USD", "NOK"};
constexpr std::int64_t kToDkkPermille[] = {1000, 650, 7460, 8700, 6900, 640};
struct account_def {
  std::string_view name, code;
};
constexpr account_def kAccounts[] = {{"Travel", "6100"},          {"Meals & Entertainment", "6150"},
                                     {"Office Supplies", "6200"}, {"Software", "6300"},
                                     {"Marketing", "6400"},       {"Equipment", "6500"},
                                     {"Training", "6600"},        {"Telephone & Internet", "6700"}};
constexpr std::string_view kSuppliers[] = {"Nordic Coffee ApS", "SkyTrain AB",    "CloudWorks Ltd",
                                           "Papirhuset A/S",    "Hotel Bellevue", "TaxiNu ApS",
                                           "Adverta GmbH",      "Byte Store"};
constexpr std::string_view kMcc[] = {"5814", "4111", "5734", "5943",
                                     "7011", "4121", "7311", "5732"};
constexpr std::string_view kCountries[] = {"DK", "SE", "DE", "GB", "NO", "US"};
constexpr std::string_view kPeople[] = {"Ada Jensen", "Bo Nilsson",  "Carla Ruiz",
                                        "Dag Olsen",  "Eva Schmidt", "Finn Berg"};
constexpr std::string_view kTeams[] = {"Sales", "Engineering", "Operations", "Finance"};

api::uuid uuid_from(std::uint64_t a, std::uint64_t b) noexcept {
  api::uuid u;
  for (int i = 0; i < 8; ++i) {
    u.bytes[i] = static_cast<std::uint8_t>(a >> (56 - 8 * i));
    u.bytes[8 + i] = static_cast<std::uint8_t>(b >> (56 - 8 * i));
  }
  u.bytes[6] = static_cast<std::uint8_t>((u.bytes[6] & 0x0f) | 0x40);
  u.bytes[8] = static_cast<std::uint8_t>((u.bytes[8] & 0x3f) | 0x80);
  return u;
}

api::uuid hashed_uuid(std::uint64_t seed, std::uint64_t tag, std::uint64_t i) noexcept {
  return uuid_from(hash3(seed, tag, i), hash3(seed, tag ^ 0xabcdef, i));
}

std::uint64_t first_half(std::uint64_t h) noexcept {
  return (h & ~0xF000ULL) | 0x4000ULL;
}

std::uint64_t uuid_key(const api::uuid& u) noexcept {
  std::uint64_t a = 0, b = 0;
  for (int i = 0; i < 8; ++i) {
    a = (a << 8) | u.bytes[i];
    b = (b << 8) | u.bytes[8 + i];
  }
  return hash2(a, b);
}

constexpr std::size_t status_slot(api::item_status s) noexcept {
  switch (s) {
    case api::item_status::pending:
      return 0;
    case api::item_status::in_progress:
      return 1;
    case api::item_status::failed:
      return 2;
    case api::item_status::successful:
      return 3;
    default:
      return 4;
  }
}

bool is_final_item(api::item_status s) noexcept {
  return s != api::item_status::pending && s != api::item_status::in_progress;
}

void append_nullable(std::string& out, const std::optional<std::string>& v) {
  if (v)
    append_json_string(out, *v);
  else
    out.append("null");
}

void append_ts(std::string& out, std::int64_t ms) {
  out.push_back('"');
  out.append(api::format_timestamp(ms));
  out.push_back('"');
}

void append_nullable_ts(std::string& out, const std::optional<std::int64_t>& ms) {
  if (ms)
    append_ts(out, *ms);
  else
    out.append("null");
}

void append_money(std::string& out, std::string_view currency, std::int64_t value) {
  out.append("{\"currency\":\"");
  out.append(currency);
  out.append("\",\"value\":");
  append_int(out, value);
  out.push_back('}');
}

void append_amount(std::string& out, std::string_view sc, std::int64_t sv, std::string_view wc,
                   std::int64_t wv) {
  out.append("{\"inSupplierCurrency\":");
  append_money(out, sc, sv);
  out.append(",\"inWalletCurrency\":");
  append_money(out, wc, wv);
  out.push_back('}');
}

}  // namespace

void append_uuid(std::string& out, const api::uuid& id) {
  const std::size_t n = out.size();
  out.resize(n + 36);
  id.format_to(out.data() + n);
}

void append_int(std::string& out, std::int64_t v) {
  char buf[24];
  auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, p);
}

result<std::unique_ptr<world>, sim_errc> world::generate(const sim_config& cfg,
                                                         std::int64_t now_ms) {
  auto fail = [](std::string m) { return make_error(sim_errc::invalid_config, std::move(m)); };
  if (cfg.companies == 0) return fail("companies must be at least 1");
  if (cfg.items_per_job > (std::uint64_t{1} << 36))
    return fail("items_per_job must be at most 2^36");
  auto w = std::make_unique<world>();
  w->seed = cfg.seed;
  w->expires_in = cfg.expires_in_seconds;
  const std::uint64_t order_seed =
      cfg.server_order_seed != 0 ? cfg.server_order_seed : hash2(cfg.seed, 0x5eedULL);
  std::vector<api::uuid> companies;
  for (std::uint32_t c = 0; c < cfg.companies; ++c)
    companies.push_back(hashed_uuid(cfg.seed, 0xC0, c));

  static constexpr api::job_status kCycle[] = {
      api::job_status::in_progress, api::job_status::pending, api::job_status::completed,
      api::job_status::completed_with_errors, api::job_status::failed};

  auto add = [&](api::uuid id, std::uint32_t company_index, api::uuid company,
                 api::job_status status, std::uint64_t items, std::optional<status_mix> mix,
                 std::uint64_t ordinal) -> std::optional<error<sim_errc>> {
    if (items > (std::uint64_t{1} << 36))
      return make_error(sim_errc::invalid_config, "a job's items must be at most 2^36");
    job_state j;
    j.info = job_info{id, company, status, items};
    j.initial_status = status;
    j.key = hash2(cfg.seed, uuid_key(id));
    j.company_index = company_index;
    j.raw_mix = mix.has_value();
    j.mix = mix.value_or(cfg.mix);
    j.mix_total = std::uint64_t{j.mix.pending} + j.mix.in_progress + j.mix.successful +
                  j.mix.failed + j.mix.abandoned;
    j.order = permutation(items, hash2(order_seed, j.key));
    j.id_text = id.to_string();
    j.company_text = company.to_string();
    const std::uint64_t h = hash2(j.key, 0x10B);
    j.created_ms = kJobEpochMs + static_cast<std::int64_t>((h % (30 * 86400)) * 1000) +
                   static_cast<std::int64_t>(ordinal) * 1000;
    j.created_by = hashed_uuid(cfg.seed, 0xB5E, hash2(j.key, 1) % 6);
    j.interactive = (h >> 40) % 4 != 0;
    j.vendor_based = (h >> 44) % 3 == 0;
    switch (status) {
      case api::job_status::pending:
        j.last_updated_ms = now_ms;
        break;
      case api::job_status::in_progress:
        j.started_ms = j.created_ms + 60000;
        j.last_updated_ms = now_ms;
        break;
      default:
        j.started_ms = j.created_ms + 60000;
        j.completed_ms = j.created_ms + 3600000;
        j.last_updated_ms = *j.completed_ms;
        if (status == api::job_status::failed) {
          j.failure_reason_type = "accounting_system_unreachable";
          j.failure_reason = "ERP API timed out 3x";
        }
    }
    if (w->find(id) != nullptr)
      return make_error(sim_errc::invalid_config, "duplicate job id " + j.id_text);
    w->index.emplace(j.info.id, w->jobs.size());
    w->jobs.push_back(std::move(j));
    return std::nullopt;
  };

  for (std::uint32_t i = 0; i < cfg.jobs; ++i) {
    const api::job_status st = cfg.all_in_progress ? api::job_status::in_progress : kCycle[i % 5];
    const std::uint32_t ci = i % cfg.companies;
    if (auto e = add(hashed_uuid(cfg.seed, 0x10B, i), ci, companies[ci], st, cfg.items_per_job,
                     std::nullopt, i))
      return std::move(*e);
  }
  for (std::size_t i = 0; i < cfg.extra_jobs.size(); ++i) {
    const job_spec& s = cfg.extra_jobs[i];
    if (s.status == api::job_status::unknown)
      return fail("extra_jobs[" + std::to_string(i) + "].status is not a job status");
    std::uint32_t ci = static_cast<std::uint32_t>(i % cfg.companies);
    api::uuid company = companies[ci];
    if (s.company_id) {
      company = *s.company_id;
      for (std::uint32_t c = 0; c < companies.size(); ++c)
        if (companies[c] == company) ci = c;
    }
    if (auto e = add(s.id.value_or(hashed_uuid(cfg.seed, 0xE7, i)), ci, company, s.status, s.items,
                     s.mix, cfg.jobs + i))
      return std::move(*e);
  }
  for (auto& j : w->jobs)
    w->recount(j);
  return w;
}

job_state* world::find(const api::uuid& id) {
  auto it = index.find(id);
  return it == index.end() ? nullptr : &jobs[it->second];
}

const job_state* world::find(const api::uuid& id) const {
  auto it = index.find(id);
  return it == index.end() ? nullptr : &jobs[it->second];
}

api::uuid world::item_id(const job_state& j, std::uint64_t k) const noexcept {
  // The index is recoverable from the id (see item_index), so PUT needs no lookup table.
  const std::uint64_t a = first_half(hash2(j.key, k));
  const std::uint64_t b = 0x8000000000000000ULL | ((k ^ hash2(a, j.key)) & kMask62);
  api::uuid u;
  for (int i = 0; i < 8; ++i) {
    u.bytes[i] = static_cast<std::uint8_t>(a >> (56 - 8 * i));
    u.bytes[8 + i] = static_cast<std::uint8_t>(b >> (56 - 8 * i));
  }
  return u;
}

std::optional<std::uint64_t> world::item_index(const job_state& j,
                                               const api::uuid& id) const noexcept {
  std::uint64_t a = 0, b = 0;
  for (int i = 0; i < 8; ++i) {
    a = (a << 8) | id.bytes[i];
    b = (b << 8) | id.bytes[8 + i];
  }
  if ((b >> 62) != 2) return std::nullopt;
  const std::uint64_t k = (b ^ hash2(a, j.key)) & kMask62;
  if (k >= j.info.items || first_half(hash2(j.key, k)) != a) return std::nullopt;
  return k;
}

api::item_status world::base_status(const job_state& j, std::uint64_t k) const noexcept {
  using s = api::item_status;
  if (!j.raw_mix && j.initial_status == api::job_status::pending) return s::pending;
  s st = s::pending;
  if (j.mix_total > 0) {
    std::uint64_t w = hash3(j.key, k, 3) % j.mix_total;
    const std::uint32_t weights[] = {j.mix.pending, j.mix.in_progress, j.mix.successful,
                                     j.mix.failed, j.mix.abandoned};
    const s values[] = {s::pending, s::in_progress, s::successful, s::failed, s::abandoned};
    for (int i = 0; i < 5; ++i) {
      if (w < weights[i]) {
        st = values[i];
        break;
      }
      w -= weights[i];
    }
  }
  if (j.raw_mix) return st;
  switch (j.initial_status) {
    case api::job_status::completed:
      return s::successful;
    case api::job_status::completed_with_errors:
      return st == s::failed ? s::failed : s::successful;
    case api::job_status::failed:
      return is_final_item(st) ? st : s::abandoned;
    default:
      return st;
  }
}

api::item_status world::status_of(const job_state& j, std::uint64_t k) const noexcept {
  if (!j.overrides.empty()) {
    if (auto it = j.overrides.find(k); it != j.overrides.end()) return it->second.status;
  }
  const api::item_status st = base_status(j, k);
  if (j.abandon_open_items && !is_final_item(st)) return api::item_status::abandoned;
  return st;
}

std::int64_t world::date_of(const job_state& j, std::uint64_t k) const noexcept {
  const std::uint64_t h = hash3(j.key, k, 2);
  const std::int64_t ms = kItemEpochMs + static_cast<std::int64_t>(h % kYearSeconds) * 1000;
  // One item in eight is booked on a day without a time (midnight UTC), as invoices are: loose
  // mode may then write that date alone, and many items share a date (ties go by id).
  if ((h >> 56) % 8 == 0) return ms - ms % 86400000;
  return ms;
}

void world::render_job(std::string& out, const job_state& j) const {
  out.append("{\"id\":\"");
  out.append(j.id_text);
  out.append("\",\"companyId\":\"");
  out.append(j.company_text);
  out.append("\",\"status\":\"");
  out.append(api::to_string(j.info.status));
  out.append("\",\"createdAt\":");
  append_ts(out, j.created_ms);
  out.append(",\"createdBy\":\"");
  append_uuid(out, j.created_by);
  out.append("\",\"startedAt\":");
  append_nullable_ts(out, j.started_ms);
  out.append(",\"completedAt\":");
  append_nullable_ts(out, j.completed_ms);
  out.append(",\"lastUpdatedAt\":");
  append_ts(out, j.last_updated_ms);
  out.append(",\"expiresIn\":");
  append_int(out, expires_in);
  out.append(",\"expiredAt\":");
  append_nullable_ts(out, j.expired_ms);
  out.append(j.interactive ? ",\"isInteractive\":true" : ",\"isInteractive\":false");
  out.append(",\"numberOfItems\":");
  append_int(out, static_cast<std::int64_t>(j.info.items));
  out.append(j.vendor_based ? ",\"vendorBasedBookkeeping\":true"
                            : ",\"vendorBasedBookkeeping\":false");
  out.append(",\"failureReason\":");
  append_nullable(out, j.failure_reason);
  out.append(",\"failureReasonType\":");
  append_nullable(out, j.failure_reason_type);
  out.push_back('}');
}

void world::render_item(std::string& out, const job_state& j, std::uint64_t k) const {
  out.append("{\"accountingEntryId\":\"");
  append_uuid(out, item_id(j, k));
  out.append("\",\"exportJobId\":\"");
  out.append(j.id_text);
  out.append("\",\"status\":\"");
  const item_override* o = nullptr;
  if (!j.overrides.empty()) {
    if (auto it = j.overrides.find(k); it != j.overrides.end()) o = &it->second;
  }
  const api::item_status st = o != nullptr ? o->status : status_of(j, k);
  out.append(kItemStatus[status_slot(st)]);
  out.push_back('"');
  if (o != nullptr) {
    out.append(",\"exportedAt\":");
    append_nullable(out, o->tracking.exported_at);
    out.append(",\"externalId\":");
    append_nullable(out, o->tracking.external_id);
    out.append(",\"externalUrl\":");
    append_nullable(out, o->tracking.external_url);
    out.append(",\"failureReason\":");
    append_nullable(out, o->tracking.failure_reason);
    out.append(",\"failureReasonType\":");
    append_nullable(out, o->tracking.failure_reason_type);
  } else if (st == api::item_status::successful) {
    out.append(",\"exportedAt\":");
    append_ts(out, j.created_ms + 3000000 + static_cast<std::int64_t>(k % 600000));
    out.append(",\"externalId\":\"ERP-");
    append_int(out, static_cast<std::int64_t>(100000 + k));
    out.append("\",\"externalUrl\":\"https://erp.sim.invalid/entries/");
    append_int(out, static_cast<std::int64_t>(100000 + k));
    out.append("\",\"failureReason\":null,\"failureReasonType\":null");
  } else if (st == api::item_status::failed) {
    const std::string_view type = kItemFailureTypes[hash3(j.key, k, 5) % 18];
    out.append(
        ",\"exportedAt\":null,\"externalId\":null,\"externalUrl\":null,"
        "\"failureReason\":\"Simulated failure: ");
    out.append(type);
    out.append("\",\"failureReasonType\":\"");
    out.append(type);
    out.append("\"");
  } else {
    out.append(
        ",\"exportedAt\":null,\"externalId\":null,\"externalUrl\":null,"
        "\"failureReason\":null,\"failureReasonType\":null");
  }
  out.push_back('}');
}

void world::render_export_item(std::string& out, const job_state& j, std::uint64_t k) const {
  const api::uuid id = item_id(j, k);
  const std::uint64_t h = hash3(j.key, k, 7);
  const std::uint64_t h2 = hash2(h, 11);
  const std::string_view type = kTypes[h % std::size(kTypes)];
  const std::size_t sc = (h >> 8) % std::size(kCurrencies);
  const std::size_t wc = j.company_index % 3;  // DKK, SEK or EUR wallets
  const std::int64_t value = 500 + static_cast<std::int64_t>((h >> 16) % 250000);
  const std::int64_t wallet = value * kToDkkPermille[sc] / kToDkkPermille[wc];
  const std::int64_t date = date_of(j, k);
  const std::size_t supplier = (h >> 24) % std::size(kSuppliers);
  const std::size_t person = (h >> 28) % std::size(kPeople);
  const bool is_invoice = type == "invoice" || type == "invoice_payment";
  const bool ap = j.vendor_based && is_invoice;

  out.append("{\"_links\":{\"web\":{\"exportItem\":\"https://app.sim.invalid/export/items/");
  append_uuid(out, id);
  out.append(
      "\"},\"mobile\":{},\"api\":{\"exportItem\":\"https://external.sim.invalid/v3/export-items/");
  append_uuid(out, id);
  out.append("\"}},\"accountingEntryId\":\"");
  append_uuid(out, id);
  out.append("\",\"companyId\":\"");
  out.append(j.company_text);
  out.append("\",\"date\":");
  append_ts(out, date);
  out.append(",\"type\":\"");
  out.append(type);
  out.append("\",\"subType\":");
  out.append(type == "invoice_payment" ? "\"invoice_payment_sent\"" : "null");
  out.append(",\"amount\":");
  append_amount(out, kCurrencies[sc], -value, kCurrencies[wc], -wallet);
  out.append(",\"accountingEntryLines\":[");
  const int lines = 1 + static_cast<int>((h2 >> 4) % 3);
  std::int64_t left_s = value, left_w = wallet;
  for (int l = 0; l < lines; ++l) {
    const std::int64_t ls = l + 1 == lines ? left_s : value / lines;
    const std::int64_t lw = l + 1 == lines ? left_w : wallet / lines;
    left_s -= ls;
    left_w -= lw;
    const std::size_t acc = (h2 >> (8 + 3 * l)) % std::size(kAccounts);
    const std::int64_t ts = ls / 5, tw = lw / 5;  // 25 % VAT included: tax = gross / 5
    if (l > 0) out.push_back(',');
    out.append("{\"accountingEntryLineId\":\"");
    append_uuid(out, hashed_uuid(j.key, 0x11AE, k * 4 + static_cast<std::uint64_t>(l)));
    out.append("\",\"lineAmount\":");
    append_amount(out, kCurrencies[sc], ls, kCurrencies[wc], lw);
    out.append(",\"netAmount\":");
    append_amount(out, kCurrencies[sc], ls - ts, kCurrencies[wc], lw - tw);
    out.append(",\"account\":{\"id\":\"");
    append_uuid(out, hashed_uuid(seed, 0xACC, acc));
    out.append("\",\"name\":\"");
    out.append(kAccounts[acc].name);
    out.append("\",\"code\":\"");
    out.append(kAccounts[acc].code);
    out.append("\",\"identifier\":null},\"tags\":");
    if ((h2 >> 20) % 2 == 0) {
      out.append("[]");
    } else {
      out.append("[{\"id\":\"");
      append_uuid(out, hashed_uuid(seed, 0x7A6, (h2 >> 21) % 4));
      out.append("\",\"code\":\"P");
      append_int(out, static_cast<std::int64_t>(100 + (h2 >> 21) % 4));
      out.append("\",\"groupCode\":\"PROJECT\"}]");
    }
    out.append(",\"tax\":{\"amount\":");
    append_amount(out, kCurrencies[sc], ts, kCurrencies[wc], tw);
    out.append(",\"id\":\"");
    append_uuid(out, hashed_uuid(seed, 0x7A8, 25));
    out.append(
        "\",\"rate\":0.25,\"type\":\"inclusive\",\"code\":\"I25\","
        "\"ingoingTaxAccount\":\"6320\",\"outgoingTaxAccount\":null}}");
  }
  out.append("],\"additionalInformation\":{\"reconciliationId\":\"B");
  append_int(out, static_cast<std::int64_t>(1000000 + (h2 % 9000000)));
  out.append("\",\"attendees\":[],\"reconciledEntries\":[]");
  if (is_invoice) {
    out.append(",\"invoiceInformation\":{\"invoiceDate\":");
    append_ts(out, date);
    out.append(",\"invoiceNumber\":\"INV-");
    append_int(out, static_cast<std::int64_t>(k + 1));
    out.append("\",\"status\":\"paid\",\"dueDate\":");
    append_ts(out, date + 30LL * 86400000);
    out.append(",\"paymentDate\":");
    append_ts(out, date + 28LL * 86400000);
    out.append(",\"supplierBankAccount\":{\"bankName\":\"Sim Bank\",\"country\":\"");
    out.append(kCountries[supplier % std::size(kCountries)]);
    out.append("\",\"accountNumber\":null,\"bankCode\":null,\"bic\":\"SIMBDKKK\",\"iban\":null}}");
  }
  out.append("},\"bookkeeping\":{\"method\":\"");
  out.append(ap ? "accounts_payable" : "journal");
  out.append("\"},\"contraAccount\":{\"id\":\"");
  append_uuid(out, hashed_uuid(seed, 0xC0A, j.company_index));
  out.append(
      "\",\"name\":\"Pleo wallet\",\"code\":\"1990\",\"identifier\":null},\"files\":[{\"url\":"
      "\"https://files.sim.invalid/receipts/");
  append_uuid(out, id);
  out.append(".jpg\",\"type\":\"image/jpeg\",\"size\":");
  append_int(out, static_cast<std::int64_t>(20000 + (h2 >> 32) % 400000));
  out.append("}],\"note\":\"Simulated entry ");
  append_int(out, static_cast<std::int64_t>(k));
  out.append("\",\"servicePeriod\":null,\"supplier\":{\"name\":\"");
  out.append(kSuppliers[supplier]);
  out.append("\",\"code\":null,\"account\":null,\"categoryCode\":\"");
  out.append(kMcc[supplier]);
  out.append("\",\"country\":\"");
  out.append(kCountries[supplier % std::size(kCountries)]);
  out.append("\",\"taxIdentifier\":null},\"team\":{\"id\":\"");
  append_uuid(out, hashed_uuid(seed, 0x7EA, person % 4));
  out.append("\",\"name\":\"");
  out.append(kTeams[person % 4]);
  out.append("\",\"code\":null},\"user\":{\"id\":\"");
  append_uuid(out, hashed_uuid(seed, 0xB5E, person));
  out.append("\",\"name\":\"");
  out.append(kPeople[person]);
  out.append("\",\"code\":null},\"vendor\":");
  if (ap) {
    out.append("{\"id\":\"");
    append_uuid(out, hashed_uuid(seed, 0x7E4D, supplier));
    out.append("\",\"name\":\"");
    out.append(kSuppliers[supplier]);
    out.append("\",\"defaultCurrency\":\"");
    out.append(kCurrencies[sc]);
    out.append(
        "\",\"code\":null,\"country\":null,\"externalId\":null,\"registrationNumber\":null,"
        "\"taxRegistrationNumber\":null}");
  } else {
    out.append("null");
  }
  out.push_back('}');
}

void world::set_item(job_state& j, std::uint64_t k, item_override o) {
  const api::item_status old = status_of(j, k);
  --j.counts[status_slot(old)];
  ++j.counts[status_slot(o.status)];
  j.overrides[k] = std::move(o);
}

void world::set_item_status(job_state& j, std::uint64_t k, api::item_status s) {
  item_override o;
  if (auto it = j.overrides.find(k); it != j.overrides.end()) o = it->second;
  o.status = s;
  set_item(j, k, std::move(o));
}

void world::expire(job_state& j, std::int64_t now_ms) {
  j.info.status = api::job_status::failed;
  j.failure_reason_type = "job_expired";
  j.failure_reason = "The job was not updated before it expired";
  j.expired_ms = now_ms;
  j.completed_ms = now_ms;
  j.last_updated_ms = now_ms;
  j.abandon_open_items = true;
  for (auto& [k, o] : j.overrides)
    if (!is_final_item(o.status)) o.status = api::item_status::abandoned;
  recount(j);
}

bool world::maybe_expire(job_state& j, std::int64_t now_ms) {
  const bool open =
      j.info.status == api::job_status::pending || j.info.status == api::job_status::in_progress;
  if (!open || expires_in <= 0) return false;
  if (now_ms < j.last_updated_ms + std::int64_t{expires_in} * 1000) return false;
  expire(j, now_ms);
  return true;
}

void world::recount(job_state& j) {
  j.counts = {};
  for (std::uint64_t k = 0; k < j.info.items; ++k)
    ++j.counts[status_slot(status_of(j, k))];
}

}  // namespace ei::sim::detail
