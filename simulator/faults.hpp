// The fault plan: parsed from the grammar in fault_help() and decided per request.
// Decisions are deterministic: `rate` draws hash(seed, clause, n), never a shared RNG stream.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "simulator/simulator.hpp"

namespace ei::sim::detail {

enum class fault_kind : std::uint8_t {
  status,          // status=CODE: answer CODE (400..599) without processing the request
  throttle,        // throttle[=SECONDS]: 429, with Retry-After when SECONDS is given
  latency,         // latency=50ms|2s: delay the response
  reset,           // process, then reset the connection (RST) instead of responding
  reset_mid_body,  // process, send headers and half the body, then reset
  truncate,        // process, send headers (full Content-Length) and half the body, close
  malformed,       // process, send a body that is not valid JSON (status 200)
  html,            // process, send an HTML page (status 200, Content-Type text/html)
  cycle,           // lists: endCursor points back to the cursor of the previous page
  empty_page,      // lists: data [] with hasNextPage=true and endCursor = the request's cursor
  duplicate,  // lists: endCursor one item early (next page repeats an item); offset pages start one
              // early
  flip_status,     // lists: after rendering, the page's last item changes status
  end_early,       // lists: hasNextPage=false although items follow
  cycle_fresh,     // lists: as cycle, but the cursor's text is new each time
  expired_cursor,  // lists with after/before: 400 CURSOR_EXPIRED
  expire_job,      // the request's job expires before the request is handled
  complete_job,    // the request's job is completed elsewhere before the request is handled
};
std::string_view to_string(fault_kind k) noexcept;

enum class trigger_kind : std::uint8_t { all, once, rate, nth, every, from };

struct fault_clause {
  std::string text;      // the clause as written, for messages and the request log
  std::string endpoint;  // "*" or one of request_record::endpoint's names
  fault_kind kind = fault_kind::status;
  unsigned code = 500;
  std::optional<std::uint32_t> retry_after;
  std::chrono::milliseconds latency{0};
  trigger_kind trigger = trigger_kind::all;
  double rate = 0;
  std::vector<std::uint64_t> nths;
  std::uint64_t every = 0;
};

result<std::vector<fault_clause>, sim_errc> parse_faults(std::string_view spec);

/// Run-time state of a plan: per-clause request counters and `once` flags.
class fault_plan {
 public:
  fault_plan() = default;
  fault_plan(std::vector<fault_clause> clauses, std::uint64_t seed);

  struct context {
    std::string_view endpoint;
    bool is_list = false;     // a paged listing (jobs, items, export_items)
    bool has_cursor = false;  // the request carries after/before
    bool names_job = false;
  };

  /// The clauses that fire for this request, in plan order. Not thread-safe: callers lock.
  std::vector<const fault_clause*> decide(const context& ctx);
  bool empty() const noexcept { return clauses_.empty(); }

 private:
  std::vector<fault_clause> clauses_;
  std::vector<std::uint64_t> counts_;
  std::vector<bool> fired_;
  std::uint64_t seed_ = 0;
};

}  // namespace ei::sim::detail
