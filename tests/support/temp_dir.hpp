// A uniquely named temporary directory for a test, removed with everything in it when the
// test is done.
#pragma once

#include <filesystem>
#include <random>
#include <string>

namespace ei::testing {

class temp_dir {
 public:
  explicit temp_dir(const std::string& prefix = "ei-test-") {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            (prefix + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string str() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace ei::testing
