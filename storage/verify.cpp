// state_store::verify(): the offline integrity check behind `export-items state verify`.
// It reads the whole store under one snapshot and reports problems instead of stopping at
// the first one, so an operator sees the full extent of a damage.
#include <algorithm>
#include <map>
#include <set>

#include "storage/detail/store_impl.hpp"

namespace ei::storage {

using namespace detail;

namespace {

struct job_facts {
  std::optional<job_record> rec;
  std::optional<watermarks> marks;
  // pages of the current epoch
  std::vector<std::uint32_t> page_numbers;
  std::uint64_t items = 0;
  std::array<std::uint64_t, 6> by_status{};
  // order
  std::vector<std::pair<std::uint32_t, std::size_t>> chunks;  // chunk_no, entries
  std::vector<api::uuid> order_ids;
  std::vector<api::uuid> tracked;  // ids whose records claim a tracking record
};

class verifier {
 public:
  verifier(state_store::impl& p, const rocksdb::Snapshot* snap) : p_(p) { ro_.snapshot = snap; }

  std::vector<std::string> problems;

  store_status run() {
    if (auto st = scan_meta(); !st) return st;
    if (auto st = scan_jobs(); !st) return st;
    if (auto st = scan_pages(); !st) return st;
    if (auto st = scan_order(); !st) return st;
    if (auto st = scan_attempts(); !st) return st;
    if (auto st = scan_tracking(); !st) return st;
    if (auto st = scan_scratch(); !st) return st;
    if (auto st = scan_outcomes(); !st) return st;
    return check_jobs();
  }

 private:
  void report(cf_index c, const api::uuid* job, const std::string& what) {
    std::string s{cf_names[c]};
    if (job) s += ": job " + job->to_string();
    s += ": " + what;
    problems.push_back(std::move(s));
  }

  /// The facts of a known job, or nullptr after reporting (once per CF and job) an orphan.
  job_facts* known(cf_index c, const api::uuid& job) {
    auto it = jobs_.find(job);
    if (it != jobs_.end() && it->second.rec) return &it->second;
    if (orphans_.insert({c, job}).second)
      report(c, &job, "records of a job without a job record (orphan)");
    return nullptr;
  }

  template <class Fn>
  store_status scan(cf_index c, Fn&& fn) {
    std::unique_ptr<rocksdb::Iterator> it{p_.db->NewIterator(ro_, p_.handle(c))};
    for (it->SeekToFirst(); it->Valid(); it->Next())
      fn(it->key().ToStringView(), it->value().ToStringView());
    if (!it->status().ok())
      return p_.fail(it->status(), "verify: cannot scan column family " + std::string{cf_names[c]});
    return ok_v;
  }

  bool key_size(cf_index c, std::string_view k, std::size_t expected) {
    if (k.size() == expected) return true;
    const api::uuid* job = nullptr;
    api::uuid id;
    if (k.size() >= 16) {
      id = uuid_at(k);
      job = &id;
    }
    report(c, job,
           "key of " + std::to_string(k.size()) + " bytes (expected " + std::to_string(expected) +
               ")");
    return false;
  }

  store_status scan_meta() {
    bool schema = false;
    auto st = scan(cf_meta, [&](std::string_view k, std::string_view v) {
      if (k == schema_key) {
        schema = true;
        if (v != state_store::schema_version)
          report(cf_meta, nullptr,
                 "schema is '" + std::string{v} + "', expected '" +
                     std::string{state_store::schema_version} + "'");
      } else if (k.starts_with(sink_identity_key_prefix)) {
        file_identity id;
        if (auto why = decode_sink_identity(v, id); !why.empty())
          report(cf_meta, nullptr,
                 "identity of sink '" + std::string{k.substr(sink_identity_key_prefix.size())} +
                     "': " + why);
      } else if (k.starts_with(sink_key_prefix)) {
        std::uint64_t off = 0;
        if (auto why = decode_sink_offset(v, off); !why.empty())
          report(cf_meta, nullptr,
                 "offset of sink '" + std::string{k.substr(sink_key_prefix.size())} + "': " + why);
      } else {
        report(cf_meta, nullptr, "unknown key '" + std::string{k} + "'");
      }
    });
    if (st && !schema) report(cf_meta, nullptr, "the schema record is missing");
    return st;
  }

