// The coordinator <-> worker protocol over CAF's middleman (BASP over TCP).
//
// Both ends are dynamically typed actors; every message element that crosses the network is
// either a builtin (atoms, integers, strings, bool) or one of the structs below, each with an
// `inspect` overload and registered by `register_protocol` on BOTH sides (CAF 0.17 refuses to
// serialize unregistered types). Job ids travel as their 36-character text.
//
// worker -> coordinator (every one a request with a deadline; the reply names the result):
//   (hello_atom, worker_hello)              -> (hello_atom, worker_id, worker_settings)
//   (beat_atom, worker_id)                  -> (beat_atom, bool known)   every heartbeat_ms
//   (batch_atom, wire_batch)                -> (batch_atom, job, epoch, acked_through, fenced)
//   (outcome_atom, wire_outcome)            -> (outcome_atom, bool accepted)
// coordinator -> worker:
//   (assign_atom, assignment)               -> (assign_atom, job, bool accepted)
//
// Fencing: every batch and outcome carries the epoch of the assignment it belongs to; the
// coordinator answers a stale epoch (or a worker it declared dead) with fenced = true /
// accepted = false and never writes or acknowledges it. `known = false` on a heartbeat tells a
// returning zombie that it was declared dead: it stops everything and exits.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/actor_system_config.hpp>
#include <caf/atom.hpp>
#include <caf/meta/type_name.hpp>

namespace ei::distributed {

using hello_atom = caf::atom_constant<caf::atom("dhello")>;
using beat_atom = caf::atom_constant<caf::atom("dbeat")>;
using batch_atom = caf::atom_constant<caf::atom("dbatch")>;
using outcome_atom = caf::atom_constant<caf::atom("doutcome")>;
using assign_atom = caf::atom_constant<caf::atom("dassign")>;
using check_atom = caf::atom_constant<caf::atom("dcheck")>;
using drain_atom = caf::atom_constant<caf::atom("ddrain")>;

/// What a worker says about itself when it registers.
struct worker_hello {
  std::string name;  // host name, for people
  std::int32_t pid = 0;
};

/// What every worker must run with, so that all workers compute the same deterministic order
/// of a job (sequence numbers must agree across workers for a resume to be correct).
struct worker_settings {
  std::string base_url;  // the worker's --base-url overrides it
  std::string ordering;  // "chronological" | "entry_id"
  std::uint32_t page_size = 0;
  std::uint32_t batch_size = 0;
  std::uint32_t credit_window = 0;
  std::uint32_t heartbeat_ms = 0;
  std::uint32_t request_timeout_ms = 0;  // deadline of each remote request
};

/// One job given to one worker. `resume_from` is the ledger's acked_through: the worker must
/// not hand on any sequence <= resume_from.
struct assignment {
  std::string job_id;
  std::uint64_t epoch = 0;
  std::uint64_t resume_from = 0;
};

/// One item: its sequence in the job's order and its NDJSON line (actors/sink.hpp format,
/// formatted by the worker, written verbatim by the coordinator).
struct wire_item {
  std::uint64_t sequence = 0;
  std::string line;
};

struct wire_batch {
  std::string job_id;
  std::uint64_t epoch = 0;
  std::uint64_t worker_id = 0;
  std::vector<wire_item> items;  // ascending sequences
};

struct wire_outcome {
  std::string job_id;
  std::uint64_t epoch = 0;
  std::uint64_t worker_id = 0;
  std::string result;  // to_string(job_result)
  std::string reason_code;
  std::string reason;
  std::uint64_t in_scope = 0;  // size of the job's order as this worker computed it
  std::uint64_t emitted = 0;
  std::uint64_t dropped = 0;  // sequences <= resume_from passed over locally
  double duration_seconds = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, worker_hello& x) {
  return f(caf::meta::type_name("ei_worker_hello"), x.name, x.pid);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, worker_settings& x) {
  return f(caf::meta::type_name("ei_worker_settings"), x.base_url, x.ordering, x.page_size,
           x.batch_size, x.credit_window, x.heartbeat_ms, x.request_timeout_ms);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, assignment& x) {
  return f(caf::meta::type_name("ei_assignment"), x.job_id, x.epoch, x.resume_from);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, wire_item& x) {
  return f(caf::meta::type_name("ei_wire_item"), x.sequence, x.line);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, wire_batch& x) {
  return f(caf::meta::type_name("ei_wire_batch"), x.job_id, x.epoch, x.worker_id, x.items);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, wire_outcome& x) {
  return f(caf::meta::type_name("ei_wire_outcome"), x.job_id, x.epoch, x.worker_id, x.result,
           x.reason_code, x.reason, x.in_scope, x.emitted, x.dropped, x.duration_seconds);
}

/// Registers the wire types and loads the middleman with heartbeats every `heartbeat_ms`
/// (BASP-level; `connection_timeout_ms` closes a connection that stayed silent that long).
void configure_system(caf::actor_system_config& cfg, std::uint32_t heartbeat_ms,
                      std::uint32_t connection_timeout_ms, std::size_t scheduler_threads);

/// "HOST:PORT" -> host, port; false when it does not parse.
bool split_host_port(const std::string& text, std::string& host, std::uint16_t& port);

}  // namespace ei::distributed
