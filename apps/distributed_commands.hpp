// The `submit`, `worker` and `batch status` subcommands of export-items (a batch coordinated
// through etcd: distributed/), added to the application's CLI11 app by main:
//
//   auto distributed = ei::distributed::add_commands(app);
//   ... app.parse(argc, argv) ...
//   if (auto rc = ei::distributed::dispatch(*distributed)) return *rc;
//
// Options are documented in docs/distributed.md and by `export-items worker --help`.
#pragma once

#include <memory>
#include <optional>

#include <CLI/CLI.hpp>

namespace ei::distributed {

struct command_set;

/// Registers the subcommands; the returned object holds their parsed options.
std::shared_ptr<command_set> add_commands(CLI::App& app);

/// Runs whichever of them was parsed and returns its exit code; nullopt when none was given.
std::optional<int> dispatch(const command_set& commands);

}  // namespace ei::distributed
