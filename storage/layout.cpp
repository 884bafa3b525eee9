#include "storage/detail/layout.hpp"

#include <cstring>

namespace ei::storage::detail {
namespace {

constexpr std::uint8_t item_flag_tracking = 0x01;
constexpr std::uint8_t item_flag_status_text = 0x02;  // page items only
constexpr std::uint8_t entry_flag_handed_on = 0x02;   // order entries only
constexpr std::uint8_t entry_flag_absent = 0x04;      // order entries only
constexpr std::uint8_t max_item_status = static_cast<std::uint8_t>(api::item_status::unknown);
constexpr std::uint8_t max_job_phase = static_cast<std::uint8_t>(job_phase::reconciling);
constexpr std::uint8_t max_ordering = static_cast<std::uint8_t>(ordering_mode::entry_id);

void put_u8(std::string& out, std::uint8_t v) {
  out.push_back(static_cast<char>(v));
}

void put_be(std::string& out, std::uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i)
    out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void put_le(std::string& out, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i)
    out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void put_varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void put_zigzag(std::string& out, std::int64_t v) {
  put_varint(out, (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63));
}

void put_bytes(std::string& out, std::string_view s) {
  put_varint(out, s.size());
  out.append(s);
}

void put_uuid(std::string& out, const api::uuid& u) {
  out.append(reinterpret_cast<const char*>(u.bytes.data()), u.bytes.size());
}

/// Bounds-checked cursor over an untrusted value; the first failure sticks.
class reader {
 public:
  explicit reader(std::string_view in) : in_(in) {}

  bool failed() const noexcept { return !why_.empty(); }
  const std::string& why() const noexcept { return why_; }
  std::size_t remaining() const noexcept { return in_.size() - pos_; }

  void fail(std::string why) {
    if (why_.empty()) why_ = std::move(why);
  }

  bool need(std::size_t n, const char* what) {
    if (failed()) return false;
    if (remaining() < n) {
      fail(std::string{"truncated "} + what + " at byte " + std::to_string(pos_) + " of " +
           std::to_string(in_.size()));
      return false;
    }
    return true;
  }

  std::uint8_t u8(const char* what) {
    if (!need(1, what)) return 0;
    return static_cast<std::uint8_t>(in_[pos_++]);
  }

  std::uint64_t le(int bytes, const char* what) {
    if (!need(static_cast<std::size_t>(bytes), what)) return 0;
    std::uint64_t v = 0;
    for (int i = 0; i < bytes; ++i)
      v |= std::uint64_t{static_cast<std::uint8_t>(in_[pos_ + static_cast<std::size_t>(i)])}
           << (8 * i);
    pos_ += static_cast<std::size_t>(bytes);
    return v;
  }

  std::uint64_t varint(const char* what) {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (!need(1, what)) return 0;
      const auto b = static_cast<std::uint8_t>(in_[pos_++]);
      v |= std::uint64_t{b & 0x7fu} << shift;
      if ((b & 0x80) == 0) return v;
    }
    fail(std::string{"overlong varint for "} + what);
    return 0;
  }

  std::uint32_t varint32(const char* what) {
    const auto v = varint(what);
    if (v > 0xffffffffu) fail(std::string{what} + " exceeds 32 bits");
    return static_cast<std::uint32_t>(v);
  }

  std::int64_t zigzag(const char* what) {
    const auto v = varint(what);
    return static_cast<std::int64_t>(v >> 1) ^ -static_cast<std::int64_t>(v & 1);
  }

  std::string bytes(const char* what) {
    const auto n = varint(what);
    if (failed()) return {};
    if (n > remaining()) {
      fail(std::string{what} + " length " + std::to_string(n) + " exceeds the " +
           std::to_string(remaining()) + " bytes left");
      return {};
    }
    std::string s{in_.substr(pos_, n)};
    pos_ += n;
    return s;
  }

  api::uuid uuid(const char* what) {
    api::uuid u;
    if (!need(16, what)) return u;
    std::memcpy(u.bytes.data(), in_.data() + pos_, 16);
    pos_ += 16;
    return u;
  }

  bool boolean(const char* what) {
    const auto v = u8(what);
    if (v > 1) fail(std::string{what} + " is " + std::to_string(v) + ", not 0 or 1");
    return v == 1;
  }

  void version() {
    const auto v = u8("format version");
    if (!failed() && v != format_v1)
      fail("unknown format version " + std::to_string(v) + " (expected " +
           std::to_string(format_v1) + ")");
  }

  /// The final verdict: the first failure, or trailing bytes.
  std::string finish() {
    if (!failed() && remaining() != 0)
      fail(std::to_string(remaining()) + " unexpected trailing bytes");
    return why_;
  }

