// Decoding Export API v3 response bodies (docs/api-contract.md §3, §4, §5) into the
// model of api/model.hpp.
//
// Two decoders read the same documents with the same rules:
// - page_parser (simdjson on-demand) for the hot path: the item pages of a job;
// - free functions on nlohmann::json for small bodies (jobs, error bodies) and as reference
//   decoders that cross-check the fast path in tests and serve as a benchmark baseline.
//
// Rules, strict where the contract is strict and lenient where it is lenient:
// - A missing required field, or a required field of the wrong JSON type (null included), is an
//   error naming the request (`where`), the field path and the item index, e.g.
//   "GET /v3/export-jobs/<id>/items: data[17].accountingEntryId: expected a UUID string, got
//   number".
// - Unknown fields are ignored. Unknown enum strings are kept (status == unknown, raw text kept).
// - For optional fields null and absent are the same.
// - A UUID that is not canonical 8-4-4-4-12 hex, an unparsable data-layer `date`, or an integer
//   outside its range (or with a fraction) is invalid_value.
// - Malformed or truncated JSON, an empty body and content after the document are malformed_json.
// Messages quote at most ~80 characters of the body and never the body as a whole.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "api/model.hpp"
#include "common/result.hpp"

namespace ei::api {

enum class codec_errc : std::uint8_t {
  malformed_json,  ///< not JSON, truncated, or trailing content after the document
  missing_field,   ///< a required field is absent
  wrong_type,      ///< a field (or the document) has the wrong JSON type
  invalid_value,   ///< right JSON type, but the text or number is not acceptable
};

std::string_view to_string(codec_errc code) noexcept;

/// The version of the simdjson library the page parser was built with (`--version`).
std::string parser_version();

template <class T>
using decode_result = result<T, codec_errc>;

/// A body followed by at least `padded_body::padding` readable bytes of its own buffer (any
/// content), so that simdjson can parse it where it lies. http::response::body is one
/// (api/http_client.hpp): `padded_body::of(response.body)`.
struct padded_body {
  static constexpr std::size_t padding = 64;  // SIMDJSON_PADDING
  std::string_view text;
  std::size_t capacity = 0;  // bytes readable from text.data(), padding included

  static padded_body of(const std::string& s) noexcept { return {s, s.capacity()}; }
  bool padded() const noexcept { return capacity >= text.size() + padding; }
};

/// The fast decoder for item pages, built on simdjson's on-demand API.
///
/// Owns a simdjson parser and a padded scratch buffer, both reused across calls, so steady-state
/// parsing allocates only the decoded values. A `padded_body` is parsed in place (the HTTP
/// client's bodies: no copy); a `std::string_view` (or a padded_body short of its padding) is
/// copied into the scratch buffer first (simdjson reads up to 64 bytes past the end of its
/// input). The caller's buffer is never kept or written. Not thread-safe: use one page_parser
/// per actor or thread. Never throws except std::bad_alloc.
///
/// `where` names the request (e.g. "GET /v3/export-jobs/<id>/items?after=X") and prefixes
/// every error message.
///
/// Difference from the reference decoders: values of fields this parser skips (unknown fields,
/// and in item_dates() everything but accountingEntryId and date) are checked only for JSON
/// structure (brackets, strings, UTF-8), not for the spelling of their scalars. A document that
/// is malformed only inside a skipped scalar (e.g. `"note": tru`) is accepted here and rejected
/// by the reference decoders. item_dates() stops reading an item once it has both of its
/// fields, so of duplicate keys it takes the first where the reference decoders take the last.
class page_parser {
 public:
  page_parser();
  ~page_parser();
  page_parser(page_parser&&) noexcept;
  page_parser& operator=(page_parser&&) noexcept;
  page_parser(const page_parser&) = delete;
  page_parser& operator=(const page_parser&) = delete;

  /// A page of GET /v3/export-jobs/{jobId}/items (control layer, §4.5): ExportJobItemV3s.
  decode_result<page<export_job_item>> job_items(std::string_view body, std::string_view where);
  decode_result<page<export_job_item>> job_items(padded_body body, std::string_view where);

  /// A page of GET /v3/export-items (data layer, §4.7), reduced to what ordering needs: each
  /// item's accountingEntryId and date (RFC 3339 → epoch ms). Everything else is skipped, so
  /// other fields, even required ones, are not checked.
  decode_result<page<export_item_date>> item_dates(std::string_view body, std::string_view where);
  decode_result<page<export_item_date>> item_dates(padded_body body, std::string_view where);

  /// Bytes currently held by the scratch buffer (grows to the largest body seen plus padding).
  std::size_t scratch_capacity() const noexcept;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// `{"data": ExportJobV3}` (GET /v3/export-jobs/{jobId}, POST /v3/export-jobs).
decode_result<export_job> decode_job(std::string_view body, std::string_view where);

/// `{"data": [ExportJobV3], "pagination": ...}` (GET /v3/export-jobs).
decode_result<page<export_job>> decode_job_list(std::string_view body, std::string_view where);

/// ExceptionInfo `{"type": ..., "message": ...}` (§3.3). Messages name "error body" as `where`.
decode_result<error_body> decode_error_body(std::string_view body);

/// Reference decoders (nlohmann DOM) for the documents page_parser reads; same rules, same
/// error codes, and for every error but malformed_json the same messages. Slow: for tests and
/// benchmarks, not for the hot path.
decode_result<page<export_job_item>> decode_job_items_reference(std::string_view body,
                                                                std::string_view where);
decode_result<page<export_item_date>> decode_item_dates_reference(std::string_view body,
                                                                  std::string_view where);

}  // namespace ei::api
