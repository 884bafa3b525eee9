// Observes (and can hold) the WAL fsyncs of RocksDB in a test binary: this header DEFINES
// fdatasync(2), which takes precedence over libc's for every caller in the process,
// librocksdb included (the executable's definition interposes; the real call is made with
// syscall(2)). Include it in exactly ONE translation unit of a test executable.
//
// RocksDB syncs its WAL with fdatasync (Env default, use_fsync = false), so `calls()`
// counts WAL fsyncs (plus any SST/manifest syncs; small tests never flush a memtable).
#pragma once

#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace ei::testing {

class fdatasync_hook {
 public:
  /// fdatasync calls completed since the process started.
  static std::uint64_t calls() { return calls_.load(); }

  /// While held, every fdatasync call blocks (before the syscall) until release().
  static void hold() {
    std::lock_guard lock{mutex_};
    held_ = true;
  }
  static void release() {
    {
      std::lock_guard lock{mutex_};
      held_ = false;
    }
    cv_.notify_all();
  }
  /// Waits until some fdatasync call is blocked by hold(); false when none is within
  /// `limit` (a bound against hanging, not a timing expectation).
  static bool wait_until_blocked(std::chrono::seconds limit = std::chrono::seconds{60}) {
    std::unique_lock lock{mutex_};
    return cv_.wait_for(lock, limit, [] { return blocked_ > 0; });
  }

  /// Releases on scope exit, so that a failing test never leaves a thread blocked.
  struct release_guard {
    ~release_guard() { release(); }
  };

  static int call(int fd) {
    {
      std::unique_lock lock{mutex_};
      if (held_) {
        ++blocked_;
        cv_.notify_all();
        cv_.wait(lock, [] { return !held_; });
        --blocked_;
      }
    }
    const auto rc = static_cast<int>(::syscall(SYS_fdatasync, fd));
    calls_.fetch_add(1);
    return rc;
  }

 private:
  static inline std::atomic<std::uint64_t> calls_{0};
  static inline std::mutex mutex_;
  static inline std::condition_variable cv_;
  static inline bool held_ = false;
  static inline int blocked_ = 0;
};

}  // namespace ei::testing

extern "C" int fdatasync(int fd) {
  return ei::testing::fdatasync_hook::call(fd);
}
