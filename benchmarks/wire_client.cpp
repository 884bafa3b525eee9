// The wire ceiling: a minimal keep-alive HTTP/1.1 client (Boost.Beast, synchronous) that only
// downloads the item pages of one job, as fast as one connection (or N, with offsets) allows.
// No JSON parsing and no state: the next cursor and `hasNextPage` are found by a substring
// search in the page's trailing pagination object, items are counted by their
// `"accountingEntryId"` keys. Whatever the stage does on top of this costs time; this is the
// figure it is measured against.
//
// Usage:
//   ei_bench_wire --base-url http://127.0.0.1:PORT --job ID [--page-size 500]
//                 [--endpoint items|export-items] [--mode cursor|offset] [--concurrency N]
//                 [--dump FILE]
// The API key comes from PLEO_API_KEY (Basic auth) and is never printed.
// Prints one JSON object: {"mode","pages","items","bytes","seconds","items_per_s"}.
// Exit status 1 with a message on stderr on any HTTP or protocol failure.
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/base64.hpp"

namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

struct options {
  std::string host = "127.0.0.1";
  std::string port;
  std::string job;
  std::string endpoint = "items";
  std::string mode = "cursor";
  std::string dump;
  unsigned page_size = 500;
  unsigned concurrency = 1;
};

// The value after `"key":` searched from the end of the body (the pagination object is last).
std::string_view field_from_end(std::string_view body, std::string_view key) {
  const std::string needle = "\"" + std::string{key} + "\":";
  const auto at = body.rfind(needle);
  if (at == std::string_view::npos) return {};
  auto v = body.substr(at + needle.size());
  const auto end = v.find_first_of(",}");
  return v.substr(0, end);
}

std::uint64_t count_items(std::string_view body) {
  std::uint64_t n = 0;
  constexpr std::string_view key = "\"accountingEntryId\"";
  for (auto at = body.find(key); at != std::string_view::npos; at = body.find(key, at + 1))
    ++n;
  return n;
}

// One keep-alive connection.
class connection {
 public:
  connection(const options& o, std::string auth) : opt_(o), auth_(std::move(auth)), socket_(io_) {
    tcp::resolver resolver{io_};
    asio::connect(socket_, resolver.resolve(o.host, o.port));
    socket_.set_option(tcp::no_delay(true));
  }

  // GET target; returns the body (moved out of the parser's buffer).
  std::string get(const std::string& target) {
    http::request<http::empty_body> req{http::verb::get, target, 11};
    req.set(http::field::host, opt_.host + ":" + opt_.port);
    req.set(http::field::authorization, auth_);
    req.set(http::field::accept, "application/json");
    req.keep_alive(true);
    http::write(socket_, req);
    http::response_parser<http::string_body> parser;
    parser.body_limit(256u << 20);
    http::read(socket_, buffer_, parser);
    auto res = parser.release();
    if (res.result_int() != 200)
      throw std::runtime_error("GET " + target.substr(0, target.find('?')) + ": HTTP " +
                               std::to_string(res.result_int()));
    return std::move(res.body());
  }

 private:
  const options& opt_;
  std::string auth_;
  asio::io_context io_;
  tcp::socket socket_;
  boost::beast::flat_buffer buffer_;
};

std::string path_of(const options& o) {
  if (o.endpoint == "export-items") return "/v3/export-items?job_id=" + o.job + "&";
  return "/v3/export-jobs/" + o.job + "/items?";
}

struct totals {
  std::uint64_t pages = 0, items = 0, bytes = 0;
};

void maybe_dump(const options& o, const std::string& body) {
  if (o.dump.empty()) return;
  std::ofstream f{o.dump, std::ios::binary};
  f << body;
  if (!f) throw std::runtime_error("cannot write the dump file");
}

totals run_cursor(const options& o, const std::string& auth) {
  connection c{o, auth};
  totals t;
  std::string cursor;
  const std::string base = path_of(o) + "limit=" + std::to_string(o.page_size);
  for (;;) {
    const std::string body = c.get(cursor.empty() ? base : base + "&after=" + cursor);
    if (t.pages == 0) maybe_dump(o, body);
    ++t.pages;
    t.bytes += body.size();
    t.items += count_items(body);
    if (field_from_end(body, "hasNextPage") != "true") break;
    auto next = field_from_end(body, "endCursor");
    if (next.size() < 2 || next.front() != '"')
      throw std::runtime_error("page without an endCursor but hasNextPage");
    cursor.assign(next.substr(1, next.size() - 2));
  }
  return t;
}

