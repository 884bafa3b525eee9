// Credentials for Pleo's API (contract §2): an API key sent as HTTP Basic with the key as
// user name and an empty password, or an OAuth access token sent as Bearer. The secret lives
// only here; describe() and every message produced from this type leave it out.
// Public (a host creates the credentials it starts a stage with); `http_errc` is the error
// vocabulary of the HTTP client, which these share. Internal code includes api/credentials.hpp.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "export_items/result.hpp"

namespace ei::api {

enum class http_errc : std::uint8_t {
  invalid_url,         // base URL or request path does not parse (message names the part)
  invalid_config,      // a client_config field or the credentials are unusable
  connect_failed,      // name resolution or TCP connect failed (refused, unreachable)
  tls_failed,          // TLS handshake or certificate verification failed; never retried
  timeout,             // a socket deadline, or the whole-request deadline, passed
  connection_reset,    // the peer closed or reset the connection before a complete response
  truncated_body,      // the response header arrived, the body stopped short
  response_too_large,  // header or body exceeded the configured cap; never retried
  http_status,         // the server answered with a non-2xx status that is not retried
  retries_exhausted,   // every allowed attempt failed transiently; `cause` holds the last one
  cancelled,           // the client was stopped before the request completed
  bad_encoding,        // a 2xx body's Content-Encoding is unknown or its gzip stream is corrupt
};

std::string_view to_string(http_errc c) noexcept;

class credentials {
 public:
  enum class kind : std::uint8_t { api_key, bearer_token };

  /// The secret must be non-empty and free of control characters and spaces (it goes into a
  /// header); otherwise invalid_config (the message does not repeat the secret).
  static result<credentials, http_errc> from_api_key(std::string key);
  static result<credentials, http_errc> from_access_token(std::string token);

  /// Reads, in this order of preference, `token_command` (when not empty), PLEO_ACCESS_TOKEN_FILE,
  /// PLEO_ACCESS_TOKEN and PLEO_API_KEY (an empty variable counts as unset). A token is the
  /// more deliberate, short-lived choice OAuth asks for, so it wins over the key; describe()
  /// says which was used. None set: invalid_config naming them.
  static result<credentials, http_errc> from_env(const std::string& token_command = {});
  /// A bearer token read from `path` (surrounding white space dropped), re-read when the file
  /// changes and after a 401 (see reload()).
  static result<credentials, http_errc> from_token_file(std::string path);
  /// A bearer token printed by `command` (run by /bin/sh; stdout, surrounding white space
  /// dropped; a non-zero exit is an error), run now and again after a 401, the way git
  /// credential helpers and kubectl exec plugins work.
  static result<credentials, http_errc> from_token_command(std::string command);

  /// True when the secret can change: a token file or a token command.
  bool refreshable() const noexcept { return !file_.empty() || !command_.empty(); }
  /// A token file whose size, mtime or inode differ from the last read. Cheap (one stat).
  bool file_changed() const;
  /// Reads the file again or runs the command again (blocking: a command may take a while;
  /// never call it from an actor). Returns whether the secret changed; an error (unreadable
  /// file, failed command, bad token) leaves the old secret in place. Secrets seen before
  /// stay known to redact().
  result<bool, http_errc> reload();

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
  void set_secret(std::string secret);
  kind kind_;
  std::string secret_;
  std::string header_;
  std::string source_;
  std::string file_;     // token file, when the token comes from one
  std::string command_;  // token command, when the token comes from one
  struct file_id {
    std::uint64_t dev = 0, ino = 0, size = 0;
    std::int64_t mtime_ns = 0;
    bool operator==(const file_id&) const = default;
  };
  file_id seen_;
  std::vector<std::string> old_secrets_;  // for redact()
};

}  // namespace ei::api
