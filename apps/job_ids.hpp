// The jobs a command names: `--job ID` (repeatable) and `--jobs-file FILE`, for `run` and
// `submit` alike.
#pragma once

#include <string>
#include <vector>

#include "api/model.hpp"
#include "common/result.hpp"

namespace ei::apps {

/// The ids of `jobs` (each a `--job` value), then those of `jobs_file` when it is not empty:
/// one id per line; blank lines and lines starting with '#' are skipped and blanks around an
/// id ignored. Otherwise what is wrong, naming the option or `file:line` and the text, e.g.
/// "jobs.txt:3: 'x' is not a job id (expected a UUID)" or "--jobs-file: cannot read 'f'".
basic_result<std::vector<api::uuid>, std::string> job_ids(const std::vector<std::string>& jobs,
                                                          const std::string& jobs_file);

}  // namespace ei::apps
