// Errors as values at component boundaries: a result<T, Code> holds either a T or an
// error<Code> (a typed code plus a human-readable message that names what was wrong and
// where). Each component defines its own Code enum and a to_string for it; exceptions from
// third-party code are caught inside the component and turned into these values.
// Public (the embedding API returns these); internal code includes it as common/result.hpp.
#pragma once

#include <cassert>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

namespace ei {

/// A typed error: `code` is for programs, `message` for people. Messages never contain
/// secrets (API keys, tokens); they name the field, item, request or file at fault.
template <class Code>
struct error {
  Code code{};
  std::string message;
};

template <class Code>
error<Code> make_error(Code code, std::string message) {
  return error<Code>{code, std::move(message)};
}

/// Either a value or an error value `E`. Accessing the wrong alternative is a programming
/// error (asserted in debug builds). Components use result<T, Code> (below); a boundary that
/// needs a richer error (the HTTP client's status, type and attempts) uses its own E.
template <class T, class E>
class [[nodiscard]] basic_result {
 public:
  using value_type = T;
  using error_type = E;

  basic_result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit
  basic_result(E err) : v_(std::in_place_index<1>, std::move(err)) {}      // NOLINT: by design

  bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  T& value() & {
    assert(ok());
    return std::get<0>(v_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<0>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<0>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const E& err() const& {
    assert(!ok());
    return std::get<1>(v_);
  }
  E&& err() && {
    assert(!ok());
    return std::get<1>(std::move(v_));
  }

 private:
  std::variant<T, E> v_;
};

/// Either a value or a typed error<Code>.
template <class T, class Code>
class [[nodiscard]] result : public basic_result<T, error<Code>> {
 public:
  using code_type = Code;
  using basic_result<T, error<Code>>::basic_result;
};

/// result<void, Code>: success carries nothing.
struct ok_t {};
inline constexpr ok_t ok_v{};

template <class Code>
using status = result<ok_t, Code>;

}  // namespace ei