  store_status scan_jobs() {
    auto st = scan(cf_jobs, [&](std::string_view k, std::string_view v) {
      if (!key_size(cf_jobs, k, job_key_size)) return;
      const auto id = uuid_at(k);
      auto& f = jobs_[id];
      if (k[16] == tag_record) {
        job_record rec;
        if (auto why = decode_job(v, rec); !why.empty()) {
          report(cf_jobs, &id, "job record: " + why);
          return;
        }
        rec.job_id = id;
        f.rec = std::move(rec);
      } else if (k[16] == tag_watermarks) {
        watermarks w;
        if (auto why = decode_watermarks(v, w); !why.empty()) {
          report(cf_jobs, &id, "watermarks: " + why);
          return;
        }
        f.marks = w;
      } else {
        report(cf_jobs, &id, "unknown key tag " + std::to_string(static_cast<int>(k[16])));
      }
    });
    for (auto& [id, f] : jobs_)
      if (!f.rec && f.marks) report(cf_jobs, &id, "watermarks without a job record (orphan)");
    return st;
  }

  store_status scan_pages() {
    std::set<std::pair<api::uuid, std::uint32_t>> stale;
    std::vector<std::size_t> flagged;
    return scan(cf_pages, [&](std::string_view k, std::string_view v) {
      if (!key_size(cf_pages, k, page_key_size)) return;
      const auto id = uuid_at(k);
      auto* f = known(cf_pages, id);
      const auto epoch = be32_at(k.substr(16));
      page_record page;
      page.page_no = be32_at(k.substr(20));
      if (auto why = decode_page(v, page, flagged); !why.empty()) {
        report(cf_pages, &id,
               "epoch " + std::to_string(epoch) + " page " + std::to_string(page.page_no) + ": " +
                   why);
        return;
      }
      if (!f) return;
      if (epoch != f->rec->listing_epoch) {
        // Older epochs stay while a re-listing runs (it skips what they know) and are dropped
        // once it completes; an epoch ahead of the job record is never legitimate.
        const bool future = epoch > f->rec->listing_epoch;
        if ((future || f->rec->listing_complete) && stale.insert({id, epoch}).second)
          report(cf_pages, &id,
                 "pages of listing epoch " + std::to_string(epoch) + " but the current epoch is " +
                     std::to_string(f->rec->listing_epoch) +
                     (future ? " (ahead of the job record)"
                             : " and its listing is complete (not dropped)"));
        return;
      }
      f->page_numbers.push_back(page.page_no);
      f->items += page.items.size();
      for (const auto& it : page.items)
        ++f->by_status[static_cast<std::size_t>(it.remote_status)];
      for (auto i : flagged)
        f->tracked.push_back(page.items[i].id);
    });
  }

  store_status scan_order() {
    std::vector<order_entry> entries;
    return scan(cf_order, [&](std::string_view k, std::string_view v) {
      if (!key_size(cf_order, k, order_key_size)) return;
      const auto id = uuid_at(k);
      auto* f = known(cf_order, id);
      const auto chunk_no = be32_at(k.substr(16));
      if (auto why = decode_order_chunk(v, entries); !why.empty()) {
        report(cf_order, &id, "chunk " + std::to_string(chunk_no) + ": " + why);
        return;
      }
      if (!f) return;
      f->chunks.emplace_back(chunk_no, entries.size());
      for (const auto& e : entries) {
        f->order_ids.push_back(e.id);
        if (e.has_tracking) f->tracked.push_back(e.id);
      }
    });
  }

  store_status scan_attempts() {
    return scan(cf_attempts, [&](std::string_view k, std::string_view v) {
      if (!key_size(cf_attempts, k, attempt_key_size)) return;
      const auto id = uuid_at(k);
      auto* f = known(cf_attempts, id);
      const auto seq = be64_at(k.substr(16));
      std::uint32_t attempt = 0;
      if (auto why = decode_attempt(v, attempt); !why.empty()) {
        report(cf_attempts, &id, "seq " + std::to_string(seq) + ": " + why);
        return;
      }
      if (!f) return;
      const auto dispatched = f->marks ? f->marks->dispatched_through : 0;
      if (seq == 0 || seq > dispatched)
        report(cf_attempts, &id,
               "attempt recorded for seq " + std::to_string(seq) +
                   " outside the dispatched range 1.." + std::to_string(dispatched));
    });
  }

