// Decoders on nlohmann::json's DOM: jobs and error bodies (small, rare), and the reference
// decoders for item pages. Same rules and messages as page_parser.cpp; nlohmann's exceptions
// are caught here and become codec errors.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <limits>
#include <optional>

#include "api/codec.hpp"
#include "api/codec_detail.hpp"

namespace ei::api {
namespace {

using detail::json_kind;
using detail::path;
using json = nlohmann::json;

constexpr std::size_t k_max_reason = 120;

json_kind kind_of(const json& j) noexcept {
  switch (j.type()) {
    case json::value_t::object:
      return json_kind::object;
    case json::value_t::array:
      return json_kind::array;
    case json::value_t::string:
      return json_kind::string;
    case json::value_t::boolean:
      return json_kind::boolean;
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float:
      return json_kind::number;
    case json::value_t::null:
    case json::value_t::binary:
    case json::value_t::discarded:
      break;
  }
  return json_kind::null_value;
}

// nlohmann's messages start with an id and a line/column (the byte offset is reported
// separately) and may quote the token it stopped at, which can be long: keep the head.
std::string short_reason(std::string_view what) {
  if (const auto id_end = what.find("] ");
      what.starts_with("[json.exception.") && id_end != std::string_view::npos)
    what.remove_prefix(id_end + 2);
  if (what.starts_with("parse error at line ")) {
    if (const auto colon = what.find(": "); colon != std::string_view::npos)
      what.remove_prefix(colon + 2);
  }
  if (what.size() <= k_max_reason) return std::string(what);
  std::string out(what.substr(0, k_max_reason));
  out += "...";
  return out;
}

// Decoding state for one body; see `reader` in page_parser.cpp, which this mirrors.
class dom_reader {
 public:
  dom_reader(std::string_view where, std::string_view body) : where_(where), body_(body) {}

  error<codec_errc> take_error() && { return std::move(*err_); }

  bool fail(error<codec_errc> e) {
    err_ = std::move(e);
    return false;
  }

  void deviations_to(contract_deviations* out) { dev_ = out; }
  void deviate(const path& p, std::string_view what) { detail::deviate(*dev_, p, what); }

  /// See reader::tolerant in page_parser.cpp.
  template <class Read>
  bool tolerant(const path& p, Read&& read) {
    return detail::tolerate(err_, *dev_, p, where_, std::forward<Read>(read));
  }

  /// A member the stage does not rely on: absent is a deviation when `required`; a fault in
  /// it is a deviation; `reset` empties the field after a fault.
  template <class Read, class Reset>
  bool lenient(const json& obj, const path& p, const char* key, bool is_required, Read read,
               Reset reset) {
    const json* m = member(obj, key);
    const path mp = p.field(key);
    if (m == nullptr) {
      if (is_required) deviate(mp, "missing");
      reset();
      return true;
    }
    return tolerant(mp, [&] {
      if (read(*m, mp)) return true;
      reset();
      return false;
    });
  }

  bool lenient_opt_string(const json& obj, const path& p, const char* key,
                          std::optional<std::string>& field) {
    return lenient(
        obj, p, key, false, [&](const json& m, const path& mp) { return opt_string(m, mp, field); },
        [&] { field.reset(); });
  }

  bool parse(json& out) {
    try {
      out = json::parse(body_.begin(), body_.end());
      return true;
    } catch (const json::parse_error& e) {
      std::optional<std::size_t> byte;
      if (e.byte > 0) byte = e.byte - 1;
      return fail(detail::malformed(where_, short_reason(e.what()), byte, body_));
    }
  }

  bool object(const json& v, const path& p) {
    if (v.is_object()) return true;
    return fail(detail::wrong_type(where_, p, detail::k_object, kind_of(v)));
  }

  bool string(const json& v, const path& p, std::string_view expected, std::string_view& out) {
    if (!v.is_string()) return fail(detail::wrong_type(where_, p, expected, kind_of(v)));
    out = v.get_ref<const std::string&>();
    return true;
  }

