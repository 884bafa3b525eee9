// Appending to a file so that a crash never costs an acknowledged byte: write, fsync, and on
// reopen cut away what was never acknowledged. The one copy of these steps for the NDJSON
// sink (actors/ndjson_sink.cpp), the reconciliation report (actors/report_writer.cpp) and the
// distributed worker's output (distributed/worker.cpp). Blocking: detached actors and plain
// threads only.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace ei::durable {

/// Which step failed, and its errno.
struct failure {
  const char* step;  // "write", "fsync", "stat", "truncate"
  int error;
};

/// Writes all of `data` to `fd`, retrying short writes and EINTR.
std::optional<failure> write_all(int fd, std::string_view data) noexcept;

/// write_all, then (when `sync`) fdatasync: once it returns nothing, the bytes are durable.
/// `crash_point_after_write` (common/crash_point.hpp; may be null) fires between the two.
std::optional<failure> append_synced(int fd, std::string_view data, bool sync = true,
                                     const char* crash_point_after_write = nullptr) noexcept;

/// On reopen: cuts the file back to `keep` bytes when it is longer (bytes after the last
/// acknowledged one: unacknowledged lines, a torn last line). A shorter file is left alone.
std::optional<failure> cut_to(int fd, std::uint64_t keep) noexcept;

/// The size of the file up to and including its last '\n' (0 when it has none): where its
/// whole lines end, for a file whose acknowledged length is not recorded elsewhere.
std::optional<std::uint64_t> whole_lines_end(int fd) noexcept;

}  // namespace ei::durable
