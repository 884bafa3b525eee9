// Small stateless mixing functions: every generated value is a pure function of the seed and
// an index, so nothing per item is stored.
#pragma once

#include <cstdint>

namespace ei::sim::detail {

constexpr std::uint64_t mix64(std::uint64_t x) noexcept {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

constexpr std::uint64_t hash2(std::uint64_t a, std::uint64_t b) noexcept {
  return mix64(a ^ mix64(b + 0x9e3779b97f4a7c15ULL));
}

constexpr std::uint64_t hash3(std::uint64_t a, std::uint64_t b, std::uint64_t c) noexcept {
  return hash2(hash2(a, b), c);
}

/// A uniformly random double in [0, 1) from a hash value.
constexpr double unit(std::uint64_t h) noexcept {
  return static_cast<double>(h >> 11) * (1.0 / 9007199254740992.0);
}

/// A keyed bijection on [0, n): a 4-round Feistel network on the smallest even number of
/// bits covering n, with cycle walking. Stateless, so a 1M-item job needs no order table.
class permutation {
 public:
  permutation() = default;
  permutation(std::uint64_t n, std::uint64_t key) noexcept : n_(n) {
    unsigned bits = 2;
    while (bits < 62 && (std::uint64_t{1} << bits) < n)
      bits += 2;
    half_ = bits / 2;
    mask_ = (std::uint64_t{1} << half_) - 1;
    for (unsigned r = 0; r < 4; ++r)
      keys_[r] = hash2(key, r + 1);
  }

  std::uint64_t operator()(std::uint64_t i) const noexcept {
    if (n_ <= 1) return i;
    std::uint64_t x = i;
    do {
      x = encrypt(x);
    } while (x >= n_);
    return x;
  }

  std::uint64_t size() const noexcept { return n_; }

 private:
  std::uint64_t encrypt(std::uint64_t x) const noexcept {
    std::uint64_t l = x >> half_;
    std::uint64_t r = x & mask_;
    for (std::uint64_t k : keys_) {
      const std::uint64_t f = mix64(r ^ k) & mask_;
      const std::uint64_t t = l ^ f;
      l = r;
      r = t;
    }
    return (l << half_) | r;
  }

  std::uint64_t n_ = 0;
  unsigned half_ = 1;
  std::uint64_t mask_ = 1;
  std::uint64_t keys_[4] = {};
};

}  // namespace ei::sim::detail