  bool uuid_value(const json& v, const path& p, uuid& out) {
    std::string_view text;
    if (!string(v, p, detail::k_uuid, text)) return false;
    auto parsed = uuid::parse(text);
    if (!parsed) return fail(detail::invalid_uuid(where_, p, text));
    out = *parsed;
    return true;
  }

  bool opt_uuid(const json& v, const path& p, std::optional<uuid>& out) {
    if (v.is_null()) {
      out.reset();
      return true;
    }
    if (!v.is_string()) return fail(detail::wrong_type(where_, p, detail::k_opt_uuid, kind_of(v)));
    uuid u;
    if (!uuid_value(v, p, u)) return false;
    out = u;
    return true;
  }

  bool boolean(const json& v, const path& p, bool& out) {
    if (!v.is_boolean()) return fail(detail::wrong_type(where_, p, detail::k_boolean, kind_of(v)));
    out = v.get<bool>();
    return true;
  }

  template <class Int>
  bool integer(const json& v, const path& p, bool nullable, std::optional<Int>& out,
               std::string_view int_type) {
    if (v.is_null() && nullable) {
      out.reset();
      return true;
    }
    if (!v.is_number())
      return fail(detail::wrong_type(
          where_, p, nullable ? detail::k_opt_integer : detail::k_integer, kind_of(v)));
    if (v.is_number_unsigned()) {
      const auto n = v.get<std::uint64_t>();
      if (n > static_cast<std::uint64_t>(std::numeric_limits<Int>::max()))
        return fail(detail::out_of_range(where_, p, int_type));
      out = static_cast<Int>(n);
      return true;
    }
    if (v.is_number_integer()) {
      const auto n = v.get<std::int64_t>();
      if (n < std::numeric_limits<Int>::min() || n > std::numeric_limits<Int>::max())
        return fail(detail::out_of_range(where_, p, int_type));
      out = static_cast<Int>(n);
      return true;
    }
    return fail(detail::out_of_range(where_, p, int_type));
  }

  template <class Int>
  bool required_integer(const json& v, const path& p, Int& out, std::string_view int_type) {
    std::optional<Int> n;
    if (!integer(v, p, false, n, int_type)) return false;
    out = *n;
    return true;
  }

  bool opt_string(const json& v, const path& p, std::optional<std::string>& out) {
    if (v.is_null()) {
      out.reset();
      return true;
    }
    if (!v.is_string())
      return fail(detail::wrong_type(where_, p, detail::k_opt_string, kind_of(v)));
    out = v.get<std::string>();
    return true;
  }

  bool string_array(const json& v, const path& p, bool nullable, std::vector<std::string>& out) {
    out.clear();
    if (v.is_null() && nullable) return true;
    if (!v.is_array())
      return fail(detail::wrong_type(where_, p, nullable ? detail::k_opt_array : detail::k_array,
                                     kind_of(v)));
    std::size_t i = 0;
    for (const auto& element : v) {
      std::string_view text;
      if (!string(element, p.at(i++), detail::k_string, text)) return false;
      out.emplace_back(text);
    }
    return true;
  }

  /// The member `key` of object `obj`, or nullptr.
  static const json* member(const json& obj, const char* key) {
    const auto it = obj.find(key);
    return it == obj.end() ? nullptr : &*it;
  }

  const json* required(const json& obj, const path& p, const char* key) {
    const json* m = member(obj, key);
    if (m == nullptr) fail(detail::missing_field(where_, p.field(key)));
    return m;
  }

  // Optional members: absent and null are the same, so absent simply leaves the default.
  template <class Read>
  bool optional(const json& obj, const path& p, const char* key, Read read) {
    const json* m = member(obj, key);
    return m == nullptr || read(*m, p.field(key));
  }

