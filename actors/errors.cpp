#include "actors/errors.hpp"

namespace ei::actors {

std::string_view to_string(fetch_errc c) noexcept {
  switch (c) {
    case fetch_errc::invalid_url:
      return "invalid_url";
    case fetch_errc::invalid_config:
      return "invalid_config";
    case fetch_errc::connect_failed:
      return "connect_failed";
    case fetch_errc::tls_failed:
      return "tls_failed";
    case fetch_errc::timeout:
      return "timeout";
    case fetch_errc::connection_reset:
      return "connection_reset";
    case fetch_errc::truncated_body:
      return "truncated_body";
    case fetch_errc::response_too_large:
      return "response_too_large";
    case fetch_errc::http_status:
      return "http_status";
    case fetch_errc::retries_exhausted:
      return "retries_exhausted";
    case fetch_errc::cancelled:
      return "cancelled";
    case fetch_errc::bad_encoding:
      return "bad_encoding";
    case fetch_errc::decode:
      return "decode";
  }
  return {};
}

fetch_errc to_fetch_errc(api::http_errc c) noexcept {
  switch (c) {
    case api::http_errc::invalid_url:
      return fetch_errc::invalid_url;
    case api::http_errc::invalid_config:
      return fetch_errc::invalid_config;
    case api::http_errc::connect_failed:
      return fetch_errc::connect_failed;
    case api::http_errc::tls_failed:
      return fetch_errc::tls_failed;
    case api::http_errc::timeout:
      return fetch_errc::timeout;
    case api::http_errc::connection_reset:
      return fetch_errc::connection_reset;
    case api::http_errc::truncated_body:
      return fetch_errc::truncated_body;
    case api::http_errc::response_too_large:
      return fetch_errc::response_too_large;
    case api::http_errc::http_status:
      return fetch_errc::http_status;
    case api::http_errc::retries_exhausted:
      return fetch_errc::retries_exhausted;
    case api::http_errc::cancelled:
      return fetch_errc::cancelled;
    case api::http_errc::bad_encoding:
      return fetch_errc::bad_encoding;
  }
  return fetch_errc::invalid_config;  // not reached: every code is listed above
}

std::string_view to_string(job_errc c) noexcept {
  switch (c) {
    case job_errc::job_not_in_progress:
      return "job_not_in_progress";
    case job_errc::job_expired:
      return "job_expired";
    case job_errc::job_finished_elsewhere:
      return "job_finished_elsewhere";
    case job_errc::http_status:
      return "http_status";
    case job_errc::invalid_url:
      return "invalid_url";
    case job_errc::invalid_config:
      return "invalid_config";
    case job_errc::connect_failed:
      return "connect_failed";
    case job_errc::tls_failed:
      return "tls_failed";
    case job_errc::timeout:
      return "timeout";
    case job_errc::connection_reset:
      return "connection_reset";
    case job_errc::truncated_body:
      return "truncated_body";
    case job_errc::response_too_large:
      return "response_too_large";
    case job_errc::retries_exhausted:
      return "retries_exhausted";
    case job_errc::cancelled:
      return "cancelled";
    case job_errc::bad_encoding:
      return "bad_encoding";
    case job_errc::decode:
      return "decode";
    case job_errc::cursor_rejected:
      return "cursor_rejected";
    case job_errc::limit_rejected:
      return "limit_rejected";
    case job_errc::cursor_cycle:
      return "cursor_cycle";
    case job_errc::empty_pages:
      return "empty_pages";
    case job_errc::missing_end_cursor:
      return "missing_end_cursor";
    case job_errc::parallel_listing_mismatch:
      return "parallel_listing_mismatch";
    case job_errc::short_listing:
      return "short_listing";
    case job_errc::item_of_another_job:
      return "item_of_another_job";
    case job_errc::discovery_failed:
      return "discovery_failed";
    case job_errc::downstream_timeout:
      return "downstream_timeout";
    case job_errc::downstream_protocol:
      return "downstream_protocol";
    case job_errc::downstream_down:
      return "downstream_down";
    case job_errc::store:
      return "store";
    case job_errc::report:
      return "report";
    case job_errc::internal:
      return "internal";
    case job_errc::interrupted:
      return "interrupted";
  }
  return {};
}

std::string job_failure::text() const {
  if (code == job_errc::http_status) return "http_" + std::to_string(http_status);
  return std::string(to_string(code));
}

job_failure to_job_failure(fetch_errc c, unsigned http_status) noexcept {
  switch (c) {
    case fetch_errc::invalid_url:
      return job_errc::invalid_url;
    case fetch_errc::invalid_config:
      return job_errc::invalid_config;
    case fetch_errc::connect_failed:
      return job_errc::connect_failed;
    case fetch_errc::tls_failed:
      return job_errc::tls_failed;
    case fetch_errc::timeout:
      return job_errc::timeout;
    case fetch_errc::connection_reset:
      return job_errc::connection_reset;
    case fetch_errc::truncated_body:
      return job_errc::truncated_body;
    case fetch_errc::response_too_large:
      return job_errc::response_too_large;
    case fetch_errc::http_status:
      return {job_errc::http_status, static_cast<std::uint16_t>(http_status)};
    case fetch_errc::retries_exhausted:
      return job_errc::retries_exhausted;
    case fetch_errc::cancelled:
      return job_errc::cancelled;
    case fetch_errc::bad_encoding:
      return job_errc::bad_encoding;
    case fetch_errc::decode:
      return job_errc::decode;
  }
  return job_errc::internal;  // not reached: every code is listed above
}

}  // namespace ei::actors