  /// Sorted runs of an ordering in progress: well-formed, of a known job, and gone once the
  /// job's order is finished (finish_order drops them in the same write).
  store_status scan_scratch() {
    return scan(cf_scratch, [&](std::string_view k, std::string_view v) {
      if (!key_size(cf_scratch, k, scratch_key_size)) return;
      const auto id = uuid_at(k);
      auto* f = known(cf_scratch, id);
      if (auto why = check_scratch_segment(v); !why.empty()) {
        report(cf_scratch, &id, why);
        return;
      }
      if (f && (f->rec->phase == job_phase::dispatching || f->rec->phase == job_phase::complete) &&
          leftover_scratch_.insert(id).second)
        report(cf_scratch, &id, "sorted runs left behind by a finished order");
    });
  }

  /// Outcomes (write-back): well-formed, of a known job, each for the item at its seq in the
  /// job's order; completion records well-formed and of a known job.
  store_status scan_outcomes() {
    return scan(cf_outcomes, [&](std::string_view k, std::string_view v) {
      if (k.size() == completion_key_size && k[16] == tag_completion) {
        const auto id = uuid_at(k);
        known(cf_outcomes, id);
        completion_record c;
        if (auto why = decode_completion(v, c); !why.empty())
          report(cf_outcomes, &id, "completion record: " + why);
        return;
      }
      if (k.size() != outcome_key_size || k[16] != tag_outcome) {
        key_size(cf_outcomes, k, outcome_key_size);
        return;
      }
      const auto id = uuid_at(k);
      auto* f = known(cf_outcomes, id);
      item_outcome o;
      o.item = uuid_at(k.substr(17));
      if (auto why = decode_outcome(v, o); !why.empty()) {
        report(cf_outcomes, &id, "item " + o.item.to_string() + ": " + why);
        return;
      }
      if (!f) return;
      if (o.seq > f->order_ids.size() || f->order_ids[o.seq - 1] != o.item)
        report(cf_outcomes, &id,
               "outcome of item " + o.item.to_string() + " names seq " + std::to_string(o.seq) +
                   ", which is not that item in the order");
    });
  }

  store_status scan_tracking() {
    api::tracking_fields t;
    return scan(cf_tracking, [&](std::string_view k, std::string_view v) {
      if (!key_size(cf_tracking, k, tracking_key_size)) return;
      const auto id = uuid_at(k);
      known(cf_tracking, id);
      if (auto why = decode_tracking(v, t); !why.empty())
        report(cf_tracking, &id, "item " + uuid_at(k.substr(16)).to_string() + ": " + why);
      else
        tracking_keys_.insert({id, uuid_at(k.substr(16))});
    });
  }

  store_status check_jobs() {
    for (auto& [id, f] : jobs_) {
      if (!f.rec) continue;
      const auto& r = *f.rec;
      const auto& c = r.counters;
      const auto* job = &id;
      // pages of the current epoch
      for (std::size_t i = 0; i < f.page_numbers.size(); ++i)
        if (f.page_numbers[i] != i) {
          report(cf_pages, job,
                 "page " + std::to_string(i) + " of epoch " + std::to_string(r.listing_epoch) +
                     " is missing");
          break;
        }
      if (f.page_numbers.size() != r.pages_committed)
        report(cf_pages, job,
               std::to_string(f.page_numbers.size()) + " pages stored but the job record says " +
                   std::to_string(r.pages_committed) + " were committed");
      if (c.pages != f.page_numbers.size())
        report(cf_jobs, job,
               "counter pages = " + std::to_string(c.pages) + " but " +
                   std::to_string(f.page_numbers.size()) + " pages are stored");
      if (c.listed != f.items)
        report(cf_jobs, job,
               "counter listed = " + std::to_string(c.listed) + " but the pages hold " +
                   std::to_string(f.items) + " items");
      for (std::size_t s = 0; s < f.by_status.size(); ++s)
        if (c.by_remote_status[s] != f.by_status[s])
          report(cf_jobs, job,
                 "counter of remote status '" +
                     std::string{api::to_string(static_cast<api::item_status>(s))} +
                     "' = " + std::to_string(c.by_remote_status[s]) + " but the pages hold " +
                     std::to_string(f.by_status[s]));
      if (c.duplicates > c.listed)
        report(cf_jobs, job,
               "more duplicates (" + std::to_string(c.duplicates) + ") than listed items (" +
                   std::to_string(c.listed) + ")");
      check_order(id, f);
      // watermarks
      if (f.marks) {
        const auto& w = *f.marks;
        if (w.acked_through > w.dispatched_through)
          report(cf_jobs, job,
                 "acked_through " + std::to_string(w.acked_through) +
                     " exceeds dispatched_through " + std::to_string(w.dispatched_through));
        if (w.dispatched_through > r.order_size)
          report(cf_jobs, job,
                 "dispatched_through " + std::to_string(w.dispatched_through) +
                     " exceeds order size " + std::to_string(r.order_size));
      }
      // tracking records claimed by pages and order entries
      std::sort(f.tracked.begin(), f.tracked.end());
      f.tracked.erase(std::unique(f.tracked.begin(), f.tracked.end()), f.tracked.end());
      for (const auto& item : f.tracked)
        if (!tracking_keys_.contains({id, item}))
          report(cf_tracking, job,
                 "item " + item.to_string() + " is flagged with tracking fields but has no record");
    }
    return ok_v;
  }

