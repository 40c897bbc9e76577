// flushkit/virtio/shm_transport.hpp - memfd holding pmem_control + guest RAM, mapped by the device and driver processes.
#pragma once

#include <flushkit/core/status.hpp>
#include <flushkit/virtio/detail/transport_fd.hpp>
#include <flushkit/virtio/guest_memory.hpp>
#include <flushkit/virtio/pmem_protocol.hpp>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <new>
#include <system_error>
#include <utility>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace flushkit::virtio {

/// The head of a shared-memory transport file. Written once by `create`;
/// `attach` copies and checks it (the other process is not trusted to keep
/// it intact, so it is never read again).
struct shm_header {
  /// The expected `magic`.
  static constexpr std::uint64_t magic_value = 0x31564f4954524956ull; // "VIRTIOV1"
  /// The expected `version` (this layout).
  static constexpr std::uint32_t version_value = 2;

  /// `magic_value` in a transport file.
  std::uint64_t magic = 0;
  /// `version_value` in a transport file.
  std::uint32_t version = 0;
  std::uint32_t control_offset = 0; ///< offset of the pmem_control block
  std::uint64_t ram_offset = 0;     ///< page-aligned offset of guest RAM in the file
  std::uint64_t ram_size = 0;       ///< bytes of guest RAM
  std::uint64_t guest_base = 0;     ///< guest physical address of the first RAM byte (16-aligned)
};

/// Offset of `pmem_control` in the transport file: the header's cache line(s), then the block.
inline constexpr std::size_t shm_control_offset = (sizeof(shm_header) + 63) / 64 * 64;
static_assert(shm_control_offset % alignof(pmem_control) == 0 && shm_control_offset + sizeof(pmem_control) <= 4096,
              "header and control block fit in the first page");

/// Shared-memory transport between a device process and a driver process:
/// one memfd with
///
///   [0, page)              shm_header, then `pmem_control` at control_offset
///   [ram_offset, +ram_size) guest RAM (rings, request/response buffers)
///
/// mapped MAP_SHARED by both processes, possibly at different host
/// addresses: each side uses its own `memory()` view (guest address ->
/// its host address), so rings and descriptors only ever hold guest
/// addresses. The pmem range itself is not in this file: both processes map
/// the backing file MAP_SHARED (e.g. `pmem::backing::file`).
///
/// Notifications go through two eventfds (`eventfd_notifier` on one side,
/// `eventfd_listener` on the other): kick (driver -> device) and interrupt
/// (device -> driver), plus optionally config-change.
///
/// Move-only; unmaps and closes on destruction. Allocation: none after
/// `create` / `attach`. Threading: set-up only; `control()` is atomics and
/// the RAM is accessed through the ring layer.
class shm_transport {
public:
  shm_transport() = default;
  /// Takes over `o`'s file and mapping; `o` is left not `valid()`.
  shm_transport(shm_transport&& o) noexcept { swap(o); }
  /// Releases this transport's file and mapping, then takes over `o`'s; `o` is left not `valid()`.
  shm_transport& operator=(shm_transport&& o) noexcept {
    shm_transport tmp(std::move(o));
    swap(tmp);
    return *this;
  }
  shm_transport(const shm_transport&) = delete;
  shm_transport& operator=(const shm_transport&) = delete;

  /// Effects: creates a memfd of one page + `ram_size` bytes (rounded up to
  /// pages), maps it, constructs the header and a zeroed `pmem_control`, and
  /// maps guest RAM at guest address `guest_base`.
  /// Errors: invalid_request for a zero `ram_size` or a `guest_base` not
  /// 16-aligned or overflowing; the system error of memfd_create, ftruncate
  /// or mmap.
  [[nodiscard]] status create(std::uint64_t ram_size, std::uint64_t guest_base = 0x100000, const char* name = "flushkit-virtio") {
    if (ram_size == 0 || guest_base % 16 != 0 || guest_base > UINT64_MAX - ram_size) return errc::invalid_request;
    detail::transport_fd fd(::memfd_create(name, MFD_CLOEXEC));
    if (fd.get() < 0) return detail::transport_errno();
    shm_header h;
    h.magic = shm_header::magic_value;
    h.version = shm_header::version_value;
    h.control_offset = static_cast<std::uint32_t>(control_offset());
    h.ram_offset = page();
    h.ram_size = (ram_size + page() - 1) / page() * page();
    h.guest_base = guest_base;
    if (::ftruncate(fd.get(), static_cast<::off_t>(h.ram_offset + h.ram_size)) != 0) return detail::transport_errno();
    if (auto st = map_all(std::move(fd), h)) return st;
    new (map_.data()) shm_header(h);
    control_ = new (map_.data() + h.control_offset) pmem_control();
    return {};
  }

