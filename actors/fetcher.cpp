#include "actors/fetcher.hpp"

#include <cctype>
#include <chrono>
#include <string>
#include <unordered_map>
#include <utility>

#include <caf/all.hpp>

#include "api/codec.hpp"
#include "api/export_requests.hpp"

namespace ei::api {

// The HTTP client's answer as it travels in http_completion (below); local to the fetcher.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, response& x) {
  return f(caf::meta::type_name("ei::api::response"), x.status, x.body, x.attempts, x.waited);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, http_failure& x) {
  return f(caf::meta::type_name("ei::api::http_failure"), x.code, x.message, x.status, x.type,
           x.detail, x.attempts, x.cause);
}

}  // namespace ei::api

namespace ei::actors {
namespace {

/// The HTTP completion, carried from the io thread back into the fetcher's mailbox: the
/// response (ok) or the failure, by value. It is moved into the message, never copied (the
/// handler reads it in place), and it is an ordinary serialisable message.
struct http_completion {
  std::uint64_t id = 0;
  bool ok = false;
  api::response response;     // ok
  api::http_failure failure;  // !ok
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, http_completion& x) {
  return f(caf::meta::type_name("ei::actors::http_completion"), x.id, x.ok, x.response, x.failure);
}

using fetcher_impl = fetcher_actor::extend<caf::reacts_to<http_done_atom, http_completion>>;

enum class pending_kind : std::uint8_t { job, jobs, items, dates };

struct pending_call {
  pending_kind kind;
  std::string where;
  bool had_cursor = false;
  caf::typed_response_promise<job_reply> job_promise;
  caf::typed_response_promise<items_reply> items_promise;
  caf::typed_response_promise<dates_reply> dates_promise;
  caf::typed_response_promise<jobs_reply> jobs_promise;
};

struct fetcher_state {
  std::shared_ptr<api::http_client> client;
  api::page_parser parser;
  std::uint64_t next_id = 1;
  std::unordered_map<std::uint64_t, pending_call> pending;
  static inline const char* name = "fetcher";
};

fetch_failure from_http(const api::http_failure& f, bool had_cursor) {
  fetch_failure out;
  out.code = to_fetch_errc(f.code);
  out.http_status = f.status;
  out.type = f.type;
  out.message = f.message;
  // A 400 on a request with a cursor is the cursor's fault only when the error says so (the
  // API's type for it is undocumented: any type naming the cursor or pagination).
  std::string type = f.type;
  for (auto& c : type)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  const bool about_cursor =
      type.find("CURSOR") != std::string::npos || type.find("PAGINATION") != std::string::npos;
  out.cursor_rejected =
      had_cursor && f.code == api::http_errc::http_status && f.status == 400 && about_cursor;
  // A 400 whose error names the page size (its type or its message): `limit` was refused.
  std::string detail = f.detail;
  for (auto& c : detail)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  out.limit_rejected =
      !out.cursor_rejected && f.code == api::http_errc::http_status && f.status == 400 &&
      (type.find("LIMIT") != std::string::npos || detail.find("LIMIT") != std::string::npos);
  return out;
}

fetch_failure decode_failure(std::string message) {
  fetch_failure out;
  out.code = fetch_errc::decode;
  out.message = std::move(message);
  return out;
}

api::request with_deadline(api::request req, const page_request& r) {
  if (r.not_after_ms > 0)
    req.not_after =
        std::chrono::system_clock::time_point(std::chrono::milliseconds(r.not_after_ms));
  return req;
}

fetcher_impl::behavior_type fetcher_behavior(fetcher_impl::stateful_pointer<fetcher_state> self,
                                             std::shared_ptr<api::http_client> client) {
  self->state.client = std::move(client);
  // Sends the request; the io thread's completion handler only posts the outcome back here.
  auto start = [self](api::request req, pending_call call) {
    auto id = self->state.next_id++;
    call.where = req.describe();
    self->state.pending.emplace(id, std::move(call));
    auto weak = caf::actor_cast<caf::weak_actor_ptr>(self->ctrl());
    self->state.client->async_request(
        std::move(req), [weak, id](api::http_result<api::response> outcome) {
          if (auto strong = caf::actor_cast<caf::strong_actor_ptr>(weak)) {
            http_completion done;
            done.id = id;
            done.ok = outcome.ok();
            if (done.ok)
              done.response = std::move(outcome).value();
            else
              done.failure = std::move(outcome).err();
            caf::anon_send(caf::actor_cast<fetcher_impl>(strong), http_done_atom::value,
                           std::move(done));
          }
        });
  };
  return {
      [self, start](get_job_atom,
                    const api::uuid& job_id) -> caf::typed_response_promise<job_reply> {
        pending_call call{
            pending_kind::job, {}, false, self->make_response_promise<job_reply>(), {}, {}, {}};
        auto rp = call.job_promise;
        start(api::requests::get_job(job_id), std::move(call));
        return rp;
      },
      [self, start](list_jobs_atom,
                    const jobs_request& r) -> caf::typed_response_promise<jobs_reply> {
        pending_call call{pending_kind::jobs,
                          {},
                          !r.after.empty(),
                          {},
                          {},
                          {},
                          self->make_response_promise<jobs_reply>()};
        auto rp = call.jobs_promise;
        start(api::requests::list_jobs(r.statuses, r.company_id, r.limit, r.after),
              std::move(call));
        return rp;
      },
      [self, start](list_items_atom,
                    const page_request& r) -> caf::typed_response_promise<items_reply> {
        pending_call call{pending_kind::items,
                          {},
                          !r.after.empty(),
                          {},
                          self->make_response_promise<items_reply>(),
                          {},
                          {}};
        auto rp = call.items_promise;
        start(with_deadline(api::requests::job_items(r.job_id, r.limit, r.after, r.offset), r),
              std::move(call));
        return rp;
      },
      [self, start](list_dates_atom,
                    const page_request& r) -> caf::typed_response_promise<dates_reply> {
        pending_call call{pending_kind::dates,
                          {},
                          !r.after.empty(),
                          {},
                          {},
                          self->make_response_promise<dates_reply>(),
                          {}};
        auto rp = call.dates_promise;
        start(with_deadline(api::requests::export_items(r.job_id, r.limit, r.after, r.offset), r),
              std::move(call));
        return rp;
      },
      [self](http_done_atom, const http_completion& done) {
        auto it = self->state.pending.find(done.id);
        if (it == self->state.pending.end()) return;
        pending_call call = std::move(it->second);
        self->state.pending.erase(it);
        switch (call.kind) {
          case pending_kind::job: {
            job_reply reply;
            if (!done.ok) {
              reply.failure = from_http(done.failure, false);
              reply.attempts = done.failure.attempts;
            } else {
              reply.attempts = done.response.attempts;
              auto job = api::decode_job(done.response.body, call.where);
              if (job) {
                reply.ok = true;
                reply.job = std::move(job.value());
              } else {
                reply.failure = decode_failure(job.err().message);
              }
            }
            call.job_promise.deliver(std::move(reply));
            break;
          }
          case pending_kind::jobs: {
            jobs_reply reply;
            if (!done.ok) {
              reply.failure = from_http(done.failure, call.had_cursor);
              reply.attempts = done.failure.attempts;
            } else {
              reply.attempts = done.response.attempts;
              auto page = api::decode_job_list(done.response.body, call.where);
              if (page) {
                reply.ok = true;
                reply.page = std::move(page.value());
              } else {
                reply.failure = decode_failure(page.err().message);
              }
            }
            call.jobs_promise.deliver(std::move(reply));
            break;
          }
          case pending_kind::items: {
            items_reply reply;
            if (!done.ok) {
              reply.failure = from_http(done.failure, call.had_cursor);
              reply.attempts = done.failure.attempts;
            } else {
              reply.attempts = done.response.attempts;
              auto page = self->state.parser.job_items(api::padded_body::of(done.response.body),
                                                       call.where);
              if (page) {
                reply.ok = true;
                reply.page = std::move(page.value());
              } else {
                reply.failure = decode_failure(page.err().message);
              }
            }
            call.items_promise.deliver(std::move(reply));
            break;
          }
          case pending_kind::dates: {
            dates_reply reply;
            if (!done.ok) {
              reply.failure = from_http(done.failure, call.had_cursor);
              reply.attempts = done.failure.attempts;
            } else {
              reply.attempts = done.response.attempts;
              auto page = self->state.parser.item_dates(api::padded_body::of(done.response.body),
                                                        call.where);
              if (page) {
                reply.ok = true;
                reply.page = std::move(page.value());
              } else {
                reply.failure = decode_failure(page.err().message);
              }
            }
            call.dates_promise.deliver(std::move(reply));
            break;
          }
        }
      },
  };
}

}  // namespace

job_failure failure_code(const fetch_failure& f) {
  if (f.cursor_rejected) return job_errc::cursor_rejected;
  if (f.limit_rejected) return job_errc::limit_rejected;
  if (f.http_status != 0) return {job_errc::http_status, static_cast<std::uint16_t>(f.http_status)};
  return to_job_failure(f.code, f.http_status);
}

fetcher_actor spawn_fetcher(caf::actor_system& sys, std::shared_ptr<api::http_client> client) {
  return caf::actor_cast<fetcher_actor>(sys.spawn(fetcher_behavior, std::move(client)));
}

}  // namespace ei::actors
