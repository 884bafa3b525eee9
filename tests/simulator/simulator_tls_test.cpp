// HTTPS mode: a self-signed certificate made with OpenSSL at test time.
#include <cstdio>
#include <filesystem>

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "simulator/simulator.hpp"

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;

bool write_self_signed(const std::string& cert_path, const std::string& key_path) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  if (key == nullptr) return false;
  X509* x = X509_new();
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_set_pubkey(x, key);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("127.0.0.1"), -1, -1, 0);
  X509_set_issuer_name(x, name);
  bool ok = X509_sign(x, key, EVP_sha256()) > 0;
  FILE* f = std::fopen(cert_path.c_str(), "w");
  ok = ok && f != nullptr && PEM_write_X509(f, x) == 1;
  if (f != nullptr) std::fclose(f);
  f = std::fopen(key_path.c_str(), "w");
  ok = ok && f != nullptr &&
       PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr) == 1;
  if (f != nullptr) std::fclose(f);
  X509_free(x);
  EVP_PKEY_free(key);
  return ok;
}

TEST(SimulatorTls, ServesHttpsWithTheGivenCertificate) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("sim-tls-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string cert = (dir / "cert.pem").string(), key = (dir / "key.pem").string();
  ASSERT_TRUE(write_self_signed(cert, key));

  ei::sim::sim_config cfg;
  cfg.access_token = "tls-token";
  cfg.tls_cert_file = cert;
  cfg.tls_key_file = key;
  auto sim = ei::sim::simulator::start(cfg);
  ASSERT_TRUE(sim.ok()) << sim.err().message;
  EXPECT_EQ((*sim)->base_url().rfind("https://", 0), 0u);

  net::io_context ioc;
  net::ssl::context ctx(net::ssl::context::tls_client);
  ctx.load_verify_file(cert);
  ctx.set_verify_mode(net::ssl::verify_peer);
  beast::ssl_stream<beast::tcp_stream> stream(ioc, ctx);
  beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(10));
  beast::get_lowest_layer(stream).connect(
      net::ip::tcp::endpoint(net::ip::make_address("127.0.0.1"), (*sim)->port()));
  stream.handshake(net::ssl::stream_base::client);
  http::request<http::empty_body> req{http::verb::get, "/v3/export-jobs", 11};
  req.set(http::field::host, "127.0.0.1");
  req.set(http::field::authorization, "Bearer tls-token");
  http::write(stream, req);
  beast::flat_buffer buf;
  http::response<http::string_body> res;
  http::read(stream, buf, res);
  EXPECT_EQ(res.result_int(), 200u);
  EXPECT_NE(res.body().find("\"data\""), std::string::npos);

  ei::sim::sim_config bad = cfg;
  bad.tls_key_file = (dir / "missing.pem").string();
  auto failed = ei::sim::simulator::start(bad);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.err().code, ei::sim::sim_errc::tls_failed);
  (*sim)->stop();
  std::filesystem::remove_all(dir);
}

}  // namespace
