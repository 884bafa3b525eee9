// The server: Beast sessions (one per connection on its own strand, deadlines, keep-alive,
// TLS), the acceptor and io threads, start/stop, and the public `simulator` members (ground
// truth, run-time controls, request log, counters). Requests go to router.cpp.
#include <algorithm>
#include <mutex>
#include <shared_mutex>

#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>

#include "common/base64.hpp"
#include "simulator/hash.hpp"
#include "simulator/impl.hpp"

namespace ei::sim {

namespace beast = boost::beast;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using namespace detail;

std::string_view to_string(sim_errc c) noexcept {
  switch (c) {
    case sim_errc::invalid_config:
      return "invalid_config";
    case sim_errc::invalid_faults:
      return "invalid_faults";
    case sim_errc::bind_failed:
      return "bind_failed";
    case sim_errc::tls_failed:
      return "tls_failed";
  }
  return "unknown";
}

// ---------------------------------------------------------------------------------------------
// Connections: one session per connection on its own strand; every operation has a deadline.

namespace {

constexpr auto kIdleTimeout = std::chrono::seconds(30);

std::string serialize(const http::response<http::string_body>& res, std::size_t& header_size) {
  std::string raw =
      "HTTP/1.1 " + std::to_string(res.result_int()) + " " + std::string(res.reason()) + "\r\n";
  for (const auto& f : res) {
    raw += std::string(f.name_string());
    raw += ": ";
    raw += std::string(f.value());
    raw += "\r\n";
  }
  raw += "\r\n";
  header_size = raw.size();
  raw += res.body();
  return raw;
}

template <class Stream>
class session : public std::enable_shared_from_this<session<Stream>> {
 public:
  session(simulator::impl& owner, Stream stream)
      : owner_(owner), stream_(std::move(stream)), timer_(stream_.get_executor()) {}

  void run() {
    net::dispatch(stream_.get_executor(), [self = this->shared_from_this()] { self->start(); });
  }

 private:
  auto& tcp() { return beast::get_lowest_layer(stream_); }

  void start() {
    if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
      do_read();
    } else {
      tcp().expires_after(kIdleTimeout);
      stream_.async_handshake(ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                if (!ec) self->do_read();
                              });
    }
  }

  void do_read() {
    parser_.emplace();
    parser_->body_limit(16 * 1024 * 1024);
    tcp().expires_after(kIdleTimeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                       self->on_read(ec);
                     });
  }

  void on_read(beast::error_code ec) {
    if (ec == http::error::end_of_stream) return close();
    if (ec) return;
    reply_ = owner_.handle(parser_->get());
    if (reply_.delay.count() > 0) {
      timer_.expires_after(reply_.delay);
      timer_.async_wait([self = this->shared_from_this()](beast::error_code) { self->send(); });
    } else {
      send();
    }
  }

  void send() {
    tcp().expires_after(kIdleTimeout);
    switch (reply_.how) {
      case delivery::normal:
        http::async_write(stream_, reply_.res,
                          [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                            if (ec) return;
                            if (!self->reply_.res.keep_alive()) return self->close();
                            self->do_read();
                          });
        return;
      case delivery::reset:
        return reset();
      case delivery::reset_mid_body:
      case delivery::truncate: {
        std::size_t header = 0;
        raw_ = serialize(reply_.res, header);
        const std::size_t cut = header + reply_.res.body().size() / 2;
        net::async_write(stream_, net::buffer(raw_.data(), cut),
                         [self = this->shared_from_this()](beast::error_code, std::size_t) {
                           if (self->reply_.how == delivery::reset_mid_body) return self->reset();
                           beast::error_code ignored;
                           self->tcp().socket().shutdown(tcp::socket::shutdown_send, ignored);
                           self->tcp().socket().close(ignored);
                         });
        return;
      }
    }
  }

  void reset() {
    beast::error_code ignored;
    tcp().socket().set_option(net::socket_base::linger(true, 0), ignored);
    tcp().socket().close(ignored);
  }

  void close() {
    beast::error_code ignored;
    if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
      tcp().socket().shutdown(tcp::socket::shutdown_send, ignored);
    } else {
      tcp().expires_after(std::chrono::seconds(5));
      stream_.async_shutdown([self = this->shared_from_this()](beast::error_code) {
        beast::error_code e;
        self->tcp().socket().close(e);
      });
    }
  }

  simulator::impl& owner_;
  Stream stream_;
  net::steady_timer timer_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  reply reply_;
  std::string raw_;
};

}  // namespace

