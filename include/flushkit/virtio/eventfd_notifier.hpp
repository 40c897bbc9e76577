// flushkit/virtio/eventfd_notifier.hpp - notifier that signals another thread or process through an eventfd.
#pragma once

#include <flushkit/core/status.hpp>
#include <flushkit/virtio/notifier.hpp>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <system_error>

#include <sys/eventfd.h>
#include <unistd.h>

namespace flushkit::virtio {

/// Creates an eventfd for a notification channel: counter 0, EFD_NONBLOCK |
/// EFD_CLOEXEC (a child created by fork inherits it; exec does not).
/// Returns: the descriptor, or -1 with `err` set to the system error.
inline int make_eventfd(status& err) noexcept {
  const int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  err = fd < 0 ? status(errno, boost::system::generic_category()) : status();
  return fd;
}

/// A `notifier` over an eventfd (the ioeventfd / irqfd of a VMM): `notify()`
/// adds 1 to the eventfd counter with one write(2); the listener on the other
/// side (`eventfd_listener`, possibly in another process) wakes up once for
/// any number of notifications merged into the counter.
///
/// The descriptor is borrowed (not closed). `notify()` is thread-safe, never
/// blocks and never allocates. A full counter (EAGAIN: the other side has
/// not read for 2^64 - 2 notifications) counts as delivered, since a wake-up
/// is already pending. Any other failure (EBADF, ...) is counted in
/// `failures()`; the caller decides whether that breaks the device (a driver
/// calls `driver_queue::mark_broken`).
class eventfd_notifier {
public:
  /// A notifier writing to the eventfd `fd` (borrowed: it must stay open while
  /// the notifier is used). `notify()` never blocks only if `fd` is
  /// non-blocking, as made by `make_eventfd`.
  explicit eventfd_notifier(int fd) noexcept : fd_(fd) {}
  eventfd_notifier(const eventfd_notifier&) = delete;
  eventfd_notifier& operator=(const eventfd_notifier&) = delete;

  /// Effects: adds 1 to the eventfd counter (one write(2), retried on EINTR);
  /// counts it in `sent()`, or in `failures()` when the write fails with
  /// anything but EAGAIN. Any thread; never allocates.
  void notify() noexcept {
    const std::uint64_t one = 1;
    for (;;) {
      const ssize_t n = ::write(fd_, &one, sizeof one);
      if (n == static_cast<ssize_t>(sizeof one) || (n < 0 && errno == EAGAIN)) {
        sent_.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      if (n < 0 && errno == EINTR) continue;
      failures_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
  }

  /// The borrowed descriptor.
  int fd() const noexcept { return fd_; }
  /// Notifications written (or merged into a full counter).
  std::uint64_t sent() const noexcept { return sent_.load(std::memory_order_relaxed); }
  /// Notifications that could not be written.
  std::uint64_t failures() const noexcept { return failures_.load(std::memory_order_relaxed); }

private:
  int fd_;
  std::atomic<std::uint64_t> sent_{0};
  std::atomic<std::uint64_t> failures_{0};
};

static_assert(notifier<eventfd_notifier>);

} // namespace flushkit::virtio
