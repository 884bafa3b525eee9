// One style for the JSON configuration files (pipeline/config.cpp for `export-items run
// --config`, simulator/config.cpp for `export-items-sim --config` and the `embedded` section):
// a table from key to a setter that checks the value's type and range and stores it. Unknown
// keys, wrong types and values out of range are refused with a message naming the key's path
// (e.g. `c.json.http.max_attempts: must be between 1 and 100`); a null value keeps the default.
// Header-only over nlohmann/json: include it only where a config file is read.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "common/enum_text.hpp"

namespace ei::json_config {

using json = nlohmann::json;

enum class problem_kind : std::uint8_t { malformed, unknown_key, invalid_value };

/// What is wrong, naming where (`origin.key.sub: ...`).
struct problem {
  problem_kind kind;
  std::string message;
};

/// Checks one value and stores it; `path` names it (origin and keys) for the problem.
using setter = std::function<std::optional<problem>(const json& value, const std::string& path)>;
using keys = std::map<std::string, setter>;

inline problem invalid(const std::string& path, const std::string& what) {
  return {problem_kind::invalid_value, path + ": " + what};
}

/// Applies every key of `obj` (an object) through `table`; null values keep their default.
inline std::optional<problem> apply(const json& obj, const keys& table, const std::string& path) {
  if (!obj.is_object()) return problem{problem_kind::malformed, path + ": expected a JSON object"};
  for (const auto& [key, value] : obj.items()) {
    auto it = table.find(key);
    if (it == table.end())
      return problem{problem_kind::unknown_key, path + ": unknown key '" + key + "'"};
    if (value.is_null()) continue;
    if (auto p = it->second(value, path + "." + key)) return p;
  }
  return std::nullopt;
}

/// An integer in [min, max].
template <class Int>
setter integer(Int& target, std::int64_t min, std::int64_t max) {
  return [&target, min, max](const json& v, const std::string& path) -> std::optional<problem> {
    if (!v.is_number_integer()) return invalid(path, "expected an integer");
    // A value above INT64_MAX arrives as an unsigned: out of every range here.
    const auto x = v.is_number_unsigned() && v.get<std::uint64_t>() > INT64_MAX
                       ? std::optional<std::int64_t>{}
                       : std::optional<std::int64_t>{v.get<std::int64_t>()};
    if (!x || *x < min || *x > max)
      return invalid(path,
                     "must be between " + std::to_string(min) + " and " + std::to_string(max));
    target = static_cast<Int>(*x);
    return std::nullopt;
  };
}

/// Milliseconds in [min, max] (the key says `_ms`).
inline setter millis(std::chrono::milliseconds& target, std::int64_t min, std::int64_t max) {
  return [&target, min, max](const json& v, const std::string& path) -> std::optional<problem> {
    std::int64_t x = 0;
    if (auto p = integer(x, min, max)(v, path)) {
      if (!v.is_number_integer()) return invalid(path, "expected an integer (milliseconds)");
      p->message += " ms";
      return p;
    }
    target = std::chrono::milliseconds(x);
    return std::nullopt;
  };
}

/// A number (integer or not) in [min, max].
inline setter number(double& target, double min, double max) {
  return [&target, min, max](const json& v, const std::string& path) -> std::optional<problem> {
    if (!v.is_number()) return invalid(path, "expected a number");
    const auto x = v.get<double>();
    if (!(x >= min && x <= max))
      return invalid(path, "must be between " + json(min).dump() + " and " + json(max).dump());
    target = x;
    return std::nullopt;
  };
}

inline setter text(std::string& target) {
  return [&target](const json& v, const std::string& path) -> std::optional<problem> {
    if (!v.is_string()) return invalid(path, "expected a string");
    target = v.get<std::string>();
    return std::nullopt;
  };
}

inline setter boolean(bool& target) {
  return [&target](const json& v, const std::string& path) -> std::optional<problem> {
    if (!v.is_boolean()) return invalid(path, "expected true or false");
    target = v.get<bool>();
    return std::nullopt;
  };
}

/// One of an enum's texts (common/enum_text.hpp).
template <class E, std::size_t N>
setter one_of(E& target, const std::array<E, N>& values) {
  return [&target, &values](const json& v, const std::string& path) -> std::optional<problem> {
    const std::string given = v.is_string() ? v.get<std::string>() : v.dump();
    auto e = v.is_string() ? parse_enum(given, values) : std::nullopt;
    if (!e)
      return invalid(path, "expected " + enum_choices(values, "\"") + ", got " +
                               (v.is_string() ? "\"" + given + "\"" : given));
    target = *e;
    return std::nullopt;
  };
}

/// An object whose keys `table_of(target)` describes.
template <class T, class Table>
setter object(T& target, Table table_of) {
  return [&target, table_of](const json& v, const std::string& path) -> std::optional<problem> {
    const keys table = table_of(target);
    if (!v.is_object()) return invalid(path, "expected a JSON object");
    return apply(v, table, path);
  };
}

/// Any value: `comment` keys and the like.
inline setter ignored() {
  return [](const json&, const std::string&) -> std::optional<problem> { return std::nullopt; };
}

}  // namespace ei::json_config
