// The `report` and `complete` subcommands of export-items and the `--complete-jobs` flag of
// `run` (docs/write-back.md), added to the application's CLI11 app by main:
//
//   auto loop = ei::writeback::add_commands(app, *run);
//   ... app.parse(argc, argv) ...
//   if (auto rc = ei::writeback::dispatch(*loop)) return *rc;
//   // in `run`: ei::writeback::attach_to_run(*loop, options) before run_stage, and
//   //           ei::writeback::run_exit_code(*loop, rc) after it
//
// Exit codes: 0 everything done; 1 write-back or completion of a job stopped (HTTP, 422,
// store: the summary says why; a re-run continues); 2 usage error or any outcome line refused
// (the valid lines are still recorded and sent).
#pragma once

#include <memory>
#include <optional>

#include <CLI/CLI.hpp>

#include "pipeline/stage.hpp"

namespace ei::writeback {

struct command_set;

/// Registers `report` and `complete`, and `--complete-jobs` on `run`.
std::shared_ptr<command_set> add_commands(CLI::App& app, CLI::App& run);

/// Runs `report` or `complete` when parsed; nullopt otherwise.
std::optional<int> dispatch(const command_set& commands);

/// With `run --complete-jobs`: makes the stage write outcomes back and complete the ready jobs
/// after its batch (run_options::after_batch).
void attach_to_run(const command_set& commands, pipeline::run_options& options);

/// The exit code of `run` given the stage's own: 1 when write-back or completion stopped.
int run_exit_code(const command_set& commands, int stage_rc);

}  // namespace ei::writeback
