// demo/demo_file.hpp - where the demo's files live: a directory of its own (which file system), and its removal.
#pragma once

#include <string>

namespace flushkit::demo {

/// The directory that holds every file the demo writes (journal segments,
/// the baseline's log, the pmem files). The demo creates it and, unless
/// kept, removes it with everything in it.
class demo_dir {
public:
  /// Effects: creates the directory `requested` (which must not exist), or,
  /// when empty, a fresh temporary directory `flushkit-demo-XXXXXX` in
  /// $TMPDIR or /var/tmp. Throws std::runtime_error (naming the path and the
  /// system error) when it cannot.
  demo_dir(const std::string& requested, bool keep);
  demo_dir(const demo_dir&) = delete;
  demo_dir& operator=(const demo_dir&) = delete;
  /// Effects: removes the directory and everything in it, unless kept.
  ~demo_dir();

  /// Returns: the directory's path.
  const std::string& path() const noexcept { return path_; }
  /// Returns: the path of `name` inside the directory. Allocation: the string.
  std::string file(const char* name) const { return path_ + "/" + name; }
  /// Returns: whether the directory stays after the demo.
  bool kept() const noexcept { return keep_; }

private:
  std::string path_;
  bool keep_;
};

/// Returns: the name of the file system holding `path` ("ext4", "tmpfs",
/// ... or its hex magic number; "unknown" when statfs fails).
std::string fs_type_name(const std::string& path);

} // namespace flushkit::demo
