// The etcd client's pure parts: the http:// rule, key prefixes (its base64 is common/base64.hpp,
// tested in tests/common/).
#include <gtest/gtest.h>

#include "distributed/etcd.hpp"
#include "distributed/keys.hpp"

namespace ei::distributed {
namespace {

TEST(etcd_urls, plain_http_only_to_loopback) {
  EXPECT_EQ(check_url_scheme("https://etcd.example:2379", "--etcd"), "");
  EXPECT_EQ(check_url_scheme("http://127.0.0.1:2379", "--etcd"), "");
  EXPECT_EQ(check_url_scheme("http://localhost:8080/v3", "--base-url"), "");
  EXPECT_EQ(check_url_scheme("http://[::1]:8080", "--base-url"), "");
  const auto why = check_url_scheme("http://api.example.com", "--base-url");
  EXPECT_NE(why.find("--base-url"), std::string::npos) << why;
  EXPECT_NE(why.find("https://"), std::string::npos) << why;
  EXPECT_NE(check_url_scheme("http://127.example.com", "x"), "");
  EXPECT_NE(check_url_scheme("ftp://127.0.0.1", "x"), "");
}

TEST(etcd_keys, prefix_is_absolute_and_ends_with_a_slash) {
  EXPECT_EQ(keys::normalize("/ei"), "/ei/");
  EXPECT_EQ(keys::normalize("/ei/"), "/ei/");
  EXPECT_EQ(keys::normalize("ei"), "");
  EXPECT_EQ(keys::normalize(""), "");
  keys k{"/b/"};
  EXPECT_EQ(k.claim("j"), "/b/claims/j");
  EXPECT_EQ(k.acked("j"), "/b/acked/j/");
}

}  // namespace
}  // namespace ei::distributed
