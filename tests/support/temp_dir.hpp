// tests/support/temp_dir.hpp - a unique temporary directory, removed with its contents on destruction.
#pragma once

#include <filesystem>
#include <stdexcept>
#include <string>

#include <stdlib.h>

namespace flushkit::test {

/// A directory made with mkdtemp under /tmp (a real file system, as the
/// bench and the demo use), removed recursively on destruction.
class temp_dir {
public:
  explicit temp_dir(const char* stem = "flushkit-test") {
    std::string pattern = std::string("/tmp/") + stem + "-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  /// The directory.
  const std::string& path() const noexcept { return path_; }
  /// `path() + "/" + name`.
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

private:
  std::string path_;
};

} // namespace flushkit::test
