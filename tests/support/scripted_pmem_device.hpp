// tests/support/scripted_pmem_device.hpp - a scripted virtio-pmem device (device_queue) for guest driver tests.
#pragma once

#include <flushkit/virtio/device_queue.hpp>
#include <flushkit/virtio/guest_memory.hpp>
#include <flushkit/virtio/pmem_protocol.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>

namespace flushkit_test {

namespace fv = flushkit::virtio;

/// A virtio-pmem device whose answers a test chooses. It is the driver's
/// kick (`notify()` pops every available chain on the kicking thread) and
/// calls the driver's interrupt through `connect`. Each popped chain is
/// answered at once with the current `answer` (ret, used len), or kept
/// ("held") until `release`, in any order, or forever. It follows the
/// driver's status: DRIVER_OK configures the device queue from the control
/// registers, status 0 (reset) forgets the ring and every held chain.
/// Thread-safe (one mutex); no allocation after construction.
class scripted_pmem_device {
public:
  using interrupt_fn = void (*)(void* context);
  using kick_failure_fn = void (*)(void* context);

  explicit scripted_pmem_device(fv::pmem_control& control, std::uint32_t queue_max = 256,
                                std::uint64_t features = fv::f_version_1 | fv::f_event_idx,
                                std::uint64_t start = 0x40000000, std::uint64_t size = 1 << 20)
      : control_(control), dq_(queue_max), held_(new held_chain[queue_max]) {
    control.device_features.store(features);
    control.queue_size_max.store(queue_max);
    control.config_start.store(start);
    control.config_size.store(size);
  }

  /// Sets the guest memory the device sees (before the driver goes live).
  void attach(const fv::guest_memory& mem) { mem_ = &mem; }

  /// Routes interrupts to `guest.on_interrupt()`.
  template <class Guest> void connect(Guest& guest) {
    std::lock_guard lk(mu_);
    irq_ = [](void* g) { static_cast<Guest*>(g)->on_interrupt(); };
    irq_context_ = &guest;
  }

  /// Makes every later kick "fail" after the chains were taken: calls
  /// `fn(context)` (e.g. the driver's mark_broken), like a failed notify.
  void fail_kicks(kick_failure_fn fn, void* context) {
    std::lock_guard lk(mu_);
    kick_failure_ = fn;
    kick_failure_context_ = context;
  }

  /// The answer given to chains from now on (ret, used len).
  void answer(std::uint32_t ret, std::uint32_t len = 4) {
    std::lock_guard lk(mu_);
    ret_ = ret;
    len_ = len;
  }
  /// Hold new chains until `release` (true) or answer them at once (false).
  void hold(bool on) {
    std::lock_guard lk(mu_);
    hold_ = on;
  }

  /// The kick: take every available chain.
  void notify() {
    kick_failure_fn fail = nullptr;
    void* fail_ctx = nullptr;
    {
      std::lock_guard lk(mu_);
      ++kicks_;
      if (!sync_locked()) return;
      const auto st = dq_.process_all([this](const fv::device_chain& c) { take_locked(c); });
      if (st) ++errors_;
      fail = kick_failure_;
      fail_ctx = kick_failure_context_;
    }
    if (fail != nullptr) fail(fail_ctx);
  }

  /// Looks at the status register now (a device notices a reset when the
  /// driver writes it; this one when kicked, released or told here).
  void poll_status() {
    std::lock_guard lk(mu_);
    static_cast<void>(sync_locked());
  }

  /// Answers held chain `index` (0 = oldest) with (ret, len). Returns false
  /// when there is no such chain or the device was reset.
  bool release(std::size_t index, std::uint32_t ret, std::uint32_t len = 4) {
    std::lock_guard lk(mu_);
    if (!sync_locked() || index >= held_count_) return false;
    const held_chain h = held_[index];
    std::copy(held_.get() + index + 1, held_.get() + held_count_, held_.get() + index);
    --held_count_;
    push_locked(h, ret, len);
    return true;
  }
  bool release(std::size_t index = 0) { return release(index, ret_, len_); }
  void release_all() {
    while (release(0)) {
    }
  }

