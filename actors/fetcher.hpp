// The fetcher family: actors that turn page requests into HTTP calls on the shared client
// and parse the answers (simdjson on the fetcher's scheduler thread, never on the io thread).
// Replies always arrive (the HTTP client has a whole-request deadline); a failure is a value
// in the reply, typed by `fetch_failure::code` (actors/errors.hpp).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/typed_actor.hpp>

#include "actors/atoms.hpp"
#include "actors/errors.hpp"
#include "actors/wire.hpp"
#include "api/http_client.hpp"
#include "api/model.hpp"

namespace ei::actors {

/// Why a fetch failed. `code`: fetch_errc::http_status (a non-retryable status; see
/// http_status/type), another code of the HTTP client (retries_exhausted, timeout, ...), or
/// fetch_errc::decode (the body broke the contract). `cursor_rejected` is set for a 400 on a
/// request that carried a cursor: the cursor expired or was refused, and the listing must restart.
/// `limit_rejected` is set for a 400 whose error names the `limit` (the page size was refused: ask
/// for smaller pages).
struct fetch_failure {
  fetch_errc code = fetch_errc::decode;
  unsigned http_status = 0;
  std::string type;
  std::string message;
  bool cursor_rejected = false;
  bool limit_rejected = false;
};

/// The job failure for a fetch failure: cursor_rejected, limit_rejected, http_<status> (any
/// failure that got a status, retries_exhausted and timeout included), or the code's own.
job_failure failure_code(const fetch_failure& f);

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, fetch_failure& x) {
  return f(caf::meta::type_name("ei::actors::fetch_failure"), x.code, x.http_status, x.type,
           x.message, x.cursor_rejected, x.limit_rejected);
}

struct job_reply {
  bool ok = false;
  api::export_job job;
  fetch_failure failure;
  std::uint32_t attempts = 0;
};

/// A page request: cursor paging when `offset` is empty (after = "" for the first page).
struct page_request {
  api::uuid job_id;
  std::uint32_t limit = 500;
  std::string after;
  std::optional<std::int64_t> offset;
  /// The job's deadline (job_context::job_deadline) in ms since the epoch, 0 for none: a
  /// Retry-After reaching past it ends the request at once instead of waiting for a job that
  /// will have expired (api::request::not_after).
  std::int64_t not_after_ms = 0;
};

struct items_reply {
  bool ok = false;
  api::page<api::export_job_item> page;
  fetch_failure failure;
  std::uint32_t attempts = 0;
};

struct dates_reply {
  bool ok = false;
  api::page<api::export_item_date> page;
  fetch_failure failure;
  std::uint32_t attempts = 0;
};

/// A page of the job list (GET /v3/export-jobs), filtered by status and company.
struct jobs_request {
  std::vector<std::string> statuses;
  std::optional<api::uuid> company_id;
  std::uint32_t limit = 100;
  std::string after;
};

struct jobs_reply {
  bool ok = false;
  api::page<api::export_job> page;
  fetch_failure failure;
  std::uint32_t attempts = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, job_reply& x) {
  return f(caf::meta::type_name("ei::actors::job_reply"), x.ok, x.job, x.failure, x.attempts);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, page_request& x) {
  return f(caf::meta::type_name("ei::actors::page_request"), x.job_id, x.limit, x.after,
           wire::opt(x.offset), x.not_after_ms);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, items_reply& x) {
  return f(caf::meta::type_name("ei::actors::items_reply"), x.ok, x.page, x.failure, x.attempts);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, dates_reply& x) {
  return f(caf::meta::type_name("ei::actors::dates_reply"), x.ok, x.page, x.failure, x.attempts);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, jobs_request& x) {
  return f(caf::meta::type_name("ei::actors::jobs_request"), x.statuses, wire::opt(x.company_id),
           x.limit, x.after);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, jobs_reply& x) {
  return f(caf::meta::type_name("ei::actors::jobs_reply"), x.ok, x.page, x.failure, x.attempts);
}

using fetcher_actor =
    caf::typed_actor<caf::replies_to<get_job_atom, api::uuid>::with<job_reply>,
                     caf::replies_to<list_jobs_atom, jobs_request>::with<jobs_reply>,
                     caf::replies_to<list_items_atom, page_request>::with<items_reply>,
                     caf::replies_to<list_dates_atom, page_request>::with<dates_reply>>;

/// Spawns a fetcher over `client` (shared; must outlive the actor).
fetcher_actor spawn_fetcher(caf::actor_system& sys, std::shared_ptr<api::http_client> client);

}  // namespace ei::actors
