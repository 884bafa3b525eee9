#include "simulator/loose.hpp"

#include <nlohmann/json.hpp>

#include "api/model.hpp"
#include "simulator/hash.hpp"

namespace ei::sim::detail {
namespace {

using json = nlohmann::ordered_json;

/// A stable 64-bit key of a text (FNV-1a), mixed with the seed by the callers.
std::uint64_t text_key(std::string_view s) noexcept {
  std::uint64_t h = 1469598103934665603ULL;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  return h;
}

enum class form : std::uint8_t { as_specified, missing, null_value, other_type };

/// About one field in three deviates: missing, null or of another type in equal shares.
form pick(std::uint64_t seed, std::uint64_t key, std::uint64_t field) noexcept {
  switch (hash3(seed, key, field) % 9) {
    case 0:
      return form::missing;
    case 1:
      return form::null_value;
    case 2:
      return form::other_type;
    default:
      return form::as_specified;
  }
}

/// A value of another JSON type than `v`.
json other_type(const json& v) {
  if (v.is_string()) return 17;
  if (v.is_number()) return std::to_string(v.get<std::int64_t>());
  if (v.is_boolean()) return v.get<bool>() ? "yes" : "no";
  return "n/a";
}

void loosen_field(json& obj, const char* name, std::uint64_t seed, std::uint64_t key,
                  std::uint64_t field) {
  if (!obj.is_object()) return;
  auto it = obj.find(name);
  if (it == obj.end()) return;
  switch (pick(seed, key, field)) {
    case form::as_specified:
      return;
    case form::missing:
      obj.erase(it);
      return;
    case form::null_value:
      *it = nullptr;
      return;
    case form::other_type:
      *it = other_type(*it);
      return;
  }
}

/// The same instant in another lawful (or tolerated) form of a data-layer date.
std::string other_date_form(std::int64_t ms, std::uint64_t h) {
  constexpr std::int64_t day = 86400000;
  switch (h % 5) {
    case 0: {  // +02:00
      std::string t = api::format_timestamp(ms + 2 * 3600000);
      t.pop_back();
      return t + "+02:00";
    }
    case 1: {  // -05:30
      std::string t = api::format_timestamp(ms - 5 * 3600000 - 30 * 60000);
      t.pop_back();
      return t + "-05:30";
    }
    case 2: {  // no zone (UTC)
      std::string t = api::format_timestamp(ms);
      t.pop_back();
      return t;
    }
    case 3:  // a date alone, when that is the same instant
      if (ms % day == 0) return api::format_timestamp(ms).substr(0, 10);
      [[fallthrough]];
    default:
      return api::format_timestamp(ms);
  }
}

void loosen_job(json& job, std::uint64_t seed) {
  if (!job.is_object()) return;
  const std::uint64_t key = text_key(job.value("id", std::string{}));
  loosen_field(job, "expiresIn", seed, key, 1);
  loosen_field(job, "isInteractive", seed, key, 2);
  loosen_field(job, "vendorBasedBookkeeping", seed, key, 3);
}

void loosen_item(json& item, std::uint64_t seed) {
  if (!item.is_object()) return;
  const std::uint64_t key = text_key(item.value("accountingEntryId", std::string{}));
  loosen_field(item, "exportJobId", seed, key, 11);
  auto st = item.find("status");
  if (st != item.end() && st->is_string() && *st == "pending" && hash3(seed, key, 12) % 4 == 0)
    *st = nullptr;
}

void loosen_export_item(json& item, std::uint64_t seed) {
  if (!item.is_object()) return;
  const std::uint64_t key = text_key(item.value("accountingEntryId", std::string{}));
  std::uint64_t field = 21;
  for (const char* name :
       {"_links", "accountingEntryLines", "additionalInformation", "amount", "companyId", "type"})
    loosen_field(item, name, seed, key, field++);
  auto date = item.find("date");
  if (date == item.end() || !date->is_string()) return;
  if (auto ms = api::parse_timestamp_ms(date->get<std::string>()))
    *date = other_date_form(*ms, hash3(seed, key, 30));
}

void loosen_pagination(json& pagination, std::uint64_t seed, std::string_view target) {
  if (!pagination.is_object()) return;
  const std::uint64_t key = text_key(target);
  auto current = pagination.find("currentRequestPagination");
  if (current != pagination.end()) {
    loosen_field(*current, "parameters", seed, key, 41);
    loosen_field(*current, "limit", seed, key, 42);
  }
  loosen_field(pagination, "currentRequestPagination", seed, key, 43);
  loosen_field(pagination, "hasPreviousPage", seed, key, 44);
}

}  // namespace

void loosen_body(std::string& body, std::string_view endpoint, std::uint64_t seed,
                 std::string_view target) {
  const bool list = endpoint == "jobs" || endpoint == "items" || endpoint == "export_items";
  if (!list && endpoint != "job") return;
  json doc = json::parse(body, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return;
  auto data = doc.find("data");
  if (data == doc.end()) return;
  if (endpoint == "job") {
    loosen_job(*data, seed);
  } else if (data->is_array()) {
    for (auto& element : *data) {
      if (endpoint == "jobs")
        loosen_job(element, seed);
      else if (endpoint == "items")
        loosen_item(element, seed);
      else
        loosen_export_item(element, seed);
    }
  }
  if (list)
    if (auto p = doc.find("pagination"); p != doc.end()) loosen_pagination(*p, seed, target);
  body = doc.dump();
}

}  // namespace ei::sim::detail
