#include "api/credentials.hpp"

#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "common/base64.hpp"

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

std::string trim_ws(std::string s) {
  auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return {};
  auto last = s.find_last_not_of(" \t\r\n");
  return s.substr(first, last - first + 1);
}

result<std::string, http_errc> read_token_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return bad("cannot read the token file '" + path + "' (PLEO_ACCESS_TOKEN_FILE)").err();
  std::stringstream ss;
  ss << in.rdbuf();
  auto token = trim_ws(ss.str());
  if (token.empty()) return bad("the token file '" + path + "' is empty").err();
  if (!header_safe(token))
    return bad("the token file '" + path + "' holds a space or control character inside the token")
        .err();
  return token;
}

result<std::string, http_errc> run_token_command(const std::string& command) {
  // The command's stdout is the token; its stderr goes to ours (it may prompt or explain).
  FILE* p = ::popen(command.c_str(), "r");  // NOLINT(cert-env33-c): the user's own helper
  if (!p) return bad("cannot run the token command").err();
  std::string out;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0 && out.size() < 65536)
    out.append(buf, n);
  int status = ::pclose(p);
  if (status != 0) {
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return bad("the token command failed (exit status " + std::to_string(code) + ")").err();
  }
  auto token = trim_ws(out);
  if (token.empty()) return bad("the token command printed no token").err();
  if (!header_safe(token))
    return bad("the token command printed a space or control character inside the token").err();
  return token;
}

}  // namespace

credentials::credentials(kind k, std::string secret, std::string source)
    : kind_(k), source_(std::move(source)) {
  set_secret(std::move(secret));
}

void credentials::set_secret(std::string secret) {
  if (!secret_.empty()) old_secrets_.push_back(std::move(secret_));
  secret_ = std::move(secret);
  header_ = kind_ == kind::api_key ? "Basic " + base64_encode(secret_ + ":") : "Bearer " + secret_;
}

result<credentials, http_errc> credentials::from_token_file(std::string path) {
  auto token = read_token_file(path);
  if (!token) return token.err();
  credentials c(kind::bearer_token, std::move(token.value()), "PLEO_ACCESS_TOKEN_FILE " + path);
  c.file_ = std::move(path);
  struct stat st {};
  if (::stat(c.file_.c_str(), &st) == 0)
    c.seen_ = {static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino),
               static_cast<std::uint64_t>(st.st_size),
               static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
  return c;
}

result<credentials, http_errc> credentials::from_token_command(std::string command) {
  auto token = run_token_command(command);
  if (!token) return token.err();
  credentials c(kind::bearer_token, std::move(token.value()), "--token-command");
  c.command_ = std::move(command);
  return c;
}

bool credentials::file_changed() const {
  if (file_.empty()) return false;
  struct stat st {};
  if (::stat(file_.c_str(), &st) != 0) return false;  // gone for now: keep the token we have
  file_id now{static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino),
              static_cast<std::uint64_t>(st.st_size),
              static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
  return !(now == seen_);
}

result<bool, http_errc> credentials::reload() {
  if (!refreshable()) return false;
  file_id before = seen_;
  if (!file_.empty()) {
    struct stat st {};
    if (::stat(file_.c_str(), &st) == 0)
      seen_ = {static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino),
               static_cast<std::uint64_t>(st.st_size),
               static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
  }
  auto token = file_.empty() ? run_token_command(command_) : read_token_file(file_);
  if (!token) {
    seen_ = before;
    return token.err();
  }
  if (token.value() == secret_) return false;
  set_secret(std::move(token.value()));
  return true;
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

result<credentials, http_errc> credentials::from_env(const std::string& token_command) {
  if (!token_command.empty()) return from_token_command(token_command);
  if (auto file = env("PLEO_ACCESS_TOKEN_FILE"); !file.empty()) return from_token_file(file);
  if (auto token = env("PLEO_ACCESS_TOKEN"); !token.empty()) {
    if (!header_safe(token)) return bad("PLEO_ACCESS_TOKEN contains a space or control character");
    return credentials(kind::bearer_token, std::move(token), "PLEO_ACCESS_TOKEN");
  }
  if (auto key = env("PLEO_API_KEY"); !key.empty()) {
    if (!header_safe(key)) return bad("PLEO_API_KEY contains a space or control character");
    return credentials(kind::api_key, std::move(key), "PLEO_API_KEY");
  }
  return bad(
      "no credentials: set PLEO_API_KEY (API key), PLEO_ACCESS_TOKEN or PLEO_ACCESS_TOKEN_FILE "
      "(OAuth token), or give --token-command");
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
  for (const auto& old : old_secrets_) {
    replace_all(text, old);
    if (kind_ == kind::api_key) replace_all(text, base64_encode(old + ":"));
  }
}

}  // namespace ei::api
