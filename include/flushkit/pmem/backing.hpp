// flushkit/pmem/backing.hpp - real memory behind a pmem device: anonymous, memfd or a mapped file.
#pragma once

#include <flushkit/core/status.hpp>
#include <flushkit/pmem/detail/file_io.hpp>
#include <flushkit/pmem/detail/mapping_probe.hpp>
#include <flushkit/pmem/result.hpp>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <utility>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace flushkit::pmem {

/// Which kind of memory a `backing` maps.
enum class backing_kind : std::uint8_t {
  anonymous, ///< private anonymous memory; gone with the process
  memfd,     ///< a memfd mapped MAP_SHARED; shareable with other processes, gone with the last reference
  file,      ///< a regular file mapped MAP_SHARED
};

/// How stores to the mapping become durable.
enum class persistence : std::uint8_t {
  none,       ///< volatile memory: nothing ever becomes durable
  page_cache, ///< stores land in the page cache; msync(MS_SYNC) or fdatasync makes them durable
  map_sync,   ///< MAP_SYNC on a DAX file system: stores are durable once flushed out of the CPU cache
};

/// How stores to the memory at `bytes` become durable, as the kernel's
/// description of its mapping says (/proc/self/smaps): `none` for anonymous
/// memory, a memfd or a private file mapping; `page_cache` for a shared file
/// mapping; `map_sync` for a MAP_SYNC one. Empty when it cannot be told.
/// Reads a file: call it at set-up, not per request.
inline std::optional<persistence> persistence_of(std::span<const std::byte> bytes) noexcept {
  if (bytes.empty()) return std::nullopt;
  const std::optional<detail::mapping_facts> m = detail::probe_mapping(bytes.data());
  if (!m) return std::nullopt;
  if (!m->file || m->memfd || !m->shared) return persistence::none;
  return m->map_sync ? persistence::map_sync : persistence::page_cache;
}

/// How `backing::file` allocates the part of the file it grows.
enum class preallocation : std::uint8_t {
  /// Allocate, write zeros over the grown range and `fdatasync` before
  /// mapping. Every block is then allocated *and written*, so a later
  /// `fdatasync` after an overwrite commits data only. (ext4 and XFS keep a
  /// merely fallocated block as an unwritten extent; the first write to it
  /// converts the extent, and the `fdatasync` that follows commits the
  /// journal too: about 194 us instead of 121 us per 4 KiB durable overwrite
  /// measured on ext4. PostgreSQL zero-fills its WAL segments for this.)
  /// Costs one write of the grown range at creation. The default.
  zero_fill,
  /// `posix_fallocate` only: fast creation; the first durable write to each
  /// block pays the extent conversion.
  fallocate,
};

/// Options of `backing::file`.
struct file_options {
  std::size_t size = 0;      ///< bytes to map; 0 maps the file's current size from `offset` to its end
  std::uint64_t offset = 0;  ///< file offset of the mapping; must be a multiple of the page size
  bool create = true;        ///< create the file if it does not exist (O_CREAT)
  bool try_map_sync = true;  ///< ask for MAP_SYNC; fall back to plain MAP_SHARED if the file system refuses
  bool require_map_sync = false; ///< fail with `not_supported` instead of falling back
  ::mode_t mode = 0600;      ///< permissions of a created file
  preallocation preallocate = preallocation::zero_fill; ///< how the grown part of the file is allocated
};

/// An RAII mapping that a `pmem_device` uses as its medium. Movable, not
/// copyable. Factories never throw; they return a `result<backing>` whose
/// error is:
///  - `errc::invalid_request` for a zero or too large size, or a misaligned offset;
///  - `errc::not_supported` when MAP_SYNC was required and refused;
///  - the system error (the generic category, e.g. `== std::errc::permission_denied`,
///    `std::errc::no_such_file_or_directory`) when a system call fails.
class backing {
public:
  backing() = default;
  /// Takes over `o`'s mapping and descriptor; `o` becomes empty.
  backing(backing&& o) noexcept { swap(o); }
  /// Releases this mapping, then takes over `o`'s; `o` becomes empty.
  backing& operator=(backing&& o) noexcept {
    backing tmp(std::move(o));
    swap(tmp);
    return *this;
  }
  backing(const backing&) = delete;
  backing& operator=(const backing&) = delete;
  ~backing() { reset(); }

  /// Private anonymous memory of `size` bytes (zero-filled). Persistence: none.
  [[nodiscard]] static result<backing> anonymous(std::size_t size) {
    if (status st = check_size(size, 0)) return st;
    return map(backing_kind::anonymous, -1, size, 0, MAP_PRIVATE | MAP_ANONYMOUS, persistence::none);
  }

