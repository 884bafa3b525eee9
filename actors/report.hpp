// The reconciliation report: items a person should look at, appended as NDJSON lines
// (`<out>.reconcile.ndjson`) by a detached writer. A job's entries are written and fsynced
// BEFORE the job is recorded complete, so a crash in between writes them again on the next
// run (at least once): readers treat the file as a set keyed by (jobId, accountingEntryId).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/typed_actor.hpp>

#include "actors/atoms.hpp"
#include "actors/store.hpp"
#include "api/model.hpp"
#include "common/result.hpp"
#include "export_items/protocol.hpp"  // reconciliation_entry

namespace ei::actors {

/// Appends a job's entries (one line each) and fsyncs; answers once they are durable.
using report_writer_actor = caf::typed_actor<
    caf::replies_to<report_atom, api::uuid, std::vector<reconciliation_entry>>::with<store_reply>>;

/// Formats one report line (without the newline).
std::string reconciliation_line(const api::uuid& job, const reconciliation_entry& e);

/// Spawns the detached writer appending to `path` (created on the first entry, never
/// truncated). `wrote` is set once anything was written.
report_writer_actor spawn_report_writer(caf::actor_system& sys, std::string path,
                                        std::shared_ptr<std::atomic<bool>> wrote);

}  // namespace ei::actors
