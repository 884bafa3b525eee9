// page_parser: item pages with simdjson's on-demand API, in error-code style (no simdjson
// exception escapes; every simdjson_result is checked with get()).
//
// Fields are visited in document order and dispatched by name, so field order does not matter
// and values that are not needed are skipped without being materialised. Messages come from
// codec_detail so that they match the reference decoders word for word.

#include <simdjson.h>

#include <cstring>
#include <limits>
#include <optional>

#include "api/codec.hpp"
#include "api/codec_detail.hpp"

namespace ei::api {
namespace {

namespace od = simdjson::ondemand;
using detail::json_kind;
using detail::path;
using simdjson::error_code;

json_kind kind_of(od::json_type t) noexcept {
  switch (t) {
    case od::json_type::array:
      return json_kind::array;
    case od::json_type::object:
      return json_kind::object;
    case od::json_type::number:
      return json_kind::number;
    case od::json_type::string:
      return json_kind::string;
    case od::json_type::boolean:
      return json_kind::boolean;
    case od::json_type::null:
      return json_kind::null_value;
  }
  return json_kind::null_value;
}

// Required fields seen in one object, as bits.
using seen_mask = std::uint32_t;

// Decoding state for one body: the request name, the body as parsed (for offsets and
// excerpts) and the first error. Every member that reads returns false once an error is stored, and
// the caller returns at once: on-demand iteration must not continue past an error.
class reader {
 public:
  reader(std::string_view where, std::string_view body) : where_(where), body_(body) {}

  error<codec_errc> take_error() && { return std::move(*err_); }

  bool fail(error<codec_errc> e) {
    err_ = std::move(e);
    return false;
  }

  /// Where deviations of the page being read go.
  void deviations_to(contract_deviations* out) { dev_ = out; }

  void deviate(const path& p, std::string_view what) { detail::deviate(*dev_, p, what); }

  /// Reads a field the stage does not rely on with `read`: a decode error other than
  /// malformed JSON becomes a deviation counted at `p`, and reading goes on (on-demand skips
  /// whatever `read` left unread). The caller decides what the field holds then.
  template <class Read>
  bool tolerant(const path& p, Read&& read) {
    return detail::tolerate(err_, *dev_, p, where_, std::forward<Read>(read));
  }

  /// Empties a field after a tolerated fault; false, so that `read() || reset(field)` still
  /// reports the fault.
  template <class Field>
  static bool reset(Field& field) {
    field = Field{};
    return false;
  }

  /// A string-or-null field the stage passes on but does not rely on: another type is a
  /// deviation and leaves it empty.
  bool lenient_opt_string(od::value& v, const path& p, std::optional<std::string>& out) {
    return tolerant(p, [&] {
      if (opt_string(v, p, out)) return true;
      out.reset();
      return false;
    });
  }

  bool fail_malformed(error_code code, const char* at = nullptr) {
    std::optional<std::size_t> byte;
    // For an unbalanced document simdjson points at its start, which helps nobody.
    if (code == simdjson::INCOMPLETE_ARRAY_OR_OBJECT) at = nullptr;
    if (at != nullptr && at >= body_.data() && at <= body_.data() + body_.size())
      byte = static_cast<std::size_t>(at - body_.data());
    const std::string_view reason =
        code == simdjson::INCOMPLETE_ARRAY_OR_OBJECT
            ? "unbalanced document: truncated, or followed by other content"
            : std::string_view(simdjson::error_message(code));
    return fail(detail::malformed(where_, reason, byte, body_));
  }

  template <class V>
  bool fail_malformed_at(error_code code, V& v) {
    const char* at = nullptr;
    if (v.current_location().get(at) != simdjson::SUCCESS) at = nullptr;
    return fail_malformed(code, at);
  }

  bool kind(od::value& v, json_kind& out) {
    od::json_type t{};
    if (auto e = v.type().get(t)) return fail_malformed_at(e, v);
    out = kind_of(t);
    return true;
  }

