#include "storage/state_store.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <system_error>

#include <rocksdb/cache.h>
#include <rocksdb/convenience.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/table.h>
#include <rocksdb/version.h>
#include <rocksdb/write_batch.h>
#include <rocksdb/write_buffer_manager.h>

#include "common/enum_text.hpp"
#include "storage/detail/store_impl.hpp"

namespace ei::storage {

using namespace detail;

namespace {

/// Swallows RocksDB's info log while a store is only inspected, so that inspecting (and
/// refusing) a directory never rotates or creates its LOG files.
class null_logger : public rocksdb::Logger {
 public:
  using rocksdb::Logger::Logv;
  void Logv(const char*, va_list) override {}
};

std::string quoted(const std::filesystem::path& p) {
  return "'" + p.string() + "'";
}

rocksdb::ColumnFamilyOptions make_cf_options(const store_options& o,
                                             const std::shared_ptr<rocksdb::Cache>& cache) {
  rocksdb::ColumnFamilyOptions cfo;
  cfo.write_buffer_size = o.write_buffer_bytes;
  cfo.max_write_buffer_number = 2;
  cfo.level_compaction_dynamic_level_bytes = true;
  // Ids are random bytes: block compression buys little and costs CPU on every level.
  cfo.compression = rocksdb::kNoCompression;
  // Pages, sorted runs and order chunks are written once, read once in key order and then
  // deleted: compacting them early is wasted work that competes with the pipeline for the
  // CPU. Let L0 files (non-overlapping: keys arrive in order per job) pile up a while.
  cfo.level0_file_num_compaction_trigger = 16;
  cfo.level0_slowdown_writes_trigger = 48;
  cfo.level0_stop_writes_trigger = 64;
  rocksdb::BlockBasedTableOptions t;
  t.block_cache = cache;
  t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  t.cache_index_and_filter_blocks = true;
  t.pin_l0_filter_and_index_blocks_in_cache = true;
  cfo.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  return cfo;
}

rocksdb::DBOptions make_db_options(const store_options& o) {
  rocksdb::DBOptions d;
  d.max_background_jobs = 2;
  d.max_open_files = 256;
  d.manual_wal_flush = false;             // every write reaches the OS before returning
  d.avoid_flush_during_shutdown = false;  // close flushes memtables: short WAL replay on open
  d.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
  d.paranoid_checks = true;
  // Small CFs (jobs, meta) would pin old WAL files forever; cap the WAL so they get flushed.
  d.max_total_wal_size = std::max<std::uint64_t>(64u << 20, 8 * o.write_buffer_bytes);
  d.keep_log_file_num = 4;
  d.max_log_file_size = 4u << 20;
  return d;
}

bool is_lock_error(const rocksdb::Status& s) {
  if (!s.IsIOError()) return false;
  std::string text = s.ToString();
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text.find("lock") != std::string::npos;
}

error<store_errc> locked_error(const std::filesystem::path& dir) {
  return make_error(store_errc::locked,
                    "state directory " + quoted(dir) +
                        " is locked: another export-items process (or another store in this "
                        "process) holds it; wait for it to finish or use another --state-dir");
}

/// What the read-only inspection of an existing store found.
struct probe_result {
  bool fresh = false;  // empty store: initialise it
};

/// Inspects an existing RocksDB store without modifying it.
store_result<probe_result> probe(const std::filesystem::path& dir) {
  rocksdb::DBOptions dbo;
  dbo.info_log = std::make_shared<null_logger>();
  std::vector<std::string> names;
  auto s = rocksdb::DB::ListColumnFamilies(dbo, dir.string(), &names);
  if (!s.ok())
    return make_error(
        s.IsCorruption() ? store_errc::corrupt : store_errc::io_error,
        "state directory " + quoted(dir) + ": cannot read its column families: " + s.ToString());
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  for (const auto& n : names)
    descs.emplace_back(n, rocksdb::ColumnFamilyOptions{});
  rocksdb::Options ro{dbo, rocksdb::ColumnFamilyOptions{}};
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  s = rocksdb::DB::OpenForReadOnly(ro, dir.string(), descs, &handles, &raw);
  if (!s.ok())
    return make_error(
        s.IsCorruption() ? store_errc::corrupt : store_errc::io_error,
        "state directory " + quoted(dir) + ": cannot open it read-only: " + s.ToString());
  std::unique_ptr<rocksdb::DB> db{raw};
  struct closer {
    rocksdb::DB* db;
    std::vector<rocksdb::ColumnFamilyHandle*>& hs;
    ~closer() {
      for (auto* h : hs)
        db->DestroyColumnFamilyHandle(h);
    }
  } close_handles{db.get(), handles};

  const auto find = [&](std::string_view name) -> rocksdb::ColumnFamilyHandle* {
    for (std::size_t i = 0; i < names.size(); ++i)
      if (names[i] == name) return handles[i];
    return nullptr;
  };
  std::optional<std::string> schema;
  if (auto* meta = find("meta")) {
    std::string v;
    s = db->Get(rocksdb::ReadOptions{}, meta, std::string{schema_key}, &v);
    if (s.ok())
      schema = std::move(v);
    else if (!s.IsNotFound())
      return make_error(
          s.IsCorruption() ? store_errc::corrupt : store_errc::io_error,
          "state directory " + quoted(dir) + ": cannot read the schema: " + s.ToString());
  }
  if (schema) {
    if (*schema != state_store::schema_version)
      return make_error(store_errc::schema_mismatch,
                        "state directory " + quoted(dir) + " holds schema '" + *schema +
                            "' but this export-items uses '" +
                            std::string{state_store::schema_version} +
                            "'; it was left untouched (use a matching export-items version or "
                            "another --state-dir)");
    std::string missing;
    for (auto n : cf_names)
      if (!find(n) && std::find(cf_optional_names.begin(), cf_optional_names.end(), n) ==
                          cf_optional_names.end())
        missing += (missing.empty() ? "" : ", ") + std::string{n};
    if (!missing.empty())
      return make_error(store_errc::corrupt,
                        "state directory " + quoted(dir) + ": column families missing: " + missing);
    for (const auto& n : names)
      if (n != rocksdb::kDefaultColumnFamilyName &&
          std::find(cf_names.begin(), cf_names.end(), n) == cf_names.end())
        return make_error(store_errc::corrupt, "state directory " + quoted(dir) +
                                                   ": unexpected column family '" + n + "'");
    return probe_result{false};
  }
  // No schema: only an empty store (a crash while it was being created) may be initialised.
  for (std::size_t i = 0; i < handles.size(); ++i) {
    std::unique_ptr<rocksdb::Iterator> it{db->NewIterator(rocksdb::ReadOptions{}, handles[i])};
    it->SeekToFirst();
    if (it->Valid() || !it->status().ok())
      return make_error(store_errc::corrupt,
                        "state directory " + quoted(dir) + " holds data (column family '" +
                            names[i] + "') but no export-items schema record; refusing it");
  }
  return probe_result{true};
}

bool directory_is_empty(const std::filesystem::path& dir, std::error_code& ec) {
  return std::filesystem::directory_iterator{dir, ec} == std::filesystem::directory_iterator{};
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

/// True for the exact names RocksDB gives the files it writes while creating a database before
/// CURRENT exists: IDENTITY, LOCK, LOG, LOG.old.<n>, MANIFEST-<n>, OPTIONS-<n>[.dbtmp],
/// <n>.log (WAL), <n>.dbtmp. `app.log` or `LOG.old` are not among them.
bool is_rocksdb_creation_file(std::string_view name) {
  const auto after = [&](std::string_view prefix, std::string_view& rest) {
    if (!name.starts_with(prefix)) return false;
    rest = name.substr(prefix.size());
    return true;
  };
  const auto strip = [](std::string_view s, std::string_view suffix) {
    return s.ends_with(suffix) ? s.substr(0, s.size() - suffix.size()) : s;
  };
  std::string_view rest;
  if (name == "IDENTITY" || name == "LOCK" || name == "LOG") return true;
  if (after("LOG.old.", rest)) return all_digits(rest);
  if (after("MANIFEST-", rest)) return all_digits(rest);
  if (after("OPTIONS-", rest)) return all_digits(strip(rest, ".dbtmp"));
  if (name.ends_with(".log")) return all_digits(strip(name, ".log"));
  if (name.ends_with(".dbtmp")) return all_digits(strip(name, ".dbtmp"));
  return false;
}

/// fsyncs a directory, so that entries created in it survive power loss.
bool fsync_directory(const std::filesystem::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::fsync(fd) == 0;
  ::close(fd);
  return ok;
}

/// Writes the marker that says export-items created this directory's store, fsyncs it and the
/// directory, before RocksDB writes anything.
store_status write_marker(const std::filesystem::path& dir) {
  const auto path = dir / state_marker_name;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0)
    return make_error(store_errc::io_error,
                      "cannot create " + quoted(path) + ": " + std::strerror(errno));
  static constexpr std::string_view text =
      "export-items state directory: created by export-items; see storage/README.md\n";
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                  ::fsync(fd) == 0;
  const int saved = errno;
  ::close(fd);
  if (!ok || !fsync_directory(dir))
    return make_error(store_errc::io_error,
                      "cannot write " + quoted(path) + ": " + std::strerror(ok ? errno : saved));
  return ok_v;
}

/// A directory holding our marker but no CURRENT: a creation cut short by a crash. Removes
/// RocksDB's creation files (and only those); refuses, touching nothing, when anything else
/// is there.
store_status clean_interrupted_creation(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::vector<fs::path> ours;
  std::string foreign;
  for (const auto& entry : fs::directory_iterator{dir, ec}) {
    const auto name = entry.path().filename().string();
    if (name == state_marker_name) continue;
    if (entry.is_regular_file(ec) && is_rocksdb_creation_file(name))
      ours.push_back(entry.path());
    else
      foreign += (foreign.empty() ? "'" : ", '") + name + "'";
  }
  if (ec)
    return make_error(store_errc::io_error, "state directory " + quoted(dir) + ": " + ec.message());
  if (!foreign.empty())
    return make_error(store_errc::corrupt,
                      "state directory " + quoted(dir) +
                          " holds no store (its creation was interrupted) but also files "
                          "export-items did not write (" +
                          foreign + "); refusing it, nothing was changed");
  for (const auto& p : ours) {
    fs::remove(p, ec);
    if (ec)
      return make_error(store_errc::io_error, "cannot remove " + quoted(p) + ": " + ec.message());
  }
  return ok_v;
}

/// Creates `dir` (and missing parents) and fsyncs the parent of every directory it created.
store_status create_state_directory(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::vector<fs::path> created;
  for (auto p = fs::absolute(dir, ec); !p.empty() && !fs::exists(p, ec); p = p.parent_path()) {
    created.push_back(p);
    if (p == p.parent_path()) break;
  }
  fs::create_directories(dir, ec);
  if (ec)
    return make_error(store_errc::io_error,
                      "cannot create state directory " + quoted(dir) + ": " + ec.message());
  for (const auto& p : created)
    if (!fsync_directory(p.parent_path()))
      return make_error(store_errc::io_error, "cannot fsync the parent of state directory " +
                                                  quoted(dir) + ": " + std::strerror(errno));
  return ok_v;
}

}  // namespace

// -- enums ----------------------------------------------------------------------------------

std::string_view to_string(store_errc code) noexcept {
  switch (code) {
    case store_errc::locked:
      return "locked";
    case store_errc::corrupt:
      return "corrupt";
    case store_errc::schema_mismatch:
      return "schema_mismatch";
    case store_errc::io_error:
      return "io_error";
    case store_errc::not_found:
      return "not_found";
    case store_errc::invalid_argument:
      return "invalid_argument";
  }
  return "unknown";
}

std::string_view to_string(sync_policy p) noexcept {
  switch (p) {
    case sync_policy::none:
      return "none";
    case sync_policy::commits:
      return "commits";
    case sync_policy::always:
      return "always";
  }
  return "unknown";
}

std::optional<sync_policy> parse_sync_policy(std::string_view t) noexcept {
  return parse_enum(t, sync_policies);
}

std::string_view to_string(job_phase p) noexcept {
  switch (p) {
    case job_phase::verifying:
      return "verifying";
    case job_phase::listing:
      return "listing";
    case job_phase::ordering:
      return "ordering";
    case job_phase::dispatching:
      return "dispatching";
    case job_phase::complete:
      return "complete";
    case job_phase::failed:
      return "failed";
    case job_phase::reconciling:
      return "reconciling";
  }
  return "unknown";
}

std::string_view to_string(ordering_mode m) noexcept {
  switch (m) {
    case ordering_mode::chronological:
      return "chronological";
    case ordering_mode::entry_id:
      return "entry_id";
  }
  return "unknown";
}

std::optional<job_phase> parse_job_phase(std::string_view t) noexcept {
  return parse_enum(t, job_phases);
}

std::optional<ordering_mode> parse_ordering_mode(std::string_view t) noexcept {
  return parse_enum(t, ordering_modes);
}

// -- impl -----------------------------------------------------------------------------------

state_store::impl::~impl() {
  if (db) {
    for (auto* h : cf)
      if (h && h != default_cf) db->DestroyColumnFamilyHandle(h);
    if (default_cf) db->DestroyColumnFamilyHandle(default_cf);
    db->Close().PermitUncheckedError();
    db.reset();
  }
  if (dir_lock_fd >= 0) ::close(dir_lock_fd);  // releases the flock
}

bool state_store::impl::has_keys(detail::cf_index c, const std::string& lower,
                                 const std::string& upper) const {
  rocksdb::Slice upper_slice{upper};
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &upper_slice;
  ro.fill_cache = false;
  std::unique_ptr<rocksdb::Iterator> it{db->NewIterator(ro, handle(c))};
  it->Seek(lower);
  if (it->Valid()) return true;
  return !it->status().ok();
}

rocksdb::WriteOptions state_store::impl::write_options(bool commit_point) const {
  rocksdb::WriteOptions wo;
  wo.sync =
      options.sync == sync_policy::always || (options.sync == sync_policy::commits && commit_point);
  wo.disableWAL = false;
  return wo;
}

error<store_errc> state_store::impl::fail(const rocksdb::Status& s, std::string_view what) const {
  return make_error(s.IsCorruption() ? store_errc::corrupt : store_errc::io_error,
                    "state store " + quoted(dir) + ": " + std::string{what} + ": " + s.ToString());
}

error<store_errc> state_store::impl::corrupt(cf_index c, const api::uuid* job,
                                             std::string_view what) const {
  std::string msg = "state store " + quoted(dir) + ": corrupt record in column family '" +
                    std::string{cf_names[c]} + "'";
  if (job) msg += " of job " + job->to_string();
  msg += ": ";
  msg += what;
  return make_error(store_errc::corrupt, std::move(msg));
}

store_status state_store::impl::write(rocksdb::WriteBatch& batch, bool commit_point,
                                      std::string_view what, write_sync mode) {
  auto wo = write_options(commit_point);
  if (mode == write_sync::deferred) wo.sync = false;
  auto s = db->Write(wo, &batch);
  if (!s.ok()) return fail(s, what);
  return ok_v;
}

store_status state_store::impl::write_then_sync(rocksdb::WriteBatch& batch,
                                                std::unique_lock<std::mutex>& lock,
                                                std::string_view what, write_sync mode) {
  // The write is ordered under the lock (so watermarks never regress); the fsync is not, so
  // concurrent committers overlap: a writer whose data an in-flight fsync already covered
  // finds its own fsync nearly free.
  rocksdb::WriteOptions wo;
  wo.sync = false;
  auto s = db->Write(wo, &batch);
  lock.unlock();
  if (!s.ok()) return fail(s, what);
  if (options.sync != sync_policy::none && mode == write_sync::policy) {
    s = db->SyncWAL();
    if (!s.ok()) return fail(s, std::string{what} + " (WAL sync)");
  }
  return ok_v;
}

// -- open -----------------------------------------------------------------------------------

state_store::state_store(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
state_store::~state_store() = default;

const std::filesystem::path& state_store::directory() const noexcept {
  return impl_->dir;
}
const store_options& state_store::options() const noexcept {
  return impl_->options;
}

store_result<std::unique_ptr<state_store>> state_store::open(const std::filesystem::path& dir,
                                                             store_options options) {
  namespace fs = std::filesystem;
  if (options.write_buffer_bytes < (64u << 10) || options.block_cache_bytes == 0)
    return make_error(store_errc::invalid_argument,
                      "state store options: write_buffer_bytes must be >= 64 KiB and "
                      "block_cache_bytes > 0");
  std::error_code ec;
  const bool exists = fs::exists(dir, ec);
  if (ec)
    return make_error(store_errc::io_error, "state directory " + quoted(dir) + ": " + ec.message());
  if (!exists) {
    if (!options.create_if_missing || options.read_only)
      return make_error(store_errc::not_found,
                        "state directory " + quoted(dir) + " does not exist");
    if (auto made = create_state_directory(dir); !made) return std::move(made).err();
  } else if (!fs::is_directory(dir, ec)) {
    return make_error(store_errc::invalid_argument,
                      "state directory " + quoted(dir) + " is not a directory");
  }

  auto p = std::make_unique<impl>();
  p->dir = dir;
  p->options = options;

  // Our own lock first, on the directory itself (no file created), so that a locked store is
  // refused before RocksDB touches anything in it.
  p->dir_lock_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (p->dir_lock_fd < 0)
    return make_error(store_errc::io_error,
                      "cannot open state directory " + quoted(dir) + ": " + std::strerror(errno));
  // Readers share the lock with each other, never with a writer.
  if (::flock(p->dir_lock_fd, (options.read_only ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) return locked_error(dir);
    return make_error(store_errc::io_error,
                      "cannot lock state directory " + quoted(dir) + ": " + std::strerror(errno));
  }

  if (options.read_only) return open_read_only(std::move(p));

  bool fresh = false;
  if (fs::exists(dir / "CURRENT", ec)) {
    auto pr = probe(dir);
    if (!pr) return std::move(pr).err();
    fresh = pr->fresh;
  } else {
    // Only a directory our marker says we created may be cleaned (of RocksDB's own creation
    // files); any other non-empty directory without a store is refused, untouched.
    const bool ours = fs::exists(dir / state_marker_name, ec);
    if (!ours && !directory_is_empty(dir, ec))
      return make_error(store_errc::corrupt,
                        "state directory " + quoted(dir) +
                            " is not empty and holds no export-items state store; refusing to "
                            "use it (nothing was changed)");
    if (ec)
      return make_error(store_errc::io_error,
                        "state directory " + quoted(dir) + ": " + ec.message());
    if (!options.create_if_missing)
      return make_error(store_errc::not_found,
                        "state directory " + quoted(dir) + " holds no state store");
    if (ours) {
      // A creation cut short by a crash: nothing was ever stored, so start it again.
      if (auto cleaned = clean_interrupted_creation(dir); !cleaned) return std::move(cleaned).err();
    } else if (auto marked = write_marker(dir); !marked) {
      return std::move(marked).err();
    }
    fresh = true;
  }

  auto dbo = make_db_options(options);
  dbo.create_if_missing = fresh;
  // The probe accepted the store: only optional column families (added after the schema was
  // first released) can be missing, and those are created.
  dbo.create_missing_column_families = true;
  // One memory budget for the store: the memtables of all column families share a cap (a big
  // job fills pages, scratch and order one after another; without a shared cap each would
  // keep full memtables) and are charged to the block cache, so memtables and cached blocks
  // together stay within block_cache_bytes + memtable_budget_bytes whatever the job size.
  auto cache = rocksdb::NewLRUCache(options.block_cache_bytes + options.memtable_budget_bytes);
  dbo.write_buffer_manager =
      std::make_shared<rocksdb::WriteBufferManager>(options.memtable_budget_bytes, cache);
  const auto cfo = make_cf_options(options, cache);
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  descs.emplace_back(rocksdb::kDefaultColumnFamilyName, cfo);
  for (auto n : cf_names)
    descs.emplace_back(std::string{n}, cfo);
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  auto s = rocksdb::DB::Open(dbo, dir.string(), descs, &handles, &raw);
  if (!s.ok()) {
    if (is_lock_error(s)) return locked_error(dir);
    return p->fail(s, "cannot open");
  }
  p->db.reset(raw);
  // handles[0] is the default CF, which we never use.
  p->db->DestroyColumnFamilyHandle(handles[0]);
  for (std::size_t i = 0; i < cf_count; ++i)
    p->cf[i] = handles[i + 1];

  if (fresh) {
    rocksdb::WriteOptions wo;
    wo.sync = options.sync != sync_policy::none;
    s = p->db->Put(wo, p->cf[cf_meta], std::string{schema_key}, std::string{schema_version});
    if (!s.ok()) return p->fail(s, "cannot write the schema record");
  }
  return std::unique_ptr<state_store>{new state_store{std::move(p)}};
}

store_result<std::unique_ptr<state_store>> state_store::open_read_only(std::unique_ptr<impl> p) {
  namespace fs = std::filesystem;
  const auto& dir = p->dir;
  std::error_code ec;
  if (!fs::exists(dir / "CURRENT", ec))
    return make_error(store_errc::not_found,
                      "state directory " + quoted(dir) +
                          " holds no export-items state store (nothing was changed)");
  auto pr = probe(dir);
  if (!pr) return std::move(pr).err();
  if (pr->fresh)
    return make_error(store_errc::not_found,
                      "state directory " + quoted(dir) +
                          " holds an empty store whose creation was never finished (nothing "
                          "was changed)");
  auto dbo = make_db_options(p->options);
  dbo.create_if_missing = false;
  dbo.info_log = std::make_shared<null_logger>();  // not even LOG is created or rotated
  std::vector<std::string> names;
  auto s = rocksdb::DB::ListColumnFamilies(dbo, dir.string(), &names);
  if (!s.ok()) return p->fail(s, "cannot read its column families");
  auto cache = rocksdb::NewLRUCache(p->options.block_cache_bytes);
  rocksdb::ColumnFamilyOptions cfo;
  rocksdb::BlockBasedTableOptions t;
  t.block_cache = cache;
  cfo.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  for (const auto& n : names)
    descs.emplace_back(n, cfo);
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  s = rocksdb::DB::OpenForReadOnly(dbo, dir.string(), descs, &handles, &raw);
  if (!s.ok()) return p->fail(s, "cannot open it read-only");
  p->db.reset(raw);
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (names[i] == rocksdb::kDefaultColumnFamilyName) {
      p->default_cf = handles[i];
      continue;
    }
    for (std::size_t c = 0; c < cf_count; ++c)
      if (cf_names[c] == names[i]) p->cf[c] = handles[i];
  }
  // The probe accepted the store: only optional column families can be missing. They read as
  // empty, like the default column family.
  for (auto& h : p->cf)
    if (!h) h = p->default_cf;
  return std::unique_ptr<state_store>{new state_store{std::move(p)}};
}

// -- jobs -----------------------------------------------------------------------------------

store_result<std::optional<job_record>> state_store::load_job(const api::uuid& job) {
  rocksdb::PinnableSlice v;
  auto s =
      impl_->db->Get(rocksdb::ReadOptions{}, impl_->handle(cf_jobs), job_key(job, tag_record), &v);
  if (s.IsNotFound()) return std::optional<job_record>{};
  if (!s.ok()) return impl_->fail(s, "cannot read job " + job.to_string());
  job_record rec;
  if (auto why = decode_job(v.ToStringView(), rec); !why.empty())
    return impl_->corrupt(cf_jobs, &job, "job record: " + why);
  rec.job_id = job;
  return std::optional<job_record>{std::move(rec)};
}

store_result<std::vector<job_record>> state_store::load_jobs() {
  std::vector<job_record> out;
  auto st = for_each_job([&](job_record&& rec) {
    out.push_back(std::move(rec));
    return true;
  });
  if (!st) return std::move(st).err();
  return out;
}

store_status state_store::for_each_job(const std::function<bool(job_record&&)>& fn) {
  rocksdb::ReadOptions ro;
  ro.fill_cache = false;  // a one-pass scan
  std::unique_ptr<rocksdb::Iterator> it{impl_->db->NewIterator(ro, impl_->handle(cf_jobs))};
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const auto k = it->key().ToStringView();
    if (k.size() != job_key_size)
      return impl_->corrupt(cf_jobs, nullptr,
                            "key of " + std::to_string(k.size()) + " bytes (expected 17)");
    const auto id = uuid_at(k);
    if (k[16] == tag_watermarks) continue;
    if (k[16] != tag_record)
      return impl_->corrupt(cf_jobs, &id, "unknown key tag " + std::to_string(k[16]));
    job_record rec;
    if (auto why = decode_job(it->value().ToStringView(), rec); !why.empty())
      return impl_->corrupt(cf_jobs, &id, "job record: " + why);
    rec.job_id = id;
    if (!fn(std::move(rec))) return ok_v;
  }
  if (!it->status().ok()) return impl_->fail(it->status(), "cannot list jobs");
  return ok_v;
}

store_status state_store::put_job(const job_record& job, write_sync mode) {
  std::string v;
  encode_job(job, v);
  rocksdb::WriteBatch b;
  b.Put(impl_->handle(cf_jobs), job_key(job.job_id, tag_record), v);
  return impl_->write(b, true, "cannot write job " + job.job_id.to_string(), mode);
}

namespace {
store_result<watermarks> read_watermarks(state_store::impl& p, const api::uuid& job) {
  rocksdb::PinnableSlice v;
  auto s = p.db->Get(rocksdb::ReadOptions{}, p.handle(cf_jobs), job_key(job, tag_watermarks), &v);
  if (s.IsNotFound()) return watermarks{};
  if (!s.ok()) return p.fail(s, "cannot read watermarks of job " + job.to_string());
  watermarks w;
  if (auto why = decode_watermarks(v.ToStringView(), w); !why.empty())
    return p.corrupt(cf_jobs, &job, "watermarks: " + why);
  return w;
}
}  // namespace

store_result<watermarks> state_store::load_watermarks(const api::uuid& job) {
  return read_watermarks(*impl_, job);
}

// -- listing --------------------------------------------------------------------------------

store_status state_store::commit_page(const job_record& updated, std::uint32_t epoch,
                                      const page_record& page, write_sync mode) {
  const auto& job = updated.job_id;
  for (const auto& it : page.items)
    if (static_cast<std::uint8_t>(it.remote_status) >
        static_cast<std::uint8_t>(api::item_status::unknown))
      return make_error(store_errc::invalid_argument, "commit_page: item " + it.id.to_string() +
                                                          " of job " + job.to_string() +
                                                          " has an out-of-range status");
  rocksdb::WriteBatch b;
  std::string v;
  encode_page(page, v);
  b.Put(impl_->handle(cf_pages), page_key(job, epoch, page.page_no), v);
  for (const auto& it : page.items) {
    if (it.tracking.empty()) continue;
    encode_tracking(it.tracking, v);
    b.Put(impl_->handle(cf_tracking), tracking_key(job, it.id), v);
  }
  encode_job(updated, v);
  b.Put(impl_->handle(cf_jobs), job_key(job, tag_record), v);
  return impl_->write(
      b, false, "cannot commit page " + std::to_string(page.page_no) + " of job " + job.to_string(),
      mode);
}

namespace {

/// Fills the tracking fields of the flagged items of a decoded page.
store_status fill_tracking(state_store::impl& p, const api::uuid& job, page_record& page,
                           const std::vector<std::size_t>& flagged) {
  if (flagged.empty()) return ok_v;
  std::vector<std::string> keys;
  keys.reserve(flagged.size());
  for (auto i : flagged)
    keys.push_back(tracking_key(job, page.items[i].id));
  std::vector<rocksdb::Slice> slices(keys.begin(), keys.end());
  std::vector<rocksdb::PinnableSlice> values(keys.size());
  std::vector<rocksdb::Status> statuses(keys.size());
  p.db->MultiGet(rocksdb::ReadOptions{}, p.handle(cf_tracking), keys.size(), slices.data(),
                 values.data(), statuses.data());
  for (std::size_t k = 0; k < flagged.size(); ++k) {
    auto& item = page.items[flagged[k]];
    if (statuses[k].IsNotFound())
      return p.corrupt(cf_pages, &job,
                       "page " + std::to_string(page.page_no) + " flags item " +
                           item.id.to_string() + " with tracking fields but none are stored");
    if (!statuses[k].ok()) return p.fail(statuses[k], "cannot read tracking fields");
    if (auto why = decode_tracking(values[k].ToStringView(), item.tracking); !why.empty())
      return p.corrupt(cf_tracking, &job, "item " + item.id.to_string() + ": " + why);
  }
  return ok_v;
}

}  // namespace

store_status state_store::for_each_page(const api::uuid& job, std::uint32_t epoch,
                                        const std::function<bool(page_record&&)>& fn) {
  const auto lower = page_prefix(job, epoch);
  const auto upper = prefix_end(lower);
  rocksdb::Slice upper_slice{upper};
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it{impl_->db->NewIterator(ro, impl_->handle(cf_pages))};
  std::vector<std::size_t> flagged;
  for (it->Seek(lower); it->Valid(); it->Next()) {
    const auto k = it->key().ToStringView();
    page_record page;
    if (k.size() != page_key_size)
      return impl_->corrupt(cf_pages, &job,
                            "key of " + std::to_string(k.size()) + " bytes (expected 24)");
    page.page_no = be32_at(k.substr(20));
    if (auto why = decode_page(it->value().ToStringView(), page, flagged); !why.empty())
      return impl_->corrupt(
          cf_pages, &job,
          "epoch " + std::to_string(epoch) + " page " + std::to_string(page.page_no) + ": " + why);
    if (auto st = fill_tracking(*impl_, job, page, flagged); !st) return st;
    if (!fn(std::move(page))) return ok_v;
  }
  if (!it->status().ok())
    return impl_->fail(it->status(), "cannot read pages of job " + job.to_string());
  return ok_v;
}

store_result<std::vector<page_record>> state_store::load_pages(const api::uuid& job,
                                                               std::uint32_t epoch) {
  std::vector<page_record> out;
  auto st = for_each_page(job, epoch, [&](page_record&& p) {
    out.push_back(std::move(p));
    return true;
  });
  if (!st) return std::move(st).err();
  return out;
}

store_status state_store::drop_pages(const api::uuid& job, std::uint32_t epoch, write_sync mode) {
  const auto lower = page_prefix(job, epoch);
  if (!impl_->has_keys(cf_pages, lower, prefix_end(lower))) return ok_v;
  rocksdb::WriteBatch b;
  b.DeleteRange(impl_->handle(cf_pages), lower, prefix_end(lower));
  return impl_->write(
      b, false,
      "cannot drop pages of epoch " + std::to_string(epoch) + " of job " + job.to_string(), mode);
}

store_result<std::optional<api::tracking_fields>> state_store::load_tracking(
    const api::uuid& job, const api::uuid& item) {
  rocksdb::PinnableSlice v;
  auto s = impl_->db->Get(rocksdb::ReadOptions{}, impl_->handle(cf_tracking),
                          tracking_key(job, item), &v);
  if (s.IsNotFound()) return std::optional<api::tracking_fields>{};
  if (!s.ok()) return impl_->fail(s, "cannot read tracking fields of item " + item.to_string());
  api::tracking_fields t;
  if (auto why = decode_tracking(v.ToStringView(), t); !why.empty())
    return impl_->corrupt(cf_tracking, &job, "item " + item.to_string() + ": " + why);
  return std::optional<api::tracking_fields>{std::move(t)};
}

// -- ordering -------------------------------------------------------------------------------

namespace {

store_status check_order_chunk(const api::uuid& job, std::uint32_t chunk_no,
                               std::span<const order_entry> entries) {
  if (entries.empty() || entries.size() > state_store::order_chunk_size)
    return make_error(store_errc::invalid_argument,
                      "write_order_chunk: chunk " + std::to_string(chunk_no) + " of job " +
                          job.to_string() + " has " + std::to_string(entries.size()) +
                          " entries (expected 1.." + std::to_string(state_store::order_chunk_size) +
                          ")");
  for (const auto& e : entries)
    if (static_cast<std::uint8_t>(e.remote_status) >
        static_cast<std::uint8_t>(api::item_status::unknown))
      return make_error(
          store_errc::invalid_argument,
          "write_order_chunk: entry " + e.id.to_string() + " has an out-of-range status");
  return ok_v;
}

}  // namespace

store_status state_store::write_order_chunk(const api::uuid& job, std::uint32_t chunk_no,
                                            std::span<const order_entry> entries, write_sync mode) {
  if (auto bad = check_order_chunk(job, chunk_no, entries); !bad.ok()) return bad;
  std::string v;
  encode_order_chunk(entries, v);
  rocksdb::WriteBatch b;
  b.Put(impl_->handle(cf_order), order_key(job, chunk_no), v);
  return impl_->write(
      b, false,
      "cannot write order chunk " + std::to_string(chunk_no) + " of job " + job.to_string(), mode);
}

store_status state_store::finish_order(const job_record& updated, write_sync mode) {
  return finish_order(updated, {}, mode);
}

store_status state_store::finish_order(const job_record& updated,
                                       std::span<const order_chunk_write> chunks, write_sync mode) {
  const auto chunk_count = (updated.order_size + order_chunk_size - 1) / order_chunk_size;
  if (chunk_count > 0xffffffffu)
    return make_error(
        store_errc::invalid_argument,
        "finish_order: order size " + std::to_string(updated.order_size) + " is too large");
  rocksdb::WriteBatch b;
  const auto beyond = order_key(updated.job_id, static_cast<std::uint32_t>(chunk_count));
  const auto job_end = prefix_end(job_prefix(updated.job_id));
  if (impl_->has_keys(cf_order, beyond, job_end))
    b.DeleteRange(impl_->handle(cf_order), beyond, job_end);
  std::string v;
  for (const auto& c : chunks) {
    if (auto bad = check_order_chunk(updated.job_id, c.chunk_no, c.entries); !bad.ok()) return bad;
    if (c.chunk_no >= chunk_count)
      return make_error(store_errc::invalid_argument,
                        "finish_order: chunk " + std::to_string(c.chunk_no) +
                            " lies beyond order size " + std::to_string(updated.order_size));
    encode_order_chunk(c.entries, v);
    b.Put(impl_->handle(cf_order), order_key(updated.job_id, c.chunk_no), v);
  }
  // The sorted runs that produced the order are spent.
  if (impl_->has_keys(cf_scratch, job_prefix(updated.job_id), job_end))
    b.DeleteRange(impl_->handle(cf_scratch), job_prefix(updated.job_id), job_end);
  encode_job(updated, v);
  b.Put(impl_->handle(cf_jobs), job_key(updated.job_id, tag_record), v);
  return impl_->write(b, true, "cannot finish the order of job " + updated.job_id.to_string(),
                      mode);
}

store_result<std::vector<order_entry>> state_store::read_order(const api::uuid& job,
                                                               std::uint64_t first_seq,
                                                               std::size_t max_count) {
  if (first_seq == 0)
    return make_error(store_errc::invalid_argument,
                      "read_order: sequence numbers start at 1 (job " + job.to_string() + ")");
  // The job record's order_size is the end of the order: chunks an unfinished ordering or
  // reconciliation wrote beyond it are not part of it yet (finish_order makes them so).
  auto rec = load_job(job);
  if (!rec) return std::move(rec).err();
  if (*rec) {
    const auto size = (*rec)->order_size;
    if (first_seq > size) return std::vector<order_entry>{};
    max_count = static_cast<std::size_t>(std::min<std::uint64_t>(max_count, size - first_seq + 1));
  }
  std::vector<order_entry> out;
  out.reserve(std::min<std::size_t>(max_count, order_chunk_size));
  std::vector<order_entry> chunk;
  std::uint64_t seq = first_seq;
  while (out.size() < max_count) {
    const auto chunk_no = (seq - 1) / order_chunk_size;
    const auto index = static_cast<std::size_t>((seq - 1) % order_chunk_size);
    if (chunk_no > 0xffffffffu) break;
    rocksdb::PinnableSlice v;
    auto s = impl_->db->Get(rocksdb::ReadOptions{}, impl_->handle(cf_order),
                            order_key(job, static_cast<std::uint32_t>(chunk_no)), &v);
    if (s.IsNotFound()) break;
    if (!s.ok()) return impl_->fail(s, "cannot read the order of job " + job.to_string());
    if (auto why = decode_order_chunk(v.ToStringView(), chunk); !why.empty())
      return impl_->corrupt(cf_order, &job, "chunk " + std::to_string(chunk_no) + ": " + why);
    if (index >= chunk.size()) break;
    const auto take = std::min(chunk.size() - index, max_count - out.size());
    out.insert(out.end(), chunk.begin() + static_cast<std::ptrdiff_t>(index),
               chunk.begin() + static_cast<std::ptrdiff_t>(index + take));
    seq += take;
    if (chunk.size() < order_chunk_size) break;  // the last chunk
  }
  return out;
}

// -- dispatch and acks ----------------------------------------------------------------------

store_status state_store::commit_dispatch(
    const api::uuid& job, std::uint64_t dispatched_through,
    std::span<const std::pair<std::uint64_t, std::uint32_t>> redelivery_attempts, write_sync mode) {
  std::unique_lock lock{impl_->watermark_mutex};
  auto rec = load_job(job);
  if (!rec) return std::move(rec).err();
  if (!*rec)
    return make_error(store_errc::invalid_argument,
                      "commit_dispatch: unknown job " + job.to_string());
  if (dispatched_through > (*rec)->order_size)
    return make_error(store_errc::invalid_argument,
                      "commit_dispatch: job " + job.to_string() + " dispatched_through " +
                          std::to_string(dispatched_through) + " exceeds order size " +
                          std::to_string((*rec)->order_size));
  for (const auto& [seq, attempt] : redelivery_attempts)
    if (seq == 0 || seq > dispatched_through || attempt < 2)
      return make_error(store_errc::invalid_argument,
                        "commit_dispatch: job " + job.to_string() + " attempt " +
                            std::to_string(attempt) + " for seq " + std::to_string(seq) +
                            " (need seq in 1.." + std::to_string(dispatched_through) +
                            ", attempt >= 2)");
  auto w = read_watermarks(*impl_, job);
  if (!w) return std::move(w).err();
  w->dispatched_through = std::max(w->dispatched_through, dispatched_through);
  rocksdb::WriteBatch b;
  std::string v;
  encode_watermarks(*w, v);
  b.Put(impl_->handle(cf_jobs), job_key(job, tag_watermarks), v);
  for (const auto& [seq, attempt] : redelivery_attempts) {
    encode_attempt(attempt, v);
    b.Put(impl_->handle(cf_attempts), attempt_key(job, seq), v);
  }
  return impl_->write_then_sync(b, lock, "cannot commit dispatch of job " + job.to_string(), mode);
}

store_result<std::vector<std::pair<std::uint64_t, std::uint32_t>>> state_store::load_attempts(
    const api::uuid& job, std::uint64_t first_seq, std::uint64_t last_seq) {
  std::vector<std::pair<std::uint64_t, std::uint32_t>> out;
  if (first_seq > last_seq) return out;
  const auto lower = attempt_key(job, first_seq);
  const auto upper =
      last_seq == UINT64_MAX ? prefix_end(job_prefix(job)) : attempt_key(job, last_seq + 1);
  rocksdb::Slice upper_slice{upper};
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it{impl_->db->NewIterator(ro, impl_->handle(cf_attempts))};
  for (it->Seek(lower); it->Valid(); it->Next()) {
    const auto k = it->key().ToStringView();
    if (k.size() != attempt_key_size)
      return impl_->corrupt(cf_attempts, &job,
                            "key of " + std::to_string(k.size()) + " bytes (expected 24)");
    std::uint32_t attempt = 0;
    const auto seq = be64_at(k.substr(16));
    if (auto why = decode_attempt(it->value().ToStringView(), attempt); !why.empty())
      return impl_->corrupt(cf_attempts, &job, "seq " + std::to_string(seq) + ": " + why);
    out.emplace_back(seq, attempt);
  }
  if (!it->status().ok()) return impl_->fail(it->status(), "cannot read attempts");
  return out;
}

store_status state_store::commit_acks(
    std::span<const job_progress> progress,
    std::optional<std::pair<std::string, std::uint64_t>> sink_offset, write_sync mode) {
  return commit_acks(progress, std::move(sink_offset), {}, mode);
}

store_status state_store::commit_acks(
    std::span<const job_progress> progress,
    std::optional<std::pair<std::string, std::uint64_t>> sink_offset,
    std::span<const job_item_outcome> outcomes, write_sync mode) {
  for (const auto& o : outcomes)
    if (auto why = outcome_problem(o.outcome); !why.empty())
      return make_error(store_errc::invalid_argument,
                        "commit_acks: job " + o.job_id.to_string() + ": " + why);
  if (sink_offset && sink_offset->first.empty())
    return make_error(store_errc::invalid_argument, "commit_acks: empty sink name");
  std::unique_lock lock{impl_->watermark_mutex};
  std::map<api::uuid, watermarks> merged;
  for (const auto& p : progress) {
    auto found = merged.find(p.job_id);
    if (found == merged.end()) {
      auto w = read_watermarks(*impl_, p.job_id);
      if (!w) return std::move(w).err();
      found = merged.emplace(p.job_id, *w).first;
    }
    auto& w = found->second;
    if (p.dispatched_through && *p.dispatched_through > w.dispatched_through) {
      auto rec = load_job(p.job_id);
      if (!rec) return std::move(rec).err();
      if (!*rec || *p.dispatched_through > (*rec)->order_size)
        return make_error(store_errc::invalid_argument,
                          "commit_acks: job " + p.job_id.to_string() + " dispatched_through " +
                              std::to_string(*p.dispatched_through) +
                              (*rec ? " exceeds order size " + std::to_string((*rec)->order_size)
                                    : std::string{" but the job is unknown"}));
      w.dispatched_through = *p.dispatched_through;
    }
    if (p.acked_through && *p.acked_through > w.acked_through) {
      if (*p.acked_through > w.dispatched_through)
        return make_error(store_errc::invalid_argument,
                          "commit_acks: job " + p.job_id.to_string() + " acked_through " +
                              std::to_string(*p.acked_through) + " exceeds dispatched_through " +
                              std::to_string(w.dispatched_through));
      w.acked_through = *p.acked_through;
    }
  }
  rocksdb::WriteBatch b;
  std::string v;
  for (const auto& [job, w] : merged) {
    encode_watermarks(w, v);
    b.Put(impl_->handle(cf_jobs), job_key(job, tag_watermarks), v);
  }
  if (sink_offset) {
    encode_sink_offset(sink_offset->second, v);
    b.Put(impl_->handle(cf_meta), std::string{sink_key_prefix} + sink_offset->first, v);
  }
  for (const auto& o : outcomes) {
    encode_outcome(o.outcome, v);
    b.Put(impl_->handle(cf_outcomes), outcome_key(o.job_id, o.outcome.item), v);
  }
  if (b.Count() == 0) return ok_v;
  return impl_->write_then_sync(b, lock, "cannot commit acks", mode);
}

store_result<std::optional<std::uint64_t>> state_store::load_sink_offset(
    const std::string& sink_name) {
  rocksdb::PinnableSlice v;
  auto s = impl_->db->Get(rocksdb::ReadOptions{}, impl_->handle(cf_meta),
                          std::string{sink_key_prefix} + sink_name, &v);
  if (s.IsNotFound()) return std::optional<std::uint64_t>{};
  if (!s.ok()) return impl_->fail(s, "cannot read the offset of sink '" + sink_name + "'");
  std::uint64_t offset = 0;
  if (auto why = decode_sink_offset(v.ToStringView(), offset); !why.empty())
    return impl_->corrupt(cf_meta, nullptr, "offset of sink '" + sink_name + "': " + why);
  return std::optional<std::uint64_t>{offset};
}

namespace detail {

void encode_sink_identity(const file_identity& id, std::string& out) {
  out.clear();
  out.push_back(static_cast<char>(format_v1));
  for (std::uint64_t v : {id.device, id.inode})
    for (int i = 0; i < 8; ++i)
      out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

std::string decode_sink_identity(std::string_view in, file_identity& out) {
  if (in.empty()) return "empty value";
  if (static_cast<std::uint8_t>(in[0]) != format_v1)
    return "unknown format version " + std::to_string(static_cast<std::uint8_t>(in[0])) +
           " (expected 1)";
  if (in.size() != 17) return "value of " + std::to_string(in.size()) + " bytes (expected 17)";
  const auto le64 = [&](std::size_t at) {
    std::uint64_t v = 0;
    for (int i = 7; i >= 0; --i)
      v = (v << 8) | static_cast<std::uint8_t>(in[at + static_cast<std::size_t>(i)]);
    return v;
  };
  out.device = le64(1);
  out.inode = le64(9);
  return {};
}

}  // namespace detail

store_status state_store::bind_sink(const std::string& sink_name, const file_identity& identity,
                                    std::uint64_t offset, write_sync mode) {
  if (sink_name.empty())
    return make_error(store_errc::invalid_argument, "bind_sink: empty sink name");
  std::unique_lock lock{impl_->watermark_mutex};
  rocksdb::WriteBatch b;
  std::string v;
  encode_sink_offset(offset, v);
  b.Put(impl_->handle(cf_meta), std::string{sink_key_prefix} + sink_name, v);
  encode_sink_identity(identity, v);
  b.Put(impl_->handle(cf_meta), std::string{sink_identity_key_prefix} + sink_name, v);
  return impl_->write_then_sync(b, lock, "cannot bind sink '" + sink_name + "'", mode);
}

store_result<std::vector<sink_record>> state_store::load_sinks() {
  std::map<std::string, sink_record> by_name;
  std::unique_ptr<rocksdb::Iterator> it{
      impl_->db->NewIterator(rocksdb::ReadOptions{}, impl_->handle(cf_meta))};
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const auto k = it->key().ToStringView();
    const auto v = it->value().ToStringView();
    if (k.starts_with(sink_key_prefix)) {
      std::string name{k.substr(sink_key_prefix.size())};
      auto& r = by_name[name];
      r.name = name;
      if (auto why = decode_sink_offset(v, r.offset); !why.empty())
        return impl_->corrupt(cf_meta, nullptr, "offset of sink '" + name + "': " + why);
    } else if (k.starts_with(sink_identity_key_prefix)) {
      std::string name{k.substr(sink_identity_key_prefix.size())};
      file_identity id;
      if (auto why = decode_sink_identity(v, id); !why.empty())
        return impl_->corrupt(cf_meta, nullptr, "identity of sink '" + name + "': " + why);
      auto& r = by_name[name];
      r.name = name;
      r.identity = id;
    }
  }
  if (!it->status().ok()) return impl_->fail(it->status(), "cannot list sinks");
  std::vector<sink_record> out;
  for (auto& [name, r] : by_name)
    out.push_back(std::move(r));
  return out;
}

// -- durability -----------------------------------------------------------------------------

store_status state_store::sync() {
  if (impl_->options.sync == sync_policy::none) return ok_v;
  // Not under watermark_mutex: a commit racing with this sync is either covered or syncs
  // later on its own; every write that returned before the call is in the WAL being synced.
  auto s = impl_->db->SyncWAL();
  if (!s.ok()) return impl_->fail(s, "cannot sync the WAL");
  return ok_v;
}

// -- maintenance ----------------------------------------------------------------------------

store_status state_store::erase_job(const api::uuid& job, write_sync mode) {
  // Under the watermark mutex so that a concurrent commit cannot resurrect the watermarks of
  // the erased job from a value it read before the erase.
  std::lock_guard guard{impl_->watermark_mutex};
  const auto lower = job_prefix(job);
  const auto upper = prefix_end(lower);
  rocksdb::WriteBatch b;
  for (auto c : {cf_jobs, cf_pages, cf_order, cf_tracking, cf_attempts, cf_scratch, cf_outcomes})
    b.DeleteRange(impl_->handle(c), lower, upper);
  return impl_->write(b, true, "cannot erase job " + job.to_string(), mode);
}

std::string engine_version() {
  return "RocksDB " + rocksdb::GetRocksVersionAsString(true);
}

}  // namespace ei::storage