  /// A new memfd of `size` bytes (zero-filled), mapped MAP_SHARED; `fd()`
  /// can be passed to another process. Persistence: none (a memfd has no
  /// storage behind it: nothing outlives the last reference, whatever is
  /// synced).
  [[nodiscard]] static result<backing> memfd(std::size_t size, const char* name = "flushkit-pmem") {
    if (status st = check_size(size, 0)) return st;
    const int fd = ::memfd_create(name, MFD_CLOEXEC);
    if (fd < 0) return last_error();
    if (::ftruncate(fd, static_cast<::off_t>(size)) != 0) return close_with(fd, last_error());
    return map(backing_kind::memfd, fd, size, 0, MAP_SHARED, persistence::none);
  }

  /// The file at `path`, opened read-write (created when `opts.create`),
  /// grown with zeros if shorter than `offset + size` (allocated as
  /// `opts.preallocate` says; with `zero_fill` the call writes and syncs the
  /// grown range, so it blocks for that long), and mapped MAP_SHARED; with
  /// MAP_SYNC when `opts.try_map_sync` and the file system supports it
  /// (DAX). `persistence_mode()` says which mapping was obtained. The part
  /// already inside the file keeps its bytes (its holes are allocated, not
  /// written: they may stay unwritten extents). A failed grow truncates the
  /// file back to its old size. Before a page-cache mapping is made, the
  /// range's clean pages are dropped from the page cache
  /// (`POSIX_FADV_DONTNEED`): pages cached by large writes can be large
  /// folios, and a store into one makes each `fdatasync` write the whole
  /// folio back (see docs/performance.md, "Large folios"); the first access
  /// to each page then reads it from the file.
  [[nodiscard]] static result<backing> file(const char* path, const file_options& opts = {}) {
    if (opts.offset % page_size() != 0) return make_error_code(errc::invalid_request);
    const int fd = ::open(path, O_RDWR | O_CLOEXEC | (opts.create ? O_CREAT : 0), opts.mode);
    if (fd < 0) return last_error();
    struct ::stat sb {};
    if (::fstat(fd, &sb) != 0) return close_with(fd, last_error());
    const auto file_size = static_cast<std::uint64_t>(sb.st_size);
    std::size_t size = opts.size;
    if (size == 0 && file_size > opts.offset) size = static_cast<std::size_t>(file_size - opts.offset);
    if (status st = check_size(size, opts.offset)) return close_with(fd, st);
    if (file_size < opts.offset + size) {
      if (status st = detail::allocate_range(fd, opts.offset, std::max(file_size, opts.offset), opts.offset + size,
                                          opts.preallocate == preallocation::zero_fill)) {
        static_cast<void>(::ftruncate(fd, static_cast<::off_t>(file_size))); // a failed grow leaves the file as it was
        return close_with(fd, st);
      }
    }
    return map_file(fd, size, opts);
  }

  /// The mapped bytes (the medium of a `pmem_device`); empty when not `valid()`.
  std::span<std::byte> bytes() const noexcept { return {base_, size_}; }
  /// Start of the mapping, or nullptr.
  std::byte* data() const noexcept { return base_; }
  /// Bytes mapped.
  std::size_t size() const noexcept { return size_; }
  /// The file descriptor (memfd or file); -1 for anonymous memory.
  int fd() const noexcept { return fd_; }
  /// The file offset the mapping starts at (`file_options::offset`; 0 for the other kinds).
  std::uint64_t offset() const noexcept { return offset_; }
  /// Which kind of memory is mapped.
  backing_kind kind() const noexcept { return kind_; }
  /// How stores to the mapping become durable (decides which provider fits).
  persistence persistence_mode() const noexcept { return persistence_; }
  /// True when the mapping was made with MAP_SYNC.
  bool map_sync() const noexcept { return persistence_ == persistence::map_sync; }
  /// True while the backing holds a mapping (not default-constructed, moved from or reset).
  bool valid() const noexcept { return base_ != nullptr; }

  /// msync(MS_SYNC) of the pages covering [offset, offset + len).
  /// Errors: `invalid_request` out of bounds; the system error otherwise.
  [[nodiscard]] status msync(std::size_t offset, std::size_t len) const noexcept {
    if (offset > size_ || len > size_ - offset) return make_error_code(errc::invalid_request);
    const std::size_t start = offset - offset % page_size();
    if (::msync(base_ + start, offset + len - start, MS_SYNC) != 0) return last_error();
    return {};
  }
  /// msync(MS_SYNC) of the whole mapping.
  [[nodiscard]] status msync() const noexcept { return msync(0, size_); }

