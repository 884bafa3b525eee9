// The reconciliation table of docs/design.md, cell by cell.
#include "actors/reconcile.hpp"

#include <gtest/gtest.h>

namespace ei::actors {
namespace {

using api::item_status;
using ra = reconcile_action;
using ls = local_state;

struct cell {
  std::optional<item_status> remote;
  ls local;
  bool state_lost;
  ra expected;
};

class ReconcileTable : public ::testing::TestWithParam<cell> {};

TEST_P(ReconcileTable, Cell) {
  const auto& c = GetParam();
  EXPECT_EQ(reconcile(c.remote, c.local, c.state_lost), c.expected)
      << "remote " << (c.remote ? api::to_string(*c.remote) : "absent") << ", local "
      << to_string(c.local) << ", state_lost " << c.state_lost;
}

std::vector<cell> all_cells() {
  std::vector<cell> cells;
  for (bool lost : {false, true}) {
    // pending
    cells.push_back({item_status::pending, ls::none, lost, ra::dispatch});
    cells.push_back({item_status::pending, ls::scoped, lost, ra::dispatch});
    cells.push_back({item_status::pending, ls::dispatched, lost, ra::redeliver});
    cells.push_back({item_status::pending, ls::acked, lost, ra::skip_done});
    // in_progress: no local record depends on whether state may have been lost
    cells.push_back(
        {item_status::in_progress, ls::none, lost, lost ? ra::needs_reconciliation : ra::dispatch});
    cells.push_back({item_status::in_progress, ls::scoped, lost, ra::dispatch});
    cells.push_back({item_status::in_progress, ls::dispatched, lost, ra::redeliver});
    cells.push_back({item_status::in_progress, ls::acked, lost, ra::skip_done});
    // final remote statuses, unknown statuses and items gone from the listing
    for (std::optional<item_status> r :
         {std::optional<item_status>(item_status::successful),
          std::optional<item_status>(item_status::failed),
          std::optional<item_status>(item_status::abandoned),
          std::optional<item_status>(item_status::unknown), std::optional<item_status>()}) {
      cells.push_back({r, ls::none, lost, ra::out_of_scope});
      cells.push_back({r, ls::scoped, lost, ra::out_of_scope});
      cells.push_back({r, ls::dispatched, lost, ra::out_of_scope_reported});
      cells.push_back({r, ls::acked, lost, ra::skip_done});
    }
  }
  return cells;
}

INSTANTIATE_TEST_SUITE_P(DesignTable, ReconcileTable, ::testing::ValuesIn(all_cells()));

TEST(ReconcileNames, AreStable) {
  EXPECT_EQ(to_string(ra::needs_reconciliation), "needs_reconciliation");
  EXPECT_EQ(to_string(ra::out_of_scope_reported), "out_of_scope_reported");
  EXPECT_EQ(to_string(ls::dispatched), "dispatched");
}

}  // namespace
}  // namespace ei::actors