  /// Effects: maps the transport file `fd` (a duplicate is kept; the caller
  /// keeps `fd`) created by `create`, in this or another process.
  /// Errors: invalid_request when the file is not a transport file (magic,
  /// version, offsets or sizes inconsistent with the file size); the system
  /// error of dup, fstat or mmap.
  [[nodiscard]] status attach(int fd) {
    detail::transport_fd own(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
    if (own.get() < 0) return detail::transport_errno();
    struct ::stat sb {};
    if (::fstat(own.get(), &sb) != 0) return detail::transport_errno();
    const auto file_size = static_cast<std::uint64_t>(sb.st_size);
    if (file_size < page()) return errc::invalid_request;
    shm_header h;
    if (::pread(own.get(), &h, sizeof h, 0) != static_cast<ssize_t>(sizeof h)) return errc::invalid_request;
    if (h.magic != shm_header::magic_value || h.version != shm_header::version_value ||
        h.control_offset != control_offset() || h.ram_offset != page() || h.ram_size == 0 ||
        h.ram_size > file_size - h.ram_offset || h.guest_base % 16 != 0 || h.guest_base > UINT64_MAX - h.ram_size)
      return errc::invalid_request;
    if (auto st = map_all(std::move(own), h)) return st;
    control_ = std::launder(reinterpret_cast<pmem_control*>(map_.data() + h.control_offset));
    return {};
  }

  /// True after a successful `create` or `attach`.
  bool valid() const noexcept { return control_ != nullptr; }
  /// The shared control registers (the same object in both processes).
  pmem_control& control() const noexcept { return *control_; }
  /// This process's view of guest RAM.
  const guest_memory& memory() const noexcept { return mem_; }
  /// Host address of guest RAM in this process.
  std::byte* ram() const noexcept { return map_.data() + header_.ram_offset; }
  /// Bytes of guest RAM (rounded up to pages by `create`; 0 when not `valid()`).
  std::uint64_t ram_size() const noexcept { return header_.ram_size; }
  /// Guest physical address of the first RAM byte (0 when not `valid()`).
  std::uint64_t guest_base() const noexcept { return header_.guest_base; }
  /// The memfd (pass it to the other process: inherit across fork, or SCM_RIGHTS).
  int fd() const noexcept { return fd_.get(); }

private:
  static std::uint64_t page() noexcept { return static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE)); }
  static constexpr std::size_t control_offset() noexcept { return shm_control_offset; }

  void swap(shm_transport& o) noexcept {
    std::swap(fd_, o.fd_);
    std::swap(map_, o.map_);
    std::swap(mem_, o.mem_);
    std::swap(header_, o.header_);
    std::swap(control_, o.control_);
  }

  [[nodiscard]] status map_all(detail::transport_fd fd, const shm_header& h) {
    detail::transport_mapping m;
    if (auto st = detail::transport_mapping::map(fd.get(), static_cast<std::size_t>(h.ram_offset + h.ram_size),
                                                 MAP_SHARED, m))
      return st;
    guest_memory mem;
    if (auto st = mem.add_region(h.guest_base, m.data() + h.ram_offset, h.ram_size)) return st;
    fd_ = std::move(fd);
    map_ = std::move(m);
    mem_ = mem;
    header_ = h;
    return {};
  }

  detail::transport_fd fd_;
  detail::transport_mapping map_;
  guest_memory mem_;
  shm_header header_{};
  pmem_control* control_ = nullptr;
};

} // namespace flushkit::virtio
