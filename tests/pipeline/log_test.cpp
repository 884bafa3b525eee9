// The structured log (common/log.hpp, include/export_items/log.hpp): the host's handler gets
// every line, JSON lines parse and carry time, level, event and the fields, levels filter.
#include <gtest/gtest.h>

#include <mutex>
#include <regex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/log.hpp"

namespace {

namespace xlog = export_items::log;

/// Captures the lines the logger hands on, from level info; restores stderr, text and the
/// embedded default level (warn) afterwards.
class captured : public ::testing::Test {
 protected:
  void SetUp() override {
    xlog::set_level(xlog::level::info);
    xlog::set_handler([this](xlog::level l, std::string_view line) {
      std::lock_guard<std::mutex> lock(mutex_);
      lines_.emplace_back(l, std::string(line));
    });
  }
  void TearDown() override {
    ASSERT_TRUE(xlog::flush());
    xlog::set_handler({});
    xlog::set_format(xlog::format::text);
    xlog::set_level(xlog::level::warn);
  }
  std::vector<std::pair<xlog::level, std::string>> lines() {
    EXPECT_TRUE(xlog::flush());
    std::lock_guard<std::mutex> lock(mutex_);
    return lines_;
  }

 private:
  std::mutex mutex_;
  std::vector<std::pair<xlog::level, std::string>> lines_;
};

const std::regex iso_utc_ms(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)");

TEST_F(captured, JsonLinesParseAndCarryTimeLevelEventAndFields) {
  xlog::set_format(xlog::format::json);
  ei::log::info("job_started", "job started",
                {{"jobId", "f3389fe8-201e-45e2-b711-a5596c3f2cd5"}, {"companyId", "c-1"}});
  ei::log::error("job_failed", "the \"job\" failed:\nline two \\ tab\t end",
                 {{"jobId", "j-2"}, {"reason", "http_404"}});
  const auto got = lines();
  ASSERT_EQ(got.size(), 2u);
  for (const auto& [lvl, line] : got) {
    SCOPED_TRACE(line);
    EXPECT_EQ(line.find('\n'), std::string::npos);
    auto j = nlohmann::json::parse(line);  // throws (fails the test) when it is not JSON
    EXPECT_TRUE(std::regex_match(j.at("time").get<std::string>(), iso_utc_ms));
    EXPECT_TRUE(j.contains("level"));
    EXPECT_TRUE(j.contains("event"));
    EXPECT_TRUE(j.contains("jobId"));
  }
  auto first = nlohmann::json::parse(got[0].second);
  EXPECT_EQ(got[0].first, xlog::level::info);
  EXPECT_EQ(first["level"], "info");
  EXPECT_EQ(first["event"], "job_started");
  EXPECT_EQ(first["jobId"], "f3389fe8-201e-45e2-b711-a5596c3f2cd5");
  EXPECT_EQ(first["companyId"], "c-1");
  EXPECT_EQ(first["message"], "job started");
  auto second = nlohmann::json::parse(got[1].second);
  EXPECT_EQ(got[1].first, xlog::level::error);
  EXPECT_EQ(second["level"], "error");
  EXPECT_EQ(second["message"], "the \"job\" failed:\nline two \\ tab\t end");
  EXPECT_EQ(second["reason"], "http_404");
}

TEST_F(captured, TextLinesHaveTimestampLevelEventAndFields) {
  ei::log::warn("throttled", "HTTP 429", {{"jobId", "j-1"}, {"note", "two words"}});
  const auto got = lines();
  ASSERT_EQ(got.size(), 1u);
  const std::regex text_line(
      R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z warn +throttled jobId=j-1 note="two words" HTTP 429)");
  EXPECT_TRUE(std::regex_match(got[0].second, text_line)) << got[0].second;
}

TEST_F(captured, LevelsBelowTheThresholdAreDropped) {
  xlog::set_level(xlog::level::warn);
  EXPECT_FALSE(ei::log::enabled(xlog::level::info));
  EXPECT_TRUE(ei::log::enabled(xlog::level::error));
  ei::log::debug("phase_changed", "dropped");
  ei::log::info("job_started", "dropped");
  ei::log::warn("retry_storm", "kept");
  ei::log::error("job_failed", "kept");
  xlog::set_level(xlog::level::off);
  ei::log::error("job_failed", "dropped: off");
  const auto got = lines();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].first, xlog::level::warn);
  EXPECT_EQ(got[1].first, xlog::level::error);
  for (const auto& [lvl, line] : got)
    EXPECT_NE(line.find("kept"), std::string::npos) << line;
}

TEST(log_defaults, EmbeddedTheLevelIsWarnUntilTheHostSetsOne) {
  EXPECT_EQ(xlog::current_level(), xlog::level::warn);
  EXPECT_FALSE(ei::log::enabled(xlog::level::info));
  EXPECT_TRUE(ei::log::enabled(xlog::level::warn));
}

TEST(log_parse, NamesOfLevelsAndFormats) {
  EXPECT_EQ(xlog::parse_level("debug"), xlog::level::debug);
  EXPECT_EQ(xlog::parse_level("warning"), xlog::level::warn);
  EXPECT_EQ(xlog::parse_level("off"), xlog::level::off);
  EXPECT_FALSE(xlog::parse_level("loud"));
  EXPECT_EQ(xlog::parse_format("json"), xlog::format::json);
  EXPECT_FALSE(xlog::parse_format("xml"));
  for (auto l : {xlog::level::trace, xlog::level::debug, xlog::level::info, xlog::level::warn,
                 xlog::level::error, xlog::level::off})
    EXPECT_EQ(xlog::parse_level(xlog::to_string(l)), l);
}

}  // namespace
