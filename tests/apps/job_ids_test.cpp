// apps/job_ids.hpp: the one reader of `--job` and `--jobs-file` (run and submit).
#include "apps/job_ids.hpp"

#include <gtest/gtest.h>

#include <fstream>

#include "tests/support/temp_dir.hpp"

namespace ei::apps {
namespace {

constexpr const char* a = "1b4e28ba-2fa1-11d2-883f-0016d3cca427";
constexpr const char* b = "2c5f39cb-3fb2-42e3-994f-1127e4ddb538";

TEST(job_ids, options_then_file_with_blanks_and_comments) {
  testing::temp_dir d;
  const auto path = (d.path() / "jobs.txt").string();
  std::ofstream(path) << "# jobs of the night run\n\n  " << b << " \t\r\n   # indented comment\n";
  auto ids = job_ids({a}, path);
  ASSERT_TRUE(ids) << ids.err();
  ASSERT_EQ(ids->size(), 2u);
  EXPECT_EQ((*ids)[0].to_string(), a);
  EXPECT_EQ((*ids)[1].to_string(), b);
  auto none = job_ids({}, "");
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
}

TEST(job_ids, refusals_name_the_option_or_file_and_line) {
  testing::temp_dir d;
  const auto path = (d.path() / "jobs.txt").string();
  std::ofstream(path) << a << "\n\nnot-a-job\n";
  auto bad_line = job_ids({}, path);
  ASSERT_FALSE(bad_line);
  EXPECT_EQ(bad_line.err(), path + ":3: 'not-a-job' is not a job id (expected a UUID)");
  auto bad_option = job_ids({a, "x"}, "");
  ASSERT_FALSE(bad_option);
  EXPECT_EQ(bad_option.err(), "--job: 'x' is not a job id (expected a UUID)");
  auto missing = job_ids({}, (d.path() / "absent.txt").string());
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.err(), "--jobs-file: cannot read '" + (d.path() / "absent.txt").string() + "'");
}

}  // namespace
}  // namespace ei::apps