void simulator::impl::do_accept() {
  acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (ec) {
      if (ec == net::error::operation_aborted || stopped) return;
      return do_accept();
    }
    socket.set_option(tcp::no_delay(true), ec);
    if (tls) {
      std::make_shared<session<beast::ssl_stream<beast::tcp_stream>>>(
          *this, beast::ssl_stream<beast::tcp_stream>(std::move(socket), *tls))
          ->run();
    } else {
      std::make_shared<session<beast::tcp_stream>>(*this, beast::tcp_stream(std::move(socket)))
          ->run();
    }
    do_accept();
  });
}

// ---------------------------------------------------------------------------------------------

result<std::vector<job_info>, sim_errc> preview_jobs(const sim_config& config) {
  auto w = world::generate(config, now_ms());
  if (!w) return std::move(w).err();
  std::vector<job_info> out;
  for (const auto& j : (*w)->jobs)
    out.push_back(j.info);
  return out;
}

status<sim_errc> validate_faults(const std::string& spec) {
  auto f = parse_faults(spec);
  if (!f) return std::move(f).err();
  return ok_v;
}

result<std::unique_ptr<simulator>, sim_errc> simulator::start(sim_config config) {
  auto fail = [](sim_errc c, std::string m) { return make_error(c, std::move(m)); };
  if (config.threads == 0 || config.threads > 64)
    return fail(sim_errc::invalid_config, "threads must be in 1..64");
  if (config.default_limit == 0) return fail(sim_errc::invalid_config, "default_limit must be > 0");
  if (config.max_limit < config.default_limit)
    return fail(sim_errc::invalid_config, "max_limit must be >= default_limit");
  if (config.tls_cert_file.empty() != config.tls_key_file.empty())
    return fail(sim_errc::invalid_config, "tls_cert_file and tls_key_file must be set together");
  auto plan = parse_faults(config.faults);
  if (!plan) return std::move(plan).err();
  auto w = world::generate(config, now_ms());
  if (!w) return std::move(w).err();

  auto p = std::make_unique<impl>(static_cast<int>(config.threads));
  p->cfg = config;
  p->data = std::move(*w);
  p->cursor_key = hash2(config.seed, 0xC5);
  if (!config.api_key.empty()) p->basic_credentials = base64_encode(config.api_key + ":");
  p->bearer_token = config.access_token;
  p->limiter = std::make_unique<admission>(
      config.rate_limit, config.rate_burst > 0 ? config.rate_burst : config.rate_limit,
      config.seed);
  if (config.token_lifetime_ms > 0) {
    p->tokens = std::make_unique<token_issuer>(std::chrono::milliseconds{config.token_lifetime_ms},
                                               config.token_file, config.seed,
                                               std::chrono::steady_clock::now());
    std::string err;
    if (!p->tokens->write_file(err)) return fail(sim_errc::invalid_config, err);
  }
  p->faults = fault_plan(std::move(*plan), config.seed);
  if (!config.request_log_file.empty()) {
    if (auto err = p->log_file.open(config.request_log_file); !err.empty())
      return fail(sim_errc::invalid_config, err);
  }

  if (!config.tls_cert_file.empty()) {
    p->tls.emplace(ssl::context::tls_server);
    beast::error_code ec;
    p->tls->use_certificate_chain_file(config.tls_cert_file, ec);
    if (ec)
      return fail(sim_errc::tls_failed,
                  "cannot load TLS certificate '" + config.tls_cert_file + "': " + ec.message());
    p->tls->use_private_key_file(config.tls_key_file, ssl::context::pem, ec);
    if (ec)
      return fail(sim_errc::tls_failed,
                  "cannot load TLS key '" + config.tls_key_file + "': " + ec.message());
  }

  beast::error_code ec;
  const auto addr = net::ip::make_address(config.host, ec);
  if (ec) return fail(sim_errc::invalid_config, "host '" + config.host + "' is not an IP address");
  const tcp::endpoint ep(addr, config.port);
  p->acceptor.open(ep.protocol(), ec);
  if (!ec) p->acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) p->acceptor.bind(ep, ec);
  if (!ec) p->acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec)
    return fail(sim_errc::bind_failed, "cannot listen on " + config.host + ":" +
                                           std::to_string(config.port) + ": " + ec.message());
  p->port = p->acceptor.local_endpoint().port();
  p->do_accept();
  if (p->tokens) {
    p->rotation.emplace(p->ioc);
    p->rotate_tokens();
  }
  for (std::uint32_t i = 0; i < config.threads; ++i)
    p->threads.emplace_back([raw = p.get()] { raw->ioc.run(); });
  return std::unique_ptr<simulator>(new simulator(std::move(p)));
}

