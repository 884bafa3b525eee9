// The stage's error vocabulary, from the fetcher to the summary: one enum per component, each
// with one `to_string` (the single source of its wire and summary text, pinned by tests and
// docs) and a category (`error_category<Code>`: a name, the CAF 0.17 error category atom it is
// registered under in actors/message_types.cpp, and its last code, which
// tests/actors/errors_test.cpp iterates to).
//
//   api::http_errc      the HTTP client (api/http_error.hpp)
//   api::codec_errc     decoding a page or a small body (api/codec.hpp)
//   storage::store_errc the state store (storage/state_store.hpp)
//   actors::fetch_errc  why a fetch failed (fetch_failure::code): the HTTP client's codes
//                       plus `decode`
//   actors::job_errc    why a job failed (job_outcome::failure, the summary's `reasonCode`,
//                       the job record's `failure_code`)
//
// Codes are compared and switched on as enums, never as text; a switch over a code has no
// `default:`, so the compiler (-Wswitch, warnings are errors) names every place a new code
// must be handled.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/make_message.hpp>
#include <caf/meta/type_name.hpp>

#include "api/codec.hpp"
#include "api/http_error.hpp"
#include "export_items/errors.hpp"  // job_errc, job_failure
#include "storage/state_store.hpp"

namespace ei::actors {

/// Why a fetch failed: the HTTP client's codes (same names, same text) plus `decode` (the
/// body broke the contract).
enum class fetch_errc : std::uint8_t {
  invalid_url,
  invalid_config,
  connect_failed,
  tls_failed,
  timeout,
  connection_reset,
  truncated_body,
  response_too_large,
  http_status,  // a non-retryable status (fetch_failure::http_status holds it)
  retries_exhausted,
  cancelled,
  bad_encoding,
  decode,
};
std::string_view to_string(fetch_errc c) noexcept;
fetch_errc to_fetch_errc(api::http_errc c) noexcept;

/// The job failure a failed fetch makes.
job_failure to_job_failure(fetch_errc c, unsigned http_status) noexcept;

}  // namespace ei::actors

namespace ei {

/// The category of a component's codes (see the top of this file).
template <class Code>
struct error_category;

template <>
struct error_category<api::http_errc> {
  static constexpr std::string_view name = "http";
  static constexpr caf::atom_value atom = caf::atom("ei_http");
  static constexpr api::http_errc last = api::http_errc::bad_encoding;
};

template <>
struct error_category<api::codec_errc> {
  static constexpr std::string_view name = "codec";
  static constexpr caf::atom_value atom = caf::atom("ei_codec");
  static constexpr api::codec_errc last = api::codec_errc::invalid_value;
};

template <>
struct error_category<storage::store_errc> {
  static constexpr std::string_view name = "store";
  static constexpr caf::atom_value atom = caf::atom("ei_store");
  static constexpr storage::store_errc last = storage::store_errc::invalid_argument;
};

template <>
struct error_category<actors::fetch_errc> {
  static constexpr std::string_view name = "fetch";
  static constexpr caf::atom_value atom = caf::atom("ei_fetch");
  static constexpr actors::fetch_errc last = actors::fetch_errc::decode;
};

template <>
struct error_category<actors::job_errc> {
  static constexpr std::string_view name = "job";
  static constexpr caf::atom_value atom = caf::atom("ei_job");
  static constexpr actors::job_errc last = actors::job_errc::interrupted;
};

/// A code as a caf::error of its category (for an actor's error reply; the category is
/// registered by actors::add_message_types, so the actor system renders its text). CAF 0.17
/// reads the value 0 as "no error", so the caf::error's value is the code + 1
/// (from_caf_error_value undoes it).
template <class Code>
caf::error to_caf_error(Code code, std::string context = {}) {
  return caf::error(static_cast<std::uint8_t>(static_cast<std::uint8_t>(code) + 1),
                    error_category<Code>::atom,
                    context.empty() ? caf::message{} : caf::make_message(std::move(context)));
}

/// The code of a caf::error value made by to_caf_error (its category already checked).
template <class Code>
constexpr Code from_caf_error_value(std::uint8_t value) noexcept {
  return static_cast<Code>(value - 1);
}

}  // namespace ei