  void check_order(const api::uuid& id, job_facts& f) {
    const auto& r = *f.rec;
    const bool finished = r.phase == job_phase::dispatching || r.phase == job_phase::complete ||
                          r.phase == job_phase::reconciling || r.order_size > 0;
    if (!finished) return;  // an ordering in progress may hold any prefix of chunks
    const auto* job = &id;
    const auto cs = state_store::order_chunk_size;
    const auto n = (r.order_size + cs - 1) / cs;
    std::uint64_t total = 0;
    std::uint64_t next = 0;  // the chunk number expected next
    const auto missing = [&](std::uint64_t from, std::uint64_t to) {
      if (from < to)
        report(cf_order, job,
               (to - from == 1 ? "chunk " + std::to_string(from) + " is missing"
                               : "chunks " + std::to_string(from) + ".." + std::to_string(to - 1) +
                                     " are missing") +
                   " (order size " + std::to_string(r.order_size) + " needs " + std::to_string(n) +
                   " chunks)");
    };
    for (const auto& [no, size] : f.chunks) {
      total += size;
      if (no >= n) {
        report(cf_order, job,
               "chunk " + std::to_string(no) + " lies beyond order size " +
                   std::to_string(r.order_size));
        continue;
      }
      missing(next, no);
      next = std::uint64_t{no} + 1;
      const auto expected = no + 1 < n ? cs : r.order_size - (n - 1) * cs;
      if (size != expected)
        report(cf_order, job,
               "chunk " + std::to_string(no) + " holds " + std::to_string(size) +
                   " entries, expected " + std::to_string(expected));
    }
    missing(next, n);
    if (total != r.order_size)
      report(cf_order, job,
             "the chunks hold " + std::to_string(total) + " entries but order size is " +
                 std::to_string(r.order_size));
    if ((r.phase == job_phase::dispatching || r.phase == job_phase::complete) &&
        r.counters.in_scope != r.order_size)
      report(cf_jobs, job,
             "counter in_scope = " + std::to_string(r.counters.in_scope) + " but order size is " +
                 std::to_string(r.order_size));
    auto ids = f.order_ids;
    std::sort(ids.begin(), ids.end());
    for (std::size_t i = 1; i < ids.size(); ++i)
      if (ids[i] == ids[i - 1]) {
        report(cf_order, job, "item " + ids[i].to_string() + " appears more than once");
        while (i + 1 < ids.size() && ids[i + 1] == ids[i])
          ++i;
      }
  }

  state_store::impl& p_;
  rocksdb::ReadOptions ro_;
  std::map<api::uuid, job_facts> jobs_;
  std::set<std::pair<cf_index, api::uuid>> orphans_;
  std::set<api::uuid> leftover_scratch_;
  std::set<std::pair<api::uuid, api::uuid>> tracking_keys_;
};

}  // namespace

store_result<std::vector<std::string>> state_store::verify() {
  const rocksdb::Snapshot* snap = impl_->db->GetSnapshot();
  verifier v{*impl_, snap};
  auto st = v.run();
  impl_->db->ReleaseSnapshot(snap);
  if (!st) return std::move(st).err();
  return std::move(v.problems);
}

}  // namespace ei::storage
