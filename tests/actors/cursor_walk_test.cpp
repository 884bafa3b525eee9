// The one cursor-walk guard of the item listing and the data-layer walk
// (actors/detail/cursor_walk.hpp), rule by rule: what it accepts, what it asks again, what ends
// the walk and with which code.
#include <gtest/gtest.h>

#include "actors/detail/cursor_walk.hpp"

using namespace ei;
using ei::actors::job_errc;
using ei::actors::detail::cursor_walk;
using verdict = cursor_walk::verdict;

namespace {

api::uuid item(std::uint8_t n) {
  api::uuid u;
  u.bytes[0] = 0x5a;
  u.bytes[15] = n;
  return u;
}

cursor_walk walk(std::optional<std::uint64_t> expected = std::nullopt) {
  return cursor_walk("listing", {3, 10, expected});
}

// A page of `n` items whose first is item(first).
cursor_walk::step page(cursor_walk& w, std::size_t n, std::uint8_t first, bool has_next,
                       std::string_view end) {
  return w.on_page(n, n ? std::optional<api::uuid>(item(first)) : std::nullopt, has_next, end);
}

TEST(CursorWalk, FollowsTheChainAndRemembersWhereEachPageCameFrom) {
  auto w = walk(25);
  auto a = page(w, 10, 1, true, "A");
  EXPECT_EQ(a.what, verdict::follow);
  EXPECT_EQ(a.request_cursor, "");
  EXPECT_EQ(a.page_no, 0u);
  EXPECT_EQ(w.cursor(), "A");
  auto b = page(w, 10, 11, true, "B");
  EXPECT_EQ(b.what, verdict::follow);
  EXPECT_EQ(b.request_cursor, "A");
  EXPECT_EQ(b.page_no, 1u);
  auto c = page(w, 5, 21, false, "");
  EXPECT_EQ(c.what, verdict::last);
  EXPECT_EQ(c.request_cursor, "B");
  EXPECT_EQ(c.page_no, 2u);
  EXPECT_EQ(w.listed(), 25u);
}

TEST(CursorWalk, ANextPageWithoutEndCursorIsAFaultOfThatPage) {
  auto w = walk();
  ASSERT_EQ(page(w, 10, 1, true, "A").what, verdict::follow);
  auto s = page(w, 10, 11, true, "");
  EXPECT_EQ(s.what, verdict::page_fault);
  EXPECT_EQ(s.code, job_errc::missing_end_cursor);
  EXPECT_NE(s.message.find("listing page 1"), std::string::npos) << s.message;
  // Nothing moved: the same page is asked again, and may then pass.
  EXPECT_EQ(w.cursor(), "A");
  EXPECT_EQ(w.page_no(), 1u);
  EXPECT_EQ(w.listed(), 10u);
  EXPECT_EQ(page(w, 10, 11, true, "B").what, verdict::follow);
}

TEST(CursorWalk, AnEmptyPageOnItsOwnCursorIsAskedAgainABoundedNumberOfTimes) {
  auto w = walk();
  ASSERT_EQ(page(w, 10, 1, true, "A").what, verdict::follow);
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(page(w, 0, 0, true, "A").what, verdict::ask_again) << i;
  auto s = page(w, 0, 0, true, "A");
  EXPECT_EQ(s.what, verdict::fail);
  EXPECT_EQ(s.code, job_errc::empty_pages);
  EXPECT_NE(s.message.find("4 consecutive empty pages"), std::string::npos) << s.message;
}

TEST(CursorWalk, EmptyPagesWithNewCursorsAreFollowedUntilTooManyInARow) {
  auto w = walk();
  EXPECT_EQ(page(w, 0, 0, true, "A").what, verdict::follow);
  EXPECT_EQ(page(w, 0, 0, true, "B").what, verdict::follow);
  EXPECT_EQ(page(w, 3, 1, true, "C").what, verdict::follow) << "items end the run";
  EXPECT_EQ(w.empty_run(), 0u);
  for (const char* c : {"D", "E", "F"})
    EXPECT_EQ(page(w, 0, 0, true, c).what, verdict::follow) << c;
  auto s = page(w, 0, 0, true, "G");
  EXPECT_EQ(s.what, verdict::fail);
  EXPECT_EQ(s.code, job_errc::empty_pages);
}

TEST(CursorWalk, ACursorThatComesBackIsACycleNotOnlyOneThatPointsAtItself) {
  {
    auto w = walk();
    ASSERT_EQ(page(w, 10, 1, true, "A").what, verdict::follow);
    auto s = page(w, 10, 11, true, "A");  // A -> A with items
    EXPECT_EQ(s.code, job_errc::cursor_cycle);
  }
  {
    auto w = walk();
    ASSERT_EQ(page(w, 10, 1, true, "A").what, verdict::follow);
    ASSERT_EQ(page(w, 10, 11, true, "B").what, verdict::follow);
    auto s = page(w, 10, 21, true, "A");  // A -> B -> A
    EXPECT_EQ(s.what, verdict::fail);
    EXPECT_EQ(s.code, job_errc::cursor_cycle);
    EXPECT_NE(s.message.find("points back to cursor A"), std::string::npos) << s.message;
  }
  {
    auto w = walk();  // back to the first page (asked without a cursor)
    ASSERT_EQ(page(w, 10, 1, true, "A").what, verdict::follow);
    EXPECT_EQ(page(w, 10, 11, true, "").code, job_errc::missing_end_cursor);
  }
}

TEST(CursorWalk, RepeatedItemsUnderChangingCursorTextAreACycle) {
  auto w = walk();
  ASSERT_EQ(page(w, 10, 1, true, "A1").what, verdict::follow);
  ASSERT_EQ(page(w, 10, 11, true, "B1").what, verdict::follow);
  // B1 leads back to the page that starts with item 11, under a cursor text never seen.
  auto s = page(w, 10, 11, true, "B2");
  EXPECT_EQ(s.what, verdict::fail);
  EXPECT_EQ(s.code, job_errc::cursor_cycle);
  EXPECT_NE(s.message.find("already started an earlier page"), std::string::npos) << s.message;
}

TEST(CursorWalk, AWalkFarLongerThanTheJobDoesNotEnd) {
  // 100 items expected, page size 10: the margin is two pages (20 items).
  auto w = walk(100);
  EXPECT_EQ(cursor_walk::margin(100, 10), 20u);
  EXPECT_EQ(cursor_walk::margin(100000, 10), 1000u) << "or 1 %";
  std::uint8_t first = 0;
  for (int i = 0; i < 12; ++i, first += 10)
    ASSERT_EQ(page(w, 10, first, true, "c" + std::to_string(i)).what, verdict::follow) << i;
  auto s = page(w, 10, first, true, "c12");  // 130 > 100 + 20
  EXPECT_EQ(s.what, verdict::fail);
  EXPECT_EQ(s.code, job_errc::cursor_cycle);
  EXPECT_NE(s.message.find("does not end"), std::string::npos) << s.message;
}

TEST(CursorWalk, TheReportedTotalReplacesTheExpectedCount) {
  auto w = walk(1000);
  w.expect(10);
  ASSERT_EQ(page(w, 10, 1, true, "A").what, verdict::follow);
  ASSERT_EQ(page(w, 10, 11, true, "B").what, verdict::follow);         // 20 <= 10 + 20
  EXPECT_EQ(page(w, 11, 21, true, "C").code, job_errc::cursor_cycle);  // 31 > 30
}

TEST(CursorWalk, AResumedWalkKnowsTheCursorsItVisited) {
  auto w = walk();
  w.resume("C", 2, 20, {"", "A", "B"});
  EXPECT_EQ(w.cursor(), "C");
  EXPECT_EQ(w.page_no(), 2u);
  auto s = page(w, 10, 21, true, "A");
  EXPECT_EQ(s.what, verdict::fail);
  EXPECT_EQ(s.code, job_errc::cursor_cycle);
  auto r = walk();
  r.resume("C", 2, 20, {"", "A", "B"});
  auto ok = page(r, 10, 21, true, "D");
  EXPECT_EQ(ok.what, verdict::follow);
  EXPECT_EQ(ok.request_cursor, "C");
  EXPECT_EQ(ok.page_no, 2u);
  EXPECT_EQ(r.listed(), 30u);
}

TEST(CursorWalk, TheDataLayerWalkNamesItselfAndKeepsTheSameRules) {
  cursor_walk w("data layer", {3, 10, std::nullopt});
  ASSERT_EQ(page(w, 10, 1, true, "A").what, verdict::follow);
  auto s = page(w, 10, 11, true, "A");
  EXPECT_EQ(s.code, job_errc::cursor_cycle);
  EXPECT_NE(s.message.find("data layer page 1"), std::string::npos) << s.message;
}

}  // namespace