// N connections on N threads take offsets from a shared counter: `total` from the first page.
totals run_offset(const options& o, const std::string& auth) {
  connection first{o, auth};
  const std::string base = path_of(o) + "limit=" + std::to_string(o.page_size);
  const std::string body0 = first.get(base + "&offset=0");
  maybe_dump(o, body0);
  const auto total_text = field_from_end(body0, "total");
  const std::uint64_t total = std::strtoull(std::string{total_text}.c_str(), nullptr, 10);
  totals t;
  t.pages = 1;
  t.bytes = body0.size();
  t.items = count_items(body0);
  std::atomic<std::uint64_t> next_offset{o.page_size};
  std::mutex m;
  std::optional<std::string> failure;
  std::vector<std::thread> workers;
  for (unsigned w = 0; w < o.concurrency; ++w)
    workers.emplace_back([&] {
      try {
        std::optional<connection> own;
        totals mine;
        for (;;) {
          const std::uint64_t off = next_offset.fetch_add(o.page_size);
          if (off >= total) break;
          if (!own) own.emplace(o, auth);
          const std::string body = own->get(base + "&offset=" + std::to_string(off));
          ++mine.pages;
          mine.bytes += body.size();
          mine.items += count_items(body);
        }
        std::lock_guard lock{m};
        t.pages += mine.pages;
        t.bytes += mine.bytes;
        t.items += mine.items;
      } catch (const std::exception& e) {
        std::lock_guard lock{m};
        failure = e.what();
      }
    });
  for (auto& w : workers)
    w.join();
  if (failure) throw std::runtime_error(*failure);
  return t;
}

bool parse_args(int argc, char** argv, options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(std::string{a} + " needs a value");
      return argv[++i];
    };
    if (a == "--base-url") {
      std::string url = value();
      const std::string scheme = "http://";
      if (url.rfind(scheme, 0) != 0) throw std::invalid_argument("--base-url must be http://");
      url = url.substr(scheme.size());
      if (auto slash = url.find('/'); slash != std::string::npos) url.resize(slash);
      const auto colon = url.rfind(':');
      o.host = url.substr(0, colon);
      o.port = colon == std::string::npos ? "80" : url.substr(colon + 1);
    } else if (a == "--job") {
      o.job = value();
    } else if (a == "--page-size") {
      o.page_size = static_cast<unsigned>(std::stoul(value()));
    } else if (a == "--endpoint") {
      o.endpoint = value();
    } else if (a == "--mode") {
      o.mode = value();
    } else if (a == "--concurrency") {
      o.concurrency = static_cast<unsigned>(std::stoul(value()));
    } else if (a == "--dump") {
      o.dump = value();
    } else {
      throw std::invalid_argument("unknown argument " + std::string{a});
    }
  }
  if (o.port.empty() || o.job.empty()) throw std::invalid_argument("--base-url and --job needed");
  if (o.mode != "cursor" && o.mode != "offset") throw std::invalid_argument("--mode");
  if (o.endpoint != "items" && o.endpoint != "export-items")
    throw std::invalid_argument("--endpoint");
  if (o.concurrency == 0 || o.page_size == 0) throw std::invalid_argument("zero");
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  try {
    parse_args(argc, argv, o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ei_bench_wire: %s\n", e.what());
    return 2;
  }
  const char* key = std::getenv("PLEO_API_KEY");
  const std::string auth = "Basic " + ei::base64_encode(std::string{key ? key : ""} + ":");
  try {
    const auto t0 = std::chrono::steady_clock::now();
    const totals t = o.mode == "cursor" ? run_cursor(o, auth) : run_offset(o, auth);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf(
        "{\"mode\":\"%s\",\"endpoint\":\"%s\",\"concurrency\":%u,\"pages\":%llu,\"items\":%llu,"
        "\"bytes\":%llu,\"seconds\":%.6f,\"items_per_s\":%.0f}\n",
        o.mode.c_str(), o.endpoint.c_str(), o.concurrency, static_cast<unsigned long long>(t.pages),
        static_cast<unsigned long long>(t.items), static_cast<unsigned long long>(t.bytes), s,
        static_cast<double>(t.items) / s);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ei_bench_wire: %s\n", e.what());
    return 1;
  }
  return 0;
}
