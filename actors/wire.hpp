// How the protocol's value types are inspected (CAF 0.17 `inspect`), so that every message
// of the actor graph is serialisable and none is whitelisted as an unsafe message type: the
// overloads for the api/ and storage/ types the messages carry (declared here, in those types'
// namespaces so that CAF finds them by argument-dependent lookup, because api/ and storage/
// know nothing about CAF). The public types (ids, tracking fields, contract deviations) and
// `wire::opt`, which carries a std::optional (CAF 0.17 has no inspector for it) as a presence
// flag followed by the value, have theirs next to them in export_items/types.hpp; the public
// messages in export_items/protocol.hpp. Each actor header gives its own message structs their
// `inspect` next to them; actors/message_types.hpp registers the names.
#pragma once

#include <optional>
#include <utility>

#include <caf/error.hpp>
#include <caf/meta/type_name.hpp>

#include "api/model.hpp"
#include "export_items/types.hpp"  // wire::opt
#include "storage/state_store.hpp"

namespace ei::api {

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, export_job& x) {
  using actors::wire::opt;
  return f(caf::meta::type_name("ei::api::export_job"), x.id, x.company_id, x.status, x.status_text,
           x.created_at, opt(x.created_by), opt(x.started_at), opt(x.completed_at),
           opt(x.last_updated_at), opt(x.expired_at), x.expires_in, x.is_interactive,
           x.number_of_items, x.vendor_based_bookkeeping, opt(x.failure_reason),
           opt(x.failure_reason_type), x.deviations);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, export_job_item& x) {
  return f(caf::meta::type_name("ei::api::export_job_item"), x.accounting_entry_id, x.export_job_id,
           x.status, x.status_text, x.tracking);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, export_item_date& x) {
  return f(caf::meta::type_name("ei::api::export_item_date"), x.accounting_entry_id,
           actors::wire::opt(x.date_ms));
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, current_request_pagination& x) {
  using actors::wire::opt;
  return f(caf::meta::type_name("ei::api::current_request_pagination"), x.parameters, opt(x.after),
           opt(x.before), opt(x.limit), opt(x.offset), x.sorting_keys, x.sorting_order);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, page_info& x) {
  using actors::wire::opt;
  return f(caf::meta::type_name("ei::api::page_info"), x.current_request, x.has_next_page,
           x.has_previous_page, opt(x.end_cursor), opt(x.start_cursor), opt(x.total));
}

template <class Inspector, class T>
typename Inspector::result_type inspect(Inspector& f, page<T>& x) {
  return f(caf::meta::type_name("ei::api::page"), x.data, x.pagination, x.deviations);
}

}  // namespace ei::api

namespace ei::storage {

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, job_counters& x) {
  return f(caf::meta::type_name("ei::storage::job_counters"), x.listed, x.pages, x.duplicates,
           x.in_scope, x.needs_reconciliation, x.redelivered, x.by_remote_status);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, job_record& x) {
  return f(caf::meta::type_name("ei::storage::job_record"), x.job_id, x.company_id, x.phase,
           x.ordering, x.runs, x.listing_epoch, x.pages_committed, x.next_cursor,
           x.listing_complete, x.order_size, x.counters, x.failure_code, x.failure_message,
           x.created_ms, x.updated_ms);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, listed_item& x) {
  return f(caf::meta::type_name("ei::storage::listed_item"), x.id, x.remote_status, x.status_text,
           x.tracking);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, page_record& x) {
  return f(caf::meta::type_name("ei::storage::page_record"), x.page_no, x.request_cursor,
           x.next_cursor, x.has_next, x.items);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, order_entry& x) {
  return f(caf::meta::type_name("ei::storage::order_entry"), x.id, x.remote_status, x.has_tracking,
           x.handed_on, x.absent);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, order_chunk_write& x) {
  return f(caf::meta::type_name("ei::storage::order_chunk_write"), x.chunk_no, x.entries);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, job_progress& x) {
  using actors::wire::opt;
  return f(caf::meta::type_name("ei::storage::job_progress"), x.job_id, opt(x.dispatched_through),
           opt(x.acked_through));
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, item_outcome& x) {
  return f(caf::meta::type_name("ei::storage::item_outcome"), x.item, x.seq, x.status, x.fields,
           x.state, x.rejections, x.error_type, x.error_message);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, job_item_outcome& x) {
  return f(caf::meta::type_name("ei::storage::job_item_outcome"), x.job_id, x.outcome);
}

}  // namespace ei::storage