  // A null token that does not spell "null" is malformed JSON, not a type error.
  bool confirm_null(od::value& v) {
    bool is_null = false;
    if (v.is_null().get(is_null) != simdjson::SUCCESS || !is_null)
      return fail_malformed_at(simdjson::N_ATOM_ERROR, v);
    return true;
  }

  bool object(od::value& v, const path& p, od::object& out) {
    json_kind k{};
    if (!kind(v, k)) return false;
    if (k != json_kind::object) return fail(detail::wrong_type(where_, p, detail::k_object, k));
    if (auto e = v.get_object().get(out)) return fail_malformed_at(e, v);
    return true;
  }

  bool array(od::value& v, const path& p, od::array& out) {
    json_kind k{};
    if (!kind(v, k)) return false;
    if (k != json_kind::array) return fail(detail::wrong_type(where_, p, detail::k_array, k));
    if (auto e = v.get_array().get(out)) return fail_malformed_at(e, v);
    return true;
  }

  bool string(od::value& v, const path& p, std::string_view expected, std::string_view& out) {
    json_kind k{};
    if (!kind(v, k)) return false;
    if (k != json_kind::string) return fail(detail::wrong_type(where_, p, expected, k));
    if (auto e = v.get_string().get(out)) return fail_malformed_at(e, v);
    return true;
  }

  bool uuid_value(od::value& v, const path& p, uuid& out) {
    std::string_view text;
    if (!string(v, p, detail::k_uuid, text)) return false;
    auto parsed = uuid::parse(text);
    if (!parsed) return fail(detail::invalid_uuid(where_, p, text));
    out = *parsed;
    return true;
  }

  bool boolean(od::value& v, const path& p, bool& out) {
    json_kind k{};
    if (!kind(v, k)) return false;
    if (k != json_kind::boolean) return fail(detail::wrong_type(where_, p, detail::k_boolean, k));
    if (v.get_bool().get(out) != simdjson::SUCCESS)
      return fail_malformed_at(simdjson::T_ATOM_ERROR, v);
    return true;
  }

  // An integer that must fit [lo, hi]; `nullable` lets null leave `out` empty.
  template <class Int>
  bool integer(od::value& v, const path& p, bool nullable, std::optional<Int>& out,
               std::string_view int_type) {
    json_kind k{};
    if (!kind(v, k)) return false;
    if (k == json_kind::null_value && nullable) {
      out.reset();
      return confirm_null(v);
    }
    if (k != json_kind::number)
      return fail(
          detail::wrong_type(where_, p, nullable ? detail::k_opt_integer : detail::k_integer, k));
    std::int64_t n = 0;
    const error_code e = v.get_int64().get(n);
    if (e == simdjson::NUMBER_ERROR) return fail_malformed_at(e, v);
    if (e != simdjson::SUCCESS || n < std::numeric_limits<Int>::min() ||
        n > std::numeric_limits<Int>::max())
      return fail(detail::out_of_range(where_, p, int_type));
    out = static_cast<Int>(n);
    return true;
  }

  bool opt_string(od::value& v, const path& p, std::optional<std::string>& out) {
    json_kind k{};
    if (!kind(v, k)) return false;
    if (k == json_kind::null_value) {
      out.reset();
      return confirm_null(v);
    }
    if (k != json_kind::string) return fail(detail::wrong_type(where_, p, detail::k_opt_string, k));
    std::string_view text;
    if (auto e = v.get_string().get(text)) return fail_malformed_at(e, v);
    out.emplace(text);
    return true;
  }

  // An array of strings; with `nullable`, null means empty.
  bool string_array(od::value& v, const path& p, bool nullable, std::vector<std::string>& out) {
    json_kind k{};
    if (!kind(v, k)) return false;
    out.clear();
    if (k == json_kind::null_value && nullable) return confirm_null(v);
    if (k != json_kind::array)
      return fail(
          detail::wrong_type(where_, p, nullable ? detail::k_opt_array : detail::k_array, k));
    od::array arr;
    if (auto e = v.get_array().get(arr)) return fail_malformed_at(e, v);
    std::size_t i = 0;
    for (auto element : arr) {
      od::value ev;
      if (auto e = element.get(ev)) return fail_malformed(e);
      std::string_view text;
      const path ep = p.at(i++);
      if (!string(ev, ep, detail::k_string, text)) return false;
      out.emplace_back(text);
    }
    return true;
  }