  /// Sets DEVICE_NEEDS_RESET and bumps the config generation.
  void set_needs_reset() {
    control_.status.fetch_or(fv::device_status::needs_reset);
    control_.config_generation.fetch_add(1);
  }

  std::size_t held() const { return locked(held_count_); }
  std::uint64_t chains() const { return locked(chains_); }
  std::uint64_t answered() const { return locked(answered_); }
  std::uint64_t interrupts() const { return locked(interrupts_); }
  std::uint32_t max_in_flight() const { return locked(max_in_flight_); }
  std::uint64_t malformed() const { return locked(malformed_); }
  std::uint64_t errors() const { return locked(errors_); }
  std::uint32_t in_flight() const {
    std::lock_guard lk(mu_);
    return dq_.in_flight();
  }

private:
  struct held_chain {
    fv::chain_id id;
    fv::chain_buffer resp;
  };

  template <class T> T locked(const T& v) const {
    std::lock_guard lk(mu_);
    return v;
  }

  void forget_ring_locked() {
    if (!dq_.configured()) return;
    dq_.reset();
    held_count_ = 0;
  }

  // Follows the driver's status register. Returns whether the queue is live.
  bool sync_locked() {
    const std::uint32_t requested = control_.reset_request.load();
    if (requested != control_.reset_ack.load()) { // a reset we have not carried out yet
      forget_ring_locked();
      control_.reset_ack.store(requested);
    }
    const std::uint8_t s = control_.status.load(std::memory_order_acquire);
    if (s == 0 || (s & fv::device_status::driver_ok) == 0) {
      forget_ring_locked();
      return false;
    }
    if (!dq_.configured()) {
      const fv::ring_addresses a{control_.queue_size.load(), control_.queue_desc.load(), control_.queue_avail.load(),
                                 control_.queue_used.load()};
      if (mem_ == nullptr ||
          dq_.configure(*mem_, a, fv::ring_features::from_bits(control_.driver_features.load())))
        return false;
    }
    return true;
  }

  void take_locked(const fv::device_chain& c) {
    ++chains_;
    max_in_flight_ = std::max(max_in_flight_, dq_.in_flight());
    std::array<std::byte, 4> type{};
    const bool ok = c.readable().size() == 1 && c.readable_bytes() == 4 && c.writable().size() == 1 &&
                    c.writable_bytes() >= 4 && dq_.read_chain(c.buffers(), type) == 4 &&
                    type == std::array<std::byte, 4>{};
    if (!ok) ++malformed_;
    const held_chain h{c.id(), c.writable().empty() ? fv::chain_buffer{} : c.writable()[0]};
    if (hold_) {
      held_[held_count_++] = h;
      return;
    }
    push_locked(h, ret_, len_);
  }

  void push_locked(const held_chain& h, std::uint32_t ret, std::uint32_t len) {
    std::array<std::byte, 4> bytes{};
    for (std::size_t k = 0; k < 4; ++k) bytes[k] = static_cast<std::byte>(ret >> (8 * k));
    const std::size_t n = std::min<std::size_t>(len, 4);
    if (n > 0) dq_.write_chain({&h.resp, 1}, {bytes.data(), n});
    if (dq_.push_used(h.id, len)) return;
    ++answered_;
    if (dq_.should_notify() && irq_ != nullptr) {
      ++interrupts_;
      irq_(irq_context_);
    }
  }

  fv::pmem_control& control_;
  const fv::guest_memory* mem_ = nullptr;
  mutable std::mutex mu_;
  fv::device_queue dq_;
  std::unique_ptr<held_chain[]> held_;
  std::size_t held_count_ = 0;
  interrupt_fn irq_ = nullptr;
  void* irq_context_ = nullptr;
  kick_failure_fn kick_failure_ = nullptr;
  void* kick_failure_context_ = nullptr;
  std::uint32_t ret_ = 0;
  std::uint32_t len_ = 4;
  bool hold_ = false;
  std::uint64_t kicks_ = 0, chains_ = 0, answered_ = 0, interrupts_ = 0, malformed_ = 0, errors_ = 0;
  std::uint32_t max_in_flight_ = 0;
};

} // namespace flushkit_test
