#include "api/model.hpp"

#include <gtest/gtest.h>

namespace ei::api {
namespace {

TEST(Uuid, ParsesAnyCaseAndFormatsLowercase) {
  auto a = uuid::parse("0B6F8F7E-2C1A-4D3E-9A55-1F2E3D4C5B6A");
  auto b = uuid::parse("0b6f8f7e-2c1a-4d3e-9a55-1f2e3d4c5b6a");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(a->to_string(), "0b6f8f7e-2c1a-4d3e-9a55-1f2e3d4c5b6a");
  EXPECT_EQ(uuid_hash{}(*a), uuid_hash{}(*b));
}

TEST(Uuid, RejectsMalformedText) {
  EXPECT_FALSE(uuid::parse(""));
  EXPECT_FALSE(uuid::parse("0b6f8f7e2c1a4d3e9a551f2e3d4c5b6a"));
  EXPECT_FALSE(uuid::parse("0b6f8f7e-2c1a-4d3e-9a55-1f2e3d4c5b6"));
  EXPECT_FALSE(uuid::parse("0b6f8f7e-2c1a-4d3e-9a55-1f2e3d4c5b6g"));
  EXPECT_FALSE(uuid::parse("0b6f8f7e+2c1a-4d3e-9a55-1f2e3d4c5b6a"));
  // Every non-hex byte at every digit position, including the neighbours of the hex ranges.
  const std::string good = "0b6f8f7e-2c1a-4d3e-9a55-1f2e3d4c5b6a";
  for (std::size_t pos = 0; pos < good.size(); ++pos) {
    if (good[pos] == '-') continue;
    for (char bad : {'/', ':', '@', 'G', '`', 'g', '-', ' ', '\0', '\xff'}) {
      auto text = good;
      text[pos] = bad;
      EXPECT_FALSE(uuid::parse(text)) << "position " << pos << " byte " << int(bad);
    }
  }
  ASSERT_TRUE(uuid::parse(good));
  EXPECT_EQ(uuid::parse(good)->to_string(), good);
}

TEST(Uuid, OrdersByBytes) {
  auto lo = uuid::parse("00000000-0000-0000-0000-000000000001");
  auto hi = uuid::parse("ff000000-0000-0000-0000-000000000000");
  ASSERT_TRUE(lo && hi);
  EXPECT_LT(*lo, *hi);
  EXPECT_TRUE(uuid{}.is_nil());
  EXPECT_FALSE(lo->is_nil());
}

TEST(Enums, KnownValuesRoundTripAndUnknownIsKept) {
  for (auto s : {item_status::pending, item_status::in_progress, item_status::failed,
                 item_status::successful, item_status::abandoned})
    EXPECT_EQ(parse_item_status(to_string(s)), s);
  for (auto s : {job_status::pending, job_status::in_progress, job_status::failed,
                 job_status::completed, job_status::completed_with_errors})
    EXPECT_EQ(parse_job_status(to_string(s)), s);
  EXPECT_EQ(parse_item_status("archived"), item_status::unknown);
  EXPECT_EQ(parse_job_status("PENDING"), job_status::unknown);
}

TEST(Timestamp, ParsesContractFormatAndVariants) {
  EXPECT_EQ(parse_timestamp_ms("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(parse_timestamp_ms("2023-11-07T05:31:56Z"), 1699335116000);
  EXPECT_EQ(parse_timestamp_ms("2023-11-07T05:31:56.5Z"), 1699335116500);
  EXPECT_EQ(parse_timestamp_ms("2023-11-07T05:31:56.123456Z"), 1699335116123);
  EXPECT_EQ(parse_timestamp_ms("2023-11-07T07:31:56+02:00"), 1699335116000);
  EXPECT_EQ(parse_timestamp_ms("2023-11-07T03:31:56-02:00"), 1699335116000);
  EXPECT_EQ(parse_timestamp_ms("1969-12-31T23:59:59Z"), -1000);
}

TEST(Timestamp, RejectsMalformed) {
  EXPECT_FALSE(parse_timestamp_ms(""));
  EXPECT_FALSE(parse_timestamp_ms("2023-11-07"));
  EXPECT_FALSE(parse_timestamp_ms("2023-11-07T05:31:56"));
  EXPECT_FALSE(parse_timestamp_ms("2023-13-07T05:31:56Z"));
  EXPECT_FALSE(parse_timestamp_ms("2023-11-07T05:31:56Zjunk"));
  EXPECT_FALSE(parse_timestamp_ms("2023-11-07T05:31:56.Z"));
}

TEST(Timestamp, FormatsRoundTrip) {
  for (std::int64_t ms : {0LL, 1699335116000LL, 1735689599000LL, -86400000LL}) {
    auto text = format_timestamp(ms);
    EXPECT_EQ(parse_timestamp_ms(text), ms) << text;
  }
  EXPECT_EQ(format_timestamp(1699335116000), "2023-11-07T05:31:56Z");
}

}  // namespace
}  // namespace ei::api