  bool job_item(const json& v, const path& p, export_job_item& out) {
    if (!object(v, p)) return false;
    const json* id = required(v, p, "accountingEntryId");
    if (id == nullptr || !uuid_value(*id, p.field("accountingEntryId"), out.accounting_entry_id))
      return false;
    const json* status = required(v, p, "status");
    if (status == nullptr) return false;
    if (status->is_null()) {
      out.status = item_status::pending;
      deviate(p.field("status"), "null (read as pending)");
    } else {
      std::string_view text;
      if (!string(*status, p.field("status"), detail::k_string, text)) return false;
      out.status = parse_item_status(text);
      if (out.status == item_status::unknown) out.status_text.assign(text);
    }
    if (!lenient(
            v, p, "exportJobId", true,
            [&](const json& m, const path& mp) { return uuid_value(m, mp, out.export_job_id); },
            [&] { out.export_job_id = uuid{}; }))
      return false;
    auto& t = out.tracking;
    return lenient_opt_string(v, p, "exportedAt", t.exported_at) &&
           lenient_opt_string(v, p, "externalId", t.external_id) &&
           lenient_opt_string(v, p, "externalUrl", t.external_url) &&
           lenient_opt_string(v, p, "failureReason", t.failure_reason) &&
           lenient_opt_string(v, p, "failureReasonType", t.failure_reason_type);
  }

  bool item_date(const json& v, const path& p, export_item_date& out) {
    if (!object(v, p)) return false;
    const json* id = required(v, p, "accountingEntryId");
    if (id == nullptr || !uuid_value(*id, p.field("accountingEntryId"), out.accounting_entry_id))
      return false;
    const json* date = member(v, "date");
    const path dp = p.field("date");
    if (date == nullptr) {
      deviate(dp, "missing (the item is undated)");
      return true;
    }
    return tolerant(dp, [&] {
      std::string_view text;
      if (!string(*date, dp, detail::k_date_time, text)) return false;
      const auto d = parse_date_lenient(text);
      out.date_ms = d.epoch_ms;
      if (d.form == date_form::date_only) deviate(dp, "a date without a time (midnight UTC)");
      if (d.form == date_form::zoneless) deviate(dp, "a date-time without a zone (UTC)");
      if (d.form == date_form::unparsable) return fail(detail::invalid_date(where_, dp, text));
      return true;
    });
  }

  bool job(const json& v, const path& p, export_job& out) {
    if (!object(v, p)) return false;
    auto req = [&](const char* key, auto read) {
      const json* m = required(v, p, key);
      return m != nullptr && read(*m, p.field(key));
    };
    return req("id", [&](const json& m, const path& mp) { return uuid_value(m, mp, out.id); }) &&
           req("companyId",
               [&](const json& m, const path& mp) { return uuid_value(m, mp, out.company_id); }) &&
           req("status",
               [&](const json& m, const path& mp) {
                 std::string_view text;
                 if (!string(m, mp, detail::k_string, text)) return false;
                 out.status = parse_job_status(text);
                 out.status_text.assign(text);
                 return true;
               }) &&
           req("createdAt",
               [&](const json& m, const path& mp) {
                 std::string_view text;
                 if (!string(m, mp, detail::k_date_time, text)) return false;
                 out.created_at.assign(text);
                 return true;
               }) &&
           lenient(
               v, p, "createdBy", false,
               [&](const json& m, const path& mp) { return opt_uuid(m, mp, out.created_by); },
               [&] { out.created_by.reset(); }) &&
           lenient_opt_string(v, p, "startedAt", out.started_at) &&
           lenient_opt_string(v, p, "completedAt", out.completed_at) &&
           lenient_opt_string(v, p, "lastUpdatedAt", out.last_updated_at) &&
           lenient_opt_string(v, p, "expiredAt", out.expired_at) &&
           lenient(
               v, p, "expiresIn", true,
               [&](const json& m, const path& mp) {
                 return required_integer(m, mp, out.expires_in, "int32");
               },
               [&] { out.expires_in = 0; }) &&
           lenient(
               v, p, "isInteractive", true,
               [&](const json& m, const path& mp) { return boolean(m, mp, out.is_interactive); },
               [&] { out.is_interactive = false; }) &&
           lenient(
               v, p, "numberOfItems", true,
               [&](const json& m, const path& mp) {
                 return required_integer(m, mp, out.number_of_items, "int64");
               },
               [&] { out.number_of_items = -1; }) &&
           lenient(
               v, p, "vendorBasedBookkeeping", true,
               [&](const json& m, const path& mp) {
                 return boolean(m, mp, out.vendor_based_bookkeeping);
               },
               [&] { out.vendor_based_bookkeeping = false; }) &&
           lenient_opt_string(v, p, "failureReason", out.failure_reason) &&
           lenient_opt_string(v, p, "failureReasonType", out.failure_reason_type);
  }

