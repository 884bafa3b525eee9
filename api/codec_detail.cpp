#include "api/codec_detail.hpp"

#include <vector>

namespace ei::api {

std::string_view to_string(codec_errc code) noexcept {
  switch (code) {
    case codec_errc::malformed_json:
      return "malformed_json";
    case codec_errc::missing_field:
      return "missing_field";
    case codec_errc::wrong_type:
      return "wrong_type";
    case codec_errc::invalid_value:
      return "invalid_value";
  }
  return "unknown codec_errc";
}

namespace detail {
namespace {

constexpr std::size_t k_max_quoted = 80;

std::string prefix(std::string_view where, const path& p) {
  std::string out;
  out.reserve(where.size() + 48);
  out.append(where);
  out.append(": ");
  out.append(p.to_string());
  out.append(": ");
  return out;
}

bool plain_key(std::string_view key) noexcept {
  if (key.size() > k_max_quoted) return false;
  for (const char c : key) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f || c == '"' || c == '\\') return false;
  }
  return true;
}

}  // namespace

std::string_view name(json_kind kind) noexcept {
  switch (kind) {
    case json_kind::null_value:
      return "null";
    case json_kind::boolean:
      return "boolean";
    case json_kind::number:
      return "number";
    case json_kind::string:
      return "string";
    case json_kind::array:
      return "array";
    case json_kind::object:
      return "object";
  }
  return "?";
}

std::string path::to_string() const {
  std::vector<const path*> steps;
  for (const path* p = this; p != nullptr && p->parent != nullptr; p = p->parent)
    steps.push_back(p);
  if (steps.empty()) return "(document)";
  std::string out;
  for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
    const path& step = **it;
    if (step.index != no_index) {
      out += '[';
      out += std::to_string(step.index);
      out += ']';
    } else {
      if (!out.empty()) out += '.';
      // Keys under `parameters` come from the body: quote any that is long or not plain
      // printable ASCII, so a message stays one short line.
      if (plain_key(step.key))
        out.append(step.key);
      else
        out += quote(step.key);
    }
  }
  return out;
}

std::string path::to_template() const {
  std::vector<const path*> steps;
  for (const path* p = this; p != nullptr && p->parent != nullptr; p = p->parent)
    steps.push_back(p);
  if (steps.empty()) return "(document)";
  std::string out;
  for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
    const path& step = **it;
    if (step.index != no_index) {
      out += "[]";
    } else {
      if (!out.empty()) out += '.';
      if (plain_key(step.key))
        out.append(step.key);
      else
        out += quote(step.key);
    }
  }
  return out;
}

void deviate(contract_deviations& out, const path& p, std::string_view what) {
  out.add(p.to_template(), p.to_string() + ": " + std::string(what));
}

void deviate(contract_deviations& out, const path& p, const error<codec_errc>& e,
             std::string_view where) {
  std::string_view text = e.message;
  if (text.starts_with(where)) text.remove_prefix(where.size());
  while (!text.empty() && (text.front() == ':' || text.front() == ' '))
    text.remove_prefix(1);
  out.add(p.to_template(), text);
}

std::string quote(std::string_view text) {
  constexpr char hex[] = "0123456789abcdef";
  std::string out = "\"";
  std::size_t shown = 0;
  for (char c : text) {
    if (shown == k_max_quoted) {
      out += "...";
      break;
    }
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f || c == '"' || c == '\\') {
      out += "\\x";
      out += hex[u >> 4];
      out += hex[u & 0x0f];
    } else {
      out += c;
    }
    ++shown;
  }
  out += '"';
  return out;
}

error<codec_errc> missing_field(std::string_view where, const path& p) {
  return make_error(codec_errc::missing_field, prefix(where, p) + "required field is missing");
}

error<codec_errc> wrong_type(std::string_view where, const path& p, std::string_view expected,
                             json_kind got) {
  std::string msg = prefix(where, p);
  msg += "expected ";
  msg.append(expected);
  msg += ", got ";
  msg.append(name(got));
  return make_error(codec_errc::wrong_type, std::move(msg));
}

error<codec_errc> invalid_value(std::string_view where, const path& p, std::string_view detail) {
  std::string msg = prefix(where, p);
  msg.append(detail);
  return make_error(codec_errc::invalid_value, std::move(msg));
}

error<codec_errc> invalid_uuid(std::string_view where, const path& p, std::string_view text) {
  return invalid_value(where, p, "expected a UUID (8-4-4-4-12 hex), got " + quote(text));
}

error<codec_errc> invalid_date(std::string_view where, const path& p, std::string_view text) {
  return invalid_value(where, p, "expected an RFC 3339 date-time, got " + quote(text));
}

error<codec_errc> out_of_range(std::string_view where, const path& p, std::string_view int_type) {
  std::string detail = "expected an integer within ";
  detail.append(int_type);
  detail += " range";
  return invalid_value(where, p, detail);
}

error<codec_errc> malformed(std::string_view where, std::string_view reason,
                            std::optional<std::size_t> byte, std::string_view body) {
  std::string msg;
  msg.append(where);
  msg += ": malformed JSON: ";
  msg.append(reason);
  if (byte) {
    msg += " (at byte ";
    msg += std::to_string(*byte);
    if (*byte < body.size()) {
      msg += ", near ";
      msg += quote(body.substr(*byte, 32));
    }
    msg += ')';
  }
  return make_error(codec_errc::malformed_json, std::move(msg));
}

}  // namespace detail
}  // namespace ei::api
