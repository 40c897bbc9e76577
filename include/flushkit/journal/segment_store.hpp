// flushkit/journal/segment_store.hpp - where journal segments live: the concept and the directory of files.
#pragma once

#include <flushkit/core/status.hpp>
#include <flushkit/pmem/backing.hpp>
#include <flushkit/pmem/detail/file_io.hpp>
#include <flushkit/pmem/result.hpp>

#include <algorithm>
#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace flushkit {

/// What a journal keeps its segments in: numbered fixed-size segments.
///
/// * `segment_bytes()`: the size of every segment.
/// * `list(out)`: the indices of the segments present, ascending (at open).
/// * `create(i)`: makes segment `i`, every byte zero, and returns once the
///   segment and its name are durable (it may block for a while).
/// * `remove(i)`: deletes segment `i` durably.
/// * `write(i, offset, bytes)`, `read(i, offset, bytes)` (all or an error),
///   `sync(i)`: after `sync(i)` returns success, every byte written to `i`
///   before the call survives a power cut.
///
/// Each returns a `status`; a full medium is `errc::no_space`. Calls for
/// different segments may run concurrently on different threads.
template <class S>
concept segment_store = requires(S& s, const S& cs, std::uint64_t index, std::uint64_t offset,
                                 std::span<const std::byte> in, std::span<std::byte> out,
                                 std::vector<std::uint64_t>& indices) {
  { cs.segment_bytes() } -> std::convertible_to<std::uint64_t>;
  { s.list(indices) } -> std::same_as<status>;
  { s.create(index) } -> std::same_as<status>;
  { s.remove(index) } -> std::same_as<status>;
  { s.write(index, offset, in) } -> std::same_as<status>;
  { s.read(index, offset, out) } -> std::same_as<status>;
  { s.sync(index) } -> std::same_as<status>;
};

/// A `segment_store`, or a reference to one (held by a journal or reader
/// that does not own it).
template <class S>
concept segment_store_or_ref = segment_store<std::remove_reference_t<S>>;

/// Options of `segment_directory`.
struct segment_directory_options {
  /// Bytes of each segment file: a multiple of 4096, at least 4096.
  std::uint64_t segment_bytes = 64ull << 20;
  /// How `create` allocates a segment: `zero_fill` (the default) writes
  /// zeros over it and syncs, so no block is an unwritten extent whose first
  /// write would make each `fdatasync` commit the file system's journal;
  /// `fallocate` only allocates.
  pmem::preallocation preallocate = pmem::preallocation::zero_fill;
  /// Create the directory when it does not exist.
  bool create_directory = true;
};

/// A directory of segment files, `<16 hex digits>.seg`, each exactly
/// `segment_bytes` long. `create(i)` writes `<name>.tmp`, allocates it as
/// `preallocate` says, fdatasyncs it, renames it into place and fsyncs the
/// directory, so a segment file that exists is whole. `remove(i)` unlinks and fsyncs the directory.
/// `sync(i)` is `fdatasync`.
///
/// File descriptors are opened on first use (close-on-exec) and kept until
/// `remove`. Thread-safety: every member may be called concurrently.
/// Allocation: none per `write` / `sync`; `list`, `create` and the first
/// use of a segment may allocate.
class segment_directory {
public:
  /// Opens (and with `create_directory` creates) the directory `path`.
  /// Errors: `invalid_request` for a segment size that is not a multiple of
  /// 4096 or below it; the system error of `mkdir` / `open`.
  [[nodiscard]] static pmem::result<segment_directory> open(const char* path,
                                                            const segment_directory_options& opts = {}) {
    if (opts.segment_bytes < 4096 || opts.segment_bytes % 4096 != 0) return make_error_code(errc::invalid_request);
    if (opts.create_directory && ::mkdir(path, 0755) != 0 && errno != EEXIST) return pmem::detail::last_error();
    const int fd = ::open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return pmem::detail::last_error();
    return segment_directory(fd, path, opts);
  }

  segment_directory(segment_directory&& other) noexcept
      : dir_fd_(std::exchange(other.dir_fd_, -1)), path_(std::move(other.path_)), opts_(other.opts_),
        fds_(std::move(other.fds_)) {}
  segment_directory& operator=(segment_directory&&) = delete;
  segment_directory(const segment_directory&) = delete;
  ~segment_directory() {
    for (const auto& [index, fd] : fds_) ::close(fd);
    if (dir_fd_ >= 0) ::close(dir_fd_);
  }

  /// Bytes of every segment.
  std::uint64_t segment_bytes() const noexcept { return opts_.segment_bytes; }
  /// The directory's path.
  const std::string& path() const noexcept { return path_; }
  /// The file name of segment `index` (without the directory), in a
  /// fixed array: naming a file allocates nothing.
  using name_type = std::array<char, 32>;
  static name_type file_name(std::uint64_t index, const char* suffix = "") noexcept {
    name_type name{};
    std::snprintf(name.data(), name.size(), "%016llx.seg%s", static_cast<unsigned long long>(index), suffix);
    return name;
  }

