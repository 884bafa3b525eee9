// common/durable_file.hpp: append + fsync, and the cut on reopen.
#include "common/durable_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/support/temp_dir.hpp"

namespace ei::durable {
namespace {

std::string content(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(durable_file, appends_synced_and_cuts_back_on_reopen) {
  testing::temp_dir d;
  const auto path = d.path() / "out.ndjson";
  int fd = ::open(path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  EXPECT_FALSE(append_synced(fd, "one\n"));
  EXPECT_FALSE(append_synced(fd, "two\nthr", /*sync=*/false));
  EXPECT_EQ(content(path), "one\ntwo\nthr");
  EXPECT_EQ(whole_lines_end(fd), 8u);
  EXPECT_FALSE(cut_to(fd, 4));  // only "one\n" was acknowledged
  EXPECT_EQ(content(path), "one\n");
  EXPECT_FALSE(cut_to(fd, 100));  // a shorter file is left alone
  EXPECT_EQ(content(path), "one\n");
  EXPECT_EQ(whole_lines_end(fd), 4u);
  EXPECT_FALSE(write_all(fd, "torn"));
  EXPECT_EQ(whole_lines_end(fd), 4u);
  ::close(fd);
}

TEST(durable_file, whole_lines_of_files_without_a_newline) {
  testing::temp_dir d;
  const auto path = d.path() / "f";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(whole_lines_end(fd), 0u);  // empty
  EXPECT_FALSE(write_all(fd, "no newline at all"));
  EXPECT_EQ(whole_lines_end(fd), 0u);
  ::close(fd);
}

TEST(durable_file, failures_name_the_step_and_errno) {
  testing::temp_dir d;
  const auto path = d.path() / "r";
  std::ofstream(path) << "x\n";
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  auto f = append_synced(fd, "y\n");
  ASSERT_TRUE(f);
  EXPECT_STREQ(f->step, "write");
  EXPECT_EQ(f->error, EBADF);
  auto t = cut_to(fd, 0);
  ASSERT_TRUE(t);
  EXPECT_STREQ(t->step, "truncate");
  ::close(fd);
  EXPECT_FALSE(whole_lines_end(fd));  // closed
  auto s = cut_to(fd, 0);
  ASSERT_TRUE(s);
  EXPECT_STREQ(s->step, "stat");
}

}  // namespace
}  // namespace ei::durable
