// flushkit/virtio/pmem_host.hpp - virtio-pmem host device (QEMU's role): validates requests, flushes off the device loop.
#pragma once

#include <flushkit/core/capabilities.hpp>
#include <flushkit/core/provider.hpp>
#include <flushkit/core/status.hpp>
#include <flushkit/core/detail/handler_slab.hpp>
#include <flushkit/virtio/detail/le_access.hpp>
#include <flushkit/virtio/detail/pmem_host_slot.hpp>
#include <flushkit/virtio/device_queue.hpp>
#include <flushkit/virtio/guest_memory.hpp>
#include <flushkit/virtio/notifier.hpp>
#include <flushkit/virtio/pmem_protocol.hpp>
#include <flushkit/virtio/split_ring.hpp>

#include <boost/asio/post.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <thread>

namespace flushkit::virtio {

/// What the device flushes: any object with `status flush()` that may be
/// called concurrently from the blocking pool's threads (e.g.
/// `pmem::file_sync_provider` over a `pmem::backing`: fdatasync of the file or
/// msync of the mapping). Success means every store made to the pmem range
/// before the call is durable. The guest's stores reach the range without
/// the host seeing them, so a target must make the whole range durable: one
/// that is `dirty_tracking` (a cache-line provider, which writes back only
/// what it was told about) would acknowledge flushes that wrote nothing back,
/// and is refused at compile time.
template <class T>
concept flush_target = sync_flush_provider<T>;

namespace detail {
template <class T> constexpr bool check_flush_target() {
  static_assert(!dirty_tracking<T>,
                "flushkit: a pmem_host flush target must make the whole pmem range durable; a "
                "dirty_tracking provider (cacheline_provider) is never told what the guest wrote, so it "
                "would acknowledge flushes that write nothing back. Use pmem::file_sync_provider.");
  return true;
}
} // namespace detail

/// Construction options of `pmem_host`.
struct pmem_host_options {
  std::uint32_t queue_size_max = 128; ///< like QEMU; a power of two <= 32768
  bool offer_event_idx = true;        ///< offer VIRTIO_RING_F_EVENT_IDX
  bool offer_indirect_desc = true;    ///< offer VIRTIO_RING_F_INDIRECT_DESC
  bool one_pop_per_notify = false;    ///< QEMU-like: take one chain per kick (test knob, stalls under EVENT_IDX)
};

/// Counters of a `pmem_host` (a snapshot; each value is monotonic).
struct pmem_host_counters {
  std::uint64_t kicks = 0;          ///< on_kick calls (including ignored ones)
  std::uint64_t requests = 0;       ///< chains popped
  std::uint64_t flushes_issued = 0; ///< flushes handed to the blocking pool
  std::uint64_t failures = 0;       ///< flushes answered ret = 1 (target error or injected)
  std::uint64_t unsupported = 0;    ///< requests with an unknown type, answered ret = 1
  std::uint64_t malformed = 0;      ///< chains that put the device in NEEDS_RESET (ring or framing violation)
  std::uint64_t completed = 0;      ///< used elements pushed
  std::uint64_t stale = 0;          ///< flushes that finished after a reset and were dropped
  std::uint64_t resets = 0;         ///< device resets (driver wrote 0, or reset())
};

/// The virtio-pmem device: the host half of the flush protocol, over one
/// split virtqueue of a `pmem_control` block.
///
/// Model (docs/virtio-pmem-host.md): the device publishes its features,
/// queue_size_max and config (start, size) at construction and after every
/// reset. It looks at `status` on every kick (and on `poll_status()`): status
/// 0 after activity is a driver reset; DRIVER_OK with queue_enable = 1
/// activates the queue from the queue registers (copied once). A kick pops
/// every available chain (a spurious kick is harmless) and validates each
/// request: at least 4 device-readable bytes (the le32 type) and at least 4
/// device-writable bytes (the le32 ret), readable before writable (the ring
/// layer checks order, bounds, loops). Type FLUSH runs `target.flush()` on the
/// blocking executor, so the device loop never waits for the disk; several
/// flushes may run at once and complete in any order. Each completion comes
/// back to the device executor, writes ret (0 or 1), pushes used with the
/// bytes written (4) and notifies the driver when EVENT_IDX (or the
/// NO_INTERRUPT flag) asks for it.
///
/// Error contract: unknown type -> ret 1, len 4, no flush; flush error (EIO,
/// EBADF of a non-file backend, injected) -> ret 1, len 4, interrupt as usual;
/// framing or ring violation, bad queue registers or unoffered features ->
/// NEEDS_RESET in status, the queue broken, a config-change notification (if a
/// config notifier was set), every later kick ignored until a reset. A flush
/// that finishes after a reset is dropped (generation counter): nothing from
/// an earlier generation reaches guest memory.
///
/// Threading: every member runs on the device executor (the device loop),
/// except the knobs (`fail_next`, `set_flush_delay`, `set_hold`, `set_dead`,
/// `set_one_pop_per_notify`) and `counters()`, which are thread-safe. The flush
/// target runs on the blocking executor's threads.
/// Allocation: the constructor allocates the queue state and `queue_size_max`
/// request slots; the request path allocates nothing (handlers of the two
/// executor hops live in blocks embedded in each slot; `handler_fallbacks()`
/// counts any that did not fit, expected 0).
/// Lifetime: destroy only when no flush is in flight (`busy() == 0`) or after
/// both executors stopped running handlers.
template <class DeviceExecutor, class BlockingExecutor, notifier Interrupt> class pmem_host {
public:
  /// Effects: publishes device_features (VERSION_1, plus EVENT_IDX and
  /// INDIRECT_DESC as offered; never SHMEM_REGION), queue_size_max and the
  /// config into `ctl`; status is left to the driver.
  /// Preconditions: `opts.queue_size_max` is a power of two <= 32768; `ctl`,
  /// `mem`, `target` and `irq` outlive the device.
  template <flush_target Target>
  pmem_host(const DeviceExecutor& dev_ex, const BlockingExecutor& pool_ex, pmem_control& ctl,
            const guest_memory& mem, Target& target, Interrupt& irq, pmem_config range,
            const pmem_host_options& opts = {})
      : dev_ex_(dev_ex), pool_ex_(pool_ex), ctl_(ctl), mem_(mem), target_(target), irq_(irq), range_(range),
        opts_(opts), queue_(opts.queue_size_max), slots_(opts.queue_size_max), one_pop_(opts.one_pop_per_notify) {
    static_assert(detail::check_flush_target<Target>());
    publish_device_registers();
  }

  pmem_host(const pmem_host&) = delete;
  pmem_host& operator=(const pmem_host&) = delete;

  /// Sets the notifier raised when the device sets NEEDS_RESET (the
  /// config-change interrupt). Call before the device runs.
  template <notifier Config> void set_config_notifier(Config& n) noexcept {
    config_ctx_ = &n;
    config_fn_ = [](void* c) { static_cast<Config*>(c)->notify(); };
  }

  /// The driver's notification (queue notify). Effects: syncs with `status`
  /// (see class comment), then pops and handles every available chain (one in
  /// one-pop mode; none when dead or in NEEDS_RESET), re-enabling
  /// notifications and looping so a coalesced kick strands nothing; raises
  /// the interrupt for synchronous answers (unknown type) if needed.
  void on_kick() {
    bump(kicks_);
    if (dead_.load(std::memory_order_relaxed) || !poll_status()) return;
    drain();
  }

  /// For `inproc_notifier` / `eventfd_listener` targets: `on_kick()` of `self`.
  static void kick_entry(void* self) { static_cast<pmem_host*>(self)->on_kick(); }

  /// Effects: looks at the status register: 0 after activity resets the
  /// device, and every reset the driver requested is carried out and
  /// acknowledged in `reset_ack` (which `pmem_guest::restore()` waits for); DRIVER_OK with queue_enable activates the queue (bad registers or
  /// unoffered features -> NEEDS_RESET). Returns: true when the queue is active.
  bool poll_status() {
    const std::uint8_t st = ctl_.status.load(std::memory_order_acquire);
    acknowledge_resets();
    if (st == 0) {
      if (state_ != state::idle) do_reset();
      return false;
    }
    if (state_ == state::active && registers_changed()) do_reset(); // driver reset we did not see
    if (state_ == state::idle && (st & device_status::driver_ok) != 0 &&
        ctl_.queue_enable.load(std::memory_order_acquire) == 1)
      activate();
    return state_ == state::active;
  }

  /// The device reset (transport-initiated, like a PCI function reset):
  /// Effects: forgets the queue, drops held flushes, advances the generation
  /// (flushes still on the pool will be dropped when they finish), writes
  /// status 0, republishes the device registers and bumps config_generation.
  void reset() {
    ctl_.status.store(0, std::memory_order_release);
    do_reset();
  }

  /// Effects: hands every held flush (knob `set_hold`) to the blocking pool, in order.
  void release_held() {
    while (detail::pmem_host_slot* s = held_.pop(slots_)) issue(*s);
  }

  /// Copies bytes [offset, offset + dst.size()) of the 16-byte device-specific
  /// config `struct virtio_pmem_config { le64 start; le64 size; }` as a
  /// transport exposes it. Returns: bytes copied (0 past the end).
  std::size_t read_config(std::size_t offset, std::span<std::byte> dst) const noexcept {
    const std::uint64_t v[2] = {ctl_.config_start.load(std::memory_order_acquire),
                                ctl_.config_size.load(std::memory_order_acquire)};
    std::size_t n = 0;
    for (; offset + n < 16 && n < dst.size(); ++n) {
      const std::size_t k = offset + n;
      dst[n] = static_cast<std::byte>((v[k / 8] >> (8 * (k % 8))) & 0xFFu);
    }
    return n;
  }

  // ---- knobs (thread-safe) ---------------------------------------------------
  /// The next `n` flushes fail (ret 1) without calling the target.
  void fail_next(std::uint32_t n) noexcept { fail_next_.store(n, std::memory_order_relaxed); }
  /// Each flush sleeps `d` on its pool thread before running (a slow disk).
  void set_flush_delay(std::chrono::nanoseconds d) noexcept { delay_ns_.store(d.count(), std::memory_order_relaxed); }
  /// While on, new flush requests are kept until `release_held()`.
  void set_hold(bool on) noexcept { hold_.store(on, std::memory_order_relaxed); }
  /// While on, kicks are ignored (a dead device: never answers).
  void set_dead(bool on) noexcept { dead_.store(on, std::memory_order_relaxed); }
  /// QEMU-like: one chain per kick (see pmem_host_options).
  void set_one_pop_per_notify(bool on) noexcept { one_pop_.store(on, std::memory_order_relaxed); }

  // ---- observers ------------------------------------------------------------
  /// A snapshot of the counters (each read separately, relaxed). Any thread.
  pmem_host_counters counters() const noexcept {
    const auto ld = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
    return {ld(kicks_), ld(requests_), ld(flushes_), ld(failures_), ld(unsupported_),
            ld(malformed_), ld(completed_), ld(stale_), ld(resets_)};
  }
  /// Device thread: true after NEEDS_RESET until a reset.
  bool needs_reset() const noexcept { return state_ == state::failed; }
  /// Device thread: true while the queue is active.
  bool active() const noexcept { return state_ == state::active; }
  /// Device thread: why the device set NEEDS_RESET (static string), or nullptr.
  const char* failure_reason() const noexcept { return reason_; }
  /// Device thread: slots in use (held, on the pool, or on the way back).
  std::uint32_t busy() const noexcept { return slots_.in_use(); }
  /// Device thread: flushes kept by `set_hold` awaiting `release_held()`.
  std::uint32_t held() const noexcept { return held_.size(); }
  /// Device thread: resets so far (0 at construction); a flush from an older generation is dropped.
  std::uint64_t generation() const noexcept { return generation_; }
  /// The feature bits published in `device_features` (fixed at construction).
  std::uint64_t offered_features() const noexcept { return offered(); }
  /// Device thread: executor-hop handlers that did not fit a slot's embedded blocks (expected 0).
  std::size_t handler_fallbacks() const noexcept { return slots_.fallbacks(); }
  /// Device thread: the device side of the virtqueue.
  const device_queue& queue() const noexcept { return queue_; }
  /// The device executor (the device loop) given at construction.
  const DeviceExecutor& device_executor() const noexcept { return dev_ex_; }

private:
  enum class state : std::uint8_t { idle, active, failed };
  using slot = detail::pmem_host_slot;

  static void bump(std::atomic<std::uint64_t>& c) noexcept { c.fetch_add(1, std::memory_order_relaxed); }

  std::uint64_t offered() const noexcept {
    return f_version_1 | (opts_.offer_event_idx ? f_event_idx : 0) | (opts_.offer_indirect_desc ? f_indirect_desc : 0);
  }

  void publish_device_registers() noexcept {
    ctl_.device_features.store(offered(), std::memory_order_relaxed);
    ctl_.queue_size_max.store(opts_.queue_size_max, std::memory_order_relaxed);
    ctl_.config_start.store(range_.start, std::memory_order_relaxed);
    ctl_.config_size.store(range_.size, std::memory_order_relaxed);
    ctl_.config_generation.fetch_add(1, std::memory_order_release);
  }

  ring_addresses current_registers() const noexcept {
    return {ctl_.queue_size.load(std::memory_order_acquire), ctl_.queue_desc.load(std::memory_order_acquire),
            ctl_.queue_avail.load(std::memory_order_acquire), ctl_.queue_used.load(std::memory_order_acquire)};
  }

  // Carries out every reset the driver requested since the last look (even
  // one whose status 0 was already overwritten by a new initialisation), then
  // acknowledges it in `reset_ack`.
  void acknowledge_resets() {
    const std::uint32_t requested = ctl_.reset_request.load(std::memory_order_acquire);
    if (requested == ctl_.reset_ack.load(std::memory_order_relaxed)) return;
    if (state_ != state::idle) do_reset();
    ctl_.reset_ack.store(requested, std::memory_order_release);
  }

  bool registers_changed() const noexcept {
    const ring_addresses now = current_registers();
    const ring_addresses& was = queue_.configured() ? active_regs_ : now;
    return now.size != was.size || now.desc != was.desc || now.avail != was.avail || now.used != was.used;
  }

  void activate() {
    const std::uint64_t drv = ctl_.driver_features.load(std::memory_order_acquire);
    if ((drv & ~offered()) != 0) return fail("driver accepted features the device did not offer");
    active_regs_ = current_registers();
    if (queue_.configure(mem_, active_regs_, ring_features::from_bits(drv)))
      return fail("queue registers invalid (size, alignment or placement)");
    state_ = state::active;
  }

  void do_reset() {
    while (slot* s = held_.pop(slots_)) slots_.give(*s);
    queue_.reset();
    ++generation_;
    state_ = state::idle;
    reason_ = nullptr;
    starved_ = false;
    bump(resets_);
    publish_device_registers();
  }

  // NEEDS_RESET: the device stops until the driver resets it.
  void fail(const char* why) {
    queue_.mark_broken(why);
    state_ = state::failed;
    reason_ = why;
    ctl_.status.fetch_or(device_status::needs_reset, std::memory_order_acq_rel);
    ctl_.config_generation.fetch_add(1, std::memory_order_release);
    if (config_fn_ != nullptr) config_fn_(config_ctx_);
  }

  // Pops until the ring is empty with notifications enabled, a slot is
  // missing (resumed by the next completion), or the device failed.
  void drain() {
    for (;;) {
      queue_.disable_notifications();
      while (state_ == state::active && !slots_.empty()) {
        const pop_result r = queue_.pop();
        if (r.error) {
          bump(malformed_);
          fail(queue_.broken_reason() != nullptr ? queue_.broken_reason() : "queue error");
          break;
        }
        if (r.chain == nullptr) break;
        bump(requests_);
        handle(*r.chain);
        if (one_pop_.load(std::memory_order_relaxed)) {
          (void)queue_.enable_notifications(); // QEMU: avail_event = last_avail, no re-check
          return signal();
        }
      }
      starved_ = state_ == state::active && slots_.empty();
      if (state_ != state::active || starved_ || queue_.enable_notifications()) return signal();
    }
  }

  void handle(const device_chain& c) {
    if (c.readable_bytes() < pmem_req_bytes || c.writable_bytes() < pmem_resp_bytes) {
      bump(malformed_);
      return fail("request without 4 readable and 4 writable bytes");
    }
    unsigned char raw[pmem_req_bytes];
    queue_.read_chain(c.readable(), std::as_writable_bytes(std::span(raw)));
    slot& s = slots_.take();
    s.id = c.id();
    s.generation = generation_;
    s.resp_count = 0;
    for (const chain_buffer& b : c.writable())
      if (s.resp_count < slot::max_resp_buffers) s.resp[s.resp_count++] = b;
    if (detail::decode_le<std::uint32_t>(raw) != pmem_req_type_flush) {
      bump(unsupported_);
      return answer(s, pmem_resp_error);
    }
    if (hold_.load(std::memory_order_relaxed)) return held_.push(slots_, s);
    issue(s);
  }

  void issue(slot& s) {
    bump(flushes_);
    s.inject_failure = take_injected_failure();
    flushkit::detail::post_in_slab(pool_ex_, s.slab, pool_hop{this, &s});
  }

  bool take_injected_failure() noexcept {
    std::uint32_t n = fail_next_.load(std::memory_order_relaxed);
    while (n != 0 && !fail_next_.compare_exchange_weak(n, n - 1, std::memory_order_relaxed)) {
    }
    return n != 0;
  }

  struct pool_hop {
    pmem_host* self;
    slot* s;
    void operator()() const {
      const auto d = self->delay_ns_.load(std::memory_order_relaxed);
      if (d > 0) std::this_thread::sleep_for(std::chrono::nanoseconds(d));
      s->result = s->inject_failure ? make_error_code(errc::io_error) : self->target_();
      flushkit::detail::post_in_slab(self->dev_ex_, s->slab, device_hop{self, s});
    }
  };

  struct device_hop {
    pmem_host* self;
    slot* s;
    void operator()() const { self->complete(*s); }
  };

  // Device thread: a flush came back from the pool.
  void complete(slot& s) {
    if (s.generation != generation_) {
      bump(stale_);
      slots_.give(s);
    } else {
      if (s.result) bump(failures_);
      answer(s, s.result ? pmem_resp_error : pmem_resp_ok);
      signal();
    }
    if (starved_ && !slots_.empty()) {
      starved_ = false;
      drain();
    }
  }

  // Writes ret into the response buffers, pushes used with the bytes written
  // and frees the slot. Nothing is written when the queue is broken or reset.
  void answer(slot& s, std::uint32_t ret) {
    unsigned char le[pmem_resp_bytes];
    for (std::size_t i = 0; i < pmem_resp_bytes; ++i) le[i] = static_cast<unsigned char>(ret >> (8 * i));
    if (state_ == state::active && s.generation == generation_) {
      const std::size_t len = queue_.write_chain(std::span(s.resp.data(), s.resp_count), std::as_bytes(std::span(le)));
      if (!queue_.push_used(s.id, static_cast<std::uint32_t>(len))) bump(completed_);
    }
    slots_.give(s);
  }

  void signal() {
    if (queue_.should_notify()) irq_.notify();
  }

  DeviceExecutor dev_ex_;
  BlockingExecutor pool_ex_;
  pmem_control& ctl_;
  const guest_memory& mem_;
  detail::flush_target_ref target_;
  Interrupt& irq_;
  pmem_config range_;
  pmem_host_options opts_;
  device_queue queue_;
  ring_addresses active_regs_{};
  detail::pmem_host_slots slots_;
  detail::pmem_host_held held_;
  state state_ = state::idle;
  const char* reason_ = nullptr;
  bool starved_ = false;
  std::uint64_t generation_ = 0;
  void* config_ctx_ = nullptr;
  void (*config_fn_)(void*) = nullptr;

  std::atomic<std::uint32_t> fail_next_{0};
  std::atomic<std::int64_t> delay_ns_{0};
  std::atomic<bool> hold_{false};
  std::atomic<bool> dead_{false};
  std::atomic<bool> one_pop_;
  std::atomic<std::uint64_t> kicks_{0}, requests_{0}, flushes_{0}, failures_{0}, unsupported_{0}, malformed_{0},
      completed_{0}, stale_{0}, resets_{0};
};

} // namespace flushkit::virtio