 private:
  std::string_view in_;
  std::size_t pos_ = 0;
  std::string why_;
};

}  // namespace

std::string job_prefix(const api::uuid& job) {
  std::string k;
  k.reserve(32);
  put_uuid(k, job);
  return k;
}

std::string job_key(const api::uuid& job, char tag) {
  auto k = job_prefix(job);
  k.push_back(tag);
  return k;
}

std::string page_prefix(const api::uuid& job, std::uint32_t epoch) {
  auto k = job_prefix(job);
  put_be(k, epoch, 4);
  return k;
}

std::string page_key(const api::uuid& job, std::uint32_t epoch, std::uint32_t page_no) {
  auto k = page_prefix(job, epoch);
  put_be(k, page_no, 4);
  return k;
}

std::string order_key(const api::uuid& job, std::uint32_t chunk_no) {
  auto k = job_prefix(job);
  put_be(k, chunk_no, 4);
  return k;
}

std::string tracking_key(const api::uuid& job, const api::uuid& item) {
  auto k = job_prefix(job);
  put_uuid(k, item);
  return k;
}

std::string attempt_key(const api::uuid& job, std::uint64_t seq) {
  auto k = job_prefix(job);
  put_be(k, seq, 8);
  return k;
}

std::string scratch_key(const api::uuid& job, std::uint8_t space, std::uint32_t run,
                        std::uint32_t segment) {
  auto k = job_prefix(job);
  put_u8(k, space);
  put_be(k, run, 4);
  put_be(k, segment, 4);
  return k;
}

std::string prefix_end(std::string_view prefix) {
  std::string k{prefix};
  k.append(17, '\xff');
  return k;
}

api::uuid uuid_at(std::string_view bytes) {
  api::uuid u;
  std::memcpy(u.bytes.data(), bytes.data(), 16);
  return u;
}

std::uint32_t be32_at(std::string_view b) {
  std::uint32_t v = 0;
  for (std::size_t i = 0; i < 4; ++i)
    v = (v << 8) | static_cast<std::uint8_t>(b[i]);
  return v;
}

std::uint64_t be64_at(std::string_view b) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < 8; ++i)
    v = (v << 8) | static_cast<std::uint8_t>(b[i]);
  return v;
}

void encode_job(const job_record& j, std::string& out) {
  out.clear();
  put_u8(out, format_v1);
  put_uuid(out, j.company_id);
  put_u8(out, static_cast<std::uint8_t>(j.phase));
  put_u8(out, static_cast<std::uint8_t>(j.ordering));
  put_varint(out, j.runs);
  put_varint(out, j.listing_epoch);
  put_varint(out, j.pages_committed);
  put_bytes(out, j.next_cursor);
  put_u8(out, j.listing_complete ? 1 : 0);
  put_varint(out, j.order_size);
  const auto& c = j.counters;
  for (auto v :
       {c.listed, c.pages, c.duplicates, c.in_scope, c.needs_reconciliation, c.redelivered})
    put_varint(out, v);
  for (auto v : c.by_remote_status)
    put_varint(out, v);
  put_bytes(out, j.failure_code);
  put_bytes(out, j.failure_message);
  put_zigzag(out, j.created_ms);
  put_zigzag(out, j.updated_ms);
}

std::string decode_job(std::string_view in, job_record& j) {
  reader r{in};
  r.version();
  j.company_id = r.uuid("company id");
  const auto phase = r.u8("phase");
  if (!r.failed() && phase > max_job_phase)
    r.fail("phase " + std::to_string(phase) + " out of range");
  j.phase = static_cast<job_phase>(phase);
  const auto ordering = r.u8("ordering mode");
  if (!r.failed() && ordering > max_ordering)
    r.fail("ordering mode " + std::to_string(ordering) + " out of range");
  j.ordering = static_cast<ordering_mode>(ordering);
  j.runs = r.varint32("runs");
  j.listing_epoch = r.varint32("listing epoch");
  j.pages_committed = r.varint32("pages committed");
  j.next_cursor = r.bytes("next cursor");
  j.listing_complete = r.boolean("listing complete");
  j.order_size = r.varint("order size");
  auto& c = j.counters;
  for (auto* v :
       {&c.listed, &c.pages, &c.duplicates, &c.in_scope, &c.needs_reconciliation, &c.redelivered})
    *v = r.varint("counter");
  for (auto& v : c.by_remote_status)
    v = r.varint("status counter");
  j.failure_code = r.bytes("failure code");
  j.failure_message = r.bytes("failure message");
  j.created_ms = r.zigzag("created time");
  j.updated_ms = r.zigzag("updated time");
  return r.finish();
}

