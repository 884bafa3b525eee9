// Running the export-items binary from the write-back tests: arguments, environment, stdin
// from a file, stdout/stderr captured, bounded in time; and the outcome lines a downstream
// would give for the stage's output.
#pragma once

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/child_process.hpp"

namespace ei::testing {

using cli_result = child_result;

/// Runs EI_EXPORT_ITEMS_BIN with `args`; `env` is added to a minimal environment; stdin is
/// `stdin_file` (or /dev/null). Killed after `limit`.
inline cli_result run_cli(const std::vector<std::string>& args, const std::vector<std::string>& env,
                          const std::filesystem::path& dir, const std::string& stdin_file = {},
                          std::chrono::seconds limit = std::chrono::seconds(60)) {
  return run_child(EI_EXPORT_ITEMS_BIN, args, env,
                   {dir / "cli-stdout.txt", dir / "cli-stderr.txt", stdin_file}, limit,
                   "export-items " + args.front());
}

/// The outcome a downstream gives item `i` of the output: every 7th failed, else successful
/// with tracking fields.
inline nlohmann::json outcome_for(const std::string& job, const std::string& item, std::size_t i) {
  if (i % 7 == 3)
    return {{"jobId", job},
            {"accountingEntryId", item},
            {"status", "failed"},
            {"failureReason", "VAT code missing on line " + std::to_string(i)},
            {"failureReasonType", "invalid_vat_code"}};
  return {{"jobId", job},
          {"accountingEntryId", item},
          {"status", "successful"},
          {"externalId", "ERP-" + std::to_string(i)},
          {"externalUrl", "https://erp.example/e/" + std::to_string(i)},
          {"exportedAt", "2024-05-01T10:00:00Z"}};
}

/// Outcome lines for every line of the stage's NDJSON output.
inline std::vector<nlohmann::json> outcomes_for_output(const std::string& ndjson) {
  std::vector<nlohmann::json> out;
  std::istringstream in(ndjson);
  std::size_t i = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    auto d = nlohmann::json::parse(line);
    out.push_back(outcome_for(d["jobId"], d["accountingEntryId"], i++));
  }
  return out;
}

inline void write_lines(const std::filesystem::path& p, const std::vector<nlohmann::json>& lines) {
  std::ofstream o(p, std::ios::trunc);
  for (const auto& l : lines)
    o << l.dump() << "\n";
}

}  // namespace ei::testing