  // Not relied on: see page_parser.cpp.
  bool current_request(const json& v, const path& p, current_request_pagination& out) {
    out = {};
    if (!object(v, p)) return false;
    const bool params_ok = lenient(
        v, p, "parameters", true,
        [&](const json& params, const path& pp) {
          if (!object(params, pp)) return false;
          for (const auto& [name, values] : params.items()) {
            std::vector<std::string> list;
            if (!string_array(values, pp.field(name), false, list)) return false;
            out.parameters.insert_or_assign(name, std::move(list));
          }
          return true;
        },
        [&] { out.parameters.clear(); });
    auto opt_list = [&](const char* key, std::vector<std::string>& field) {
      return lenient(
          v, p, key, false,
          [&](const json& m, const path& mp) { return string_array(m, mp, true, field); },
          [&] { field.clear(); });
    };
    return params_ok && lenient_opt_string(v, p, "after", out.after) &&
           lenient_opt_string(v, p, "before", out.before) &&
           lenient(
               v, p, "limit", false,
               [&](const json& m, const path& mp) {
                 return integer(m, mp, true, out.limit, "int32");
               },
               [&] { out.limit.reset(); }) &&
           lenient(
               v, p, "offset", false,
               [&](const json& m, const path& mp) {
                 return integer(m, mp, true, out.offset, "int64");
               },
               [&] { out.offset.reset(); }) &&
           opt_list("sortingKeys", out.sorting_keys) && opt_list("sortingOrder", out.sorting_order);
  }

  /// endCursor is relied on only when there is a next page: a fault in it fails a page that
  /// has one and is a deviation on a page that has none.
  bool end_cursor(const json& v, const path& p, page_info& out) {
    const json* m = member(v, "endCursor");
    if (m == nullptr) return true;
    if (out.has_next_page) return opt_string(*m, p.field("endCursor"), out.end_cursor);
    return tolerant(p.field("endCursor"), [&] {
      if (opt_string(*m, p.field("endCursor"), out.end_cursor)) return true;
      out.end_cursor.reset();
      return false;
    });
  }

  bool page_info_value(const json& v, const path& p, page_info& out) {
    if (!object(v, p)) return false;
    const json* next = required(v, p, "hasNextPage");
    if (next == nullptr || !boolean(*next, p.field("hasNextPage"), out.has_next_page)) return false;
    return lenient(
               v, p, "currentRequestPagination", true,
               [&](const json& m, const path& mp) {
                 return current_request(m, mp, out.current_request);
               },
               [&] { out.current_request = {}; }) &&
           lenient(
               v, p, "hasPreviousPage", true,
               [&](const json& m, const path& mp) { return boolean(m, mp, out.has_previous_page); },
               [&] { out.has_previous_page = false; }) &&
           end_cursor(v, p, out) && lenient_opt_string(v, p, "startCursor", out.start_cursor) &&
           lenient(
               v, p, "total", false,
               [&](const json& m, const path& mp) {
                 return integer(m, mp, true, out.total, "int64");
               },
               [&] { out.total.reset(); });
  }

