// common/base64.hpp: OpenSSL's base64, with the padding and length rules checked by us.
#include "common/base64.hpp"

#include <gtest/gtest.h>

namespace ei {
namespace {

TEST(base64, rfc_4648_vectors) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode("foob"), "Zm9vYg==");
  EXPECT_EQ(base64_encode("fooba"), "Zm9vYmE=");
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64_decode("Zm9vYmE="), "fooba");
  EXPECT_EQ(base64_decode("Zg=="), "f");
  EXPECT_EQ(base64_decode(""), "");
}

TEST(base64, round_trips_every_length_and_binary_bytes) {
  std::string raw;
  for (int n = 0; n < 40; ++n) {
    auto enc = base64_encode(raw);
    EXPECT_EQ(enc.size() % 4, 0U);
    auto dec = base64_decode(enc);
    ASSERT_TRUE(dec.has_value()) << enc;
    EXPECT_EQ(*dec, raw) << "length " << n;
    raw.push_back(static_cast<char>(n * 37 % 256));  // includes '\0' and bytes >= 0x80
  }
  EXPECT_EQ(base64_encode("/t/jobs/"), "L3Qvam9icy8=");
  EXPECT_FALSE(base64_decode("abc").has_value());
  EXPECT_FALSE(base64_decode("ab!=").has_value());
}

TEST(base64, refuses_what_openssl_alone_would_accept) {
  // EVP_DecodeBlock decodes a '=' anywhere as zero bits and skips white space around the text;
  // none of these is canonical base64.
  for (const char* bad : {"Zg=", "Zg", "Z===", "====", "Z=g=", "Zg=a", "=Zg=", " Zg==", "Zg==\n",
                          "Zg== ", "Zm9v\nYg==", "Zm-v", "Zm_v", "Zm9vYg==Zm9v"}) {
    EXPECT_FALSE(base64_decode(bad).has_value()) << "'" << bad << "'";
  }
  // Whole groups after the padding are refused too: "Zg==" then "Zm9v" is not one text.
  EXPECT_EQ(base64_decode("Zm9vZg=="), "foof");
}

}  // namespace
}  // namespace ei
