// A small client of etcd's v3 JSON gateway (`/v3/kv/range`, `/v3/kv/txn`, `/v3/kv/put`,
// `/v3/lease/grant`, `/v3/lease/keepalive`, `/v3/lease/revoke`) over the project's Beast
// client (api/http_client.hpp): TLS with a client certificate, several endpoints (members of
// one cluster), failing over to the next member when one does not answer or answers 5xx.
// Keys and values travel base64 (common/base64.hpp: OpenSSL's EVP_EncodeBlock / EVP_DecodeBlock).
//
// Every call blocks (api::http_client::request_sync): use it from a plain thread (the worker's
// control loop, a CLI command), never from an actor or an io thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.hpp"

namespace ei::api {
class http_client;
}

namespace ei::distributed {

/// A value or why not (a message naming what failed; never a secret).
template <class T>
using eres = ei::basic_result<T, std::string>;

/// True for 127.0.0.0/8, ::1 and "localhost": the only hosts an `http://` URL may name.
bool is_loopback_host(std::string_view host);
/// "" when `url` is acceptable: https://, or http:// to a loopback host; otherwise why not
/// (naming `what`).
std::string check_url_scheme(std::string_view url, std::string_view what);

struct etcd_options {
  std::vector<std::string> endpoints;  // https://host:port (http:// only on loopback)
  std::optional<std::string> ca_file;  // the cluster's CA; the system store when absent
  std::optional<std::string> cert_file;
  std::optional<std::string> key_file;
  std::chrono::milliseconds timeout{2000};  // per request and member
};

struct key_value {
  std::string key;
  std::string value;
  std::int64_t create_revision = 0;
  std::int64_t mod_revision = 0;
  std::int64_t version = 0;
  std::int64_t lease = 0;
};

struct txn_result {
  bool succeeded = false;
  std::int64_t revision = 0;  // the store's revision after the txn (the writes' revision)
  /// The kvs of every request_range of the branch that ran, in order.
  std::vector<std::vector<key_value>> ranges;
};

/// Builders for the gateway's txn JSON (keys and values are raw bytes here).
namespace txn {
nlohmann::json create_revision_is(const std::string& key, std::int64_t rev);
nlohmann::json version_is(const std::string& key, std::int64_t version);
nlohmann::json put(const std::string& key, const std::string& value, std::int64_t lease = 0);
nlohmann::json del(const std::string& key);
nlohmann::json get(const std::string& key);
/// Every key starting with `prefix`.
nlohmann::json get_prefix(const std::string& prefix);
}  // namespace txn

class etcd_client {
 public:
  static eres<std::unique_ptr<etcd_client>> connect(const etcd_options& o);
  ~etcd_client();
  etcd_client(const etcd_client&) = delete;
  etcd_client& operator=(const etcd_client&) = delete;

  /// One key, or every key starting with `key` when `prefix`.
  eres<std::vector<key_value>> range(const std::string& key, bool prefix = false);
  eres<txn_result> run_txn(const nlohmann::json& compare, const nlohmann::json& success,
                           const nlohmann::json& failure);
  eres<std::int64_t> put(const std::string& key, const std::string& value);
  /// The lease id.
  eres<std::int64_t> grant(std::int64_t ttl_seconds);
  /// The remaining TTL in seconds; 0 when the lease is gone (expired or revoked).
  eres<std::int64_t> keepalive(std::int64_t lease);
  eres<bool> revoke(std::int64_t lease);

  /// Requests answered (any member) and their summed latency, for overhead figures.
  std::uint64_t requests() const noexcept { return requests_.load(); }
  std::uint64_t latency_us() const noexcept { return latency_us_.load(); }
  std::uint64_t failovers() const noexcept { return failovers_.load(); }

 private:
  etcd_client() = default;
  eres<nlohmann::json> call(const std::string& path, const nlohmann::json& body);
  std::vector<std::unique_ptr<api::http_client>> members_;
  std::vector<std::string> names_;
  std::atomic<std::size_t> current_{0};
  std::atomic<std::uint64_t> requests_{0}, latency_us_{0}, failovers_{0};
};

}  // namespace ei::distributed
