// The coordinator's ledger: the authoritative record of what the distributed batch has made
// safe. Its own RocksDB directory (--ledger-dir), written with synced writes only.
//
//   per job   acked_through  every item of the job with sequence <= this is in the output
//                            file (fsynced) and will never be written or handed on again
//             epoch          the fencing epoch of the job's latest assignment (persisted
//                            before the assignment is sent, so epochs never repeat)
//             state          open | complete | failed
//   output    offset         the output file's size after the last committed batch; on open
//                            the coordinator cuts the file back to it (torn or uncommitted tail)
//
// Threads: one owner (the coordinator actor); not thread-safe. Errors name the directory.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/result.hpp"

namespace ei::distributed {

enum class ledger_errc : std::uint8_t { open_failed, corrupt, write_failed };
std::string_view to_string(ledger_errc c) noexcept;

enum class ledger_job_state : std::uint8_t { open = 0, complete = 1, failed = 2 };

struct ledger_job {
  std::uint64_t acked_through = 0;
  std::uint64_t epoch = 0;
  ledger_job_state state = ledger_job_state::open;
};

class ledger {
 public:
  /// Opens (creating if missing) the ledger in `dir` and loads it into memory.
  static result<std::unique_ptr<ledger>, ledger_errc> open(const std::string& dir);
  ~ledger();
  ledger(const ledger&) = delete;
  ledger& operator=(const ledger&) = delete;

  /// The job's record (zeros when the ledger has never seen it).
  ledger_job job(const std::string& job_id) const;
  std::uint64_t output_offset() const noexcept { return offset_; }

  /// One synced write: the given job records and, when `offset` is set, the output offset.
  status<ledger_errc> commit(const std::vector<std::pair<std::string, ledger_job>>& jobs,
                             const std::uint64_t* offset);

 private:
  struct impl;
  explicit ledger(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
  std::map<std::string, ledger_job> jobs_;
  std::uint64_t offset_ = 0;
};

}  // namespace ei::distributed
