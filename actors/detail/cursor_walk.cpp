#include "actors/detail/cursor_walk.hpp"

#include <algorithm>
#include <utility>

namespace ei::actors::detail {

cursor_walk::cursor_walk(std::string what, limits l) : what_(std::move(what)), limits_(l) {
  limits_.page_size = std::max<std::uint32_t>(1, limits_.page_size);
}

void cursor_walk::resume(std::string cursor, std::uint32_t pages, std::uint64_t listed,
                         std::set<std::string> visited) {
  cursor_ = std::move(cursor);
  page_no_ = pages;
  listed_ = listed;
  visited_ = std::move(visited);
  empty_run_ = 0;
  page_heads_.clear();
}

std::uint64_t cursor_walk::margin(std::uint64_t expected, std::uint32_t page_size) noexcept {
  return std::max<std::uint64_t>(2 * std::uint64_t{std::max<std::uint32_t>(1, page_size)},
                                 expected / 100);
}

std::string cursor_walk::page_name() const {
  return what_ + " page " + std::to_string(page_no_);
}

cursor_walk::step cursor_walk::fail(job_errc code, std::string message) const {
  step s;
  s.what = verdict::fail;
  s.code = std::move(code);
  s.message = std::move(message);
  return s;
}

cursor_walk::step cursor_walk::on_page(std::size_t items,
                                       const std::optional<api::uuid>& first_item, bool has_next,
                                       std::string_view end_cursor) {
  const auto too_many_empty = [this] {
    return fail(job_errc::empty_pages, what_ + ": " + std::to_string(empty_run_) +
                                           " consecutive empty pages claimed a next page");
  };
  if (has_next) {
    if (end_cursor.empty()) {  // rule 1
      step s;
      s.what = verdict::page_fault;
      s.code = job_errc::missing_end_cursor;
      s.message = page_name() + " says hasNextPage but has no endCursor";
      return s;
    }
    if (items == 0 && end_cursor == cursor_) {  // rule 2
      if (++empty_run_ > limits_.max_empty_pages) return too_many_empty();
      step s;
      s.what = verdict::ask_again;
      return s;
    }
    if (end_cursor == cursor_ || visited_.count(std::string(end_cursor)) != 0)  // rule 3
      return fail(job_errc::cursor_cycle, page_name() + " points back to cursor " +
                                              std::string(end_cursor) +
                                              ", already visited in this " + what_);
    if (items == 0) {  // rule 4
      if (++empty_run_ > limits_.max_empty_pages) return too_many_empty();
    } else {
      empty_run_ = 0;
    }
  }
  if (items > 0 && first_item && !page_heads_.insert(*first_item).second)  // rule 5
    return fail(job_errc::cursor_cycle,
                page_name() + " starts with item " + first_item->to_string() +
                    ", which already started an earlier page: the cursors " +
                    "cycle under new texts");
  if (const auto& expected = limits_.expected_items;
      expected && listed_ + items > *expected + margin(*expected, limits_.page_size))  // rule 6
    return fail(job_errc::cursor_cycle, "the " + what_ + " passed " +
                                            std::to_string(listed_ + items) +
                                            " items where the job holds " +
                                            std::to_string(*expected) + ": it does not end");
  step s;
  s.what = has_next ? verdict::follow : verdict::last;
  s.request_cursor = cursor_;
  s.page_no = page_no_;
  listed_ += items;
  ++page_no_;
  if (has_next) {
    visited_.insert(std::exchange(cursor_, std::string(end_cursor)));
  }
  return s;
}

}  // namespace ei::actors::detail
