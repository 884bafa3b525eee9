#include "pipeline/config.hpp"

#include <gtest/gtest.h>

#include "simulator/config.hpp"

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

TEST(Config, OneSetOfRangesRefusedWithTheKeysPath) {
  // The embedded simulator's keys are the simulator's own (simulator/config.hpp): the same
  // ranges refuse the same values in `export-items run --config` and `export-items-sim --config`.
  struct refusal {
    const char* stage;  // the value inside {"embedded": {...}} of a stage config
    const char* sim;    // the same key in a simulator config
    const char* what;
  };
  for (const auto& r : {
           refusal{R"({"items_per_job": 68719476737})", R"({"items_per_job": 68719476737})",
                   "must be between 0 and 68719476736"},
           refusal{R"({"default_limit": 0})", R"({"default_limit": 0})",
                   "must be between 1 and 1000000"},
           refusal{R"({"default_limit": 1000001})", R"({"default_limit": 1000001})",
                   "must be between 1 and 1000000"},
           refusal{R"({"threads": 65})", R"({"threads": 65})", "must be between 1 and 64"},
           refusal{R"({"companies": 0})", R"({"companies": 0})", "must be between 1 and 100000"},
           refusal{R"({"jobs": 100001})", R"({"jobs": 100001})", "must be between 0 and 100000"},
           refusal{R"({"seed": 18446744073709551615})", R"({"seed": 18446744073709551615})",
                   "must be between 0 and 9223372036854775807"},
           refusal{R"({"seed": -1})", R"({"seed": -1})", "must be between 0 and"},
           refusal{R"({"loose": 1})", R"({"loose": 1})", "expected true or false"},
           refusal{R"({"faults": "items:nonsense"})", R"({"faults": "items:nonsense"})",
                   "nonsense"},
       }) {
    stage_config cfg;
    auto st = apply_config_json(cfg, std::string(R"({"embedded": )") + r.stage + "}", "c.json");
    ASSERT_FALSE(st.ok()) << r.stage;
    EXPECT_EQ(st.err().code, config_errc::invalid_value) << r.stage;
    EXPECT_NE(st.err().message.find("c.json.embedded."), std::string::npos) << st.err().message;
    EXPECT_NE(st.err().message.find(r.what), std::string::npos) << st.err().message;
    auto sim = sim::parse_config_json(r.sim);
    ASSERT_FALSE(sim.ok()) << r.sim;
    EXPECT_NE(sim.err().message.find("config."), std::string::npos) << sim.err().message;
    EXPECT_NE(sim.err().message.find(r.what), std::string::npos) << sim.err().message;
  }
  // The largest values in range are taken by both.
  stage_config cfg;
  auto st = apply_config_json(
      cfg, R"({"embedded": {"items_per_job": 68719476736, "default_limit": 1000000}})", "c.json");
  ASSERT_TRUE(st.ok()) << st.err().message;
  EXPECT_EQ(cfg.embedded.items_per_job, std::uint64_t{1} << 36);
  EXPECT_EQ(cfg.embedded.default_limit, 1000000u);
  // Keys only the standalone simulator has are unknown in the stage's embedded section.
  st = apply_config_json(cfg, R"({"embedded": {"port": 8080}})", "c.json");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.err().code, config_errc::unknown_key);
  EXPECT_NE(st.err().message.find("c.json.embedded: unknown key 'port'"), std::string::npos)
      << st.err().message;
}

TEST(Config, EnumsNameTheirChoicesAndNullKeepsTheDefault) {
  stage_config cfg;
  auto st = apply_config_json(cfg, R"({"listing": "sideways"})", "c.json");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.err().message, R"(c.json.listing: expected "cursor" or "parallel", got "sideways")");
  st = apply_config_json(cfg, R"({"state": {"sync": 1}})", "c.json");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.err().message,
            R"(c.json.state.sync: expected "none", "commits" or "always", got 1)");
  st = apply_config_json(cfg, R"({"http": {"requests_per_second": -1}})", "c.json");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.err().message.find("c.json.http.requests_per_second: must be between 0"),
            std::string::npos)
      << st.err().message;
  st = apply_config_json(cfg, R"({"request_timeout_ms": 99})", "c.json");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.err().message, "c.json.request_timeout_ms: must be between 100 and 86400000 ms");
  st = apply_config_json(cfg, R"({"http": []})", "c.json");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.err().message, "c.json.http: expected a JSON object");
  const auto page_size = cfg.settings.page_size;
  st = apply_config_json(cfg, R"({"page_size": null, "listing": "cursor"})", "c.json");
  ASSERT_TRUE(st.ok()) << st.err().message;
  EXPECT_EQ(cfg.settings.page_size, page_size);
  EXPECT_EQ(cfg.settings.listing, actors::listing_mode::cursor);
}

}  // namespace
}  // namespace ei::pipeline
