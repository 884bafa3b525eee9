#include "common/base64.hpp"

#include <openssl/evp.h>

namespace ei {
namespace {

bool in_alphabet(char c) noexcept {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/';
}

}  // namespace

std::string base64_encode(std::string_view in) {
  // EVP_EncodeBlock writes 4 characters per started 3 bytes and a terminating NUL.
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::optional<std::string> base64_decode(std::string_view in) {
  if (in.size() % 4 != 0) return std::nullopt;
  if (in.empty()) return std::string{};
  // EVP_DecodeBlock skips leading white space, strips trailing white space and '=' and decodes a
  // '=' elsewhere as zero bits: check the text first, so that only canonical input decodes.
  std::size_t pad = 0;
  if (in.back() == '=') ++pad;
  if (pad == 1 && in[in.size() - 2] == '=') ++pad;
  for (std::size_t i = 0; i < in.size() - pad; ++i)
    if (!in_alphabet(in[i])) return std::nullopt;
  std::string out(3 * (in.size() / 4), '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  if (n < 0 || static_cast<std::size_t>(n) != out.size()) return std::nullopt;
  // EVP_DecodeBlock always answers whole groups of 3: the bytes of the padding are zeros.
  out.resize(out.size() - pad);
  return out;
}

}  // namespace ei
