// The request log file (simulator/request_log.hpp).
#include "simulator/request_log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

namespace ei::sim::detail {

namespace {

constexpr std::size_t kBlock = std::size_t{1} << 20;

void put_number(std::string& out, std::uint64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, end);
}

void put_micros(std::string& out, std::chrono::steady_clock::time_point t) {
  put_number(
      out,
      static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count()));
}

void put_id(std::string& out, const std::optional<api::uuid>& id) {
  if (!id) {
    out += "null";
    return;
  }
  out += '"';
  out += id->to_string();
  out += '"';
}

}  // namespace

void request_log_file::format(const request_record& r, std::string& out) {
  // endpoint and method are fixed words of the router (or a request's method token, which
  // Beast restricts to token characters): nothing to escape.
  out += R"({"seq":)";
  put_number(out, r.seq);
  out += R"(,"endpoint":")";
  out += r.endpoint;
  out += R"(","method":")";
  out += r.method;
  out += R"(","jobId":)";
  put_id(out, r.job_id);
  out += R"(,"companyId":)";
  put_id(out, r.company_id);
  out += R"(,"receivedUs":)";
  put_micros(out, r.received);
  out += R"(,"finishedUs":)";
  put_micros(out, r.finished);
  out += R"(,"status":)";
  put_number(out, r.status);
  out += "}\n";
}

std::string request_log_file::open(const std::string& path) {
  std::lock_guard lock(mutex_);
  path_ = path;
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) return "request_log_file: cannot open '" + path + "': " + std::strerror(errno);
  buffer_.reserve(kBlock + 512);
  return {};
}

void request_log_file::append(const request_record& r) {
  thread_local std::string line;
  line.clear();
  format(r, line);
  std::lock_guard lock(mutex_);
  if (fd_ < 0) return;
  buffer_ += line;
  if (buffer_.size() >= kBlock) {
    write_locked(buffer_);
    buffer_.clear();
  }
}

void request_log_file::write_locked(const std::string& block) {
  std::size_t done = 0;
  while (done < block.size() && error_.empty()) {
    const ssize_t n = ::write(fd_, block.data() + done, block.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error_ = "request_log_file: cannot write '" + path_ +
               "': " + (n < 0 ? std::strerror(errno) : "no progress");
      break;
    }
    done += static_cast<std::size_t>(n);
  }
}

void request_log_file::close() {
  std::lock_guard lock(mutex_);
  if (fd_ < 0) return;
  write_locked(buffer_);
  buffer_.clear();
  buffer_.shrink_to_fit();
  if (::close(fd_) != 0 && error_.empty())
    error_ = "request_log_file: cannot close '" + path_ + "': " + std::strerror(errno);
  fd_ = -1;
}

std::string request_log_file::error() const {
  std::lock_guard lock(mutex_);
  return error_;
}

request_log_file::~request_log_file() {
  close();
}

}  // namespace ei::sim::detail
