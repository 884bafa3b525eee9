// The stage's NDJSON output read back as the fields tests compare (docs/design.md, "Output").
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ei::testing {

struct output_line {
  std::string job;
  std::string id;
  std::string status;
  std::uint64_t sequence;
  std::uint32_t attempt;
  bool redelivery;
  friend bool operator==(const output_line&, const output_line&) = default;
};

/// Every line of `file`, in order; a line that is not the stage's JSON throws (fails the test).
inline std::vector<output_line> read_output_lines(const std::filesystem::path& file) {
  std::vector<output_line> out;
  std::ifstream in(file);
  std::string text;
  while (std::getline(in, text)) {
    auto j = nlohmann::json::parse(text);
    out.push_back({j["jobId"], j["accountingEntryId"], j["status"], j["sequence"], j["attempt"],
                   j["redelivery"]});
  }
  return out;
}

}  // namespace ei::testing
