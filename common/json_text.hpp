// Writing JSON text by hand where a DOM would cost more than the text itself (NDJSON lines,
// simulated pages, request bodies of 100 outcomes).
#pragma once

#include <string>
#include <string_view>

namespace ei {

/// Appends `text` as a JSON string literal: quoted, with `"`, `\` and control characters
/// escaped. Bytes >= 0x80 pass through unchanged (the caller's text is UTF-8).
void append_json_string(std::string& out, std::string_view text);

}  // namespace ei
