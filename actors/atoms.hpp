// The message atoms of every actor family, in one place so that no two families pick the
// same name for different meanings (the four a host sees are in export_items/protocol.hpp).
// CAF 0.17 atoms are at most 10 characters.
#pragma once

#include <caf/atom.hpp>

#include "export_items/protocol.hpp"  // run_atom, items_atom, ack_atom, outcome_atom

namespace ei::actors {

using get_job_atom = caf::atom_constant<caf::atom("getjob")>;
using list_jobs_atom = caf::atom_constant<caf::atom("listjobs")>;
using list_items_atom = caf::atom_constant<caf::atom("listitems")>;
using list_dates_atom = caf::atom_constant<caf::atom("listdates")>;
using http_done_atom = caf::atom_constant<caf::atom("httpdone")>;

using page_atom = caf::atom_constant<caf::atom("page")>;
using done_atom = caf::atom_constant<caf::atom("done")>;
using flush_atom = caf::atom_constant<caf::atom("flush")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;
using commit_atom = caf::atom_constant<caf::atom("commit")>;
using put_job_atom = caf::atom_constant<caf::atom("putjob")>;
using dispatch_atom = caf::atom_constant<caf::atom("dispatch")>;
using order_atom = caf::atom_constant<caf::atom("order")>;
using attach_atom = caf::atom_constant<caf::atom("attach")>;
/// The store actor to itself: fsync the writes made so far, then deliver their replies.
using sync_atom = caf::atom_constant<caf::atom("sync")>;
using report_atom = caf::atom_constant<caf::atom("report")>;
/// A phase actor to itself: fetch a page again after a backoff (the page, not the listing).
using retry_atom = caf::atom_constant<caf::atom("retry")>;
/// The sequencer to itself: read the job again (it may have expired or finished elsewhere).
using check_atom = caf::atom_constant<caf::atom("jobcheck")>;

}  // namespace ei::actors