  // Visits each field of the object at `v` in document order.
  template <class OnField>
  bool fields(od::value& v, const path& p, OnField&& on_field) {
    od::object obj;
    if (!object(v, p, obj)) return false;
    for (auto field_result : obj) {
      od::field f;
      if (auto e = std::move(field_result).get(f)) return fail_malformed(e);
      std::string_view key;
      if (auto e = f.unescaped_key().get(key)) return fail_malformed(e);
      if (!on_field(key, f.value())) return false;
    }
    return true;
  }

  bool require(seen_mask seen, seen_mask bit, const path& p, std::string_view key) {
    if ((seen & bit) != 0) return true;
    return fail(detail::missing_field(where_, p.field(key)));
  }

  bool job_item(od::value& v, const path& p, export_job_item& out) {
    enum : seen_mask { k_id = 1, k_job = 2, k_status = 4 };
    seen_mask seen = 0;
    const bool ok = fields(v, p, [&](std::string_view key, od::value& fv) {
      if (key == "accountingEntryId") {
        seen |= k_id;
        return uuid_value(fv, p.field(key), out.accounting_entry_id);
      }
      if (key == "exportJobId") {
        seen |= k_job;
        // Every item of a page names the same job: parse its text once per page. Not relied
        // on (the request names the job); an item naming ANOTHER job is checked by the
        // listing, which fails that job.
        const path jp = p.field(key);
        return tolerant(jp, [&] {
          out.export_job_id = uuid{};  // of duplicate keys the last counts, even a faulty one
          std::string_view text;
          if (!string(fv, jp, detail::k_uuid, text)) return false;
          if (!job_text_.empty() && text == job_text_) {
            out.export_job_id = job_id_;
            return true;
          }
          auto parsed = uuid::parse(text);
          if (!parsed) return fail(detail::invalid_uuid(where_, jp, text));
          out.export_job_id = job_id_ = *parsed;
          job_text_.assign(text);
          return true;
        });
      }
      if (key == "status") {
        seen |= k_status;
        const path sp = p.field(key);
        json_kind k{};
        if (!kind(fv, k)) return false;
        if (k == json_kind::null_value) {
          // Older docs: null until processing is first attempted, i.e. pending.
          if (!confirm_null(fv)) return false;
          out.status = item_status::pending;
          out.status_text.clear();
          deviate(sp, "null (read as pending)");
          return true;
        }
        std::string_view text;
        if (!string(fv, sp, detail::k_string, text)) return false;
        out.status = parse_item_status(text);
        if (out.status == item_status::unknown)
          out.status_text.assign(text);
        else
          out.status_text.clear();
        return true;
      }
      if (key == "exportedAt")
        return lenient_opt_string(fv, p.field(key), out.tracking.exported_at);
      if (key == "externalId")
        return lenient_opt_string(fv, p.field(key), out.tracking.external_id);
      if (key == "externalUrl")
        return lenient_opt_string(fv, p.field(key), out.tracking.external_url);
      if (key == "failureReason")
        return lenient_opt_string(fv, p.field(key), out.tracking.failure_reason);
      if (key == "failureReasonType")
        return lenient_opt_string(fv, p.field(key), out.tracking.failure_reason_type);
      return true;
    });
    if (!ok || !require(seen, k_id, p, "accountingEntryId") ||
        !require(seen, k_status, p, "status"))
      return false;
    if ((seen & k_job) == 0) deviate(p.field("exportJobId"), "missing");
    return true;
  }

