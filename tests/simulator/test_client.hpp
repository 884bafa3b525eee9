// A deliberately plain synchronous Beast client for the simulator tests (independent of the
// project's HTTP client). One keep-alive connection per object; every call has a timeout.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

namespace ei::sim::testing {

struct http_reply {
  bool transport_ok = false;  // false: the connection failed, was reset or cut short
  std::string error;
  unsigned status = 0;
  std::string body;
  std::map<std::string, std::string> headers;

  nlohmann::json json() const { return nlohmann::json::parse(body); }
};

inline std::string basic(const std::string& key) {
  static constexpr char kT[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string in = key + ":", out;
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    unsigned v = (static_cast<unsigned char>(in[i]) << 16) |
                 (static_cast<unsigned char>(in[i + 1]) << 8) |
                 static_cast<unsigned char>(in[i + 2]);
    out += kT[v >> 18];
    out += kT[(v >> 12) & 63];
    out += kT[(v >> 6) & 63];
    out += kT[v & 63];
  }
  if (i + 1 == in.size()) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16;
    out += kT[v >> 18];
    out += kT[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    unsigned v =
        (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8);
    out += kT[v >> 18];
    out += kT[(v >> 12) & 63];
    out += kT[(v >> 6) & 63];
    out += '=';
  }
  return "Basic " + out;
}

class test_client {
 public:
  explicit test_client(std::uint16_t port, std::string auth = {})
      : port_(port), auth_(std::move(auth)) {}

  http_reply request(boost::beast::http::verb verb, const std::string& target,
                     const std::string& body = {},
                     const std::string& content_type = "application/json",
                     std::optional<std::string> auth = std::nullopt) {
    namespace beast = boost::beast;
    namespace http = beast::http;
    http_reply out;
    beast::error_code ec;
    if (!stream_ || !stream_->socket().is_open()) {
      stream_.emplace(ioc_);
      stream_->expires_after(std::chrono::seconds(10));
      stream_->connect(
          boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port_), ec);
      if (ec) {
        out.error = "connect: " + ec.message();
        stream_.reset();
        return out;
      }
    }
    http::request<http::string_body> req{verb, target, 11};
    req.set(http::field::host, "127.0.0.1");
    const std::string a = auth.value_or(auth_);
    if (!a.empty()) req.set(http::field::authorization, a);
    if (!body.empty() || verb == http::verb::put || verb == http::verb::post) {
      req.set(http::field::content_type, content_type);
      req.body() = body;
    }
    req.keep_alive(true);
    req.prepare_payload();
    stream_->expires_after(std::chrono::seconds(10));
    http::write(*stream_, req, ec);
    if (ec) {
      out.error = "write: " + ec.message();
      stream_.reset();
      return out;
    }
    http::response_parser<http::string_body> parser;
    parser.body_limit(256 * 1024 * 1024);
    http::read(*stream_, buffer_, parser, ec);
    if (ec) {
      out.error = "read: " + ec.message();
      if (parser.is_header_done()) out.status = parser.get().result_int();
      out.body = parser.get().body();
      stream_.reset();
      buffer_.clear();
      return out;
    }
    auto& res = parser.get();
    out.transport_ok = true;
    out.status = res.result_int();
    out.body = res.body();
    for (const auto& f : res)
      out.headers[std::string(f.name_string())] = std::string(f.value());
    if (!res.keep_alive()) stream_.reset();
    return out;
  }

  http_reply get(const std::string& target) {
    return request(boost::beast::http::verb::get, target);
  }

 private:
  boost::asio::io_context ioc_;
  std::optional<boost::beast::tcp_stream> stream_;
  boost::beast::flat_buffer buffer_;
  std::uint16_t port_;
  std::string auth_;
};

}  // namespace ei::sim::testing
