#include "api/credentials.hpp"

#include <cstdlib>

namespace ei::api {

namespace {

result<credentials, http_errc> bad(std::string what) {
  return make_error(http_errc::invalid_config, std::move(what));
}

bool header_safe(std::string_view s) {
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7F) return false;
  }
  return true;
}

std::string env(const char* name) {
  const char* v = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): read once at startup
  return v ? std::string(v) : std::string();
}

void replace_all(std::string& text, std::string_view needle) {
  if (needle.empty()) return;
  static constexpr std::string_view mark = "<redacted>";
  for (auto pos = text.find(needle); pos != std::string::npos;
       pos = text.find(needle, pos + mark.size()))
    text.replace(pos, needle.size(), mark);
}

}  // namespace

std::string base64_encode(std::string_view in) {
  static constexpr char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  auto byte = [&](std::size_t k) {
    return static_cast<std::uint32_t>(static_cast<unsigned char>(in[k]));
  };
  for (; i + 3 <= in.size(); i += 3) {
    std::uint32_t n = byte(i) << 16 | byte(i + 1) << 8 | byte(i + 2);
    out.push_back(tbl[(n >> 18) & 63]);
    out.push_back(tbl[(n >> 12) & 63]);
    out.push_back(tbl[(n >> 6) & 63]);
    out.push_back(tbl[n & 63]);
  }
  if (auto rest = in.size() - i; rest == 1) {
    std::uint32_t n = byte(i) << 16;
    out.push_back(tbl[(n >> 18) & 63]);
    out.push_back(tbl[(n >> 12) & 63]);
    out += "==";
  } else if (rest == 2) {
    std::uint32_t n = byte(i) << 16 | byte(i + 1) << 8;
    out.push_back(tbl[(n >> 18) & 63]);
    out.push_back(tbl[(n >> 12) & 63]);
    out.push_back(tbl[(n >> 6) & 63]);
    out.push_back('=');
  }
  return out;
}

credentials::credentials(kind k, std::string secret, std::string source)
    : kind_(k), secret_(std::move(secret)), source_(std::move(source)) {
  header_ = kind_ == kind::api_key ? "Basic " + base64_encode(secret_ + ":") : "Bearer " + secret_;
}

result<credentials, http_errc> credentials::from_api_key(std::string key) {
  if (key.empty()) return bad("api key is empty");
  if (!header_safe(key)) return bad("api key contains a space or control character");
  return credentials(kind::api_key, std::move(key), {});
}

result<credentials, http_errc> credentials::from_access_token(std::string token) {
  if (token.empty()) return bad("bearer token is empty");
  if (!header_safe(token)) return bad("bearer token contains a space or control character");
  return credentials(kind::bearer_token, std::move(token), {});
}

result<credentials, http_errc> credentials::from_env() {
  if (auto token = env("PLEO_ACCESS_TOKEN"); !token.empty()) {
    if (!header_safe(token)) return bad("PLEO_ACCESS_TOKEN contains a space or control character");
    return credentials(kind::bearer_token, std::move(token), "PLEO_ACCESS_TOKEN");
  }
  if (auto key = env("PLEO_API_KEY"); !key.empty()) {
    if (!header_safe(key)) return bad("PLEO_API_KEY contains a space or control character");
    return credentials(kind::api_key, std::move(key), "PLEO_API_KEY");
  }
  return bad("no credentials: set PLEO_API_KEY (API key) or PLEO_ACCESS_TOKEN (OAuth token)");
}

std::string credentials::describe() const {
  std::string d = kind_ == kind::api_key ? "api key" : "bearer token";
  if (!source_.empty()) d += " (from " + source_ + ")";
  return d;
}

void credentials::redact(std::string& text) const {
  replace_all(text, header_);
  replace_all(text, header_.substr(header_.find(' ') + 1));
  replace_all(text, secret_);
}

}  // namespace ei::api
