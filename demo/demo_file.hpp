// demo/demo_file.hpp - the file behind the demo's pmem range: where it is, what file system, removal.
#pragma once

#include <string>

namespace flushkit::demo {

/// A file the demo creates and (unless kept) removes.
class demo_file {
public:
  /// Effects: creates `requested` (which must not exist), or, when empty, a
  /// fresh temporary file in $TMPDIR or /var/tmp. Throws std::runtime_error.
  demo_file(const std::string& requested, bool keep);
  demo_file(const demo_file&) = delete;
  demo_file& operator=(const demo_file&) = delete;
  /// Unlinks the file unless kept.
  ~demo_file();

  const std::string& path() const noexcept { return path_; }
  bool kept() const noexcept { return keep_; }

private:
  std::string path_;
  bool keep_;
};

/// Name of the file system holding `path` ("ext4", "tmpfs", ... or a hex magic).
std::string fs_type_name(const std::string& path);

} // namespace flushkit::demo
