// The Export API v3 data model as this stage needs it (see docs/api-contract.md).
// Ids are binary UUIDs: compact (16 bytes) and compared case-insensitively by construction.
// Enum fields keep values they do not recognise (status == unknown, raw text kept), because
// the v3 spec types them as plain strings; absent and null optional fields are the same.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "export_items/types.hpp"

namespace ei::api {

/// The statuses the contract names (not `unknown`), for parse_enum (common/enum_text.hpp).
inline constexpr std::array job_statuses{job_status::pending, job_status::in_progress,
                                         job_status::failed, job_status::completed,
                                         job_status::completed_with_errors};
inline constexpr std::array item_statuses{item_status::pending, item_status::in_progress,
                                          item_status::failed, item_status::successful,
                                          item_status::abandoned};

/// Unrecognised text maps to `unknown`; callers keep the raw text where it matters.
job_status parse_job_status(std::string_view text) noexcept;
item_status parse_item_status(std::string_view text) noexcept;

/// Parses an RFC 3339 date-time ("2023-11-07T05:31:56Z", optional fraction, `Z` or ±hh:mm)
/// into milliseconds since the Unix epoch (UTC).
std::optional<std::int64_t> parse_timestamp_ms(std::string_view text) noexcept;
/// How a data-layer `date` was written. The contract says RFC 3339 date-time; real pages also
/// carry a date alone ("2024-03-01": midnight UTC) or a date-time without a zone (read as UTC).
enum class date_form : std::uint8_t { rfc3339, date_only, zoneless, unparsable };
struct lenient_date {
  std::optional<std::int64_t> epoch_ms;  // empty when unparsable
  date_form form = date_form::unparsable;
};
/// parse_timestamp_ms, and failing that the two forms above.
lenient_date parse_date_lenient(std::string_view text) noexcept;

/// Formats milliseconds since the epoch as "YYYY-MM-DDTHH:MM:SSZ" (whole seconds).
std::string format_timestamp(std::int64_t epoch_ms);

/// ExportJobV3 (§5.1).
struct export_job {
  uuid id;
  uuid company_id;
  job_status status = job_status::unknown;
  std::string status_text;  // the raw text, always set
  std::string created_at;
  std::optional<uuid> created_by;
  std::optional<std::string> started_at;
  std::optional<std::string> completed_at;
  std::optional<std::string> last_updated_at;
  std::optional<std::string> expired_at;
  std::int32_t expires_in = 0;
  bool is_interactive = false;
  std::int64_t number_of_items = 0;
  bool vendor_based_bookkeeping = false;
  std::optional<std::string> failure_reason;
  std::optional<std::string> failure_reason_type;
  contract_deviations deviations;
};

/// ExportJobItemV3 (§5.2): the control layer.
struct export_job_item {
  uuid accounting_entry_id;
  uuid export_job_id;
  item_status status = item_status::unknown;
  std::string status_text;  // raw text, set only when status == unknown
  tracking_fields tracking;

  friend bool operator==(const export_job_item&, const export_job_item&) = default;
};

/// The two fields of ExportItemV3 (§5.3) that ordering needs; the rest is never kept.
struct export_item_date {
  uuid accounting_entry_id;
  std::optional<std::int64_t> date_ms;  // empty: the date did not parse (the item is undated)

  friend bool operator==(const export_item_date&, const export_item_date&) = default;
};

/// CursorPageCurrentRequestInfo (§3.2).
struct current_request_pagination {
  std::map<std::string, std::vector<std::string>> parameters;
  std::optional<std::string> after;
  std::optional<std::string> before;
  std::optional<std::int32_t> limit;
  std::optional<std::int64_t> offset;
  std::vector<std::string> sorting_keys;
  std::vector<std::string> sorting_order;

  friend bool operator==(const current_request_pagination&,
                         const current_request_pagination&) = default;
};

/// CursorPageInfo (§3.2).
struct page_info {
  current_request_pagination current_request;
  bool has_next_page = false;
  bool has_previous_page = false;
  std::optional<std::string> end_cursor;
  std::optional<std::string> start_cursor;
  std::optional<std::int64_t> total;

  friend bool operator==(const page_info&, const page_info&) = default;
};

/// A cursor-paginated list response: `data` plus `pagination`.
template <class T>
struct page {
  std::vector<T> data;
  page_info pagination;
  contract_deviations deviations;
};

/// ExceptionInfo (§3.3): only `type` is required.
struct error_body {
  std::string type;
  std::optional<std::string> message;
};

}  // namespace ei::api
