#include "pipeline/config.hpp"

#include <gtest/gtest.h>

namespace ei::pipeline {
namespace {

TEST(Config, ShippedConfigsLoadAndValidate) {
  for (const char* name : {"embedded.json", "production.json", "staging.json"}) {
    auto cfg = load_config(std::string(EI_CONFIGS_DIR) + "/" + name);
    ASSERT_TRUE(cfg.ok()) << name << ": " << cfg.err().message;
    EXPECT_TRUE(validate(cfg.value()).ok()) << name;
  }
  auto prod = load_config(std::string(EI_CONFIGS_DIR) + "/production.json");
  EXPECT_EQ(prod->base_url, "https://external.pleo.io");
  EXPECT_EQ(prod->http.max_attempts, 8U);
}

TEST(Config, UnknownKeyIsNamed) {
  stage_config cfg;
  auto st = apply_config_json(cfg, R"({"page_size": 10, "http": {"retries": 3}})", "x.json");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.err().code, config_errc::unknown_key);
  EXPECT_NE(st.err().message.find("x.json.http"), std::string::npos) << st.err().message;
  EXPECT_NE(st.err().message.find("'retries'"), std::string::npos);
}

TEST(Config, AcceptGzipIsOnByDefaultAndCanBeTurnedOff) {
  stage_config cfg;
  EXPECT_TRUE(cfg.http.accept_gzip);
  ASSERT_TRUE(apply_config_json(cfg, R"({"http": {"accept_gzip": false}})", "g.json").ok());
  EXPECT_FALSE(cfg.http.accept_gzip);
  auto st = apply_config_json(cfg, R"({"http": {"accept_gzip": "yes"}})", "g.json");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.err().message.find("g.json.http.accept_gzip"), std::string::npos)
      << st.err().message;
}

TEST(Config, WrongTypesAndRangesAreNamed) {
  stage_config cfg;
  auto st = apply_config_json(cfg, R"({"page_size": "big"})", "c.json");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.err().message.find("c.json.page_size: expected an integer"), std::string::npos);
  st = apply_config_json(cfg, R"({"max_jobs": 0})", "c.json");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.err().code, config_errc::invalid_value);
  st = apply_config_json(cfg, R"({"ordering": "random"})", "c.json");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.err().message.find("ordering"), std::string::npos);
  st = apply_config_json(cfg, R"({"state": {"sync": "sometimes"}})", "c.json");
  ASSERT_FALSE(st.ok());
  st = apply_config_json(cfg, "{not json", "c.json");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.err().code, config_errc::malformed);
}

TEST(Config, ValuesApplyAndCrossChecksHold) {
  stage_config cfg;
  auto st = apply_config_json(
      cfg, R"({"ordering":"entry_id","credit_window":100,"batch_size":50,"state":{"sync":"none"}})",
      "c.json");
  ASSERT_TRUE(st.ok()) << st.err().message;
  EXPECT_EQ(cfg.settings.ordering, storage::ordering_mode::entry_id);
  EXPECT_EQ(cfg.store.sync, storage::sync_policy::none);
  EXPECT_TRUE(validate(cfg).ok());
  cfg.settings.batch_size = 200;
  EXPECT_FALSE(validate(cfg).ok());
  EXPECT_FALSE(load_config("/nonexistent/config.json").ok());
}

}  // namespace
}  // namespace ei::pipeline
