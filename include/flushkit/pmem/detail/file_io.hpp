// flushkit/pmem/detail/file_io.hpp - whole-range pwrite / pread and zero-filled allocation of a file range.
#pragma once

#include <flushkit/core/status.hpp>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>

#include <fcntl.h>
#include <unistd.h>

namespace flushkit::pmem::detail {

/// Zeros for writing allocated-and-written ranges (64 KiB, page aligned).
inline constexpr std::size_t zero_chunk_bytes = 64 * 1024;
alignas(4096) inline constexpr std::byte zero_chunk[zero_chunk_bytes] = {};

/// The errno of the last failed call as a status (generic category).
[[nodiscard]] inline status last_error() noexcept { return {errno, boost::system::generic_category()}; }

/// Maps a failed write's errno: a full file system or quota (ENOSPC, EDQUOT)
/// and the file size limit (EFBIG) are `no_space`, anything else `io_error`.
[[nodiscard]] inline status write_error(int err) noexcept {
  const bool full = err == ENOSPC || err == EDQUOT || err == EFBIG;
  return make_error_code(full ? errc::no_space : errc::io_error);
}

/// pwrite until all `len` bytes from `p` are in the file at `at` (EINTR
/// retried). Errors: see `write_error`; a zero-byte write is `io_error`.
[[nodiscard]] inline status pwrite_all(int fd, std::uint64_t at, const void* p, std::size_t len) noexcept {
  const auto* bytes = static_cast<const std::byte*>(p);
  for (std::size_t done = 0; done < len;) {
    const ::ssize_t n = ::pwrite(fd, bytes + done, len - done, static_cast<::off_t>(at + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return write_error(errno);
    if (n == 0) return make_error_code(errc::io_error);
    done += static_cast<std::size_t>(n);
  }
  return {};
}

/// pread until all `len` bytes at `at` are in `p` (EINTR retried). Returns
/// the bytes read: fewer than `len` only at the end of the file; -1 with
/// `errno` set on an error.
inline ::ssize_t pread_all(int fd, std::uint64_t at, void* p, std::size_t len) noexcept {
  auto* bytes = static_cast<std::byte*>(p);
  std::size_t done = 0;
  while (done < len) {
    const ::ssize_t n = ::pread(fd, bytes + done, len - done, static_cast<::off_t>(at + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    if (n == 0) break;
    done += static_cast<std::size_t>(n);
  }
  return static_cast<::ssize_t>(done);
}

/// Writes zeros over [from, to) of the file (chunked; see `pwrite_all`).
[[nodiscard]] inline status write_zeros(int fd, std::uint64_t from, std::uint64_t to) noexcept {
  for (std::uint64_t at = from; at < to;) {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(zero_chunk_bytes, to - at));
    if (status st = pwrite_all(fd, at, zero_chunk, n)) return st;
    at += n;
  }
  return {};
}

/// Allocates [start, to) of the file (holes of an existing part too); with
/// `zero_fill` also writes zeros over [from, to) and fdatasyncs, so no block
/// of it is left as an unwritten extent. Errors: posix_fallocate's errno
/// (generic category), or a write / sync failure.
[[nodiscard]] inline status allocate_range(int fd, std::uint64_t start, std::uint64_t from, std::uint64_t to,
                                           bool zero_fill) noexcept {
  const int err = ::posix_fallocate(fd, static_cast<::off_t>(start), static_cast<::off_t>(to - start));
  if (err != 0) return {err, boost::system::generic_category()};
  if (!zero_fill) return {};
  if (status st = write_zeros(fd, from, to)) return st;
  return ::fdatasync(fd) == 0 ? status{} : last_error();
}

} // namespace flushkit::pmem::detail
