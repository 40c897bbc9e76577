// flushkit/virtio/driver_queue.hpp - driver side of a split virtqueue: adds chains, collects completions from an untrusted device.
#pragma once

#include <flushkit/core/status.hpp>
#include <flushkit/detail/assert.hpp>
#include <flushkit/virtio/detail/descriptor.hpp>
#include <flushkit/virtio/detail/le_access.hpp>
#include <flushkit/virtio/guest_memory.hpp>
#include <flushkit/virtio/split_ring.hpp>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>

namespace flushkit::virtio {

/// A driver buffer: guest address and length (> 0).
struct buffer {
  /// Guest address of the buffer.
  std::uint64_t addr = 0;
  /// Bytes (> 0).
  std::uint32_t len = 0;
};

/// Result of `driver_queue::get_used`. Exactly one of: `error` set (io_error:
/// the queue is broken, now or before; invalid_request: not configured),
/// `token` non-null (one chain completed), or neither (nothing completed).
struct used_result {
  /// Set when the queue is broken or not configured.
  status error;
  void* token = nullptr;  ///< the token given to `add`
  std::uint32_t len = 0;  ///< device-reported bytes written, <= the chain's in-buffer bytes
};

/// The driver (guest) side of one split virtqueue.
///
/// Private state (free list, per-head token, in-buffer capacity, chain links)
/// lives in private memory; the driver never reads its descriptor table back.
/// The device is untrusted: a used id out of range or not in flight (including
/// a duplicate completion), a used idx moving past the chains in flight, or a
/// used len larger than the chain's device-writable bytes makes the queue
/// broken (sticky, reason kept): from then on `add` and `get_used` return
/// io_error and `kick_prepare` returns false, until `reset()`.
/// `get_used` returns the device's `len`; the caller must reject a len shorter
/// than the response it needs and must not read response bytes beyond `len`.
///
/// Threading: every member except `broken()`, `broken_reason()` and
/// `generation()` must be called under one lock held by the caller (the
/// submitter's and the completion handler's lock); those three are atomic and
/// may be read without it.
/// Allocation: arrays sized by `max_size` at construction; none afterwards.
/// Indirect descriptors are not used by this side (each buffer takes one
/// descriptor); the device side accepts them.
class driver_queue {
public:
  /// A queue for rings of up to `max_size` entries (a power of two, 1..32768; any other value leaves a queue that every `configure` rejects). Allocates its private arrays.
  explicit driver_queue(std::uint32_t max_size)
      : max_(validate_queue_size(max_size) ? 0 : max_size), next_(new std::uint16_t[max_]()),
        tokens_(new void*[max_]()), ndesc_(new std::uint16_t[max_]()), in_bytes_(new std::uint64_t[max_]()) {}

  driver_queue(const driver_queue&) = delete;
  driver_queue& operator=(const driver_queue&) = delete;

  /// Effects: sets the queue up on the ring at `a` in `mem` with the
  /// negotiated features: zeroes the three ring areas, makes every descriptor
  /// free. Call before the device is activated.
  /// Errors: invalid_request when already configured, `a.size` > max_size,
  /// or the layout is invalid or outside `mem`.
  [[nodiscard]] status configure(const guest_memory& mem, const ring_addresses& a, ring_features f) noexcept {
    if (ring_.mapped() || a.size > max_) return errc::invalid_request;
    split_ring r;
    if (auto st = split_ring::map(mem, a, r)) return st;
    ring_ = r;
    features_ = f;
    std::memset(ring_.desc(0), 0, desc_table_bytes(a.size));
    std::memset(ring_.avail_flags(), 0, avail_bytes(a.size));
    std::memset(ring_.used_flags(), 0, used_bytes(a.size));
    for (std::uint32_t i = 0; i < a.size; ++i) next_[i] = static_cast<std::uint16_t>(i + 1);
    free_head_ = 0;
    num_free_ = a.size;
    return {};
  }

