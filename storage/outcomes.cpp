// Outcomes of items and job completion: what the write-back to Pleo needs to be exactly
// once across crashes (storage/README.md, "Outcomes").
//
//   outcomes  job + 'I' + item id  ->  v1, u8 status, u8 state, varint seq, varint rejections,
//                                      u8 field mask, fields (len+bytes), error type, error
//                                      message (len+bytes)
//   outcomes  job + 'C'            ->  v1, u8 job status, u8 sent, failure reason type,
//                                      failure reason (len+bytes), zigzag at_ms
#include <cstring>

#include <rocksdb/write_batch.h>

#include "storage/detail/store_impl.hpp"

namespace ei::storage {

using namespace detail;

std::string_view to_string(outcome_state s) noexcept {
  switch (s) {
    case outcome_state::recorded:
      return "recorded";
    case outcome_state::reported:
      return "reported";
    case outcome_state::rejected:
      return "rejected";
  }
  return "unknown";
}

namespace detail {
namespace {

void put_varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void put_bytes(std::string& out, std::string_view s) {
  put_varint(out, s.size());
  out.append(s);
}

/// Bounds-checked reader over an untrusted value; the first failure sticks.
class value_reader {
 public:
  explicit value_reader(std::string_view in) : in_(in) {}
  bool failed() const { return !why_.empty(); }
  void fail(std::string why) {
    if (why_.empty()) why_ = std::move(why);
  }
  std::uint8_t u8(const char* what) {
    if (failed()) return 0;
    if (pos_ >= in_.size()) {
      fail(std::string{"truncated "} + what);
      return 0;
    }
    return static_cast<std::uint8_t>(in_[pos_++]);
  }
  std::uint64_t varint(const char* what) {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      const auto b = u8(what);
      if (failed()) return 0;
      v |= std::uint64_t{b & 0x7fu} << shift;
      if ((b & 0x80) == 0) return v;
    }
    fail(std::string{"overlong varint for "} + what);
    return 0;
  }
  std::string bytes(const char* what) {
    const auto n = varint(what);
    if (failed()) return {};
    if (n > in_.size() - pos_) {
      fail(std::string{what} + " length " + std::to_string(n) + " exceeds the value");
      return {};
    }
    std::string s{in_.substr(pos_, n)};
    pos_ += n;
    return s;
  }
  void version() {
    const auto v = u8("format version");
    if (!failed() && v != format_v1)
      fail("unknown format version " + std::to_string(v) + " (expected 1)");
  }
  std::string finish() {
    if (!failed() && pos_ != in_.size())
      fail(std::to_string(in_.size() - pos_) + " unexpected trailing bytes");
    return why_;
  }

 private:
  std::string_view in_;
  std::size_t pos_ = 0;
  std::string why_;
};

bool final_item_status(api::item_status s) {
  return s == api::item_status::successful || s == api::item_status::failed;
}

}  // namespace

std::string outcome_key(const api::uuid& job, const api::uuid& item) {
  auto k = job_key(job, tag_outcome);
  k.append(reinterpret_cast<const char*>(item.bytes.data()), item.bytes.size());
  return k;
}

std::string outcome_problem(const item_outcome& o) {
  const std::string item = "item " + o.item.to_string();
  if (!final_item_status(o.status))
    return item + ": outcome status '" + std::string(api::to_string(o.status)) +
           "' is not final (successful or failed)";
  if (o.seq == 0) return item + ": outcome without a sequence number";
  if (o.state > outcome_state::rejected) return item + ": unknown outcome state";
  return {};
}

void encode_outcome(const item_outcome& o, std::string& out) {
  out.clear();
  out.push_back(static_cast<char>(format_v1));
  out.push_back(static_cast<char>(o.status));
  out.push_back(static_cast<char>(o.state));
  put_varint(out, o.seq);
  put_varint(out, o.rejections);
  const std::optional<std::string>* fields[] = {&o.fields.exported_at, &o.fields.external_id,
                                                &o.fields.external_url, &o.fields.failure_reason,
                                                &o.fields.failure_reason_type};
  std::uint8_t mask = 0;
  for (std::size_t i = 0; i < 5; ++i)
    if (fields[i]->has_value()) mask |= static_cast<std::uint8_t>(1u << i);
  out.push_back(static_cast<char>(mask));
  for (const auto* f : fields)
    if (f->has_value()) put_bytes(out, **f);
  put_bytes(out, o.error_type);
  put_bytes(out, o.error_message);
}

std::string decode_outcome(std::string_view in, item_outcome& o) {
  value_reader r{in};
  r.version();
  const auto status = r.u8("status");
  if (!r.failed() && status != static_cast<std::uint8_t>(api::item_status::successful) &&
      status != static_cast<std::uint8_t>(api::item_status::failed))
    r.fail("status " + std::to_string(status) + " is not successful or failed");
  o.status = static_cast<api::item_status>(status);
  const auto state = r.u8("state");
  if (!r.failed() && state > static_cast<std::uint8_t>(outcome_state::rejected))
    r.fail("unknown state " + std::to_string(state));
  o.state = static_cast<outcome_state>(state);
  o.seq = r.varint("seq");
  if (!r.failed() && o.seq == 0) r.fail("seq 0");
  const auto rejections = r.varint("rejections");
  if (!r.failed() && rejections > 0xffffffffu) r.fail("rejections exceed 32 bits");
  o.rejections = static_cast<std::uint32_t>(rejections);
  const auto mask = r.u8("field mask");
  if (!r.failed() && mask >= (1u << 5))
    r.fail("field mask " + std::to_string(mask) + " has unknown bits");
  std::optional<std::string>* fields[] = {&o.fields.exported_at, &o.fields.external_id,
                                          &o.fields.external_url, &o.fields.failure_reason,
                                          &o.fields.failure_reason_type};
  for (std::size_t i = 0; i < 5; ++i) {
    if (!r.failed() && (mask & (1u << i)) != 0)
      *fields[i] = r.bytes("field");
    else
      fields[i]->reset();
  }
  o.error_type = r.bytes("error type");
  o.error_message = r.bytes("error message");
  return r.finish();
}

void encode_completion(const completion_record& c, std::string& out) {
  out.clear();
  out.push_back(static_cast<char>(format_v1));
  out.push_back(static_cast<char>(c.status));
  out.push_back(static_cast<char>(c.sent ? 1 : 0));
  put_bytes(out, c.failure_reason_type);
  put_bytes(out, c.failure_reason);
  put_varint(
      out, (static_cast<std::uint64_t>(c.at_ms) << 1) ^ static_cast<std::uint64_t>(c.at_ms >> 63));
}

std::string decode_completion(std::string_view in, completion_record& c) {
  value_reader r{in};
  r.version();
  const auto status = r.u8("job status");
  if (!r.failed() && status != static_cast<std::uint8_t>(api::job_status::completed) &&
      status != static_cast<std::uint8_t>(api::job_status::completed_with_errors) &&
      status != static_cast<std::uint8_t>(api::job_status::failed))
    r.fail("job status " + std::to_string(status) + " is not final");
  c.status = static_cast<api::job_status>(status);
  const auto sent = r.u8("sent");
  if (!r.failed() && sent > 1) r.fail("sent is " + std::to_string(sent) + ", not 0 or 1");
  c.sent = sent == 1;
  c.failure_reason_type = r.bytes("failure reason type");
  c.failure_reason = r.bytes("failure reason");
  const auto z = r.varint("at_ms");
  c.at_ms = static_cast<std::int64_t>(z >> 1) ^ -static_cast<std::int64_t>(z & 1);
  return r.finish();
}

}  // namespace detail

