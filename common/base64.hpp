// Standard base64 (RFC 4648 §4, with '=' padding) over OpenSSL's EVP_EncodeBlock /
// EVP_DecodeBlock: the one encoder for Basic credentials (client, simulator, wire benchmark)
// and etcd's keys and values.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace ei {

/// `in` as base64 with padding; "" for "".
std::string base64_encode(std::string_view in);

/// The bytes `in` encodes; nullopt unless `in` is canonical padded base64: a length that is a
/// multiple of 4, only the 64 letters of the alphabet, and '=' only as the last one or two
/// characters (no white space, no line breaks). "" decodes to "".
std::optional<std::string> base64_decode(std::string_view in);

}  // namespace ei