  bool item_date(od::value& v, const path& p, export_item_date& out) {
    enum : seen_mask { k_id = 1, k_date = 2 };
    seen_mask seen = 0;
    od::object obj;
    if (!object(v, p, obj)) return false;
    auto on_field = [&](std::string_view key, od::value& fv) {
      if (key == "accountingEntryId") {
        seen |= k_id;
        return uuid_value(fv, p.field(key), out.accounting_entry_id);
      }
      if (key == "date") {
        seen |= k_date;
        const path fp = p.field(key);
        out.date_ms.reset();
        return tolerant(fp, [&] {
          std::string_view text;
          if (!string(fv, fp, detail::k_date_time, text)) return false;
          const auto d = parse_date_lenient(text);
          out.date_ms = d.epoch_ms;
          if (d.form == date_form::date_only) deviate(fp, "a date without a time (midnight UTC)");
          if (d.form == date_form::zoneless) deviate(fp, "a date-time without a zone (UTC)");
          if (d.form == date_form::unparsable) return fail(detail::invalid_date(where_, fp, text));
          return true;
        });
      }
      return true;
    };
    for (auto field_result : obj) {
      od::field f;
      if (auto e = std::move(field_result).get(f)) return fail_malformed(e);
      std::string_view key;
      if (auto e = f.unescaped_key().get(key)) return fail_malformed(e);
      if (!on_field(key, f.value())) return false;
      // The rest of an ExportItemV3 is large and of no use here; simdjson skips it when the
      // array moves on (measured: +14% items/s on full items).
      if (seen == (k_id | k_date)) break;
    }
    if (!require(seen, k_id, p, "accountingEntryId")) return false;
    if ((seen & k_date) == 0) deviate(p.field("date"), "missing (the item is undated)");
    return true;
  }

  // Not relied on: every member is read tolerantly (a fault is a deviation, the member stays
  // empty).
  bool current_request(od::value& v, const path& p, current_request_pagination& out) {
    enum : seen_mask { k_parameters = 1 };
    seen_mask seen = 0;
    out = {};  // of duplicate keys the last counts, as in the reference decoders
    const bool ok = fields(v, p, [&](std::string_view key, od::value& fv) {
      const path fp = p.field(key);
      if (key == "parameters") {
        seen |= k_parameters;
        out.parameters.clear();
        return tolerant(fp, [&] {
          if (fields(fv, fp, [&](std::string_view name, od::value& values) {
                std::vector<std::string> list;
                if (!string_array(values, fp.field(name), false, list)) return false;
                out.parameters.insert_or_assign(std::string(name), std::move(list));
                return true;
              }))
            return true;
          out.parameters.clear();  // all or nothing, whatever the order of the keys
          return false;
        });
      }
      if (key == "after") return lenient_opt_string(fv, fp, out.after);
      if (key == "before") return lenient_opt_string(fv, fp, out.before);
      if (key == "limit")
        return tolerant(
            fp, [&] { return integer(fv, fp, true, out.limit, "int32") || reset(out.limit); });
      if (key == "offset")
        return tolerant(
            fp, [&] { return integer(fv, fp, true, out.offset, "int64") || reset(out.offset); });
      if (key == "sortingKeys")
        return tolerant(fp, [&] {
          return string_array(fv, fp, true, out.sorting_keys) || reset(out.sorting_keys);
        });
      if (key == "sortingOrder")
        return tolerant(fp, [&] {
          return string_array(fv, fp, true, out.sorting_order) || reset(out.sorting_order);
        });
      return true;
    });
    if (!ok) return false;
    if ((seen & k_parameters) == 0) deviate(p.field("parameters"), "missing");
    return true;
  }

