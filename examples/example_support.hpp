// examples/example_support.hpp - what the graded examples share: a temporary file and result checks.
#pragma once

#include <flushkit/core/status.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include <fcntl.h>
#include <unistd.h>

namespace example {

/// A fresh file under /tmp, removed when the object goes out of scope.
class temp_file {
public:
  temp_file() {
    const int fd = ::mkstemp(path_);
    if (fd < 0) std::exit((std::perror("mkstemp"), EXIT_FAILURE));
    ::close(fd);
  }
  temp_file(const temp_file&) = delete;
  temp_file& operator=(const temp_file&) = delete;
  ~temp_file() { ::unlink(path_); }
  const char* path() const noexcept { return path_; }

private:
  char path_[40] = "/tmp/flushkit-example-XXXXXX";
};

/// True when the file at `path` holds `text` at `offset`, read with pread(2)
/// through a new descriptor: what any other reader of the file would see.
inline bool file_holds(const char* path, std::uint64_t offset, std::string_view text) {
  char buf[256] = {};
  if (text.size() > sizeof buf) return false;
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const ssize_t n = ::pread(fd, buf, text.size(), static_cast<off_t>(offset));
  ::close(fd);
  return n == static_cast<ssize_t>(text.size()) && std::string_view(buf, text.size()) == text;
}

/// Prints one line per check; returns 0 when `ok`, 1 otherwise (sum them for main's exit status).
inline int check(bool ok, const char* what) {
  std::printf("%-44s %s\n", what, ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}

/// Prints why something failed; returns main's exit status.
inline int fail(const char* what, const flushkit::status& st) {
  std::fprintf(stderr, "%s: %s\n", what, st.message().c_str());
  return EXIT_FAILURE;
}

} // namespace example