  /// Effects: exposes one chain to the device: `out` buffers (device-readable)
  /// then `in` buffers (device-writable), one descriptor each, and publishes
  /// avail.idx with release. `token` comes back from get_used or detach_unused.
  /// Errors: io_error when broken; invalid_request when not configured, `token`
  /// is null, the chain is empty, longer than the queue size, has a zero-length
  /// buffer or more than 2^32 bytes; no_space when fewer than
  /// out.size() + in.size() descriptors are free (nothing is changed).
  [[nodiscard]] status add(std::span<const buffer> out, std::span<const buffer> in, void* token) noexcept {
    if (broken()) return errc::io_error;
    const std::size_t total = out.size() + in.size();
    if (!ring_.mapped() || token == nullptr || total == 0 || total > ring_.size()) return errc::invalid_request;
    std::uint64_t bytes = 0, in_bytes = 0;
    for (std::size_t i = 0; i < total; ++i) {
      const buffer& b = i < out.size() ? out[i] : in[i - out.size()];
      if (b.len == 0) return errc::invalid_request;
      bytes += b.len;
      if (i >= out.size()) in_bytes += b.len;
    }
    if (bytes > (std::uint64_t{1} << 32)) return errc::invalid_request;
    if (total > num_free_) return errc::no_space;
    const std::uint16_t head = free_head_;
    std::uint16_t idx = head;
    for (std::size_t i = 0; i < total; ++i) {
      const bool is_in = i >= out.size();
      const buffer& b = is_in ? in[i - out.size()] : out[i];
      const bool last = i + 1 == total;
      const auto flags = static_cast<std::uint16_t>((is_in ? desc_f_write : 0) | (last ? 0 : desc_f_next));
      detail::write_descriptor(ring_.desc(idx), {b.addr, b.len, flags, last ? std::uint16_t{0} : next_[idx]});
      if (!last) idx = next_[idx];
    }
    free_head_ = next_[idx];
    num_free_ -= static_cast<std::uint32_t>(total);
    tokens_[head] = token;
    ndesc_[head] = static_cast<std::uint16_t>(total);
    in_bytes_[head] = in_bytes;
    ++in_flight_;
    detail::store_le<std::uint16_t>(ring_.avail_ring(avail_idx_ & (ring_.size() - 1)), head);
    ++avail_idx_;
    detail::store_le<std::uint16_t>(ring_.avail_idx(), avail_idx_, std::memory_order_release);
    return {};
  }

  /// Returns: whether the device must be notified of the chains added since
  /// the last call (after a full fence): with EVENT_IDX by need_event(avail_event,
  /// avail idx, avail idx at the last call); otherwise unless used.flags has
  /// NO_NOTIFY. False when nothing was added or the queue is broken. When a
  /// notification is needed but the transport fails to deliver it, call
  /// mark_broken (the chains stay in flight until detach_unused).
  bool kick_prepare() noexcept {
    if (broken() || !ring_.mapped() || avail_idx_ == kicked_avail_) return false;
    std::atomic_thread_fence(std::memory_order_seq_cst);
    const std::uint16_t old = kicked_avail_;
    kicked_avail_ = avail_idx_;
    if (features_.event_idx)
      return need_event(detail::load_le<std::uint16_t>(ring_.avail_event()), avail_idx_, old);
    return (detail::load_le<std::uint16_t>(ring_.used_flags()) & used_f_no_notify) == 0;
  }

  /// Effects: takes the next used element: reads used.idx with acquire, then
  /// id and len; validates them against private state; frees the chain's
  /// descriptors; with EVENT_IDX and callbacks enabled publishes used_event.
  /// Returns: see used_result. Errors: io_error when broken (sticky) or when
  /// this element is invalid (the queue becomes broken; the chain concerned, if
  /// any, stays in flight for detach_unused); invalid_request when not configured.
  used_result get_used() noexcept {
    if (broken()) return {errc::io_error};
    if (!ring_.mapped()) return {errc::invalid_request};
    const std::uint32_t n = ring_.size();
    const auto used = detail::load_le<std::uint16_t>(ring_.used_idx(), std::memory_order_acquire);
    const auto pending = static_cast<std::uint16_t>(used - last_used_);
    if (pending == 0) return {};
    if (pending > in_flight_) return fail("used idx moved past the chains in flight");
    const std::uint32_t slot = last_used_ & (n - 1);
    const auto id = detail::load_le<std::uint32_t>(ring_.used_id(slot));
    const auto len = detail::load_le<std::uint32_t>(ring_.used_len(slot));
    if (id >= n) return fail("used id out of range");
    if (tokens_[id] == nullptr) return fail("used id is not a head in flight");
    if (len > in_bytes_[id]) return fail("used len larger than the device-writable buffers");
    void* token = release(static_cast<std::uint16_t>(id));
    ++last_used_;
    if (features_.event_idx && callbacks_)
      detail::store_le<std::uint16_t>(ring_.used_event(), last_used_, std::memory_order_seq_cst);
    return {{}, token, len};
  }

  /// Effects: asks the device to interrupt for the next used element (EVENT_IDX:
  /// used_event = next used index; otherwise clears avail.flags NO_INTERRUPT),
  /// then re-reads used.idx after a full fence. Returns: true when no used
  /// element is pending (safe to wait); false when get_used has work.
  bool enable_callbacks() noexcept {
    callbacks_ = true;
    if (broken() || !ring_.mapped()) return true;
    if (features_.event_idx)
      detail::store_le<std::uint16_t>(ring_.used_event(), last_used_);
    else
      detail::store_le<std::uint16_t>(ring_.avail_flags(), 0);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    return detail::load_le<std::uint16_t>(ring_.used_idx(), std::memory_order_acquire) == last_used_;
  }

