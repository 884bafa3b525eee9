// libFuzzer target: the decoders of api/codec.hpp on arbitrary bytes (README.md).
//
// Every input goes to page_parser::job_items and ::item_dates (one parser reused across inputs,
// as an actor reuses its parser), decode_job, decode_job_list and decode_error_body. Beyond
// "no crash, no leak, no UB" (ASan/UBSan), it checks what codec.hpp promises:
// - when page_parser ACCEPTS a page and the nlohmann reference decoder accepts it too, both
//   decoded the same page. Only then: simdjson accepts more (skipped scalars are checked for
//   structure only), so a reference rejection proves nothing;
// - item_dates takes the first of duplicate keys where the reference takes the last
//   (documented), so its results are compared only for documents without duplicate keys;
// - error messages are bounded and single-line: they quote at most ~80 characters of the body;
// - a padded body (as the HTTP client hands it over) parsed in place decodes exactly as the
//   same bytes copied first, whatever its padding holds (here: quotes, which would open a
//   string if the parser read them as part of the document).
// A broken promise ends in __builtin_trap() after naming it on stderr.

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "api/codec.hpp"

namespace {

using namespace ei::api;

constexpr std::string_view k_where = "GET /v3/export-jobs/0b6f8f7e/items";

// The longest message a fixed schema can produce: `where`, a path of a few known keys and
// indexes, an expected-type phrase and at most two ~80-character quotes.
constexpr std::size_t k_max_message = 512;

[[noreturn]] void broken(const char* promise, std::string_view detail = {}) {
  std::fprintf(stderr, "page_parser_fuzz: %s\n", promise);
  if (!detail.empty())
    std::fprintf(stderr, "  %.*s\n", static_cast<int>(detail.size()), detail.data());
  __builtin_trap();
}

template <class T>
void check_error(const decode_result<T>& r, std::string_view where) {
  if (r.ok()) return;
  const std::string& msg = r.err().message;
  if (!msg.starts_with(where)) broken("error message does not start with `where`", msg);
  if (msg.size() > k_max_message) broken("error message longer than the bound", msg);
  for (const char c : msg)
    if (static_cast<unsigned char>(c) < 0x20) broken("control character in error message", msg);
}

// Whether any object of a (valid) document repeats a key.
class duplicate_keys final : public nlohmann::json_sax<nlohmann::json> {
 public:
  bool found() const noexcept { return found_; }

  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override {
    keys_.emplace_back();
    return true;
  }
  bool key(string_t& k) override {
    if (!keys_.back().insert(k).second) found_ = true;
    return !found_;  // one is enough
  }
  bool end_object() override {
    keys_.pop_back();
    return true;
  }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    return false;
  }

 private:
  std::vector<std::set<std::string>> keys_;
  bool found_ = false;
};

bool has_duplicate_keys(std::string_view body) {
  duplicate_keys sax;
  nlohmann::json::sax_parse(body.begin(), body.end(), &sax, nlohmann::json::input_format_t::json,
                            false);
  return sax.found();
}

template <class T>
void expect_same(const decode_result<page<T>>& fast, const decode_result<page<T>>& ref,
                 const char* what) {
  if (fast->data != ref->data) broken(what, "data differs");
  if (fast->pagination != ref->pagination) broken(what, "pagination differs");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  static page_parser parser;

  auto items = parser.job_items(body, k_where);
  check_error(items, k_where);
  if (items.ok()) {
    auto ref = decode_job_items_reference(body, k_where);
    check_error(ref, k_where);
    if (ref.ok()) expect_same(items, ref, "job_items and the reference decoder disagree");
  }

  // In place, with the input's own bytes as padding (anything may be there).
  std::string padded(body);
  padded.reserve(size + padded_body::padding);
  padded.resize(size + padded_body::padding, '"');
  padded.resize(size);
  static page_parser in_place_parser;
  auto in_place = in_place_parser.job_items(padded_body::of(padded), k_where);
  if (in_place.ok() != items.ok()) broken("job_items in place and copied disagree on validity");
  if (in_place.ok()) expect_same(in_place, items, "job_items in place and copied disagree");
  if (!in_place.ok() && in_place.err().message != items.err().message)
    broken("job_items in place and copied give different errors", in_place.err().message);
  auto dates_in_place = in_place_parser.item_dates(padded_body::of(padded), k_where);

  auto dates = parser.item_dates(body, k_where);
  if (dates_in_place.ok() != dates.ok()) broken("item_dates in place and copied disagree");
  if (dates.ok()) expect_same(dates_in_place, dates, "item_dates in place and copied disagree");
  check_error(dates, k_where);
  if (dates.ok()) {
    auto ref = decode_item_dates_reference(body, k_where);
    check_error(ref, k_where);
    if (ref.ok() && !has_duplicate_keys(body))
      expect_same(dates, ref, "item_dates and the reference decoder disagree");
  }

  check_error(decode_job(body, k_where), k_where);
  check_error(decode_job_list(body, k_where), k_where);
  check_error(decode_error_body(body), "error body");
  return 0;
}
