#include "simulator/faults.hpp"

#include <algorithm>
#include <charconv>

#include "simulator/hash.hpp"

namespace ei::sim::detail {
namespace {

constexpr std::string_view kEndpoints[] = {"*",     "any",       "jobs",         "job",  "events",
                                           "items", "items_put", "export_items", "other"};

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\n'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}

template <class T>
bool parse_number(std::string_view s, T& out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc{} && p == s.data() + s.size();
}

bool parse_duration(std::string_view s, std::chrono::milliseconds& out) {
  std::uint64_t v = 0;
  if (s.ends_with("ms")) {
    if (!parse_number(s.substr(0, s.size() - 2), v)) return false;
    out = std::chrono::milliseconds(v);
    return true;
  }
  if (s.ends_with("s")) {
    if (!parse_number(s.substr(0, s.size() - 1), v)) return false;
    out = std::chrono::milliseconds(v * 1000);
    return true;
  }
  if (!parse_number(s, v)) return false;
  out = std::chrono::milliseconds(v);
  return true;
}

bool is_list_only(fault_kind k) {
  return k == fault_kind::cycle || k == fault_kind::empty_page || k == fault_kind::duplicate ||
         k == fault_kind::flip_status || k == fault_kind::expired_cursor ||
         k == fault_kind::end_early || k == fault_kind::cycle_fresh;
}

}  // namespace

std::string_view to_string(fault_kind k) noexcept {
  switch (k) {
    case fault_kind::status:
      return "status";
    case fault_kind::throttle:
      return "throttle";
    case fault_kind::latency:
      return "latency";
    case fault_kind::reset:
      return "reset";
    case fault_kind::reset_mid_body:
      return "reset_mid_body";
    case fault_kind::truncate:
      return "truncate";
    case fault_kind::malformed:
      return "malformed";
    case fault_kind::html:
      return "html";
    case fault_kind::cycle:
      return "cycle";
    case fault_kind::empty_page:
      return "empty_page";
    case fault_kind::duplicate:
      return "duplicate";
    case fault_kind::flip_status:
      return "flip_status";
    case fault_kind::end_early:
      return "end_early";
    case fault_kind::cycle_fresh:
      return "cycle_fresh";
    case fault_kind::expired_cursor:
      return "expired_cursor";
    case fault_kind::expire_job:
      return "expire_job";
    case fault_kind::complete_job:
      return "complete_job";
  }
  return "?";
}

result<std::vector<fault_clause>, sim_errc> parse_faults(std::string_view spec) {
  std::vector<fault_clause> out;
  std::size_t start = 0;
  while (start <= spec.size()) {
    std::size_t end = spec.find(';', start);
    if (end == std::string_view::npos) end = spec.size();
    const std::string_view clause = trim(spec.substr(start, end - start));
    start = end + 1;
    if (clause.empty()) continue;
    auto fail = [&](std::string why) {
      return make_error(sim_errc::invalid_faults,
                        "fault clause '" + std::string(clause) + "': " + std::move(why));
    };
    fault_clause c;
    c.text = std::string(clause);
    std::string_view body = clause;
    std::string_view trigger;
    if (auto at = body.find('@'); at != std::string_view::npos) {
      trigger = trim(body.substr(at + 1));
      body = trim(body.substr(0, at));
    }
    c.endpoint = "*";
    if (auto colon = body.find(':'); colon != std::string_view::npos) {
      const std::string_view ep = trim(body.substr(0, colon));
      if (std::find(std::begin(kEndpoints), std::end(kEndpoints), ep) == std::end(kEndpoints))
        return fail("unknown endpoint '" + std::string(ep) +
                    "' (use jobs, job, events, items, items_put, export_items, other or *)");
      c.endpoint = ep == "any" ? "*" : std::string(ep);
      body = trim(body.substr(colon + 1));
    }
    std::string_view name = body;
    std::string_view arg;
    bool has_arg = false;
    if (auto eq = body.find('='); eq != std::string_view::npos) {
      name = trim(body.substr(0, eq));
      arg = trim(body.substr(eq + 1));
      has_arg = true;
    }
    if (name == "status") {
      c.kind = fault_kind::status;
      if (!has_arg || !parse_number(arg, c.code) || c.code < 400 || c.code > 599)
        return fail("status needs a code in 400..599, e.g. status=503");
    } else if (name == "throttle" || name == "429") {
      c.kind = fault_kind::throttle;
      c.code = 429;
      if (has_arg) {
        std::uint32_t s = 0;
        if (!parse_number(arg, s)) return fail("throttle=SECONDS needs a whole number");
        c.retry_after = s;
      }
    } else if (name == "latency") {
      c.kind = fault_kind::latency;
      if (!has_arg || !parse_duration(arg, c.latency))
        return fail("latency needs a duration, e.g. latency=50ms or latency=2s");
    } else {
      static constexpr fault_kind kPlain[] = {
          fault_kind::reset,      fault_kind::reset_mid_body, fault_kind::truncate,
          fault_kind::malformed,  fault_kind::cycle,          fault_kind::empty_page,
          fault_kind::duplicate,  fault_kind::flip_status,    fault_kind::expired_cursor,
          fault_kind::expire_job, fault_kind::end_early,      fault_kind::cycle_fresh,
          fault_kind::html,       fault_kind::complete_job};
      bool found = false;
      for (fault_kind k : kPlain) {
        if (to_string(k) == name) {
          c.kind = k;
          found = true;
        }
      }
      if (!found) return fail("unknown fault '" + std::string(name) + "'");
      if (has_arg) return fail("fault '" + std::string(name) + "' takes no value");
      if (is_list_only(c.kind) && c.endpoint != "*" && c.endpoint != "jobs" &&
          c.endpoint != "items" && c.endpoint != "export_items")
        return fail("fault '" + std::string(name) + "' applies only to jobs, items, export_items");
    }
    if (!trigger.empty()) {
      std::string_view tname = trigger;
      std::string_view targ;
      if (auto eq = trigger.find('='); eq != std::string_view::npos) {
        tname = trim(trigger.substr(0, eq));
        targ = trim(trigger.substr(eq + 1));
      }
      if (tname == "all" && targ.empty()) {
        c.trigger = trigger_kind::all;
      } else if (tname == "once" && targ.empty()) {
        c.trigger = trigger_kind::once;
      } else if (tname == "rate") {
        c.trigger = trigger_kind::rate;
        std::string tmp(targ);
        char* endp = nullptr;
        c.rate = std::strtod(tmp.c_str(), &endp);
        if (tmp.empty() || endp != tmp.c_str() + tmp.size() || !(c.rate >= 0.0) || c.rate > 1.0)
          return fail("rate needs a probability in [0,1], e.g. @rate=0.1");
      } else if (tname == "nth") {
        c.trigger = trigger_kind::nth;
        std::size_t p = 0;
        while (p <= targ.size()) {
          std::size_t q = targ.find(',', p);
          if (q == std::string_view::npos) q = targ.size();
          std::uint64_t n = 0;
          if (!parse_number(trim(targ.substr(p, q - p)), n) || n == 0)
            return fail("nth needs 1-based request numbers, e.g. @nth=3 or @nth=2,5");
          c.nths.push_back(n);
          p = q + 1;
        }
      } else if (tname == "every" || tname == "from") {
        c.trigger = tname == "every" ? trigger_kind::every : trigger_kind::from;
        if (!parse_number(targ, c.every) || c.every == 0)
          return fail(std::string(tname) + " needs a positive whole number");
      } else {
        return fail("unknown trigger '" + std::string(trigger) +
                    "' (use all, once, rate=P, nth=N[,M...], every=N, from=N)");
      }
    }
    out.push_back(std::move(c));
  }
  return out;
}

fault_plan::fault_plan(std::vector<fault_clause> clauses, std::uint64_t seed)
    : clauses_(std::move(clauses)),
      counts_(clauses_.size(), 0),
      fired_(clauses_.size(), false),
      seed_(seed) {}

std::vector<const fault_clause*> fault_plan::decide(const context& ctx) {
  std::vector<const fault_clause*> out;
  for (std::size_t i = 0; i < clauses_.size(); ++i) {
    const fault_clause& c = clauses_[i];
    if (c.endpoint != "*" && c.endpoint != ctx.endpoint) continue;
    const std::uint64_t n = ++counts_[i];
    bool applicable = true;
    if (is_list_only(c.kind)) applicable = ctx.is_list;
    if (c.kind == fault_kind::expired_cursor) applicable = ctx.is_list && ctx.has_cursor;
    if (c.kind == fault_kind::expire_job || c.kind == fault_kind::complete_job)
      applicable = ctx.names_job;
    if (!applicable) continue;
    bool fire = false;
    switch (c.trigger) {
      case trigger_kind::all:
        fire = true;
        break;
      case trigger_kind::once:
        fire = !fired_[i];
        break;
      case trigger_kind::rate:
        fire = unit(hash3(seed_, i, n)) < c.rate;
        break;
      case trigger_kind::nth:
        fire = std::find(c.nths.begin(), c.nths.end(), n) != c.nths.end();
        break;
      case trigger_kind::every:
        fire = n % c.every == 0;
        break;
      case trigger_kind::from:
        fire = n >= c.every;
        break;
    }
    if (!fire) continue;
    fired_[i] = true;
    out.push_back(&c);
  }
  return out;
}

}  // namespace ei::sim::detail