  /// Effects: a hint to the device not to interrupt (NO_INTERRUPT without
  /// EVENT_IDX; with EVENT_IDX used_event stops advancing).
  void disable_callbacks() noexcept {
    callbacks_ = false;
    if (!broken() && ring_.mapped() && !features_.event_idx)
      detail::store_le<std::uint16_t>(ring_.avail_flags(), avail_f_no_interrupt);
  }

  /// Effects: takes back one chain still in flight (never completed), freeing
  /// its descriptors. Legal only when the device no longer uses the ring
  /// (after a device reset or when it is quiesced). Works when broken.
  /// Returns: its token, or nullptr when none is left.
  void* detach_unused() noexcept {
    for (std::uint32_t i = 0; i < ring_.size(); ++i)
      if (tokens_[i] != nullptr) return release(static_cast<std::uint16_t>(i));
    return nullptr;
  }

  /// Effects: forgets the ring and the broken state and advances the
  /// generation; the queue must be configured again. Precondition: nothing in
  /// flight (call detach_unused until it returns nullptr first).
  void reset() noexcept {
    FLUSHKIT_ASSERT(in_flight_ == 0, "driver_queue::reset with chains in flight");
    std::fill_n(tokens_.get(), max_, nullptr);
    ring_ = split_ring{};
    avail_idx_ = kicked_avail_ = last_used_ = 0;
    in_flight_ = num_free_ = 0;
    callbacks_ = true;
    broken_.store(nullptr, std::memory_order_release);
    generation_.fetch_add(1, std::memory_order_acq_rel);
  }

  /// Effects: makes the queue broken with `reason` (static storage duration)
  /// unless it already is; for transport failures and NEEDS_RESET.
  void mark_broken(const char* reason) noexcept {
    const char* expected = nullptr;
    broken_.compare_exchange_strong(expected, reason, std::memory_order_acq_rel);
  }

  /// True once the queue is broken (sticky until `reset()`). Lock-free.
  bool broken() const noexcept { return broken_.load(std::memory_order_acquire) != nullptr; }
  /// Why the queue broke (static string), or nullptr. Lock-free.
  const char* broken_reason() const noexcept { return broken_.load(std::memory_order_acquire); }
  /// Incremented by every `reset()`. Lock-free.
  std::uint64_t generation() const noexcept { return generation_.load(std::memory_order_acquire); }
  /// True after a successful `configure` (until `reset()`).
  bool configured() const noexcept { return ring_.mapped(); }
  /// Configured queue size (0 when not configured).
  std::uint32_t size() const noexcept { return ring_.size(); }
  /// The largest queue size accepted (construction argument).
  std::uint32_t max_size() const noexcept { return max_; }
  /// Free descriptors.
  std::uint32_t num_free() const noexcept { return num_free_; }
  /// Chains added and not yet returned by `get_used` or `detach_unused`.
  std::uint32_t in_flight() const noexcept { return in_flight_; }
  /// The ring features given to `configure`.
  const ring_features& features() const noexcept { return features_; }
  /// The mapped ring (for tests and device models in the same process).
  const split_ring& ring() const noexcept { return ring_; }

private:
  used_result fail(const char* why) noexcept {
    mark_broken(why);
    return {errc::io_error};
  }

  // Returns the chain at `head` to the free list (private links only).
  void* release(std::uint16_t head) noexcept {
    std::uint16_t last = head;
    for (std::uint16_t k = 1; k < ndesc_[head]; ++k) last = next_[last];
    next_[last] = free_head_;
    free_head_ = head;
    num_free_ += ndesc_[head];
    --in_flight_;
    void* token = tokens_[head];
    tokens_[head] = nullptr;
    return token;
  }

  std::uint32_t max_;
  std::unique_ptr<std::uint16_t[]> next_;
  std::unique_ptr<void*[]> tokens_;
  std::unique_ptr<std::uint16_t[]> ndesc_;
  std::unique_ptr<std::uint64_t[]> in_bytes_;
  split_ring ring_{};
  ring_features features_{};
  std::uint16_t free_head_ = 0;
  std::uint32_t num_free_ = 0;
  std::uint32_t in_flight_ = 0;
  std::uint16_t avail_idx_ = 0;
  std::uint16_t kicked_avail_ = 0;
  std::uint16_t last_used_ = 0;
  bool callbacks_ = true;
  std::atomic<const char*> broken_{nullptr};
  std::atomic<std::uint64_t> generation_{0};
};

} // namespace flushkit::virtio