  /// The segments present, ascending (a `.tmp` file left by a power cut
  /// during `create` is not one; the next `create` of its index reuses it).
  /// Errors: the system error of reading the directory.
  [[nodiscard]] status list(std::vector<std::uint64_t>& out) {
    out.clear();
    const int fd = ::openat(dir_fd_, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return pmem::detail::last_error();
    DIR* d = ::fdopendir(fd);
    if (d == nullptr) return close_with(fd, pmem::detail::last_error());
    while (const dirent* e = ::readdir(d))
      if (const auto index = parse(e->d_name)) out.push_back(*index);
    ::closedir(d);
    std::sort(out.begin(), out.end());
    return {};
  }

  /// Creates segment `index` (see the class comment). Blocks: writes and
  /// syncs the whole segment with `zero_fill`. Errors: `no_space` for a full
  /// file system or quota or the file size limit, the system error otherwise;
  /// nothing is left behind on failure.
  [[nodiscard]] status create(std::uint64_t index) {
    const name_type name = file_name(index), tmp = file_name(index, ".tmp");
    const int fd = ::openat(dir_fd_, tmp.data(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return pmem::detail::last_error();
    status st = pmem::detail::allocate_range(fd, 0, 0, opts_.segment_bytes,
                                             opts_.preallocate == pmem::preallocation::zero_fill);
    if (st.category() == boost::system::generic_category()) st = pmem::detail::write_error(st.value());
    if (!st && ::fdatasync(fd) != 0) st = pmem::detail::last_error();
    if (!st && ::renameat(dir_fd_, tmp.data(), dir_fd_, name.data()) != 0) st = pmem::detail::last_error();
    if (st) {
      ::close(fd);
      ::unlinkat(dir_fd_, tmp.data(), 0);
      return st;
    }
    {
      std::lock_guard lock(mutex_);
      fds_.emplace_back(index, fd);
    }
    return sync_directory();
  }

  /// Deletes segment `index` and fsyncs the directory.
  [[nodiscard]] status remove(std::uint64_t index) {
    close_fd(index);
    if (::unlinkat(dir_fd_, file_name(index).data(), 0) != 0) return pmem::detail::last_error();
    return sync_directory();
  }

  /// Writes `bytes` at `offset` of segment `index` (`pwrite`). Errors: see
  /// `pmem::detail::write_error`; `invalid_request` beyond the segment.
  [[nodiscard]] status write(std::uint64_t index, std::uint64_t offset, std::span<const std::byte> bytes) {
    if (offset > opts_.segment_bytes || bytes.size() > opts_.segment_bytes - offset)
      return make_error_code(errc::invalid_request);
    int fd = -1;
    if (status st = fd_of(index, fd)) return st;
    return pmem::detail::pwrite_all(fd, offset, bytes.data(), bytes.size());
  }

  /// Reads `bytes.size()` bytes at `offset` of segment `index`. Errors:
  /// `io_error` for a short read or a read error.
  [[nodiscard]] status read(std::uint64_t index, std::uint64_t offset, std::span<std::byte> bytes) {
    int fd = -1;
    if (status st = fd_of(index, fd)) return st;
    const ::ssize_t n = pmem::detail::pread_all(fd, offset, bytes.data(), bytes.size());
    return n == static_cast<::ssize_t>(bytes.size()) ? status{} : make_error_code(errc::io_error);
  }

  /// `fdatasync` of segment `index`. Errors: the system error.
  [[nodiscard]] status sync(std::uint64_t index) {
    int fd = -1;
    if (status st = fd_of(index, fd)) return st;
    return ::fdatasync(fd) == 0 ? status{} : pmem::detail::last_error();
  }

private:
  segment_directory(int dir_fd, const char* path, const segment_directory_options& opts)
      : dir_fd_(dir_fd), path_(path), opts_(opts) {
    fds_.reserve(16);
  }

  static std::optional<std::uint64_t> parse(std::string_view name) noexcept {
    if (name.size() != 20 || name.substr(16) != ".seg") return std::nullopt;
    std::uint64_t v = 0;
    for (const char c : name.substr(0, 16)) {
      const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
      if (d < 0) return std::nullopt;
      v = (v << 4) | static_cast<std::uint64_t>(d);
    }
    return v;
  }

  [[nodiscard]] static status close_with(int fd, status st) noexcept {
    ::close(fd);
    return st;
  }

  [[nodiscard]] status sync_directory() const noexcept {
    return ::fsync(dir_fd_) == 0 ? status{} : pmem::detail::last_error();
  }

  [[nodiscard]] status fd_of(std::uint64_t index, int& fd) {
    std::lock_guard lock(mutex_);
    for (const auto& [i, f] : fds_)
      if (i == index) return fd = f, status{};
    fd = ::openat(dir_fd_, file_name(index).data(), O_RDWR | O_CLOEXEC);
    if (fd < 0) return pmem::detail::last_error();
    fds_.emplace_back(index, fd);
    return {};
  }

  void close_fd(std::uint64_t index) {
    std::lock_guard lock(mutex_);
    const auto it = std::find_if(fds_.begin(), fds_.end(), [&](const auto& e) { return e.first == index; });
    if (it == fds_.end()) return;
    ::close(it->second);
    fds_.erase(it);
  }

  int dir_fd_ = -1;
  std::string path_;
  segment_directory_options opts_;
  std::mutex mutex_;
  std::vector<std::pair<std::uint64_t, int>> fds_;
};

} // namespace flushkit
