// parse_outcome_line: the NDJSON outcome format of `export-items report` (docs/write-back.md).
// Every refusal names the field; null is absent; unknown fields are ignored; the tracking
// fields of the other kind of outcome are dropped.
#include <gtest/gtest.h>

#include <string>

#include "writeback/writeback.hpp"

namespace ei::writeback {
namespace {

constexpr const char* kJob = "11111111-1111-4111-8111-111111111111";
constexpr const char* kItem = "22222222-2222-4222-8222-222222222222";

std::string line(const std::string& rest) {
  return std::string("{\"jobId\":\"") + kJob + "\",\"accountingEntryId\":\"" + kItem + "\"" + rest +
         "}";
}

std::string refusal(const std::string& text) {
  auto r = parse_outcome_line(text);
  EXPECT_FALSE(r.ok()) << text;
  if (r.ok()) return {};
  EXPECT_EQ(r.err().code, wb_errc::invalid_input);
  return r.err().message;
}

TEST(OutcomeLine, ASuccessfulOutcomeKeepsItsOwnFieldsOnly) {
  auto r = parse_outcome_line(line(
      ",\"status\":\"successful\",\"exportedAt\":\"2026-11-30T12:00:00Z\",\"externalId\":\"JE-1\","
      "\"externalUrl\":\"https://erp/je/1\",\"failureReason\":\"x\",\"failureReasonType\":null,"
      "\"sequence\":4,\"data\":{\"nested\":[1,2,{\"a\":null}]}"));
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->job_id.to_string(), kJob);
  EXPECT_EQ(r->outcome.item.to_string(), kItem);
  EXPECT_EQ(r->outcome.status, api::item_status::successful);
  EXPECT_EQ(r->outcome.fields.external_id, "JE-1");
  EXPECT_EQ(r->outcome.fields.external_url, "https://erp/je/1");
  EXPECT_EQ(r->outcome.fields.exported_at, "2026-11-30T12:00:00Z");
  EXPECT_FALSE(r->outcome.fields.failure_reason.has_value());
}

TEST(OutcomeLine, AFailedOutcomeKeepsItsReasonAndUnescapesStrings) {
  auto r =
      parse_outcome_line(line(",\"status\":\"failed\",\"failureReasonType\":\"OTHER\","
                              "\"failureReason\":\"a \\\"quoted\\\" \\u00e9\","
                              "\"externalId\":\"dropped\""));
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->outcome.status, api::item_status::failed);
  EXPECT_EQ(r->outcome.fields.failure_reason_type, "OTHER");
  EXPECT_EQ(r->outcome.fields.failure_reason, "a \"quoted\" \xc3\xa9");
  EXPECT_FALSE(r->outcome.fields.external_id.has_value());
}

TEST(OutcomeLine, EachRefusalNamesWhatIsWrong) {
  EXPECT_EQ(refusal("{\"jobId\": tru"), "not JSON");
  EXPECT_EQ(refusal(line(",\"status\":\"successful\"") + " trailing"), "not JSON");
  EXPECT_EQ(refusal(line(",\"status\":\"successful\",\"x\":[1,}")), "not JSON");
  EXPECT_EQ(refusal("[1,2]"), "expected a JSON object, got array");
  EXPECT_EQ(refusal("{\"accountingEntryId\":\"" + std::string(kItem) + "\",\"status\":\"failed\"}"),
            "field 'jobId' is required");
  EXPECT_EQ(refusal("{\"jobId\":7}"), "field 'jobId': expected a UUID string, got number");
  EXPECT_EQ(refusal("{\"jobId\":\"" + std::string(kJob) + "\",\"accountingEntryId\":\"nope\"}"),
            "field 'accountingEntryId': 'nope' is not a UUID");
  EXPECT_EQ(refusal(line("")), "field 'status' is required");
  EXPECT_EQ(refusal(line(",\"status\":null")), "field 'status' is required");
  EXPECT_EQ(refusal(line(",\"status\":true")), "field 'status': expected a string, got boolean");
  EXPECT_EQ(refusal(line(",\"status\":\"pending\"")),
            "field 'status': 'pending' is not a final status (expected successful or failed)");
  EXPECT_EQ(refusal(line(",\"status\":\"successful\",\"externalId\":{}")),
            "field 'externalId': expected a string, got object");
  EXPECT_EQ(refusal(line(",\"status\":\"successful\",\"exportedAt\":\"yesterday\"")),
            "field 'exportedAt': 'yesterday' is not a date-time");
}

TEST(OutcomeLine, TheLastOfARepeatedFieldStands) {
  auto r = parse_outcome_line(line(",\"status\":\"failed\",\"status\":\"successful\""));
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->outcome.status, api::item_status::successful);
}

}  // namespace
}  // namespace ei::writeback