  /// fdatasync of the file descriptor. Errors: the system error (EBADF for
  /// anonymous memory, EIO when write-back failed).
  [[nodiscard]] status fdatasync() const noexcept {
    if (::fdatasync(fd_) != 0) return last_error();
    return {};
  }

  /// Unmaps and closes; the backing becomes empty.
  void reset() noexcept {
    if (base_ != nullptr) ::munmap(base_, size_);
    if (fd_ >= 0) ::close(fd_);
    base_ = nullptr;
    size_ = 0;
    offset_ = 0;
    fd_ = -1;
  }

  /// The system page size (mapping offsets and msync ranges are rounded to it).
  static std::size_t page_size() noexcept { return static_cast<std::size_t>(::sysconf(_SC_PAGESIZE)); }

private:
  void swap(backing& o) noexcept {
    std::swap(base_, o.base_);
    std::swap(size_, o.size_);
    std::swap(offset_, o.offset_);
    std::swap(fd_, o.fd_);
    std::swap(kind_, o.kind_);
    std::swap(persistence_, o.persistence_);
  }

  [[nodiscard]] static status last_error() noexcept { return {errno, boost::system::generic_category()}; }
  [[nodiscard]] static status close_with(int fd, status st) noexcept {
    ::close(fd);
    return st;
  }

  [[nodiscard]] static status check_size(std::size_t size, std::uint64_t offset) noexcept {
    constexpr auto max_off = static_cast<std::uint64_t>(std::numeric_limits<::off_t>::max());
    if (size == 0 || size > max_off || offset > max_off - size) return make_error_code(errc::invalid_request);
    return {};
  }

  static void* map_raw(int fd, std::size_t size, std::uint64_t offset, int flags) noexcept {
    return ::mmap(nullptr, size, PROT_READ | PROT_WRITE, flags, fd, static_cast<::off_t>(offset));
  }

  [[nodiscard]] static result<backing> map(backing_kind kind, int fd, std::size_t size, std::uint64_t offset, int flags,
                             persistence mode) {
    return adopt(kind, fd, map_raw(fd, size, offset, flags), size, offset, mode);
  }

  // Takes ownership of `fd` and of the mapping `p` (or reports why mmap failed).
  [[nodiscard]] static result<backing> adopt(backing_kind kind, int fd, void* p, std::size_t size, std::uint64_t offset,
                                             persistence mode) {
    if (p == MAP_FAILED) return fd >= 0 ? close_with(fd, last_error()) : last_error();
    backing b;
    b.base_ = static_cast<std::byte*>(p);
    b.size_ = size;
    b.offset_ = offset;
    b.fd_ = fd;
    b.kind_ = kind;
    b.persistence_ = mode;
    return b;
  }

  // Evicts the range's clean page-cache pages before it is mapped, so that
  // the mapping's stores fault in small folios. Pages cached by large
  // writes (the zero-fill, or whoever wrote the file) can be large folios; a
  // 4 KiB store through a shared mapping dirties a whole folio, and the next
  // fdatasync writes all of it back: measured on Linux 6.18 / ext4 after
  // 1 MiB writes, 1 MiB written per 4 KiB durable store and a QD1 p50 of
  // 335 us instead of 135 us. (`pwrite` tracks dirt per block and is not
  // affected.) It is advice: dirty pages stay, and an error changes nothing.
  static void drop_clean_pages(int fd, std::uint64_t offset, std::size_t size) noexcept {
    static_cast<void>(::posix_fadvise(fd, static_cast<::off_t>(offset), static_cast<::off_t>(size),
                                      POSIX_FADV_DONTNEED));
  }

  [[nodiscard]] static result<backing> map_file(int fd, std::size_t size, const file_options& opts) {
#if defined(MAP_SYNC) && defined(MAP_SHARED_VALIDATE)
    if (opts.try_map_sync || opts.require_map_sync) {
      void* p = map_raw(fd, size, opts.offset, MAP_SHARED_VALIDATE | MAP_SYNC);
      if (p != MAP_FAILED) return adopt(backing_kind::file, fd, p, size, opts.offset, persistence::map_sync);
      if (errno != EOPNOTSUPP && errno != EINVAL) return close_with(fd, last_error());
    }
#endif
    if (opts.require_map_sync) return close_with(fd, make_error_code(errc::not_supported));
    drop_clean_pages(fd, opts.offset, size);
    return map(backing_kind::file, fd, size, opts.offset, MAP_SHARED, persistence::page_cache);
  }

  std::byte* base_ = nullptr;
  std::size_t size_ = 0;
  std::uint64_t offset_ = 0;
  int fd_ = -1;
  backing_kind kind_ = backing_kind::anonymous;
  persistence persistence_ = persistence::none;
};

} // namespace flushkit::pmem
