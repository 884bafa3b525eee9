#include "apps/job_ids.hpp"

#include <fstream>

namespace ei::apps {
namespace {

bool add_job(const std::string& text, std::vector<api::uuid>& out, std::string& problem,
             const std::string& where) {
  auto id = api::uuid::parse(text);
  if (!id) {
    problem = where + ": '" + text + "' is not a job id (expected a UUID)";
    return false;
  }
  out.push_back(*id);
  return true;
}

}  // namespace

basic_result<std::vector<api::uuid>, std::string> job_ids(const std::vector<std::string>& jobs,
                                                          const std::string& jobs_file) {
  std::vector<api::uuid> ids;
  std::string problem;
  for (const auto& j : jobs)
    if (!add_job(j, ids, problem, "--job")) return problem;
  if (jobs_file.empty()) return ids;
  std::ifstream in(jobs_file);
  if (!in) return "--jobs-file: cannot read '" + jobs_file + "'";
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    const auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    const auto last = line.find_last_not_of(" \t\r");
    if (!add_job(line.substr(first, last - first + 1), ids, problem,
                 jobs_file + ":" + std::to_string(n)))
      return problem;
  }
  return ids;
}

}  // namespace ei::apps