  bool page_info_value(od::value& v, const path& p, page_info& out) {
    enum : seen_mask { k_current = 1, k_next = 2, k_previous = 4 };
    seen_mask seen = 0;
    out = {};  // of duplicate keys the last counts, as in the reference decoders
    // endCursor is relied on only when there is a next page, which may come after it.
    std::optional<error<codec_errc>> end_fault;
    const bool ok = fields(v, p, [&](std::string_view key, od::value& fv) {
      const path fp = p.field(key);
      if (key == "currentRequestPagination") {
        seen |= k_current;
        return tolerant(fp, [&] {
          if (current_request(fv, fp, out.current_request)) return true;
          out.current_request = {};
          return false;
        });
      }
      if (key == "hasNextPage") {
        seen |= k_next;
        return boolean(fv, fp, out.has_next_page);
      }
      if (key == "hasPreviousPage") {
        seen |= k_previous;
        return tolerant(fp, [&] {
          if (boolean(fv, fp, out.has_previous_page)) return true;
          out.has_previous_page = false;
          return false;
        });
      }
      if (key == "endCursor") {
        end_fault.reset();
        if (opt_string(fv, fp, out.end_cursor)) return true;
        if (err_->code == codec_errc::malformed_json) return false;
        end_fault = std::move(*err_);
        err_.reset();
        out.end_cursor.reset();
        return true;
      }
      if (key == "startCursor") return lenient_opt_string(fv, fp, out.start_cursor);
      // Relied on only by offset listing, which checks it is there and adds up.
      if (key == "total")
        return tolerant(
            fp, [&] { return integer(fv, fp, true, out.total, "int64") || reset(out.total); });
      return true;
    });
    if (!ok || !require(seen, k_next, p, "hasNextPage")) return false;
    if (end_fault) {
      if (out.has_next_page) return fail(std::move(*end_fault));
      detail::deviate(*dev_, p.field("endCursor"), *end_fault, where_);
    }
    if ((seen & k_current) == 0) deviate(p.field("currentRequestPagination"), "missing");
    if ((seen & k_previous) == 0) deviate(p.field("hasPreviousPage"), "missing");
    return true;
  }

  // The list envelope {"data": [...], "pagination": {...}} around items read by `item`.
  template <class T, class ReadItem>
  bool list_page(od::document& doc, page<T>& out, std::size_t size_hint, ReadItem item) {
    const path root;
    od::json_type t{};
    if (auto e = doc.type().get(t)) return fail_malformed_at(e, doc);
    if (t != od::json_type::object)
      return fail(detail::wrong_type(where_, root, detail::k_object, kind_of(t)));
    od::object obj;
    if (auto e = doc.get_object().get(obj)) return fail_malformed_at(e, doc);

    enum : seen_mask { k_data = 1, k_pagination = 2 };
    seen_mask seen = 0;
    for (auto field_result : obj) {
      od::field f;
      if (auto e = std::move(field_result).get(f)) return fail_malformed(e);
      std::string_view key;
      if (auto e = f.unescaped_key().get(key)) return fail_malformed(e);
      if (key == "data") {
        seen |= k_data;
        const path dp = root.field("data");
        od::array arr;
        if (!array(f.value(), dp, arr)) return false;
        out.data.clear();
        out.data.reserve(size_hint);
        std::size_t i = 0;
        for (auto element : arr) {
          od::value ev;
          if (auto e = element.get(ev)) return fail_malformed(e);
          if (!item(*this, ev, dp.at(i++), out.data.emplace_back())) return false;
        }
      } else if (key == "pagination") {
        seen |= k_pagination;
        if (!page_info_value(f.value(), root.field("pagination"), out.pagination)) return false;
      }
    }
    if (!require(seen, k_data, root, "data") || !require(seen, k_pagination, root, "pagination"))
      return false;

    // on-demand stops at the closing brace; anything after it is not part of the document.
    const char* rest = nullptr;
    const error_code e = doc.current_location().get(rest);
    if (e == simdjson::OUT_OF_BOUNDS) return true;
    if (e != simdjson::SUCCESS) return fail_malformed(e);
    return fail(detail::malformed(where_, "content after the JSON document",
                                  static_cast<std::size_t>(rest - body_.data()), body_));
  }

