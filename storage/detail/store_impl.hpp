// Private to storage/: the state shared by state_store.cpp and verify.cpp.
#pragma once

#include <array>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include <rocksdb/db.h>

#include "storage/detail/layout.hpp"
#include "storage/state_store.hpp"

namespace ei::storage {

struct state_store::impl {
  std::filesystem::path dir;
  store_options options;
  int dir_lock_fd = -1;  // flock on the directory itself, held for the store's lifetime
  std::unique_ptr<rocksdb::DB> db;
  std::array<rocksdb::ColumnFamilyHandle*, detail::cf_count> cf{};
  /// Read-only opens only: the default column family (always empty), which stands in for an
  /// optional column family the store does not have yet (it reads as empty).
  rocksdb::ColumnFamilyHandle* default_cf = nullptr;
  std::mutex watermark_mutex;  // serialises read-max-write of watermarks

  ~impl();

  rocksdb::ColumnFamilyHandle* handle(detail::cf_index i) const { return cf[i]; }
  /// WriteOptions for a write that is (`commit_point`) or is not a commit point.
  rocksdb::WriteOptions write_options(bool commit_point) const;

  error<store_errc> fail(const rocksdb::Status& s, std::string_view what) const;
  error<store_errc> corrupt(detail::cf_index cf, const api::uuid* job, std::string_view what) const;
  /// Writes `batch`, fsynced as the policy says for a (non-)commit point unless `mode` is
  /// write_sync::deferred.
  store_status write(rocksdb::WriteBatch& batch, bool commit_point, std::string_view what,
                     write_sync mode = write_sync::policy);
  /// Whether column family `cf` holds any key in [lower, upper) (true when it cannot tell).
  /// A range delete is written only where there is something to delete: RocksDB 7.8 pays for
  /// every range tombstone in a memtable on each read of that column family, so one per job
  /// made a batch of many small jobs slower with every job (issue 14).
  bool has_keys(detail::cf_index cf, const std::string& lower, const std::string& upper) const;
  /// For watermark commits: writes `batch` while `lock` (on watermark_mutex) is held,
  /// releases it, then fsyncs the WAL unless the policy is `none` or `mode` is deferred.
  store_status write_then_sync(rocksdb::WriteBatch& batch, std::unique_lock<std::mutex>& lock,
                               std::string_view what, write_sync mode = write_sync::policy);
};

}  // namespace ei::storage
