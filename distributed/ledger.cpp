#include "distributed/ledger.hpp"

#include <charconv>

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

namespace ei::distributed {

std::string_view to_string(ledger_errc c) noexcept {
  switch (c) {
    case ledger_errc::open_failed:
      return "open_failed";
    case ledger_errc::corrupt:
      return "corrupt";
    case ledger_errc::write_failed:
      return "write_failed";
  }
  return "unknown";
}

namespace {

constexpr std::string_view job_prefix = "job/";
constexpr std::string_view offset_key = "output/offset";

// Values are small text records ("acked epoch state"), readable with any RocksDB tool.
std::string encode(const ledger_job& j) {
  return std::to_string(j.acked_through) + " " + std::to_string(j.epoch) + " " +
         std::to_string(static_cast<unsigned>(j.state));
}

bool parse_u64(std::string_view& text, std::uint64_t& out) {
  while (!text.empty() && text.front() == ' ')
    text.remove_prefix(1);
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  if (ec != std::errc{}) return false;
  text.remove_prefix(static_cast<std::size_t>(ptr - text.data()));
  return true;
}

bool decode(std::string_view text, ledger_job& out) {
  std::uint64_t state = 0;
  if (!parse_u64(text, out.acked_through) || !parse_u64(text, out.epoch) ||
      !parse_u64(text, state) || state > 2 || !text.empty())
    return false;
  out.state = static_cast<ledger_job_state>(state);
  return true;
}

}  // namespace

struct ledger::impl {
  std::unique_ptr<rocksdb::DB> db;
  std::string dir;
};

ledger::ledger(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
ledger::~ledger() = default;

result<std::unique_ptr<ledger>, ledger_errc> ledger::open(const std::string& dir) {
  rocksdb::Options options;
  options.create_if_missing = true;
  options.keep_log_file_num = 2;
  rocksdb::DB* raw = nullptr;
  auto s = rocksdb::DB::Open(options, dir, &raw);
  if (!s.ok())
    return make_error(ledger_errc::open_failed,
                      "cannot open the ledger in '" + dir + "': " + s.ToString());
  auto p = std::make_unique<impl>();
  p->db.reset(raw);
  p->dir = dir;
  std::unique_ptr<ledger> l(new ledger(std::move(p)));
  std::unique_ptr<rocksdb::Iterator> it(l->impl_->db->NewIterator(rocksdb::ReadOptions{}));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const auto key = it->key().ToStringView();
    const auto value = it->value().ToStringView();
    if (key == offset_key) {
      std::string_view v = value;
      if (!parse_u64(v, l->offset_) || !v.empty())
        return make_error(ledger_errc::corrupt, "ledger '" + dir + "': unreadable output offset");
    } else if (key.substr(0, job_prefix.size()) == job_prefix) {
      ledger_job j;
      if (!decode(value, j))
        return make_error(ledger_errc::corrupt,
                          "ledger '" + dir + "': unreadable record for " + std::string(key));
      l->jobs_[std::string(key.substr(job_prefix.size()))] = j;
    }
  }
  if (!it->status().ok())
    return make_error(ledger_errc::corrupt, "ledger '" + dir + "': " + it->status().ToString());
  return l;
}

ledger_job ledger::job(const std::string& job_id) const {
  auto it = jobs_.find(job_id);
  return it == jobs_.end() ? ledger_job{} : it->second;
}

status<ledger_errc> ledger::commit(const std::vector<std::pair<std::string, ledger_job>>& jobs,
                                   const std::uint64_t* offset) {
  rocksdb::WriteBatch batch;
  for (const auto& [id, j] : jobs)
    batch.Put(std::string(job_prefix) + id, encode(j));
  if (offset != nullptr) batch.Put(std::string(offset_key), std::to_string(*offset));
  rocksdb::WriteOptions wo;
  wo.sync = true;
  auto s = impl_->db->Write(wo, &batch);
  if (!s.ok())
    return make_error(ledger_errc::write_failed,
                      "ledger '" + impl_->dir + "': synced write failed: " + s.ToString());
  for (const auto& [id, j] : jobs)
    jobs_[id] = j;
  if (offset != nullptr) offset_ = *offset;
  return ok_v;
}

}  // namespace ei::distributed