store_status state_store::put_outcomes(const api::uuid& job, std::span<const item_outcome> outcomes,
                                       write_sync mode) {
  rocksdb::WriteBatch b;
  std::string v;
  for (const auto& o : outcomes) {
    if (auto why = outcome_problem(o); !why.empty())
      return make_error(store_errc::invalid_argument,
                        "put_outcomes: job " + job.to_string() + ": " + why);
    encode_outcome(o, v);
    b.Put(impl_->handle(cf_outcomes), outcome_key(job, o.item), v);
  }
  if (b.Count() == 0) return ok_v;
  return impl_->write(b, true, "cannot write outcomes of job " + job.to_string(), mode);
}

store_result<std::optional<item_outcome>> state_store::load_outcome(const api::uuid& job,
                                                                    const api::uuid& item) {
  rocksdb::PinnableSlice v;
  auto s = impl_->db->Get(rocksdb::ReadOptions{}, impl_->handle(cf_outcomes),
                          outcome_key(job, item), &v);
  if (s.IsNotFound()) return std::optional<item_outcome>{};
  if (!s.ok()) return impl_->fail(s, "cannot read an outcome of job " + job.to_string());
  item_outcome o;
  if (auto why = decode_outcome(v.ToStringView(), o); !why.empty())
    return impl_->corrupt(cf_outcomes, &job, "item " + item.to_string() + ": " + why);
  o.item = item;
  return std::optional<item_outcome>{std::move(o)};
}

store_status state_store::for_each_outcome(const api::uuid& job,
                                           const std::function<bool(item_outcome&&)>& fn) {
  const auto lower = job_key(job, tag_outcome);
  const auto upper = job_key(job, static_cast<char>(tag_outcome + 1));
  rocksdb::ReadOptions ro;
  rocksdb::Slice ub{upper};
  ro.iterate_upper_bound = &ub;
  std::unique_ptr<rocksdb::Iterator> it{impl_->db->NewIterator(ro, impl_->handle(cf_outcomes))};
  for (it->Seek(lower); it->Valid(); it->Next()) {
    const auto k = it->key().ToStringView();
    if (k.size() != outcome_key_size)
      return impl_->corrupt(cf_outcomes, &job,
                            "outcome key of " + std::to_string(k.size()) + " bytes");
    item_outcome o;
    o.item = uuid_at(k.substr(17));
    if (auto why = decode_outcome(it->value().ToStringView(), o); !why.empty())
      return impl_->corrupt(cf_outcomes, &job, "item " + o.item.to_string() + ": " + why);
    if (!fn(std::move(o))) return ok_v;
  }
  if (!it->status().ok())
    return impl_->fail(it->status(), "cannot read the outcomes of job " + job.to_string());
  return ok_v;
}

store_status state_store::put_completion(const api::uuid& job, const completion_record& c,
                                         write_sync mode) {
  rocksdb::WriteBatch b;
  std::string v;
  encode_completion(c, v);
  b.Put(impl_->handle(cf_outcomes), job_key(job, tag_completion), v);
  return impl_->write(b, true, "cannot record the completion of job " + job.to_string(), mode);
}

store_result<std::optional<completion_record>> state_store::load_completion(const api::uuid& job) {
  rocksdb::PinnableSlice v;
  auto s = impl_->db->Get(rocksdb::ReadOptions{}, impl_->handle(cf_outcomes),
                          job_key(job, tag_completion), &v);
  if (s.IsNotFound()) return std::optional<completion_record>{};
  if (!s.ok()) return impl_->fail(s, "cannot read the completion of job " + job.to_string());
  completion_record c;
  if (auto why = decode_completion(v.ToStringView(), c); !why.empty())
    return impl_->corrupt(cf_outcomes, &job, "completion record: " + why);
  return std::optional<completion_record>{std::move(c)};
}

}  // namespace ei::storage
