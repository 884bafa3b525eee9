// Loose mode (sim_config::loose): responses that stray from the contract where Pleo's API is
// allowed to, or is known to, in fields the stage does not rely on. Applied to a rendered 200
// body, apart from the handlers and the hot-path renderers (loose mode is for tests, not speed).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace ei::sim::detail {

/// Rewrites a 200 body of `endpoint` ("jobs", "job", "items", "export_items"; others are left
/// alone). Every choice is a pure function of `seed` and what it applies to (the item's or
/// job's id, the request target), so the same request gets the same answer:
/// - a field the spec calls required but the stage does not read is sometimes missing, null or
///   of another type: `pagination.currentRequestPagination` (and its `parameters`, `limit`),
///   `pagination.hasPreviousPage`; a job's `expiresIn`, `isInteractive`,
///   `vendorBasedBookkeeping`; an item's `exportJobId`; a data-layer item's `_links`,
///   `accountingEntryLines`, `additionalInformation`, `amount`, `companyId`, `type`;
/// - a pending item's `status` is sometimes null (the older docs: null until processing);
/// - a data-layer `date` comes with an offset (+02:00, -05:30), without a zone, or as a date
///   alone when it is at midnight UTC: the same instant every time, so ordering is unchanged.
void loosen_body(std::string& body, std::string_view endpoint, std::uint64_t seed,
                 std::string_view target);

}  // namespace ei::sim::detail
