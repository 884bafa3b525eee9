#include "api/query.hpp"

#include <cctype>
#include <charconv>

#include <boost/asio/ip/address.hpp>

namespace ei::api {

namespace {

bool unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

error<http_errc> bad_url(std::string_view url, std::string_view what) {
  std::string msg = "invalid base URL";
  if (url.find('@') == std::string_view::npos) {
    msg += " '";
    msg += url;
    msg += "'";
  }
  msg += ": ";
  msg += what;
  return make_error(http_errc::invalid_url, std::move(msg));
}

}  // namespace

std::string percent_encode(std::string_view s) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() * 3 / 2);
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (unreserved(c)) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 0xF]);
    }
  }
  return out;
}

std::string encode_query(const query_params& q) {
  std::string out;
  for (const auto& [k, v] : q) {
    if (!out.empty()) out.push_back('&');
    out += percent_encode(k);
    out.push_back('=');
    out += percent_encode(v);
  }
  return out;
}

std::string base_url::host_header() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  if (port != (tls ? 443 : 80)) h += ":" + std::to_string(port);
  return h;
}

bool base_url::host_is_ip() const {
  boost::system::error_code ec;
  boost::asio::ip::make_address(host, ec);
  return !ec;
}

bool base_url::host_is_loopback() const {
  std::string lower = host;
  for (auto& c : lower)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "localhost") return true;
  boost::system::error_code ec;
  auto addr = boost::asio::ip::make_address(host, ec);
  return !ec && addr.is_loopback();
}

result<base_url, http_errc> parse_base_url(std::string_view url) {
  base_url out;
  auto sep = url.find("://");
  if (sep == std::string_view::npos) return bad_url(url, "expected scheme://host[:port][/prefix]");
  auto scheme = lower(url.substr(0, sep));
  if (scheme == "https") {
    out.tls = true;
  } else if (scheme != "http") {
    return bad_url(url, "scheme must be http or https");
  }
  auto rest = url.substr(sep + 3);
  auto path_pos = rest.find('/');
  auto authority = rest.substr(0, path_pos);
  auto path = path_pos == std::string_view::npos ? std::string_view{} : rest.substr(path_pos);
  if (authority.find('@') != std::string_view::npos)
    return bad_url(url,
                   "user info is not allowed (credentials come from PLEO_API_KEY or "
                   "PLEO_ACCESS_TOKEN)");
  if (rest.find_first_of("?#") != std::string_view::npos)
    return bad_url(url, "query strings and fragments are not allowed");
  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string_view::npos) return bad_url(url, "unterminated IPv6 literal");
    out.host = std::string(authority.substr(1, close - 1));
    auto after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return bad_url(url, "unexpected text after IPv6 literal");
      port_text = after.substr(1);
    }
    boost::system::error_code ec;
    boost::asio::ip::make_address_v6(out.host, ec);
    if (ec) return bad_url(url, "invalid IPv6 literal");
  } else {
    auto colon = authority.find(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
  }
  if (out.host.empty()) return bad_url(url, "missing host");
  for (char c : out.host) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7F || c == '%' || c == '\\')
      return bad_url(url, "host contains a character that is not allowed");
  }
  out.port = out.tls ? 443 : 80;
  if (!port_text.empty()) {
    unsigned p = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), p);
    if (ec != std::errc{} || end != port_text.data() + port_text.size() || p == 0 || p > 65535)
      return bad_url(url, "port must be a number in 1-65535");
    out.port = static_cast<std::uint16_t>(p);
  } else if (authority.find(':') != std::string_view::npos &&
             authority.find(']') == std::string_view::npos) {
    return bad_url(url, "empty port");
  }
  while (!path.empty() && path.back() == '/')
    path.remove_suffix(1);
  for (char c : path) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7F)
      return bad_url(url,
                     "path prefix contains a space or control "
                     "character");
  }
  out.prefix = std::string(path);
  return out;
}

std::string build_target(const base_url& base, std::string_view path, const query_params& q) {
  std::string t = base.prefix;
  t += path;
  if (!q.empty()) {
    t.push_back('?');
    t += encode_query(q);
  }
  return t;
}

}  // namespace ei::api
