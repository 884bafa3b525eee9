// The coordinator's ledger survives a reopen with every committed record, and the address
// parser accepts what --listen / --coordinator document and names nothing else.
#include <filesystem>
#include <random>

#include <gtest/gtest.h>

#include "distributed/ledger.hpp"
#include "distributed/protocol.hpp"

namespace ei::distributed {
namespace {

namespace fs = std::filesystem;

class temp_dir {
 public:
  temp_dir() {
    std::random_device rd;
    path_ =
        fs::temp_directory_path() / ("ei-ledger-" + std::to_string(rd()) + std::to_string(rd()));
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string str() const { return path_.string(); }

 private:
  fs::path path_;
};

TEST(Ledger, CommittedRecordsSurviveAReopen) {
  temp_dir dir;
  {
    auto l = ledger::open(dir.str());
    ASSERT_TRUE(l.ok()) << l.err().message;
    EXPECT_EQ((*l)->job("a").acked_through, 0U);
    EXPECT_EQ((*l)->job("a").epoch, 0U);
    EXPECT_EQ((*l)->output_offset(), 0U);
    std::uint64_t offset = 4711;
    ASSERT_TRUE((*l)->commit({{"a", {12, 3, ledger_job_state::open}},
                              {"b", {7, 1, ledger_job_state::complete}}},
                             &offset)
                    .ok());
    ASSERT_TRUE((*l)->commit({{"a", {20, 3, ledger_job_state::open}}}, nullptr).ok());
    EXPECT_EQ((*l)->job("a").acked_through, 20U);
  }
  auto l = ledger::open(dir.str());
  ASSERT_TRUE(l.ok()) << l.err().message;
  EXPECT_EQ((*l)->job("a").acked_through, 20U);
  EXPECT_EQ((*l)->job("a").epoch, 3U);
  EXPECT_EQ((*l)->job("b").state, ledger_job_state::complete);
  EXPECT_EQ((*l)->output_offset(), 4711U);
}

TEST(Ledger, AnUnusableDirectoryIsNamed) {
  auto l = ledger::open("/proc/no-ledger-here");
  ASSERT_FALSE(l.ok());
  EXPECT_EQ(l.err().code, ledger_errc::open_failed);
  EXPECT_NE(l.err().message.find("/proc/no-ledger-here"), std::string::npos);
}

TEST(Address, HostAndPort) {
  std::string host;
  std::uint16_t port = 1;
  ASSERT_TRUE(split_host_port("127.0.0.1:0", host, port));
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(port, 0);
  ASSERT_TRUE(split_host_port("[::1]:7400", host, port));
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, 7400);
  for (const char* bad : {"", "host", ":80", "host:", "host:65536", "host:8x", "host:-1"})
    EXPECT_FALSE(split_host_port(bad, host, port)) << bad;
}

}  // namespace
}  // namespace ei::distributed
