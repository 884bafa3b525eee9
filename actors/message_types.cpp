#include "actors/message_types.hpp"

#include <cstdint>
#include <string>

#include <caf/message.hpp>

#include "actors/batch.hpp"
#include "actors/detail/job_parts.hpp"
#include "actors/downstream.hpp"
#include "actors/errors.hpp"
#include "actors/fetcher.hpp"
#include "actors/job.hpp"
#include "actors/report.hpp"
#include "actors/store.hpp"

namespace ei::actors {
namespace {

/// A caf::error of Code's category renders as "<category>: <code text> (<context>)".
/// (CAF 0.17.6's add_error_category<T> does not compile: its renderer has the wrong arity.)
template <class Code>
void add_category(caf::actor_system_config& cfg) {
  cfg.add_error_category(
      error_category<Code>::atom,
      [](std::uint8_t code, caf::atom_value, const caf::message& context) -> std::string {
        std::string out(error_category<Code>::name);
        out += ": ";
        out += to_string(from_caf_error_value<Code>(code));
        if (context.match_elements<std::string>()) {
          out += " (";
          out += context.get_as<std::string>(0);
          out += ")";
        } else if (!context.empty()) {
          out += " ";
          out += to_string(context);
        }
        return out;
      });
}

}  // namespace

void add_message_types(caf::actor_system_config& cfg) {
  // The value types the messages carry (each also registers std::vector<T>).
  cfg.add_message_type<api::uuid>("ei::api::uuid")
      .add_message_type<api::export_job>("ei::api::export_job")
      .add_message_type<storage::job_record>("ei::storage::job_record")
      .add_message_type<storage::job_progress>("ei::storage::job_progress")
      .add_message_type<job_failure>("ei::actors::job_failure")
      .add_message_type<reconciliation_entry>("ei::actors::reconciliation_entry");
  // fetcher.hpp
  cfg.add_message_type<page_request>("ei::actors::page_request")
      .add_message_type<jobs_request>("ei::actors::jobs_request")
      .add_message_type<job_reply>("ei::actors::job_reply")
      .add_message_type<jobs_reply>("ei::actors::jobs_reply")
      .add_message_type<items_reply>("ei::actors::items_reply")
      .add_message_type<dates_reply>("ei::actors::dates_reply");
  // store.hpp
  cfg.add_message_type<store_reply>("ei::actors::store_reply")
      .add_message_type<page_commit>("ei::actors::page_commit")
      .add_message_type<dispatch_mark>("ei::actors::dispatch_mark")
      .add_message_type<order_chunk>("ei::actors::order_chunk")
      .add_message_type<order_finish>("ei::actors::order_finish")
      .add_message_type<ack_outcomes>("ei::actors::ack_outcomes")
      .add_message_type<sink_acks>("ei::actors::sink_acks");
  // downstream.hpp
  cfg.add_message_type<item_batch>("ei::actors::item_batch")
      .add_message_type<outcome_acks>("ei::actors::outcome_acks");
  // job.hpp, detail/job_parts.hpp
  cfg.add_message_type<job_outcome>("ei::actors::job_outcome")
      .add_message_type<listing_result>("ei::actors::listing_result")
      .add_message_type<order_result>("ei::actors::order_result")
      .add_message_type<reconcile_result>("ei::actors::reconcile_result")
      .add_message_type<dispatch_result>("ei::actors::dispatch_result");
  // batch.hpp
  cfg.add_message_type<batch_request>("ei::actors::batch_request")
      .add_message_type<batch_report>("ei::actors::batch_report");
  // errors.hpp: a caf::error of these categories renders as "<category>: <code text>".
  add_category<api::http_errc>(cfg);
  add_category<api::codec_errc>(cfg);
  add_category<storage::store_errc>(cfg);
  add_category<fetch_errc>(cfg);
  add_category<job_errc>(cfg);
}

}  // namespace ei::actors
