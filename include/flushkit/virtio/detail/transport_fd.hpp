// flushkit/virtio/detail/transport_fd.hpp - owning file descriptor and mapping for the virtio transports.
#pragma once

#include <flushkit/core/status.hpp>

#include <cerrno>
#include <cstddef>
#include <system_error>
#include <utility>

#include <sys/mman.h>
#include <unistd.h>

namespace flushkit::virtio::detail {

inline status transport_errno() noexcept { return {errno, boost::system::generic_category()}; }

/// Owns one file descriptor (-1 = none). Move-only.
class transport_fd {
public:
  transport_fd() = default;
  explicit transport_fd(int fd) noexcept : fd_(fd) {}
  transport_fd(transport_fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  transport_fd& operator=(transport_fd&& o) noexcept {
    if (this != &o) reset(std::exchange(o.fd_, -1));
    return *this;
  }
  ~transport_fd() { reset(); }
  int get() const noexcept { return fd_; }
  int release() noexcept { return std::exchange(fd_, -1); }
  void reset(int fd = -1) noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

private:
  int fd_ = -1;
};

/// Owns one mmap'd range. Move-only.
class transport_mapping {
public:
  transport_mapping() = default;
  transport_mapping(void* p, std::size_t n) noexcept : p_(static_cast<std::byte*>(p)), n_(n) {}
  transport_mapping(transport_mapping&& o) noexcept
      : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  transport_mapping& operator=(transport_mapping&& o) noexcept {
    if (this != &o) {
      reset();
      p_ = std::exchange(o.p_, nullptr);
      n_ = std::exchange(o.n_, 0);
    }
    return *this;
  }
  ~transport_mapping() { reset(); }
  std::byte* data() const noexcept { return p_; }
  std::size_t size() const noexcept { return n_; }
  void reset() noexcept {
    if (p_ != nullptr) ::munmap(p_, n_);
    p_ = nullptr;
    n_ = 0;
  }

  /// mmap(PROT_READ|PROT_WRITE, `flags`) of `n` bytes of `fd` (or anonymous with fd -1).
  static status map(int fd, std::size_t n, int flags, transport_mapping& out) noexcept {
    void* p = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, flags, fd, 0);
    if (p == MAP_FAILED) return transport_errno();
    out = transport_mapping(p, n);
    return {};
  }

private:
  std::byte* p_ = nullptr;
  std::size_t n_ = 0;
};

} // namespace flushkit::virtio::detail
