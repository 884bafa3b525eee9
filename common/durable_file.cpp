#include "common/durable_file.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "common/crash_point.hpp"

namespace ei::durable {

std::optional<failure> write_all(int fd, std::string_view data) noexcept {
  while (!data.empty()) {
    const auto n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return failure{"write", errno};
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return std::nullopt;
}

std::optional<failure> append_synced(int fd, std::string_view data, bool sync,
                                     const char* crash_point_after_write) noexcept {
  if (auto f = write_all(fd, data)) return f;
  if (crash_point_after_write != nullptr) crash_point(crash_point_after_write);
  if (sync && ::fdatasync(fd) != 0) return failure{"fsync", errno};
  return std::nullopt;
}

std::optional<failure> cut_to(int fd, std::uint64_t keep) noexcept {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return failure{"stat", errno};
  if (static_cast<std::uint64_t>(st.st_size) > keep &&
      ::ftruncate(fd, static_cast<off_t>(keep)) != 0)
    return failure{"truncate", errno};
  return std::nullopt;
}

std::optional<std::uint64_t> whole_lines_end(int fd) noexcept {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return std::nullopt;
  off_t end = st.st_size;
  char c = 0;
  while (end > 0) {
    const auto n = ::pread(fd, &c, 1, end - 1);
    if (n < 0 && errno == EINTR) continue;
    if (n != 1) return std::nullopt;
    if (c == '\n') break;
    --end;
  }
  return static_cast<std::uint64_t>(end);
}

}  // namespace ei::durable