  template <class T, class ReadItem>
  bool list_page(const json& doc, page<T>& out, ReadItem item) {
    const path root;
    if (!object(doc, root)) return false;
    const json* data = required(doc, root, "data");
    if (data == nullptr) return false;
    const path dp = root.field("data");
    if (!data->is_array())
      return fail(detail::wrong_type(where_, dp, detail::k_array, kind_of(*data)));
    out.data.reserve(data->size());
    std::size_t i = 0;
    for (const auto& element : *data)
      if (!item(*this, element, dp.at(i++), out.data.emplace_back())) return false;
    const json* pagination = required(doc, root, "pagination");
    return pagination != nullptr &&
           page_info_value(*pagination, root.field("pagination"), out.pagination);
  }

  bool unexpected(const std::exception& e) {
    return fail(detail::malformed(where_, short_reason(e.what()), std::nullopt, body_));
  }

 private:
  std::string_view where_;
  std::string_view body_;
  std::optional<error<codec_errc>> err_;
  contract_deviations* dev_ = nullptr;
};

// Parses `body` and runs `decode` on the DOM; nlohmann exceptions never leave.
template <class T, class Decode>
decode_result<T> decode(std::string_view body, std::string_view where, Decode decode_doc) {
  dom_reader r(where, body);
  try {
    json doc;
    if (!r.parse(doc)) return std::move(r).take_error();
    T out{};
    contract_deviations ignored;  // bodies without deviations (error bodies) never record any
    if constexpr (requires { out.deviations; })
      r.deviations_to(&out.deviations);
    else
      r.deviations_to(&ignored);
    if (!decode_doc(r, doc, out)) return std::move(r).take_error();
    return out;
  } catch (const json::exception& e) {
    // Unreachable by design (types are checked before every access); kept as the edge.
    r.unexpected(e);
    return std::move(r).take_error();
  }
}

}  // namespace

decode_result<export_job> decode_job(std::string_view body, std::string_view where) {
  return decode<export_job>(body, where, [](dom_reader& r, const json& doc, export_job& out) {
    const path root;
    if (!r.object(doc, root)) return false;
    const json* data = r.required(doc, root, "data");
    return data != nullptr && r.job(*data, root.field("data"), out);
  });
}

decode_result<page<export_job>> decode_job_list(std::string_view body, std::string_view where) {
  return decode<page<export_job>>(
      body, where, [](dom_reader& r, const json& doc, page<export_job>& out) {
        return r.list_page(doc, out,
                           [](dom_reader& rr, const json& v, const path& p, export_job& job) {
                             return rr.job(v, p, job);
                           });
      });
}

decode_result<error_body> decode_error_body(std::string_view body) {
  return decode<error_body>(
      body, "error body", [](dom_reader& r, const json& doc, error_body& out) {
        const path root;
        if (!r.object(doc, root)) return false;
        const json* type = r.required(doc, root, "type");
        std::string_view text;
        if (type == nullptr || !r.string(*type, root.field("type"), detail::k_string, text))
          return false;
        out.type.assign(text);
        return r.optional(doc, root, "message", [&](const json& m, const path& mp) {
          return r.opt_string(m, mp, out.message);
        });
      });
}

decode_result<page<export_job_item>> decode_job_items_reference(std::string_view body,
                                                                std::string_view where) {
  return decode<page<export_job_item>>(
      body, where, [](dom_reader& r, const json& doc, page<export_job_item>& out) {
        return r.list_page(doc, out,
                           [](dom_reader& rr, const json& v, const path& p, export_job_item& it) {
                             return rr.job_item(v, p, it);
                           });
      });
}

decode_result<page<export_item_date>> decode_item_dates_reference(std::string_view body,
                                                                  std::string_view where) {
  return decode<page<export_item_date>>(
      body, where, [](dom_reader& r, const json& doc, page<export_item_date>& out) {
        return r.list_page(doc, out,
                           [](dom_reader& rr, const json& v, const path& p, export_item_date& it) {
                             return rr.item_date(v, p, it);
                           });
      });
}

}  // namespace ei::api
