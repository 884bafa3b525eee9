// Scratch records (sorted runs of an ordering in progress) and the lean page walk the
// orderer uses to build them. Layout: storage/README.md.
#include <rocksdb/db.h>

#include "storage/detail/layout.hpp"
#include "storage/detail/store_impl.hpp"

namespace ei::storage {

using namespace detail;

store_status state_store::put_scratch(const api::uuid& job, std::uint8_t space, std::uint32_t run,
                                      std::uint32_t segment, std::uint8_t width,
                                      std::span<const std::uint8_t> records) {
  if (width == 0 || records.size() % width != 0)
    return make_error(store_errc::invalid_argument,
                      "put_scratch: " + std::to_string(records.size()) +
                          " bytes are not whole records of width " + std::to_string(width) +
                          " (job " + job.to_string() + ")");
  std::string v;
  encode_scratch_segment(width, records, v);
  // Scratch is dropped after a crash anyway: keep it out of the WAL (a third of what a big
  // job's ordering would otherwise write to it).
  rocksdb::WriteOptions wo;
  wo.disableWAL = true;
  auto s = impl_->db->Put(wo, impl_->handle(cf_scratch), scratch_key(job, space, run, segment), v);
  if (!s.ok())
    return impl_->fail(
        s, "cannot write sorted run " + std::to_string(run) + " of job " + job.to_string());
  return ok_v;
}

store_result<std::optional<std::string>> state_store::get_scratch(const api::uuid& job,
                                                                  std::uint8_t space,
                                                                  std::uint32_t run,
                                                                  std::uint32_t segment,
                                                                  std::uint8_t width) {
  std::string v;
  auto s = impl_->db->Get(rocksdb::ReadOptions{}, impl_->handle(cf_scratch),
                          scratch_key(job, space, run, segment), &v);
  if (s.IsNotFound()) return std::optional<std::string>{};
  if (!s.ok())
    return impl_->fail(
        s, "cannot read sorted run " + std::to_string(run) + " of job " + job.to_string());
  const auto where = "run " + std::to_string(run) + " segment " + std::to_string(segment) + ": ";
  if (auto why = check_scratch_segment(v); !why.empty())
    return impl_->corrupt(cf_scratch, &job, where + why);
  if (static_cast<std::uint8_t>(v[1]) != width)
    return impl_->corrupt(cf_scratch, &job,
                          where + "record width " +
                              std::to_string(static_cast<std::uint8_t>(v[1])) + " (expected " +
                              std::to_string(width) + ")");
  v.erase(0, 2);
  return std::optional<std::string>{std::move(v)};
}

store_status state_store::drop_scratch(const api::uuid& job, std::optional<std::uint8_t> space) {
  auto lower = job_prefix(job);
  if (space) lower.push_back(static_cast<char>(*space));
  if (!impl_->has_keys(cf_scratch, lower, prefix_end(lower))) return ok_v;
  rocksdb::WriteBatch b;
  b.DeleteRange(impl_->handle(cf_scratch), lower, prefix_end(lower));
  return impl_->write(b, false, "cannot drop sorted runs of job " + job.to_string());
}

store_status state_store::for_each_page_entries(
    const api::uuid& job, std::uint32_t epoch,
    const std::function<bool(const page_record&, std::span<const order_entry>)>& fn) {
  const auto lower = page_prefix(job, epoch);
  const auto upper = prefix_end(lower);
  rocksdb::Slice upper_slice{upper};
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &upper_slice;
  // A one-pass scan: keep it out of the block cache the dispatch path reads from.
  ro.fill_cache = false;
  std::unique_ptr<rocksdb::Iterator> it{impl_->db->NewIterator(ro, impl_->handle(cf_pages))};
  std::vector<order_entry> entries;
  page_record page;
  for (it->Seek(lower); it->Valid(); it->Next()) {
    const auto k = it->key().ToStringView();
    if (k.size() != page_key_size)
      return impl_->corrupt(cf_pages, &job,
                            "key of " + std::to_string(k.size()) + " bytes (expected 24)");
    page.page_no = be32_at(k.substr(20));
    if (auto why = decode_page_entries(it->value().ToStringView(), page, entries); !why.empty())
      return impl_->corrupt(
          cf_pages, &job,
          "epoch " + std::to_string(epoch) + " page " + std::to_string(page.page_no) + ": " + why);
    if (!fn(page, entries)) return ok_v;
  }
  if (!it->status().ok())
    return impl_->fail(it->status(), "cannot read pages of job " + job.to_string());
  return ok_v;
}

}  // namespace ei::storage
