// Private to api/: the error vocabulary shared by page_parser.cpp (simdjson) and json_codec.cpp
// (nlohmann), so that both decoders describe the same fault with the same message.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "api/codec.hpp"

namespace ei::api::detail {

/// The JSON type of a value, named as in nlohmann::json::type_name().
enum class json_kind : std::uint8_t { null_value, boolean, number, string, array, object };

std::string_view name(json_kind kind) noexcept;

/// One step of a field path, chained through the decoder's stack frames; its text is built
/// only when an error is reported, so the hot path pays nothing for it.
struct path {
  static constexpr std::size_t no_index = static_cast<std::size_t>(-1);

  const path* parent = nullptr;
  std::string_view key;          // a field name, or empty for an index step
  std::size_t index = no_index;  // an array index

  path field(std::string_view k) const noexcept { return path{this, k, no_index}; }
  path at(std::size_t i) const noexcept { return path{this, {}, i}; }
  /// "data[17].accountingEntryId"; the root alone is "(document)".
  std::string to_string() const;
  /// The same with indices elided, "data[].accountingEntryId": what deviations are counted by.
  std::string to_template() const;
};

/// `text` in double quotes, cut to ~80 characters, with control and non-ASCII bytes escaped.
std::string quote(std::string_view text);

// The expected-type phrases both decoders use.
inline constexpr std::string_view k_object = "an object";
inline constexpr std::string_view k_array = "an array";
inline constexpr std::string_view k_string = "a string";
inline constexpr std::string_view k_uuid = "a UUID string";
inline constexpr std::string_view k_boolean = "a boolean";
inline constexpr std::string_view k_integer = "an integer";
inline constexpr std::string_view k_date_time = "an RFC 3339 date-time string";
inline constexpr std::string_view k_opt_string = "a string or null";
inline constexpr std::string_view k_opt_uuid = "a UUID string or null";
inline constexpr std::string_view k_opt_integer = "an integer or null";
inline constexpr std::string_view k_opt_array = "an array or null";

error<codec_errc> missing_field(std::string_view where, const path& p);

/// Records a deviation at `p` (a field the stage does not rely on): counted by p's template,
/// `what` ("null", "missing", "expected a boolean, got string", ...) in the first example.
void deviate(contract_deviations& out, const path& p, std::string_view what);
/// The deviation of a decode error that was tolerated: its message without the request.
void deviate(contract_deviations& out, const path& p, const error<codec_errc>& e,
             std::string_view where);
error<codec_errc> wrong_type(std::string_view where, const path& p, std::string_view expected,
                             json_kind got);
error<codec_errc> invalid_value(std::string_view where, const path& p, std::string_view detail);
error<codec_errc> invalid_uuid(std::string_view where, const path& p, std::string_view text);
error<codec_errc> invalid_date(std::string_view where, const path& p, std::string_view text);
error<codec_errc> out_of_range(std::string_view where, const path& p, std::string_view int_type);
/// `byte`, when known, is the offset of the fault in `body`; a short excerpt from there is
/// quoted.
error<codec_errc> malformed(std::string_view where, std::string_view reason,
                            std::optional<std::size_t> byte, std::string_view body);

}  // namespace ei::api::detail
