// Internal to the job family: the one guard of a cursor chain, for the item listing (paginator,
// actors/listing.cpp) and the data-layer walk (orderer, actors/ordering.cpp). It holds no actor
// state and does no I/O: the walker feeds it each page it gets and acts on its verdict.
//
// The rules (docs/design.md, "Pagination hazards"), for a page asked with cursor C:
//  1. it claims a next page but has no endCursor: a fault of this page (`page_fault`: ask for
//     it again after a backoff, up to `page_attempts`; then `missing_end_cursor`);
//  2. it is empty and points at C itself: ask again at once (`ask_again`), counted as an empty
//     page;
//  3. its endCursor is C or any cursor visited before: `cursor_cycle`;
//  4. it is empty and claims a next page: counted; more than `max_empty_pages` in a row:
//     `empty_pages` (a page with items ends the run);
//  5. its first item started an earlier page: `cursor_cycle` (cursors that cycle under new
//     texts);
//  6. the walk lists more than `expected_items` plus a margin (two pages or 1 %): `cursor_cycle`
//     (it does not end).
// A page that passes is accepted (`follow`, or `last` when it claims no next page) and the
// walk moves to its endCursor.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>

#include "actors/errors.hpp"
#include "api/model.hpp"

namespace ei::actors::detail {

class cursor_walk {
 public:
  struct limits {
    std::uint32_t max_empty_pages = 3;
    std::uint32_t page_size = 500;
    /// How many items the walk should list (the job's `total` or numberOfItems); nullopt:
    /// unknown, rule 6 does not apply.
    std::optional<std::uint64_t> expected_items;
  };

  enum class verdict : std::uint8_t {
    follow,      ///< accepted: keep its items, ask for the next cursor
    last,        ///< accepted, and the walk is complete
    ask_again,   ///< nothing to keep: ask for the same cursor again at once
    page_fault,  ///< this page is broken: ask for it again after a backoff
    fail,        ///< the walk cannot go on: `code` and `message` say why
  };

  struct step {
    verdict what = verdict::fail;
    job_errc code =
        job_errc::internal;  ///< fail: cursor_cycle, empty_pages; page_fault: missing_end_cursor
    std::string message;     ///< for people, names the page
    /// accepted pages: the cursor the page was asked with and its number in the walk
    std::string request_cursor;
    std::uint32_t page_no = 0;
  };

  /// `what` names the walk in messages ("listing", "data layer").
  cursor_walk(std::string what, limits l);
  explicit cursor_walk(std::string what) : cursor_walk(std::move(what), limits{}) {}

  /// Continues a walk that committed `pages` pages, listed `listed` items and visited
  /// `visited` cursors; its next page is asked with `cursor`.
  void resume(std::string cursor, std::uint32_t pages, std::uint64_t listed,
              std::set<std::string> visited);

  /// The guard's verdict on the page asked with cursor(): `items` items, the first of which is
  /// `first_item`; `end_cursor` empty when the page has none.
  step on_page(std::size_t items, const std::optional<api::uuid>& first_item, bool has_next,
               std::string_view end_cursor);

  /// The total the API reported, when it is better than what the walk was given.
  void expect(std::uint64_t items) { limits_.expected_items = items; }
  void set_page_size(std::uint32_t page_size) { limits_.page_size = page_size; }

  const std::string& cursor() const noexcept { return cursor_; }
  std::uint32_t page_no() const noexcept { return page_no_; }
  std::uint64_t listed() const noexcept { return listed_; }
  std::uint32_t empty_run() const noexcept { return empty_run_; }

  /// How many items beyond `expected` a walk may list (repeats across pages) before it is taken
  /// for one that never ends: two pages, or 1 %.
  static std::uint64_t margin(std::uint64_t expected, std::uint32_t page_size) noexcept;

 private:
  step fail(job_errc code, std::string message) const;
  std::string page_name() const;

  std::string what_;
  limits limits_;
  std::string cursor_;
  std::uint32_t page_no_ = 0;
  std::uint64_t listed_ = 0;
  std::uint32_t empty_run_ = 0;
  std::set<std::string> visited_;
  std::unordered_set<api::uuid, api::uuid_hash> page_heads_;
};

}  // namespace ei::actors::detail
