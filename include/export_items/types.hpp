// The values of Pleo's Export API v3 that the embedding API carries (ids, statuses, an item's
// tracking fields, counted contract deviations). Public: include/export_items/protocol.hpp
// hands them to a host. Internal code includes them through api/model.hpp, which has the rest
// of the model. Namespace ei::api is the implementation's; hosts use the export_items:: names.
// Each type has its CAF `inspect` next to it (the messages that carry them are serialisable),
// and `ei::actors::wire::opt` carries a std::optional field (CAF 0.17 has no inspector for it)
// as a presence flag followed by the value.
#pragma once

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <caf/error.hpp>
#include <caf/meta/type_name.hpp>

namespace ei::actors::wire {

/// A std::optional field: `f(..., wire::opt(x.field), ...)` inside an inspect overload.
template <class T>
struct optional_field {
  std::optional<T>* x;
};

template <class T>
optional_field<T> opt(std::optional<T>& x) {
  return {&x};
}

template <class Inspector, class T>
typename Inspector::result_type inspect(Inspector& f, optional_field<T>& o) {
  if constexpr (Inspector::reads_state) {  // saving (or printing)
    bool has = o.x->has_value();
    if (has) return f(has, **o.x);
    return f(has);
  } else {  // loading
    bool has = false;
    if (auto err = f(has)) return err;
    if (!has) {
      o.x->reset();
      return {};
    }
    T value{};
    if (auto err = f(value)) return err;
    *o.x = std::move(value);
    return {};
  }
}

}  // namespace ei::actors::wire

namespace ei::api {

/// A UUID in binary form. parse() accepts the canonical 8-4-4-4-12 hex form in any case;
/// to_string() always yields lowercase canonical text.
struct uuid {
  std::array<std::uint8_t, 16> bytes{};

  static std::optional<uuid> parse(std::string_view text) noexcept;
  std::string to_string() const;
  /// Writes the 36 canonical characters to `out` (no terminator).
  void format_to(char* out) const noexcept;
  bool is_nil() const noexcept;

  friend auto operator<=>(const uuid&, const uuid&) = default;
  friend bool operator==(const uuid&, const uuid&) = default;
};

struct uuid_hash {
  std::size_t operator()(const uuid& u) const noexcept;
};

enum class job_status : std::uint8_t {
  pending,
  in_progress,
  failed,
  completed,
  completed_with_errors,
  unknown,
};

enum class item_status : std::uint8_t {
  pending,
  in_progress,
  failed,
  successful,
  abandoned,
  unknown,
};

std::string_view to_string(job_status s) noexcept;
std::string_view to_string(item_status s) noexcept;

/// Where responses strayed from the contract in fields the stage does not rely on (a required
/// field missing, null or of another type; a lenient date; a null status), counted by field
/// path with indices elided ("data[].status") and the first example seen. Such a response is
/// still used; fields the stage relies on stay strict (a fault there is a decode error).
struct deviation_count {
  std::string path;
  std::uint64_t count = 0;
  std::string example;  // e.g. "data[17].status: null (read as pending)"

  friend bool operator==(const deviation_count&, const deviation_count&) = default;
};
struct contract_deviations {
  std::vector<deviation_count> by_path;  // few distinct paths: a linear search is enough

  void add(std::string_view path, std::string_view example, std::uint64_t n = 1);
  void merge(const contract_deviations& other);
  std::uint64_t total() const noexcept;
  bool empty() const noexcept { return by_path.empty(); }
  friend bool operator==(const contract_deviations&, const contract_deviations&) = default;
};

/// The tracking fields an ExportJobItemV3 carries besides its key and status (§5.2).
struct tracking_fields {
  std::optional<std::string> exported_at;
  std::optional<std::string> external_id;
  std::optional<std::string> external_url;
  std::optional<std::string> failure_reason;
  std::optional<std::string> failure_reason_type;

  bool empty() const noexcept {
    return !exported_at && !external_id && !external_url && !failure_reason && !failure_reason_type;
  }
  friend bool operator==(const tracking_fields&, const tracking_fields&) = default;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, uuid& x) {
  return f(caf::meta::type_name("ei::api::uuid"), x.bytes);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, deviation_count& x) {
  return f(caf::meta::type_name("ei::api::deviation_count"), x.path, x.count, x.example);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, contract_deviations& x) {
  return f(caf::meta::type_name("ei::api::contract_deviations"), x.by_path);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, tracking_fields& x) {
  using actors::wire::opt;
  return f(caf::meta::type_name("ei::api::tracking_fields"), opt(x.exported_at), opt(x.external_id),
           opt(x.external_url), opt(x.failure_reason), opt(x.failure_reason_type));
}

}  // namespace ei::api
