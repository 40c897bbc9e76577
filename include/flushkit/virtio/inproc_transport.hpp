// flushkit/virtio/inproc_transport.hpp - one-process wiring of a virtio-pmem device and driver: control block, guest RAM, notifiers.
#pragma once

#include <flushkit/core/status.hpp>
#include <flushkit/virtio/detail/transport_fd.hpp>
#include <flushkit/virtio/guest_memory.hpp>
#include <flushkit/virtio/notifier.hpp>
#include <flushkit/virtio/pmem_protocol.hpp>

#include <cstdint>

#include <sys/mman.h>

namespace flushkit::virtio {

/// Everything a device and a driver in the same process share, owned in one
/// place:
///  - the `pmem_control` registers;
///  - guest RAM: an anonymous mapping of `ram_size` bytes at guest address
///    `guest_base` with its `guest_memory` view (both sides use the same view);
///  - three `inproc_notifier`s: `kick()` (driver -> device, runs the device
///    target on the device executor), `interrupt()` (device -> driver, runs
///    the driver target on the driver executor) and `config_change()`
///    (device -> driver, NEEDS_RESET).
///
/// Wiring: `connect_device(&pmem_host<...>::kick_entry, &host)`,
/// `connect_driver(fn, ctx)`, `connect_config(fn, ctx)` before the first
/// notification (not thread-safe with notifications in flight). A
/// notification with no target connected is dropped.
/// Threading: notifiers may be used from any thread; targets run on the
/// executor given for their side; merged notifications run a target once
/// (VIRTIO allows it; both sides handle every available buffer per call).
/// Allocation: the constructor maps guest RAM; notifications allocate nothing.
/// Lifetime: destroy after both executors stopped running handlers.
template <class Executor> class inproc_pair {
public:
  /// A notification target, run on the executor of the notifier's receiving side.
  using target_fn = void (*)(void* context);

  /// Effects: maps guest RAM (zeroed). `ok()` is false, with `error()` set,
  /// when the mapping failed or the arguments are invalid (zero size,
  /// `guest_base` not 16-aligned).
  inproc_pair(const Executor& device_ex, const Executor& driver_ex, std::uint64_t ram_size = 1 << 20,
              std::uint64_t guest_base = 0x100000)
      : kick_(device_ex, &dispatch, &device_), irq_(driver_ex, &dispatch, &driver_),
        config_(driver_ex, &dispatch, &config_target_) {
    if (ram_size == 0 || guest_base % 16 != 0) {
      error_ = errc::invalid_request;
      return;
    }
    error_ = detail::transport_mapping::map(-1, static_cast<std::size_t>(ram_size), MAP_PRIVATE | MAP_ANONYMOUS, ram_);
    if (!error_) error_ = mem_.add_region(guest_base, ram_.data(), ram_size);
  }
  inproc_pair(const inproc_pair&) = delete;
  inproc_pair& operator=(const inproc_pair&) = delete;

  /// True when the constructor succeeded (guest RAM mapped and registered).
  bool ok() const noexcept { return !error_; }
  /// Why the constructor failed: invalid_request (zero size, `guest_base` not
  /// 16-aligned or overflowing) or the system error of mmap; success when `ok()`.
  [[nodiscard]] status error() const noexcept { return error_; }

  /// The shared control registers (zero-initialised), for both sides.
  pmem_control& control() noexcept { return control_; }
  /// The view of guest RAM (guest address -> host address) both sides use.
  const guest_memory& memory() const noexcept { return mem_; }
  /// Host address of the first guest RAM byte (nullptr when the mapping was not made).
  std::byte* ram() const noexcept { return ram_.data(); }
  /// Guest physical address of the first RAM byte (0 when not `ok()`).
  std::uint64_t guest_base() const noexcept { return mem_.region_count() != 0 ? mem_.region(0).guest_base : 0; }
  /// Bytes of guest RAM (0 when the mapping was not made).
  std::uint64_t ram_size() const noexcept { return ram_.size(); }

  /// Driver -> device notifier (the guest's Kick): runs the device target on the device executor.
  inproc_notifier<Executor>& kick() noexcept { return kick_; }
  /// Device -> driver notifier (the host's Interrupt): runs the driver target on the driver executor.
  inproc_notifier<Executor>& interrupt() noexcept { return irq_; }
  /// Device -> driver config-change notifier (NEEDS_RESET): runs the config target on the driver executor.
  inproc_notifier<Executor>& config_change() noexcept { return config_; }

  /// Effects: `kick()` notifications run `fn(ctx)` (e.g. `pmem_host<...>::kick_entry`, `&host`).
  /// Before the first notification; not thread-safe with notifications in flight.
  void connect_device(target_fn fn, void* ctx) noexcept { device_ = {fn, ctx}; }
  /// Effects: `interrupt()` notifications run `fn(ctx)` (the driver's interrupt handler).
  /// Before the first notification; not thread-safe with notifications in flight.
  void connect_driver(target_fn fn, void* ctx) noexcept { driver_ = {fn, ctx}; }
  /// Effects: `config_change()` notifications run `fn(ctx)` (the driver's config-change handler).
  /// Before the first notification; not thread-safe with notifications in flight.
  void connect_config(target_fn fn, void* ctx) noexcept { config_target_ = {fn, ctx}; }

private:
  struct target {
    target_fn fn = nullptr;
    void* ctx = nullptr;
  };
  static void dispatch(void* t) {
    const target& tg = *static_cast<target*>(t);
    if (tg.fn != nullptr) tg.fn(tg.ctx);
  }

  pmem_control control_;
  detail::transport_mapping ram_;
  guest_memory mem_;
  status error_;
  target device_, driver_, config_target_;
  inproc_notifier<Executor> kick_, irq_, config_;
};

} // namespace flushkit::virtio