void encode_watermarks(const watermarks& w, std::string& out) {
  out.clear();
  put_u8(out, format_v1);
  put_le(out, w.dispatched_through, 8);
  put_le(out, w.acked_through, 8);
}

std::string decode_watermarks(std::string_view in, watermarks& w) {
  reader r{in};
  r.version();
  w.dispatched_through = r.le(8, "dispatched_through");
  w.acked_through = r.le(8, "acked_through");
  return r.finish();
}

void encode_page(const page_record& p, std::string& out) {
  out.clear();
  out.reserve(16 + p.request_cursor.size() + p.next_cursor.size() +
              p.items.size() * (order_entry_size + 1));
  put_u8(out, format_v1);
  put_bytes(out, p.request_cursor);
  put_bytes(out, p.next_cursor);
  put_u8(out, p.has_next ? 1 : 0);
  put_varint(out, p.items.size());
  for (const auto& it : p.items) {
    put_uuid(out, it.id);
    put_u8(out, static_cast<std::uint8_t>(it.remote_status));
    const bool text = it.remote_status == api::item_status::unknown && !it.status_text.empty();
    std::uint8_t flags = 0;
    if (!it.tracking.empty()) flags |= item_flag_tracking;
    if (text) flags |= item_flag_status_text;
    put_u8(out, flags);
    if (text) put_bytes(out, it.status_text);
  }
}

namespace {

/// The page header into `p` (its items left alone), then every item to `on_item(index, id,
/// status, flags, status_text)` after validating it; `on_count(n)` first.
template <class OnCount, class OnItem>
std::string decode_page_with(std::string_view in, page_record& p, OnCount&& on_count,
                             OnItem&& on_item) {
  reader r{in};
  r.version();
  p.request_cursor = r.bytes("request cursor");
  p.next_cursor = r.bytes("next cursor");
  p.has_next = r.boolean("has_next");
  const auto n = r.varint("item count");
  if (!r.failed() && n > r.remaining() / order_entry_size)
    r.fail("item count " + std::to_string(n) + " exceeds the value size");
  if (r.failed()) return r.finish();
  on_count(static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < n && !r.failed(); ++i) {
    const auto id = r.uuid("item id");
    const auto st = r.u8("item status");
    const auto flags = r.u8("item flags");
    if (r.failed()) break;
    if (st > max_item_status) {
      r.fail("item " + id.to_string() + " has status " + std::to_string(st) + " out of range");
      break;
    }
    const auto status = static_cast<api::item_status>(st);
    if ((flags & ~(item_flag_tracking | item_flag_status_text)) != 0 ||
        ((flags & item_flag_status_text) != 0 && status != api::item_status::unknown)) {
      r.fail("item " + id.to_string() + " has invalid flags " + std::to_string(flags));
      break;
    }
    std::string text;
    if ((flags & item_flag_status_text) != 0) text = r.bytes("status text");
    on_item(i, id, status, flags, std::move(text));
  }
  return r.finish();
}

}  // namespace

std::string decode_page(std::string_view in, page_record& p, std::vector<std::size_t>& flagged) {
  flagged.clear();
  p.items.clear();
  return decode_page_with(
      in, p, [&](std::size_t n) { p.items.resize(n); },
      [&](std::size_t i, const api::uuid& id, api::item_status status, std::uint8_t flags,
          std::string&& text) {
        auto& it = p.items[i];
        it.id = id;
        it.remote_status = status;
        it.status_text = std::move(text);
        if ((flags & item_flag_tracking) != 0) flagged.push_back(i);
      });
}

std::string decode_page_entries(std::string_view in, page_record& header,
                                std::vector<order_entry>& entries) {
  entries.clear();
  header.items.clear();
  return decode_page_with(
      in, header, [&](std::size_t n) { entries.reserve(n); },
      [&](std::size_t, const api::uuid& id, api::item_status status, std::uint8_t flags,
          std::string&&) {
        entries.push_back(order_entry{id, status, (flags & item_flag_tracking) != 0});
      });
}

void encode_tracking(const api::tracking_fields& t, std::string& out) {
  out.clear();
  put_u8(out, format_v1);
  const std::optional<std::string>* fields[] = {&t.exported_at, &t.external_id, &t.external_url,
                                                &t.failure_reason, &t.failure_reason_type};
  std::uint8_t mask = 0;
  for (std::size_t i = 0; i < 5; ++i)
    if (fields[i]->has_value()) mask |= static_cast<std::uint8_t>(1u << i);
  put_u8(out, mask);
  for (const auto* f : fields)
    if (f->has_value()) put_bytes(out, **f);
}

