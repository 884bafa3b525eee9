// Credentials for Pleo's API (contract §2): an API key sent as HTTP Basic with the key as
// user name and an empty password, or an OAuth access token sent as Bearer. The secret lives
// only here; describe() and every message produced from this type leave it out.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "api/http_error.hpp"
#include "common/result.hpp"

namespace ei::api {

class credentials {
 public:
  enum class kind : std::uint8_t { api_key, bearer_token };

  /// The secret must be non-empty and free of control characters and spaces (it goes into a
  /// header); otherwise invalid_config (the message does not repeat the secret).
  static result<credentials, http_errc> from_api_key(std::string key);
  static result<credentials, http_errc> from_access_token(std::string token);

  /// Reads PLEO_ACCESS_TOKEN and PLEO_API_KEY (an empty variable counts as unset). When both
  /// are set the access token wins: OAuth is the method Pleo requires for integrations and a
  /// token is short-lived, so it is the more deliberate choice; describe() says which was used.
  /// Neither set: invalid_config naming both variables.
  static result<credentials, http_errc> from_env();

  kind type() const noexcept { return kind_; }
  /// The Authorization header value: "Basic base64(key:)" or "Bearer <token>".
  const std::string& authorization() const noexcept { return header_; }
  /// "api key" or "bearer token", plus the source variable when read from the environment.
  /// Never contains the secret.
  std::string describe() const;
  /// Replaces every occurrence of the secret (raw and as header value) in `text` with
  /// "<redacted>"; a last line of defence for messages built from server responses.
  void redact(std::string& text) const;

 private:
  credentials(kind k, std::string secret, std::string source);
  kind kind_;
  std::string secret_;
  std::string header_;
  std::string source_;
};

/// Standard base64 with padding (exposed for tests).
std::string base64_encode(std::string_view in);

}  // namespace ei::api
