// The simulated data: jobs, their items (a pure function of the seed and the item index),
// sparse overrides for items changed at run time, paging, and fast JSON rendering.
// Not thread-safe by itself: the simulator guards it with `mutex` (shared for reads).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "api/model.hpp"
#include "common/json_text.hpp"
#include "common/result.hpp"
#include "simulator/hash.hpp"
#include "simulator/simulator.hpp"

namespace ei::sim::detail {

struct item_override {
  api::item_status status = api::item_status::pending;
  api::tracking_fields tracking;
};

/// PUT updates of one item: applied (including idempotent re-sends) and rejected.
struct put_count {
  std::uint32_t applied = 0;
  std::uint32_t rejected = 0;
};

struct job_state {
  job_info info;  // info.status is the current status
  api::job_status initial_status = api::job_status::pending;
  std::uint64_t key = 0;  // per-job generation key (derived from seed and job id)
  std::uint32_t company_index = 0;
  status_mix mix;
  bool raw_mix = false;  // an explicit job_spec mix is used as is
  std::uint64_t mix_total = 0;
  permutation order;  // server position -> generation index
  std::string id_text;
  std::string company_text;
  std::int64_t created_ms = 0;
  std::optional<std::int64_t> started_ms, completed_ms, expired_ms;
  std::int64_t last_updated_ms = 0;
  api::uuid created_by;
  bool interactive = true;
  bool vendor_based = false;
  std::optional<std::string> failure_reason, failure_reason_type;
  bool abandon_open_items = false;  // set on expiry: non-final generated items read abandoned
  std::unordered_map<std::uint64_t, item_override> overrides;
  std::unordered_map<std::uint64_t, put_count> put_counts;  // items PUT at least once
  std::array<std::uint64_t, 5> counts{};  // current items per status (pending..abandoned)
};

struct page_query {
  std::optional<std::uint64_t> after, before, offset;
  std::uint64_t limit = 100;
};

struct page_slice {
  std::vector<std::uint64_t> positions;
  bool has_next = false;
  bool has_prev = false;
  std::uint64_t start = 0;    // cursor position before the first item
  std::uint64_t end = 0;      // cursor position after the last item
  std::uint8_t end_salt = 0;  // another text for the same end position (cycle_fresh)
};

class world {
 public:
  static result<std::unique_ptr<world>, sim_errc> generate(const sim_config& cfg,
                                                           std::int64_t now_ms);

  mutable std::shared_mutex mutex;
  std::vector<job_state> jobs;
  /// Position in `jobs` by job id: a lookup per request must not scan 100,000 jobs.
  std::unordered_map<api::uuid, std::size_t, api::uuid_hash> index;
  std::uint64_t seed = 0;
  std::int32_t expires_in = 3600;

  job_state* find(const api::uuid& id);
  const job_state* find(const api::uuid& id) const;

  api::uuid item_id(const job_state& j, std::uint64_t k) const noexcept;
  std::optional<std::uint64_t> item_index(const job_state& j, const api::uuid& id) const noexcept;
  api::item_status base_status(const job_state& j, std::uint64_t k) const noexcept;
  api::item_status status_of(const job_state& j, std::uint64_t k) const noexcept;
  std::int64_t date_of(const job_state& j, std::uint64_t k) const noexcept;

  void render_job(std::string& out, const job_state& j) const;
  void render_item(std::string& out, const job_state& j, std::uint64_t k) const;
  void render_export_item(std::string& out, const job_state& j, std::uint64_t k) const;

  void set_item(job_state& j, std::uint64_t k, item_override o);
  void set_item_status(job_state& j, std::uint64_t k, api::item_status s);
  /// failed + job_expired, expiredAt = now, non-final items abandoned.
  void expire(job_state& j, std::int64_t now_ms);
  /// Expires the job when lastUpdatedAt + expiresIn has passed; true when it did.
  bool maybe_expire(job_state& j, std::int64_t now_ms);
  void recount(job_state& j);
};

/// Selects one page from positions [0, n). `match` filters positions (nullptr: all match).
template <class Match>
page_slice select_page(std::uint64_t n, const page_query& q, const Match* match) {
  page_slice s;
  auto ok = [&](std::uint64_t p) { return match == nullptr || (*match)(p); };
  auto any_in = [&](std::uint64_t from, std::uint64_t to) {
    if (match == nullptr) return from < to;
    for (std::uint64_t p = from; p < to; ++p)
      if ((*match)(p)) return true;
    return false;
  };
  if (q.before) {
    const std::uint64_t c = std::min(*q.before, n);
    std::uint64_t p = c;
    if (match == nullptr) {
      p = c - std::min<std::uint64_t>(q.limit, c);
      for (std::uint64_t i = p; i < c; ++i)
        s.positions.push_back(i);
    } else {
      while (p > 0 && s.positions.size() < q.limit) {
        --p;
        if (ok(p)) s.positions.push_back(p);
      }
      std::reverse(s.positions.begin(), s.positions.end());
    }
    s.start = s.positions.empty() ? c : s.positions.front();
    s.end = s.positions.empty() ? c : s.positions.back() + 1;
    s.has_prev = any_in(0, s.start);
    s.has_next = any_in(s.end, n);
    return s;
  }
  std::uint64_t begin = 0;
  if (q.offset) {
    if (match == nullptr) {
      begin = std::min(*q.offset, n);
    } else {
      std::uint64_t skipped = 0;
      while (begin < n && skipped < *q.offset) {
        if (ok(begin)) ++skipped;
        ++begin;
      }
    }
  } else if (q.after) {
    begin = std::min(*q.after, n);
  }
  std::uint64_t p = begin;
  if (match == nullptr) {
    const std::uint64_t stop = std::min(n, begin + std::min<std::uint64_t>(q.limit, n));
    s.positions.reserve(stop - begin);
    for (; p < stop; ++p)
      s.positions.push_back(p);
  } else {
    while (p < n && s.positions.size() < q.limit) {
      if (ok(p)) s.positions.push_back(p);
      ++p;
    }
  }
  s.start = s.positions.empty() ? begin : s.positions.front();
  s.end = s.positions.empty() ? p : s.positions.back() + 1;
  s.has_next = any_in(p, n);
  s.has_prev = any_in(0, s.start);
  return s;
}

using ::ei::append_json_string;  // common/json_text.hpp
void append_uuid(std::string& out, const api::uuid& id);
void append_int(std::string& out, std::int64_t v);

}  // namespace ei::sim::detail