std::string decode_tracking(std::string_view in, api::tracking_fields& t) {
  reader r{in};
  r.version();
  const auto mask = r.u8("field mask");
  if (!r.failed() && mask >= (1u << 5))
    r.fail("field mask " + std::to_string(mask) + " has unknown bits");
  std::optional<std::string>* fields[] = {&t.exported_at, &t.external_id, &t.external_url,
                                          &t.failure_reason, &t.failure_reason_type};
  for (std::size_t i = 0; i < 5 && !r.failed(); ++i) {
    if ((mask & (1u << i)) != 0)
      *fields[i] = r.bytes("tracking field");
    else
      fields[i]->reset();
  }
  return r.finish();
}

void encode_order_chunk(std::span<const order_entry> entries, std::string& out) {
  out.clear();
  out.reserve(1 + entries.size() * order_entry_size);
  put_u8(out, format_v1);
  for (const auto& e : entries) {
    put_uuid(out, e.id);
    put_u8(out, static_cast<std::uint8_t>(e.remote_status));
    put_u8(out, static_cast<std::uint8_t>((e.has_tracking ? item_flag_tracking : 0) |
                                          (e.handed_on ? entry_flag_handed_on : 0) |
                                          (e.absent ? entry_flag_absent : 0)));
  }
}

std::string decode_order_chunk(std::string_view in, std::vector<order_entry>& out) {
  reader r{in};
  out.clear();
  r.version();
  if (r.failed()) return r.finish();
  if (r.remaining() % order_entry_size != 0)
    return std::to_string(r.remaining()) + " entry bytes are not a multiple of " +
           std::to_string(order_entry_size);
  const auto n = r.remaining() / order_entry_size;
  if (n == 0 || n > state_store::order_chunk_size)
    return "chunk holds " + std::to_string(n) + " entries (expected 1.." +
           std::to_string(state_store::order_chunk_size) + ")";
  out.resize(n);
  for (auto& e : out) {
    e.id = r.uuid("entry id");
    const auto st = r.u8("entry status");
    const auto flags = r.u8("entry flags");
    if (st > max_item_status) {
      r.fail("entry " + e.id.to_string() + " has status " + std::to_string(st) + " out of range");
      break;
    }
    if ((flags & ~(item_flag_tracking | entry_flag_handed_on | entry_flag_absent)) != 0 ||
        ((flags & entry_flag_absent) != 0 &&
         st != static_cast<std::uint8_t>(api::item_status::unknown))) {
      r.fail("entry " + e.id.to_string() + " has invalid flags " + std::to_string(flags));
      break;
    }
    e.remote_status = static_cast<api::item_status>(st);
    e.has_tracking = (flags & item_flag_tracking) != 0;
    e.handed_on = (flags & entry_flag_handed_on) != 0;
    e.absent = (flags & entry_flag_absent) != 0;
  }
  return r.finish();
}

void encode_attempt(std::uint32_t attempt, std::string& out) {
  out.clear();
  put_u8(out, format_v1);
  put_le(out, attempt, 4);
}

std::string decode_attempt(std::string_view in, std::uint32_t& attempt) {
  reader r{in};
  r.version();
  attempt = static_cast<std::uint32_t>(r.le(4, "attempt"));
  if (!r.failed() && attempt < 2) r.fail("attempt " + std::to_string(attempt) + " is below 2");
  return r.finish();
}

void encode_sink_offset(std::uint64_t offset, std::string& out) {
  out.clear();
  put_u8(out, format_v1);
  put_le(out, offset, 8);
}

std::string decode_sink_offset(std::string_view in, std::uint64_t& offset) {
  reader r{in};
  r.version();
  offset = r.le(8, "offset");
  return r.finish();
}

void encode_scratch_segment(std::uint8_t width, std::span<const std::uint8_t> records,
                            std::string& out) {
  out.clear();
  out.reserve(2 + records.size());
  put_u8(out, format_v1);
  put_u8(out, width);
  out.append(reinterpret_cast<const char*>(records.data()), records.size());
}

std::string check_scratch_segment(std::string_view in) {
  if (in.size() < 2) return "segment of " + std::to_string(in.size()) + " bytes";
  if (static_cast<std::uint8_t>(in[0]) != format_v1)
    return "unknown format version " + std::to_string(static_cast<std::uint8_t>(in[0])) +
           " (expected 1)";
  const auto width = static_cast<std::uint8_t>(in[1]);
  if (width == 0) return "record width 0";
  if ((in.size() - 2) % width != 0)
    return std::to_string(in.size() - 2) + " record bytes are not a multiple of the width " +
           std::to_string(width);
  return {};
}

}  // namespace ei::storage::detail