simulator::simulator(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

simulator::~simulator() {
  stop();
}

void simulator::stop() {
  if (impl_->stopped.exchange(true)) return;
  net::post(impl_->ioc, [p = impl_.get()] {
    beast::error_code ignored;
    p->acceptor.close(ignored);
  });
  impl_->ioc.stop();
  for (auto& t : impl_->threads)
    if (t.joinable()) t.join();
  impl_->log_file.close();  // every request was answered: the file is complete
}

std::uint16_t simulator::port() const noexcept {
  return impl_->port;
}

std::string simulator::base_url() const {
  return std::string(impl_->tls ? "https://" : "http://") + impl_->cfg.host + ":" +
         std::to_string(impl_->port);
}

std::vector<job_info> simulator::jobs() const {
  std::shared_lock lock(impl_->data->mutex);
  std::vector<job_info> out;
  for (const auto& j : impl_->data->jobs)
    out.push_back(j.info);
  return out;
}

std::vector<item_truth> simulator::items_of(const api::uuid& job_id) const {
  std::shared_lock lock(impl_->data->mutex);
  std::vector<item_truth> out;
  const job_state* j = impl_->data->find(job_id);
  if (j == nullptr) return out;
  out.reserve(j->info.items);
  for (std::uint64_t p = 0; p < j->info.items; ++p) {
    const std::uint64_t k = j->order(p);
    out.push_back(
        {impl_->data->item_id(*j, k), impl_->data->status_of(*j, k), impl_->data->date_of(*j, k)});
  }
  return out;
}

status<sim_errc> simulator::set_faults(const std::string& spec) {
  auto plan = parse_faults(spec);
  if (!plan) return std::move(plan).err();
  std::lock_guard lock(impl_->fault_mutex);
  impl_->faults = fault_plan(std::move(*plan), impl_->cfg.seed);
  return ok_v;
}

void simulator::set_latency(std::chrono::milliseconds latency) {
  impl_->extra_latency_ms = latency.count();
}

void simulator::set_job_status(const api::uuid& job_id, api::job_status s) {
  std::unique_lock lock(impl_->data->mutex);
  if (job_state* j = impl_->data->find(job_id)) {
    j->info.status = s;
    j->last_updated_ms = now_ms();
  }
}

void simulator::expire_job(const api::uuid& job_id) {
  std::unique_lock lock(impl_->data->mutex);
  if (job_state* j = impl_->data->find(job_id)) impl_->data->expire(*j, now_ms());
}

void simulator::set_item_status(const api::uuid& job_id, const api::uuid& item_id,
                                api::item_status s) {
  std::unique_lock lock(impl_->data->mutex);
  job_state* j = impl_->data->find(job_id);
  if (j == nullptr) return;
  if (auto k = impl_->data->item_index(*j, item_id)) impl_->data->set_item_status(*j, *k, s);
}

std::vector<item_update_count> simulator::item_updates(const api::uuid& job_id) const {
  std::vector<item_update_count> out;
  std::shared_lock lock(impl_->data->mutex);
  const job_state* j = impl_->data->find(job_id);
  if (j == nullptr) return out;
  out.reserve(j->put_counts.size());
  for (const auto& [k, c] : j->put_counts)
    out.push_back(
        {impl_->data->item_id(*j, k), impl_->data->status_of(*j, k), c.applied, c.rejected});
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return a.accounting_entry_id.to_string() < b.accounting_entry_id.to_string();
  });
  return out;
}

std::string simulator::token_current() const {
  return impl_->tokens ? impl_->tokens->current(std::chrono::steady_clock::now()) : std::string{};
}

write_back_counts simulator::write_back(const api::uuid& job_id) const {
  std::lock_guard lock(impl_->wb_mutex);
  auto it = impl_->wb.find(job_id);
  return it == impl_->wb.end() ? write_back_counts{} : it->second;
}

std::vector<request_record> simulator::request_log() const {
  std::lock_guard lock(impl_->log_mutex);
  return {impl_->log.begin(), impl_->log.end()};
}

std::string simulator::request_log_file_error() const {
  return impl_->log_file.error();
}

void simulator::clear_request_log() {
  std::lock_guard lock(impl_->log_mutex);
  impl_->log.clear();
}

counters simulator::stats() const {
  counters c;
  c.requests = impl_->n_requests;
  c.faults_injected = impl_->n_faults;
  c.unauthorized = impl_->n_unauthorized;
  c.items_served = impl_->n_items;
  c.throttled = impl_->limiter ? impl_->limiter->throttled() : 0;
  c.tokens_issued = impl_->tokens ? impl_->tokens->issued() : 0;
  return c;
}

}  // namespace ei::sim
