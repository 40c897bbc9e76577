// bench/system_info.hpp - the machine and the bench file: what makes results interpretable.
#pragma once

#include <cstdint>
#include <string>

namespace flushkit::bench {

struct machine_info {
  std::string kernel;    ///< uname -r
  std::string cpu;       ///< "model name" of /proc/cpuinfo
  unsigned nproc = 0;    ///< online CPUs
  std::string build;     ///< compiler and optimisation of this binary
};

machine_info describe_machine();

/// The file system type of `path` (statfs f_type), e.g. "ext4", "tmpfs".
std::string fs_type_of(const std::string& path);

/// Device cache flushes completed by the block device that holds a file
/// (field 16 of /sys/dev/block/<maj>:<min>/stat, the whole disk for a
/// partition). Reading never allocates.
class device_flush_counter {
public:
  /// For the file at `path`; `available()` is false for tmpfs, overlay, etc.
  explicit device_flush_counter(const std::string& path);
  bool available() const noexcept { return !stat_path_.empty() && read() >= 0; }
  std::string device() const { return stat_path_; }
  /// Flushes so far, or -1.
  std::int64_t read() const noexcept;
  /// `device_flush_reader` adapter for the harness.
  static std::int64_t read_fn(const void* self) noexcept { return static_cast<const device_flush_counter*>(self)->read(); }

private:
  std::string stat_path_;
};

/// A pre-allocated, pre-written file that the file scenarios overwrite.
class bench_file {
public:
  /// Creates `path` (or, when empty, a temporary file in the current
  /// directory, falling back to $TMPDIR or /tmp), sizes it to `bytes`, writes
  /// every byte, fdatasyncs it and drops it from the page cache. A temporary
  /// file is removed by the destructor. Throws std::system_error.
  bench_file(const std::string& path, std::uint64_t bytes);
  bench_file(const bench_file&) = delete;
  bench_file& operator=(const bench_file&) = delete;
  ~bench_file();

  const std::string& path() const noexcept { return path_; }
  std::uint64_t size() const noexcept { return size_; }

private:
  std::string path_;
  std::uint64_t size_;
  bool temporary_ = false;
};

} // namespace flushkit::bench
