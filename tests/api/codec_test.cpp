// Golden tests for the API codec. Every item page goes through both page_parser (simdjson) and
// the reference decoders (nlohmann) and the two must agree: equal values, or the same error
// code (and, except for malformed JSON, the same message).

#include "api/codec.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace ei::api {
namespace {

using json = nlohmann::json;

constexpr std::string_view k_where =
    "GET /v3/export-jobs/0b6f8f7e-2c1a-4d3e-9a55-1f2e3d4c5b6a/items?after=GEZDGNBV";
constexpr std::string_view k_job_id = "0b6f8f7e-2c1a-4d3e-9a55-1f2e3d4c5b6a";

std::string load(const std::string& name) {
  std::ifstream in(std::string(EI_TESTDATA_DIR) + "/" + name, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot open testdata/" << name;
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

uuid id(std::string_view text) {
  auto u = uuid::parse(text);
  EXPECT_TRUE(u.has_value()) << text;
  return u.value_or(uuid{});
}

template <class T>
std::string describe(const decode_result<T>& r) {
  return r.ok() ? std::string("ok") : std::string(to_string(r.err().code)) + ": " + r.err().message;
}

template <class T>
void expect_same(const decode_result<page<T>>& fast, const decode_result<page<T>>& ref) {
  ASSERT_EQ(fast.ok(), ref.ok()) << "fast: " << describe(fast) << "\nreference: " << describe(ref);
  if (fast.ok()) {
    EXPECT_TRUE(fast->data == ref->data);
    EXPECT_TRUE(fast->pagination == ref->pagination);
    EXPECT_TRUE(fast->deviations == ref->deviations);
    return;
  }
  EXPECT_EQ(fast.err().code, ref.err().code)
      << "fast: " << fast.err().message << "\nreference: " << ref.err().message;
  if (fast.err().code != codec_errc::malformed_json) {
    EXPECT_EQ(fast.err().message, ref.err().message);
  }
}

// `body` as the HTTP client hands it over: 64 spare bytes of capacity, here (after the string's
// terminator) bytes that would break the document if the parser took them for part of it.
std::string with_garbage_padding(const std::string& body) {
  std::string padded = body + std::string(padded_body::padding, '{');
  padded.resize(body.size());
  return padded;
}

// Both decoders, each on a fresh parser, and the fast one again in place; returns the fast
// result after checking agreement.
decode_result<page<export_job_item>> job_items(const std::string& body) {
  page_parser parser;
  auto fast = parser.job_items(body, k_where);
  expect_same(fast, decode_job_items_reference(body, k_where));
  const std::string padded = with_garbage_padding(body);
  page_parser in_place;
  expect_same(in_place.job_items(padded_body::of(padded), k_where), fast);
  EXPECT_EQ(in_place.scratch_capacity(), 0u) << "a padded body is parsed where it lies";
  return fast;
}

decode_result<page<export_item_date>> item_dates(const std::string& body) {
  page_parser parser;
  auto fast = parser.item_dates(body, k_where);
  expect_same(fast, decode_item_dates_reference(body, k_where));
  const std::string padded = with_garbage_padding(body);
  page_parser in_place;
  expect_same(in_place.item_dates(padded_body::of(padded), k_where), fast);
  EXPECT_EQ(in_place.scratch_capacity(), 0u) << "a padded body is parsed where it lies";
  return fast;
}

template <class T>
void expect_error(const decode_result<T>& r, codec_errc code,
                  std::initializer_list<std::string_view> fragments,
                  std::string_view where = k_where) {
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, code) << r.err().message;
  EXPECT_NE(r.err().message.find(where), std::string::npos) << r.err().message;
  for (auto fragment : fragments)
    EXPECT_NE(r.err().message.find(fragment), std::string::npos)
        << "'" << fragment << "' not in: " << r.err().message;
  EXPECT_LT(r.err().message.size(), 400u) << r.err().message;
}

/// The page decoded, with exactly one deviation counted at `path_template` whose example
/// contains `fragment`.
template <class T>
void expect_deviation(const decode_result<T>& r, std::string_view path_template,
                      std::string_view fragment = {}) {
  ASSERT_TRUE(r.ok()) << describe(r);
  const auto& d = r->deviations.by_path;
  ASSERT_EQ(d.size(), 1u) << (d.empty() ? std::string("no deviation") : d.front().path);
  EXPECT_EQ(d.front().path, path_template);
  EXPECT_EQ(d.front().count, 1u);
  EXPECT_NE(d.front().example.find(fragment), std::string::npos) << d.front().example;
}

// "/data/1/status" -> "data[1].status", the form the codec's messages use.
std::string message_path(const std::string& pointer) {
  std::string out;
  std::stringstream ss(pointer.substr(1));
  std::string step;
  while (std::getline(ss, step, '/')) {
    if (!step.empty() && step.find_first_not_of("0123456789") == std::string::npos) {
      out += "[" + step + "]";
    } else {
      if (!out.empty()) out += '.';
      out += step;
    }
  }
  return out;
}

// A value of a JSON type that `original` does not have.
json other_type(const json& original) {
  if (original.is_string() || original.is_null()) return 42;
  return "text";
}

// --- control layer: job item pages --------------------------------------------------------------

TEST(JobItems, ContractExamplePage) {
  auto r = job_items(load("items_contract_example.json"));
  ASSERT_TRUE(r.ok()) << describe(r);
  ASSERT_EQ(r->data.size(), 1u);
  const auto& item = r->data[0];
  EXPECT_EQ(item.accounting_entry_id, id("11111111-1111-4111-8111-111111111111"));
  EXPECT_EQ(item.export_job_id, id(k_job_id));
  EXPECT_EQ(item.status, item_status::pending);
  EXPECT_TRUE(item.status_text.empty());
  EXPECT_TRUE(item.tracking.empty());
  const auto& p = r->pagination;
  EXPECT_TRUE(p.has_next_page);
  EXPECT_FALSE(p.has_previous_page);
  EXPECT_EQ(p.start_cursor, "GEZDGNBV");
  EXPECT_EQ(p.end_cursor, "GEZDGNBV");
  EXPECT_EQ(p.total, 3);
  EXPECT_EQ(p.current_request.limit, 1);
  EXPECT_FALSE(p.current_request.after);
  ASSERT_EQ(p.current_request.parameters.count("limit"), 1u);
  EXPECT_EQ(p.current_request.parameters.at("limit"), std::vector<std::string>{"1"});
}

TEST(JobItems, LastPageWithoutEndCursor) {
  auto r = job_items(load("items_last_page.json"));
  ASSERT_TRUE(r.ok()) << describe(r);
  ASSERT_EQ(r->data.size(), 4u);
  EXPECT_EQ(r->data[0].status, item_status::successful);
  EXPECT_EQ(r->data[0].export_job_id, id(k_job_id)) << "upper-case UUID text";
  EXPECT_EQ(r->data[0].tracking.exported_at, "2025-01-15T10:00:00Z");
  EXPECT_EQ(r->data[0].tracking.external_id, "JE-1001");
  EXPECT_EQ(r->data[0].tracking.external_url, "https://erp.example/je/1001");
  EXPECT_FALSE(r->data[0].tracking.failure_reason);
  EXPECT_EQ(r->data[1].status, item_status::failed);
  EXPECT_EQ(r->data[1].tracking.failure_reason, "Tax code S20 not found in ERP");
  EXPECT_EQ(r->data[1].tracking.failure_reason_type, "tax_code_unknown");
  EXPECT_EQ(r->data[2].status, item_status::in_progress);
  EXPECT_EQ(r->data[3].status, item_status::abandoned);
  const auto& p = r->pagination;
  EXPECT_FALSE(p.has_next_page);
  EXPECT_TRUE(p.has_previous_page);
  EXPECT_FALSE(p.end_cursor);
  EXPECT_EQ(p.start_cursor, "GEZDGNBVGY======");
  EXPECT_EQ(p.total, 5);
  EXPECT_EQ(p.current_request.after, "GEZDGNBV");
  EXPECT_EQ(p.current_request.sorting_keys,
            (std::vector<std::string>{"createdAt", "accountingEntryId"}));
  EXPECT_EQ(p.current_request.sorting_order, (std::vector<std::string>{"ASC", "ASC"}));
  EXPECT_EQ(p.current_request.parameters.size(), 4u);
  EXPECT_EQ(p.current_request.parameters.at("sorting_order"),
            (std::vector<std::string>{"ASC", "ASC"}));
}

TEST(JobItems, NullAndAbsentOptionalFieldsAreTheSame) {
  auto r = job_items(load("items_nulls_and_absent.json"));
  ASSERT_TRUE(r.ok()) << describe(r);
  ASSERT_EQ(r->data.size(), 2u);
  EXPECT_EQ(r->data[0], r->data[1]);
  EXPECT_TRUE(r->data[0].tracking.empty());

  auto absent = job_items(load("items_absent_optionals.json"));
  ASSERT_TRUE(absent.ok()) << describe(absent);
  EXPECT_TRUE(r->pagination == absent->pagination) << "all-null pagination equals all-absent";
  EXPECT_FALSE(absent->pagination.total);
  EXPECT_FALSE(absent->pagination.end_cursor);
  EXPECT_FALSE(absent->pagination.current_request.limit);
  EXPECT_TRUE(absent->pagination.current_request.sorting_keys.empty());
}

TEST(JobItems, UnknownFieldsAreIgnoredInAnyOrder) {
  auto r = job_items(load("items_unknown_fields.json"));
  ASSERT_TRUE(r.ok()) << describe(r);
  ASSERT_EQ(r->data.size(), 2u);
  EXPECT_EQ(r->data[0].accounting_entry_id, id("66666666-6666-4666-8666-666666666666"));
  EXPECT_EQ(r->data[0].status, item_status::pending);
  EXPECT_TRUE(r->data[0].tracking.empty());
  EXPECT_EQ(r->data[1].tracking.external_id, "caf\xc3\xa9 \"quoted\"") << "escapes decoded";
  EXPECT_EQ(r->pagination.end_cursor, "GEZDGNBVGY3TQOJQ");
  EXPECT_EQ(r->pagination.current_request.offset, 0);
  EXPECT_EQ(r->pagination.current_request.parameters.size(), 2u);
}

TEST(JobItems, UnknownStatusIsKeptWithItsText) {
  auto r = job_items(load("items_unknown_status.json"));
  ASSERT_TRUE(r.ok()) << describe(r);
  ASSERT_EQ(r->data.size(), 2u);
  EXPECT_EQ(r->data[0].status, item_status::unknown);
  EXPECT_EQ(r->data[0].status_text, "on_hold");
  EXPECT_EQ(r->data[1].status, item_status::unknown) << "enum values are case-sensitive";
  EXPECT_EQ(r->data[1].status_text, "PENDING");
}

TEST(JobItems, EmptyPage) {
  auto r = job_items(load("items_empty.json"));
  ASSERT_TRUE(r.ok()) << describe(r);
  EXPECT_TRUE(r->data.empty());
  EXPECT_FALSE(r->pagination.has_next_page);
  EXPECT_FALSE(r->pagination.end_cursor);
  EXPECT_EQ(r->pagination.total, 0);
}

TEST(JobItems, MissingRequiredFieldsNameFieldAndItem) {
  struct golden {
    const char* file;
    const char* path;
  };
  // What the stage relies on stays strict.
  for (const golden& g : {
           golden{"items_missing_accounting_entry_id.json", "data[2].accountingEntryId: required"},
           golden{"items_missing_status.json", "data[2].status: required"},
           golden{"items_missing_data.json", ": data: required"},
           golden{"items_missing_pagination.json", ": pagination: required"},
       }) {
    SCOPED_TRACE(g.file);
    expect_error(job_items(load(g.file)), codec_errc::missing_field, {g.path});
  }
}

// Fields the spec requires but the stage never reads: missing is a deviation, never a failure.
TEST(JobItems, MissingFieldsTheStageDoesNotUseAreDeviations) {
  struct golden {
    const char* file;
    const char* path;
    const char* example;
  };
  for (const golden& g : {
           golden{"items_missing_export_job_id.json", "data[].exportJobId",
                  "data[2].exportJobId: missing"},
           golden{"items_missing_has_previous_page.json", "pagination.hasPreviousPage",
                  "pagination.hasPreviousPage: missing"},
           golden{"items_missing_current_request_pagination.json",
                  "pagination.currentRequestPagination", "missing"},
           golden{"items_missing_parameters.json", "pagination.currentRequestPagination.parameters",
                  "missing"},
       }) {
    SCOPED_TRACE(g.file);
    expect_deviation(job_items(load(g.file)), g.path, g.example);
  }
}

TEST(JobItems, WrongTypesNameFieldExpectedAndActualType) {
  struct golden {
    const char* file;
    const char* text;
  };
  for (const golden& g : {
           golden{"items_uuid_is_number.json",
                  "data[2].accountingEntryId: expected a UUID string, got number"},
           golden{"items_item_not_object.json", "data[2]: expected an object, got string"},
           golden{"items_data_is_object.json", "data: expected an array, got object"},
           golden{"items_has_next_page_is_string.json",
                  "pagination.hasNextPage: expected a boolean, got string"},
           golden{"items_root_is_array.json", "(document): expected an object, got array"},
       }) {
    SCOPED_TRACE(g.file);
    expect_error(job_items(load(g.file)), codec_errc::wrong_type, {g.text});
  }
}

TEST(JobItems, WrongTypesInFieldsTheStageDoesNotRelyOnAreDeviations) {
  auto tracking = job_items(load("items_tracking_wrong_type.json"));
  expect_deviation(tracking, "data[].externalId",
                   "data[2].externalId: expected a string or null, got number");
  EXPECT_FALSE(tracking->data[2].tracking.external_id);
  expect_deviation(job_items(load("items_parameter_not_list.json")),
                   "pagination.currentRequestPagination.parameters",
                   "currentRequestPagination.parameters.limit: expected an array, got string");
  expect_deviation(job_items(load("items_total_fraction.json")), "pagination.total", "int64");
  expect_deviation(job_items(load("items_limit_out_of_range.json")),
                   "pagination.currentRequestPagination.limit", "int32");
}

// Older docs: an item's status is null until processing is first attempted.
TEST(JobItems, NullStatusIsPendingAndCounted) {
  auto r = job_items(load("items_status_is_null.json"));
  expect_deviation(r, "data[].status", "data[2].status: null (read as pending)");
  EXPECT_EQ(r->data[2].status, item_status::pending);
  json doc = json::parse(load("items_status_is_null.json"));
  doc["data"][2]["status"] = 7;
  expect_error(job_items(doc.dump()), codec_errc::wrong_type,
               {"data[2].status: expected a string, got number"});
}

TEST(JobItems, InvalidValues) {
  expect_error(job_items(load("items_invalid_uuid.json")), codec_errc::invalid_value,
               {"data[2].accountingEntryId", "33333333-3333-4333-8333-33333333333Z"});
  expect_error(job_items(load("items_uuid_without_dashes.json")), codec_errc::invalid_value,
               {"data[2].accountingEntryId"});
}

TEST(JobItems, MalformedJson) {
  for (const char* file : {"items_malformed_missing_comma.json", "items_truncated.json",
                           "items_truncated_after_value.json", "items_trailing_document.json",
                           "items_trailing_garbage.json", "items_unclosed_string.json",
                           "items_bad_literal.json", "empty_body.txt", "not_json.html"}) {
    SCOPED_TRACE(file);
    expect_error(job_items(load(file)), codec_errc::malformed_json, {"malformed JSON"});
  }
  expect_error(job_items("   \n"), codec_errc::malformed_json, {});
}

TEST(JobItems, TrailingWhitespaceIsFine) {
  auto r = job_items(load("items_contract_example.json") + "\n\r\n \t ");
  EXPECT_TRUE(r.ok()) << describe(r);
}

// Removing a field the stage relies on, or giving it a wrong type, is an error naming its path;
// any other field the spec requires, missing or of another type, is a deviation counted by its
// path (both decoders; nlohmann's dump also reorders keys, so order independence is covered).
TEST(JobItems, EveryRequiredFieldAndEveryTypeIsChecked) {
  const json base = json::parse(load("items_last_page.json"));
  const std::vector<std::string> strict = {
      "/data",
      "/pagination",
      "/data/1/accountingEntryId",
      "/data/1/status",
      "/pagination/hasNextPage",
  };
  for (const auto& pointer : strict) {
    SCOPED_TRACE(pointer);
    json doc = base;
    const json::json_pointer ptr(pointer);
    doc[ptr.parent_pointer()].erase(ptr.back());
    expect_error(job_items(doc.dump()), codec_errc::missing_field,
                 {message_path(pointer) + ": required field is missing"});
  }
  for (const auto& pointer :
       {"/data/1/accountingEntryId", "/data/1/status", "/pagination/hasNextPage", "/data/3"}) {
    SCOPED_TRACE(pointer);
    json doc = base;
    const json::json_pointer ptr(pointer);
    doc[ptr] = other_type(doc[ptr]);
    expect_error(job_items(doc.dump()), codec_errc::wrong_type,
                 {message_path(pointer) + ": expected "});
  }
  struct lenient {
    const char* pointer;
    const char* counted_at;
  };
  for (const auto& l : {
           lenient{"/data/1/exportJobId", "data[].exportJobId"},
           lenient{"/pagination/currentRequestPagination", "pagination.currentRequestPagination"},
           lenient{"/pagination/hasPreviousPage", "pagination.hasPreviousPage"},
           lenient{"/pagination/currentRequestPagination/parameters",
                   "pagination.currentRequestPagination.parameters"},
       }) {
    SCOPED_TRACE(l.pointer);
    json doc = base;
    const json::json_pointer ptr(l.pointer);
    doc[ptr.parent_pointer()].erase(ptr.back());
    expect_deviation(job_items(doc.dump()), l.counted_at, "missing");
  }
  for (const auto& l : {
           lenient{"/data/1/exportJobId", "data[].exportJobId"},
           lenient{"/data/0/exportedAt", "data[].exportedAt"},
           lenient{"/data/0/externalId", "data[].externalId"},
           lenient{"/data/0/externalUrl", "data[].externalUrl"},
           lenient{"/data/1/failureReason", "data[].failureReason"},
           lenient{"/data/1/failureReasonType", "data[].failureReasonType"},
           lenient{"/pagination/startCursor", "pagination.startCursor"},
           lenient{"/pagination/endCursor", "pagination.endCursor"},  // no next page here
           lenient{"/pagination/total", "pagination.total"},
           lenient{"/pagination/hasPreviousPage", "pagination.hasPreviousPage"},
           lenient{"/pagination/currentRequestPagination", "pagination.currentRequestPagination"},
           lenient{"/pagination/currentRequestPagination/after",
                   "pagination.currentRequestPagination.after"},
           lenient{"/pagination/currentRequestPagination/limit",
                   "pagination.currentRequestPagination.limit"},
           lenient{"/pagination/currentRequestPagination/sortingKeys",
                   "pagination.currentRequestPagination.sortingKeys"},
           lenient{"/pagination/currentRequestPagination/sortingKeys/1",
                   "pagination.currentRequestPagination.sortingKeys"},
           lenient{"/pagination/currentRequestPagination/parameters",
                   "pagination.currentRequestPagination.parameters"},
           lenient{"/pagination/currentRequestPagination/parameters/limit",
                   "pagination.currentRequestPagination.parameters"},
           lenient{"/pagination/currentRequestPagination/parameters/limit/0",
                   "pagination.currentRequestPagination.parameters"},
       }) {
    SCOPED_TRACE(l.pointer);
    json doc = base;
    const json::json_pointer ptr(l.pointer);
    doc[ptr] = other_type(doc[ptr]);
    auto r = job_items(doc.dump());
    expect_deviation(r, l.counted_at, "expected ");
    EXPECT_EQ(r->data.size(), base["data"].size());
  }
}

// endCursor is relied on only when there is a next page: on such a page a wrong type fails it,
// on the last page it is a deviation (whichever comes first in the document).
TEST(JobItems, EndCursorIsStrictOnlyWithANextPage) {
  json doc = json::parse(load("items_last_page.json"));
  doc["pagination"]["endCursor"] = 42;
  const std::string sorted = doc.dump();  // keys sorted: endCursor before hasNextPage
  std::string moved = sorted;             // and the other way round
  moved.erase(moved.find("\"endCursor\":42,"), 15);
  moved.insert(moved.find("\"total\""), "\"endCursor\":42,");
  ASSERT_LT(moved.find("hasNextPage"), moved.find("endCursor"));
  for (std::string body : {sorted, moved}) {
    SCOPED_TRACE(body.substr(body.find("\"pagination\"")));
    auto last = job_items(body);
    expect_deviation(last, "pagination.endCursor", "expected a string or null, got number");
    EXPECT_FALSE(last->pagination.end_cursor);
    body.replace(body.find("\"hasNextPage\":false"), 19, "\"hasNextPage\":true");
    expect_error(job_items(body), codec_errc::wrong_type,
                 {"pagination.endCursor: expected a string or null, got number"});
  }
}

TEST(JobItems, OneParserReusedAcrossDocumentsOfAnySize) {
  // A big page first, so later small ones run in a scratch buffer with stale bytes behind them.
  json big = json::parse(load("items_contract_example.json"));
  for (int i = 0; i < 2000; ++i)
    big["data"].push_back(big["data"][0]);
  page_parser parser;
  auto first = parser.job_items(big.dump(), k_where);
  ASSERT_TRUE(first.ok()) << describe(first);
  EXPECT_EQ(first->data.size(), 2001u);
  const std::size_t capacity = parser.scratch_capacity();
  EXPECT_GE(capacity, big.dump().size());

  for (const char* file :
       {"items_contract_example.json", "items_last_page.json", "items_truncated.json",
        "items_missing_status.json", "items_unknown_fields.json", "items_trailing_garbage.json",
        "items_empty.json"}) {
    SCOPED_TRACE(file);
    const std::string body = load(file);
    page_parser fresh;
    expect_same(parser.job_items(body, k_where), fresh.job_items(body, k_where));
  }
  EXPECT_EQ(parser.scratch_capacity(), capacity) << "small bodies reuse the buffer";
}

TEST(JobItems, ReadsOnlyTheGivenBytes) {
  // The view ends before the garbage: page_parser must not look past it.
  const std::string doc = load("items_contract_example.json");
  const std::string buffer = doc + "GARBAGE,{[";
  page_parser parser;
  auto r = parser.job_items(std::string_view(buffer.data(), doc.size()), k_where);
  EXPECT_TRUE(r.ok()) << describe(r);
}

TEST(JobItems, APaddedBodyShortOfItsPaddingIsCopied) {
  // A padded_body that promises less than the padding is parsed like a string_view: copied.
  const std::string doc = load("items_contract_example.json");
  page_parser parser;
  auto r = parser.job_items(padded_body{doc, doc.size()}, k_where);
  EXPECT_TRUE(r.ok()) << describe(r);
  EXPECT_GE(parser.scratch_capacity(), doc.size() + padded_body::padding);
  std::string roomy = doc;
  roomy.reserve(doc.size() + padded_body::padding);
  page_parser in_place;
  auto same = in_place.job_items(padded_body::of(roomy), k_where);
  expect_same(same, r);
  EXPECT_EQ(in_place.scratch_capacity(), 0u);
}

TEST(JobItems, AnEmptyBodyOnAFreshParserIsEmptyInBothPaths) {
  // The copying path grows its scratch buffer on the first call: the parse must see the
  // grown capacity, not the one before (simdjson would call the body unpadded).
  page_parser copied, in_place;
  std::string empty;
  empty.reserve(padded_body::padding);
  auto a = copied.job_items(std::string_view{}, k_where);
  auto b = in_place.job_items(padded_body::of(empty), k_where);
  ASSERT_FALSE(a.ok());
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(a.err().message, b.err().message);
  EXPECT_EQ(a.err().message.find("PADDING"), std::string::npos) << a.err().message;
}

TEST(JobItems, MessagesQuoteAtMostAShortExcerpt) {
  json doc = json::parse(load("items_contract_example.json"));
  doc["data"][0]["accountingEntryId"] = std::string(100000, 'x');
  auto r = job_items(doc.dump());
  expect_error(r, codec_errc::invalid_value, {"data[0].accountingEntryId", "xxx..."});

  std::string truncated = doc.dump();
  truncated.resize(truncated.size() / 2);
  expect_error(job_items(truncated), codec_errc::malformed_json, {});
}

TEST(JobItems, LargeGeneratedPageAgrees) {
  json doc = json::parse(load("items_last_page.json"));
  json items = json::array();
  for (int i = 0; i < 1000; ++i) {
    json item = doc["data"][i % 4];
    char text[37];
    std::snprintf(text, sizeof text, "%08x-0000-4000-8000-%012x", i, i * 7);
    item["accountingEntryId"] = text;
    items.push_back(item);
  }
  doc["data"] = items;
  auto r = job_items(doc.dump());
  ASSERT_TRUE(r.ok()) << describe(r);
  ASSERT_EQ(r->data.size(), 1000u);
  EXPECT_EQ(r->data[999].accounting_entry_id, id("000003e7-0000-4000-8000-000000001b51"));
}

// --- data layer: export item pages --------------------------------------------------------------

TEST(ItemDates, FullExportItemsReduceToIdAndDate) {
  auto r = item_dates(load("export_items_full.json"));
  ASSERT_TRUE(r.ok()) << describe(r);
  ASSERT_EQ(r->data.size(), 4u);
  EXPECT_EQ(r->data[0].accounting_entry_id, id("aaaaaaaa-0000-4000-8000-000000000001"));
  EXPECT_EQ(r->data[0].date_ms, 1709284500000) << "Z";
  EXPECT_EQ(r->data[1].accounting_entry_id, id("aaaaaaaa-0000-4000-8000-000000000002"));
  EXPECT_EQ(r->data[1].date_ms, 1709389805123) << "fraction, date after nested objects";
  EXPECT_EQ(r->data[2].date_ms, 1709389805500) << "+02:00 offset, short fraction";
  EXPECT_EQ(r->data[3].date_ms, 1709355600999) << "-05:30 offset, long fraction";
  EXPECT_TRUE(r->pagination.has_next_page);
  EXPECT_EQ(r->pagination.end_cursor, "GEZDGNBVGY======");
  EXPECT_EQ(r->pagination.current_request.parameters.at("job_id"),
            std::vector<std::string>{std::string(k_job_id)});
}

TEST(ItemDates, Errors) {
  expect_error(item_dates(load("export_items_missing_accounting_entry_id.json")),
               codec_errc::missing_field, {"data[1].accountingEntryId: required field is missing"});
  expect_error(item_dates(load("export_items_invalid_uuid.json")), codec_errc::invalid_value,
               {"data[1].accountingEntryId"});
  expect_error(item_dates(load("items_truncated.json")), codec_errc::malformed_json, {});
  expect_error(item_dates(load("items_trailing_garbage.json")), codec_errc::malformed_json, {});
}

// A date the stage cannot read makes its item undated (ordered last), never a failed page;
// a date alone is midnight UTC and a date-time without a zone is UTC. Each is counted.
TEST(ItemDates, LenientDatesAreReadOrLeftUndatedAndCounted) {
  auto invalid = item_dates(load("export_items_invalid_date.json"));
  expect_deviation(invalid, "data[].date", "2024-03-01 09:15:00");
  EXPECT_FALSE(invalid->data[1].date_ms);
  EXPECT_TRUE(invalid->data[0].date_ms);
  auto date_only = item_dates(load("export_items_date_only.json"));
  expect_deviation(date_only, "data[].date", "a date without a time");
  ASSERT_TRUE(date_only->data[1].date_ms);
  EXPECT_EQ(*date_only->data[1].date_ms % 86'400'000, 0);
  auto missing = item_dates(load("export_items_missing_date.json"));
  expect_deviation(missing, "data[].date", "missing");
  EXPECT_FALSE(missing->data[1].date_ms);
  auto number = item_dates(load("export_items_date_is_number.json"));
  expect_deviation(number, "data[].date", "got number");
  EXPECT_FALSE(number->data[1].date_ms);
  json doc = json::parse(load("export_items_full.json"));
  doc["data"][2]["date"] = "2024-03-02T14:30:05.5";
  auto zoneless = item_dates(doc.dump());
  expect_deviation(zoneless, "data[].date", "without a zone");
  EXPECT_EQ(zoneless->data[2].date_ms, parse_timestamp_ms("2024-03-02T14:30:05.500Z"));
}

TEST(ItemDates, ControlLayerFieldsAreNotRequired) {
  // A data-layer page is judged only on accountingEntryId and date: the other ExportItemV3
  // fields, required by the spec, are not this stage's business.
  json doc = json::parse(load("items_contract_example.json"));
  expect_deviation(item_dates(doc.dump()), "data[].date", "data[0].date: missing");
  doc["data"][0]["date"] = "2024-03-01T09:15:00Z";
  auto r = item_dates(doc.dump());
  ASSERT_TRUE(r.ok()) << describe(r);
  EXPECT_EQ(r->data[0].date_ms, 1709284500000);
  EXPECT_TRUE(r->deviations.empty());
}

TEST(Truncation, EveryPrefixIsMalformedForBothDecoders) {
  for (const char* file : {"export_items_full.json", "items_last_page.json"}) {
    SCOPED_TRACE(file);
    const json doc = json::parse(load(file));
    const std::string body = doc.dump();
    const bool dates = std::string_view(file).starts_with("export_items");
    page_parser parser;
    for (std::size_t n = 0; n < body.size(); ++n) {
      const std::string_view prefix(body.data(), n);
      const auto fast_ok =
          dates ? parser.item_dates(prefix, k_where).ok() : parser.job_items(prefix, k_where).ok();
      const auto ref_ok = dates ? decode_item_dates_reference(prefix, k_where).ok()
                                : decode_job_items_reference(prefix, k_where).ok();
      if (fast_ok || ref_ok) {
        ADD_FAILURE() << "prefix of " << n << " bytes accepted (fast " << fast_ok << ", reference "
                      << ref_ok << ")";
        break;
      }
    }
    EXPECT_TRUE(dates ? parser.item_dates(body, k_where).ok()
                      : parser.job_items(body, k_where).ok());
  }
}

// Documented difference: values page_parser skips are checked for structure only.
TEST(ItemDates, SkippedScalarsAreNotSpellChecked) {
  json doc = json::parse(load("export_items_full.json"));
  std::string body = doc.dump();
  const std::string needle = "\"note\":null";
  const auto at = body.find(needle);
  ASSERT_NE(at, std::string::npos);
  body.replace(at, needle.size(), "\"note\":nul");
  page_parser parser;
  EXPECT_TRUE(parser.item_dates(body, k_where).ok());
  auto ref = decode_item_dates_reference(body, k_where);
  ASSERT_FALSE(ref.ok());
  EXPECT_EQ(ref.err().code, codec_errc::malformed_json);
}

// Found by tests/fuzz/page_parser_fuzz: page_parser merged a repeated `pagination` (and
// `currentRequestPagination`) object into the first, where the reference takes the last copy.
TEST(JobItems, RepeatedPaginationObjectsTakeTheLastLikeTheReference) {
  const std::string body =
      R"({"data":[],"pagination":{"currentRequestPagination":{"parameters":{},"after":"A"},)"
      R"("hasNextPage":false,"hasPreviousPage":false,"endCursor":"x","total":3},)"
      R"("pagination":{"currentRequestPagination":{"parameters":{}},"hasNextPage":false,)"
      R"("hasPreviousPage":true}})";
  auto r = job_items(body);
  ASSERT_TRUE(r.ok()) << describe(r);
  EXPECT_FALSE(r->pagination.end_cursor.has_value());
  EXPECT_FALSE(r->pagination.total.has_value());
  EXPECT_FALSE(r->pagination.current_request.after.has_value());
  EXPECT_TRUE(r->pagination.has_previous_page);
  auto dates = item_dates(body);
  ASSERT_TRUE(dates.ok()) << describe(dates);
  EXPECT_FALSE(dates->pagination.end_cursor.has_value());
}

// Found with tests/fuzz/page_parser_fuzz's message check: parameter names come from the body
// and went into the field path raw (a newline, or 2000 characters, in an error message).
TEST(JobItems, ParameterNamesInMessagesAreQuotedAndCut) {
  auto with_parameter = [](const std::string& name) {
    json doc = json::parse(load("items_contract_example.json"));
    doc["pagination"]["currentRequestPagination"]["parameters"] = json::object({{name, 5}});
    return doc.dump();
  };
  // Parameters are not relied on: a fault there is a deviation whose example quotes the name.
  constexpr std::string_view at = "pagination.currentRequestPagination.parameters";
  auto r = job_items(with_parameter("a\nb"));
  expect_deviation(r, at, R"(parameters."a\x0ab": expected an array)");
  EXPECT_EQ(r->deviations.by_path.front().example.find('\n'), std::string::npos);

  expect_deviation(job_items(with_parameter(std::string(2000, 'k'))), at, "parameters.\"kkk");
  auto long_name = job_items(with_parameter(std::string(2000, 'k')));
  EXPECT_NE(long_name->deviations.by_path.front().example.find("...\": expected an array"),
            std::string::npos);
  EXPECT_LT(long_name->deviations.by_path.front().example.size(), 400u);
  // Plain names read as before.
  expect_deviation(
      job_items(with_parameter("sorting_order")), at,
      "currentRequestPagination.parameters.sorting_order: expected an array, got number");
}

// --- jobs and error bodies (nlohmann) ------------------------------------------------------------

constexpr std::string_view k_job_where = "GET /v3/export-jobs/0b6f8f7e-2c1a-4d3e-9a55-1f2e3d4c5b6a";

TEST(Jobs, SingleJob) {
  auto r = decode_job(load("job_single.json"), k_job_where);
  ASSERT_TRUE(r.ok()) << describe(r);
  EXPECT_EQ(r->id, id(k_job_id));
  EXPECT_EQ(r->company_id, id("c0c0c0c0-1111-4222-8333-444455556666"));
  EXPECT_EQ(r->status, job_status::in_progress);
  EXPECT_EQ(r->status_text, "in_progress");
  EXPECT_EQ(r->created_at, "2025-01-15T09:00:00Z");
  EXPECT_EQ(r->created_by, id("13131313-0000-4000-8000-000000000001"));
  EXPECT_EQ(r->started_at, "2025-01-15T09:01:30.250Z");
  EXPECT_FALSE(r->completed_at);
  EXPECT_EQ(r->last_updated_at, "2025-01-15T09:05:00Z");
  EXPECT_FALSE(r->expired_at);
  EXPECT_EQ(r->expires_in, 3600);
  EXPECT_TRUE(r->is_interactive);
  EXPECT_EQ(r->number_of_items, 1250);
  EXPECT_FALSE(r->vendor_based_bookkeeping);
  EXPECT_FALSE(r->failure_reason);
  EXPECT_FALSE(r->failure_reason_type);
}

TEST(Jobs, JobList) {
  auto r = decode_job_list(load("job_list.json"), "GET /v3/export-jobs?statuses=pending");
  ASSERT_TRUE(r.ok()) << describe(r);
  ASSERT_EQ(r->data.size(), 2u);
  const auto& a = r->data[0];
  EXPECT_EQ(a.status, job_status::pending);
  EXPECT_FALSE(a.created_by);
  EXPECT_FALSE(a.started_at);
  EXPECT_FALSE(a.is_interactive);
  EXPECT_TRUE(a.vendor_based_bookkeeping);
  EXPECT_EQ(a.number_of_items, 3);
  const auto& b = r->data[1];
  EXPECT_EQ(b.status, job_status::unknown);
  EXPECT_EQ(b.status_text, "paused_for_review");
  EXPECT_FALSE(b.created_by) << "null createdBy";
  EXPECT_EQ(b.expired_at, "2025-01-14T08:30:00Z");
  EXPECT_EQ(b.failure_reason, "ERP API timed out 3x");
  EXPECT_EQ(b.failure_reason_type, "accounting_system_unreachable");
  EXPECT_FALSE(r->pagination.has_next_page);
  EXPECT_EQ(r->pagination.total, 2);
  EXPECT_EQ(r->pagination.current_request.parameters.at("statuses"),
            (std::vector<std::string>{"pending", "in_progress"}));
}

TEST(Jobs, Errors) {
  expect_error(decode_job(load("job_list.json"), k_job_where), codec_errc::wrong_type,
               {"data: expected an object, got array"}, k_job_where);
  expect_error(decode_job(load("items_truncated.json"), k_job_where), codec_errc::malformed_json,
               {}, k_job_where);
  expect_error(decode_job_list(load("job_single.json"), k_job_where), codec_errc::wrong_type,
               {"data: expected an array, got object"}, k_job_where);
}

// id, companyId, status and createdAt are what the stage reads of a job: strict. The other
// required fields (an independent stand-in once sent null for expiresIn, isInteractive and
// vendorBasedBookkeeping, and every job failed) are deviations. numberOfItems missing is
// "unknown" (-1): the listing is then checked against `total` only.
TEST(Jobs, EveryRequiredFieldAndEveryTypeIsChecked) {
  const json base = json::parse(load("job_single.json"));
  const std::vector<std::string> strict = {"id", "companyId", "createdAt", "status"};
  for (const auto& field : strict) {
    SCOPED_TRACE(field);
    json doc = base;
    doc["data"].erase(field);
    expect_error(decode_job(doc.dump(), k_job_where), codec_errc::missing_field,
                 {"data." + field + ": required field is missing"}, k_job_where);
    json listed = json::parse(load("job_list.json"));
    listed["data"][1].erase(field);
    expect_error(decode_job_list(listed.dump(), k_job_where), codec_errc::missing_field,
                 {"data[1]." + field + ": required field is missing"}, k_job_where);
    json typed = base;
    typed["data"][field] = other_type(typed["data"][field]);
    expect_error(decode_job(typed.dump(), k_job_where), codec_errc::wrong_type,
                 {"data." + field + ": expected "}, k_job_where);
  }
  for (const std::string field :
       {"expiresIn", "isInteractive", "numberOfItems", "vendorBasedBookkeeping"}) {
    SCOPED_TRACE(field);
    json doc = base;
    doc["data"].erase(field);
    auto missing = decode_job(doc.dump(), k_job_where);
    expect_deviation(missing, "data." + field, "missing");
    for (const json& odd : {json(nullptr), other_type(base["data"][field])}) {
      doc["data"][field] = odd;
      auto r = decode_job(doc.dump(), k_job_where);
      expect_deviation(r, "data." + field, "expected ");
      if (field == "numberOfItems") {
        EXPECT_EQ(r->number_of_items, -1);
      }
    }
    json listed = json::parse(load("job_list.json"));
    listed["data"][1][field] = nullptr;
    expect_deviation(decode_job_list(listed.dump(), k_job_where), "data[]." + field, "data[1].");
  }
  for (const std::string field : {"createdBy", "startedAt", "completedAt", "lastUpdatedAt",
                                  "expiredAt", "failureReason", "failureReasonType"}) {
    SCOPED_TRACE(field);
    json doc = base;
    doc["data"][field] = other_type(doc["data"][field]);
    expect_deviation(decode_job(doc.dump(), k_job_where), "data." + field, "expected ");
  }
  json bad_uuid = base;
  bad_uuid["data"]["createdBy"] = "nobody";
  expect_deviation(decode_job(bad_uuid.dump(), k_job_where), "data.createdBy", "\"nobody\"");
  json exact = base;
  EXPECT_TRUE(decode_job(exact.dump(), k_job_where)->deviations.empty());
}

TEST(ErrorBody, WithAndWithoutMessage) {
  auto full = decode_error_body(load("error_body_full.json"));
  ASSERT_TRUE(full.ok()) << describe(full);
  EXPECT_EQ(full->type, "EXPORT_JOB_STATUS_UNPROCESSABLE");
  EXPECT_EQ(full->message, "Export job 0b6f8f7e-2c1a-4d3e-9a55-1f2e3d4c5b6a is already completed");

  auto type_only = decode_error_body(load("error_body_type_only.json"));
  ASSERT_TRUE(type_only.ok()) << describe(type_only);
  EXPECT_EQ(type_only->type, "EXPORT_NOT_FOUND");
  EXPECT_FALSE(type_only->message);

  auto null_message = decode_error_body(load("error_body_null_message.json"));
  ASSERT_TRUE(null_message.ok()) << describe(null_message);
  EXPECT_EQ(null_message->type, "EXPORT_ALREADY_IN_PROGRESS");
  EXPECT_FALSE(null_message->message);
}

TEST(ErrorBody, Errors) {
  expect_error(decode_error_body(load("error_body_missing_type.json")), codec_errc::missing_field,
               {"type: required field is missing"}, "error body");
  expect_error(decode_error_body("{\"type\":404}"), codec_errc::wrong_type,
               {"type: expected a string, got number"}, "error body");
  expect_error(decode_error_body(load("not_json.html")), codec_errc::malformed_json, {},
               "error body");
  expect_error(decode_error_body(""), codec_errc::malformed_json, {}, "error body");
}

TEST(Codec, ErrcNames) {
  EXPECT_EQ(to_string(codec_errc::malformed_json), "malformed_json");
  EXPECT_EQ(to_string(codec_errc::missing_field), "missing_field");
  EXPECT_EQ(to_string(codec_errc::wrong_type), "wrong_type");
  EXPECT_EQ(to_string(codec_errc::invalid_value), "invalid_value");
}

}  // namespace
}  // namespace ei::api