 private:
  std::string_view where_;
  std::string_view body_;
  std::optional<error<codec_errc>> err_;
  contract_deviations* dev_ = nullptr;
  std::string job_text_;  // the last exportJobId text seen, and its value
  uuid job_id_;
};

}  // namespace

struct page_parser::impl {
  od::parser parser;
  std::unique_ptr<char[]> scratch;
  std::size_t capacity = 0;
  std::size_t last_page_size = 0;  // reserve hint for the next page

  // Copies `body` into the scratch buffer, padded with zeros as simdjson requires.
  std::string_view pad(std::string_view body) {
    const std::size_t needed = body.size() + simdjson::SIMDJSON_PADDING;
    if (needed > capacity) {
      std::size_t grown = capacity == 0 ? 4096 : capacity;
      while (grown < needed)
        grown *= 2;
      scratch = std::make_unique_for_overwrite<char[]>(grown);
      capacity = grown;
    }
    if (!body.empty()) std::memcpy(scratch.get(), body.data(), body.size());
    std::memset(scratch.get() + body.size(), 0, simdjson::SIMDJSON_PADDING);
    return {scratch.get(), body.size()};
  }

  template <class T, class ReadItem>
  decode_result<page<T>> run(std::string_view body, std::string_view where, ReadItem item) {
    const std::string_view padded = pad(body);  // sets `capacity`: read it only after
    return parse<T>(padded, capacity, where, item);
  }

  template <class T, class ReadItem>
  decode_result<page<T>> run(padded_body body, std::string_view where, ReadItem item) {
    if (!body.padded()) return run<T>(body.text, where, item);
    return parse<T>(body.text, body.capacity, where, item);
  }

  // Parses `text` where it lies: `readable` bytes from text.data() may be read (padding).
  template <class T, class ReadItem>
  decode_result<page<T>> parse(std::string_view text, std::size_t readable, std::string_view where,
                               ReadItem item) {
    reader r(where, text);
    od::document doc;
    if (auto e = parser.iterate(text.data(), text.size(), readable).get(doc)) {
      r.fail_malformed(e);
      return std::move(r).take_error();
    }
    page<T> out;
    r.deviations_to(&out.deviations);
    if (!r.list_page(doc, out, last_page_size, item)) return std::move(r).take_error();
    last_page_size = out.data.size();
    return out;
  }
};

static_assert(padded_body::padding >= simdjson::SIMDJSON_PADDING);

page_parser::page_parser() : impl_(std::make_unique<impl>()) {}
page_parser::~page_parser() = default;
page_parser::page_parser(page_parser&&) noexcept = default;
page_parser& page_parser::operator=(page_parser&&) noexcept = default;

namespace {

bool read_job_item(reader& r, od::value& v, const path& p, export_job_item& out) {
  return r.job_item(v, p, out);
}

bool read_item_date(reader& r, od::value& v, const path& p, export_item_date& out) {
  return r.item_date(v, p, out);
}

}  // namespace

decode_result<page<export_job_item>> page_parser::job_items(std::string_view body,
                                                            std::string_view where) {
  return impl_->run<export_job_item>(body, where, read_job_item);
}

decode_result<page<export_job_item>> page_parser::job_items(padded_body body,
                                                            std::string_view where) {
  return impl_->run<export_job_item>(body, where, read_job_item);
}

decode_result<page<export_item_date>> page_parser::item_dates(std::string_view body,
                                                              std::string_view where) {
  return impl_->run<export_item_date>(body, where, read_item_date);
}

decode_result<page<export_item_date>> page_parser::item_dates(padded_body body,
                                                              std::string_view where) {
  return impl_->run<export_item_date>(body, where, read_item_date);
}

std::size_t page_parser::scratch_capacity() const noexcept {
  return impl_ ? impl_->capacity : 0;
}

std::string parser_version() {
  return "simdjson " + std::to_string(simdjson::SIMDJSON_VERSION_MAJOR) + "." +
         std::to_string(simdjson::SIMDJSON_VERSION_MINOR) + "." +
         std::to_string(simdjson::SIMDJSON_VERSION_REVISION);
}

}  // namespace ei::api
