// flushkit/virtio/device_queue.hpp - device side of a split virtqueue: pops chains from a hostile guest ring.
#pragma once

#include <flushkit/core/status.hpp>
#include <flushkit/virtio/detail/descriptor.hpp>
#include <flushkit/virtio/detail/le_access.hpp>
#include <flushkit/virtio/guest_memory.hpp>
#include <flushkit/virtio/split_ring.hpp>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

namespace flushkit::virtio {

/// One buffer of a validated chain: a guest range known to lie inside one
/// guest memory region (`len` > 0, `addr + len` does not overflow).
struct chain_buffer {
  /// Guest address of the buffer.
  std::uint64_t addr = 0;
  /// Bytes (> 0).
  std::uint32_t len = 0;
  bool writable = false; ///< device-writable (VRING_DESC_F_WRITE)
};

/// Names an in-flight chain for `device_queue::push_used`: the head index and
/// the queue generation it was popped in (a chain from before a reset is stale).
struct chain_id {
  /// Descriptor index of the chain's head (the used element's id).
  std::uint16_t head = 0;
  /// Queue generation the chain was popped in.
  std::uint64_t generation = 0;
};

/// A validated chain, copied into the queue's private memory. Readable buffers
/// come first, then writable ones. Valid until the next `pop`, `process_all`
/// or `reset` on the same queue: copy what must outlive that (the chain_id and
/// the buffers you will write later).
class device_chain {
public:
  /// What to pass to `device_queue::push_used`.
  chain_id id() const noexcept { return id_; }
  /// Every buffer, readable ones first.
  std::span<const chain_buffer> buffers() const noexcept { return {bufs_, count_}; }
  /// The device-readable (driver-written) buffers.
  std::span<const chain_buffer> readable() const noexcept { return {bufs_, readable_}; }
  /// The device-writable buffers.
  std::span<const chain_buffer> writable() const noexcept { return {bufs_ + readable_, count_ - readable_}; }
  /// Total bytes of the readable buffers.
  std::uint64_t readable_bytes() const noexcept { return readable_bytes_; }
  /// Total bytes of the writable buffers.
  std::uint64_t writable_bytes() const noexcept { return writable_bytes_; }

private:
  friend class device_queue;
  chain_id id_{};
  const chain_buffer* bufs_ = nullptr;
  std::size_t count_ = 0;
  std::size_t readable_ = 0;
  std::uint64_t readable_bytes_ = 0;
  std::uint64_t writable_bytes_ = 0;
};

/// Result of `device_queue::pop`. Exactly one of: `error` set (the queue is
/// broken: device_broken, or invalid_request when not configured), `chain`
/// non-null (one chain popped), or neither (the ring is empty).
struct pop_result {
  /// Set when the queue is broken or not configured.
  status error;
  /// The popped chain, or nullptr.
  const device_chain* chain = nullptr;
};

/// The device (host) side of one split virtqueue.
///
/// Every byte of the ring is treated as hostile: each descriptor is read once
/// into private memory and validated from the copy; every index, length,
/// address and flag is checked (docs/virtio-ring.md has the table). A
/// violation makes the queue broken: a sticky state with a reason (the
/// VIRTIO DEVICE_NEEDS_RESET analog) in which `pop` returns device_broken at
/// once without touching the ring and `push_used` writes nothing. Only
/// `reset()` clears it.
///
/// Threading: one thread (the device loop) calls every member. Work finished
/// on other threads (a blocking flush pool) is handed back to that thread, which
/// writes the response (`write_chain`) and calls `push_used`; the hand-off must
/// order the response bytes before `push_used` (any mutex or queue does).
/// Allocation: arrays sized by `max_size` at construction; none afterwards.
class device_queue {
public:
  /// Effects: allocates private state for queues of up to `max_size` entries.
  /// An invalid `max_size` (see validate_queue_size) gives a queue whose
  /// `configure` always fails with invalid_request.
  explicit device_queue(std::uint32_t max_size)
      : max_(validate_queue_size(max_size) ? 0 : max_size), scratch_(new chain_buffer[max_]()),
        owner_next_(new std::uint16_t[max_]()), owned_(new std::uint8_t[max_]()),
        head_in_flight_(new std::uint8_t[max_]()), head_writable_(new std::uint64_t[max_]()),
        seen_(new std::uint32_t[2 * std::size_t{max_}]()) {}

  device_queue(const device_queue&) = delete;
  device_queue& operator=(const device_queue&) = delete;

  /// Effects: activates the queue on `mem` with the ring at `a` (copied: later
  /// changes of the guest's queue registers have no effect until reset) and
  /// the negotiated ring features. `mem` must outlive the configuration.
  /// Errors: invalid_request when already configured, `a.size` > max_size or
  /// not a power of two, an area misaligned, overlapping or outside `mem`.
  [[nodiscard]] status configure(const guest_memory& mem, const ring_addresses& a, ring_features f) noexcept {
    if (ring_.mapped() || a.size > max_) return errc::invalid_request;
    split_ring r;
    if (auto st = split_ring::map(mem, a, r)) return st;
    mem_ = &mem;
    ring_ = r;
    features_ = f;
    return {};
  }

  /// Effects: the device reset: forgets the ring, every in-flight chain and the
  /// broken state; indices restart at 0; the generation advances, so
  /// `push_used` of a chain popped before rejects it (cancelled) without
  /// writing guest memory. The queue must be configured again.
  void reset() noexcept {
    ring_ = split_ring{};
    mem_ = nullptr;
    std::fill_n(owned_.get(), max_, std::uint8_t{0});
    std::fill_n(head_in_flight_.get(), max_, std::uint8_t{0});
    last_avail_ = used_idx_ = signalled_used_ = 0;
    in_flight_ = 0;
    broken_ = nullptr;
    ++generation_;
  }

  /// Effects: takes the next available chain, validates it and marks it in
  /// flight. Reads avail.idx with acquire. Returns: see pop_result.
  /// Errors: device_broken when the queue is (or by this chain becomes) broken;
  /// invalid_request when not configured.
  pop_result pop() noexcept {
    if (broken_ != nullptr) return {errc::device_broken};
    if (!ring_.mapped()) return {errc::invalid_request};
    const std::uint32_t n = ring_.size();
    const auto avail = detail::load_le<std::uint16_t>(ring_.avail_idx(), std::memory_order_acquire);
    const auto pending = static_cast<std::uint16_t>(avail - last_avail_);
    if (pending > n) return fail("avail.idx moved more than the queue size ahead");
    if (pending == 0) return {};
    if (in_flight_ >= n) return fail("more chains in flight than the queue size");
    const auto head = detail::load_le<std::uint16_t>(ring_.avail_ring(last_avail_ & (n - 1)));
    if (const char* why = parse(head)) return fail(why);
    ++last_avail_;
    commit(head);
    return {{}, &chain_};
  }

  /// Effects: pops and hands to `on_chain(const device_chain&)` every available
  /// chain, then re-enables notifications and repeats while chains arrived
  /// meanwhile (so a coalesced notification never strands a chain).
  /// Returns: {} once the ring is empty with notifications enabled; the pop
  /// error otherwise (the queue is broken: stop, never spin).
  template <class F> status process_all(F&& on_chain) {
    for (;;) {
      disable_notifications();
      for (;;) {
        pop_result r = pop();
        if (r.error) return r.error;
        if (r.chain == nullptr) break;
        on_chain(*r.chain);
      }
      if (enable_notifications()) return {};
    }
  }

  /// Effects: publishes chain `id` as used with `len` bytes written: writes the
  /// used element, then stores used.idx with release (so `len` and every
  /// response byte written before this call are visible before the index).
  /// Errors (nothing written in each case): cancelled when `id` is from an
  /// earlier generation; device_broken when broken; invalid_request when not
  /// configured, `id.head` is not in flight, or `len` exceeds the chain's
  /// writable bytes.
  [[nodiscard]] status push_used(chain_id id, std::uint32_t len) noexcept {
    if (id.generation != generation_) return errc::cancelled;
    if (broken_ != nullptr) return errc::device_broken;
    if (!ring_.mapped() || id.head >= ring_.size() || head_in_flight_[id.head] == 0 ||
        len > head_writable_[id.head])
      return errc::invalid_request;
    const std::uint32_t slot = used_idx_ & (ring_.size() - 1);
    detail::store_le<std::uint32_t>(ring_.used_id(slot), id.head);
    detail::store_le<std::uint32_t>(ring_.used_len(slot), len);
    ++used_idx_;
    detail::store_le<std::uint16_t>(ring_.used_idx(), used_idx_, std::memory_order_release);
    release(id.head);
    return {};
  }

  /// Returns: whether the driver must be notified (interrupted) for the used
  /// elements pushed since the last call: with EVENT_IDX by need_event(used_event,
  /// used idx, used idx at the last call); otherwise unless avail.flags has
  /// NO_INTERRUPT. False when nothing was pushed or the queue is broken.
  bool should_notify() noexcept {
    if (broken_ != nullptr || !ring_.mapped() || used_idx_ == signalled_used_) return false;
    std::atomic_thread_fence(std::memory_order_seq_cst);
    const std::uint16_t old = signalled_used_;
    signalled_used_ = used_idx_;
    if (features_.event_idx) return need_event(detail::load_le<std::uint16_t>(ring_.used_event()), used_idx_, old);
    return (detail::load_le<std::uint16_t>(ring_.avail_flags()) & avail_f_no_interrupt) == 0;
  }

  /// Effects: asks the driver to notify on the next available chain (EVENT_IDX:
  /// avail_event = next avail index; otherwise clears used.flags NO_NOTIFY), then
  /// re-reads avail.idx after a full fence. Returns: true when the ring is empty
  /// (safe to wait for a notification); false when chains are pending (pop again).
  bool enable_notifications() noexcept {
    if (broken_ != nullptr || !ring_.mapped()) return true;
    if (features_.event_idx)
      detail::store_le<std::uint16_t>(ring_.avail_event(), last_avail_);
    else
      detail::store_le<std::uint16_t>(ring_.used_flags(), 0);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    return detail::load_le<std::uint16_t>(ring_.avail_idx(), std::memory_order_acquire) == last_avail_;
  }

  /// Effects: without EVENT_IDX sets used.flags NO_NOTIFY; with EVENT_IDX does
  /// nothing (avail_event is simply not advanced). A hint: drivers may still notify.
  void disable_notifications() noexcept {
    if (broken_ == nullptr && ring_.mapped() && !features_.event_idx)
      detail::store_le<std::uint16_t>(ring_.used_flags(), used_f_no_notify);
  }

  /// Effects: copies up to `dst.size()` bytes of the readable buffers of `bufs`
  /// (in order) into `dst`, each guest byte read once. Returns: bytes copied.
  std::size_t read_chain(std::span<const chain_buffer> bufs, std::span<std::byte> dst) const noexcept {
    return walk(bufs, false, dst.size(), [&](std::byte* g, std::size_t off, std::size_t k) {
      detail::copy_once(reinterpret_cast<unsigned char*>(dst.data() + off), g, k);
    });
  }

  /// Effects: writes `src` into the writable buffers of `bufs` (in order), as far
  /// as they reach. Returns: bytes written, the value to pass as used `len`.
  std::size_t write_chain(std::span<const chain_buffer> bufs, std::span<const std::byte> src) const noexcept {
    return walk(bufs, true, src.size(), [&](std::byte* g, std::size_t off, std::size_t k) {
      for (std::size_t i = 0; i < k; ++i)
        detail::store_le<std::uint8_t>(g + i, static_cast<std::uint8_t>(src[off + i]));
    });
  }

  /// Effects: makes the queue broken with `reason` (a string with static
  /// storage duration) unless it already is; used by device models for
  /// request-level errors that need a reset (e.g. a chain without an in buffer).
  void mark_broken(const char* reason) noexcept {
    if (broken_ == nullptr) broken_ = reason;
  }

  /// True once the queue is broken (sticky until `reset()`).
  bool broken() const noexcept { return broken_ != nullptr; }
  /// Returns: why the queue broke (static string), or nullptr.
  const char* broken_reason() const noexcept { return broken_; }
  /// True after a successful `configure` (until `reset()`).
  bool configured() const noexcept { return ring_.mapped(); }
  /// Negotiated queue size (0 when not configured).
  std::uint32_t size() const noexcept { return ring_.size(); }
  /// The largest queue size accepted (construction argument).
  std::uint32_t max_size() const noexcept { return max_; }
  /// Chains popped and not yet pushed to the used ring.
  std::uint32_t in_flight() const noexcept { return in_flight_; }
  /// Incremented by every `reset()`; chain ids of older generations are stale.
  std::uint64_t generation() const noexcept { return generation_; }
  /// The ring features given to `configure`.
  const ring_features& features() const noexcept { return features_; }

private:
  static constexpr std::uint16_t end_of_chain = 0xFFFF; // never a valid index (size <= 32768)
  static constexpr std::uint16_t known_flags = desc_f_next | desc_f_write | desc_f_indirect;
  static constexpr std::uint64_t max_chain_bytes = std::uint64_t{1} << 32;

  pop_result fail(const char* why) noexcept {
    mark_broken(why);
    return {errc::device_broken};
  }

  // Parses the chain at `head` into chain_ (private copies only). Returns the
  // violation, or nullptr when the chain is valid.
  const char* parse(std::uint16_t head) noexcept {
    const std::uint32_t n = ring_.size();
    if (head >= n) return "avail head index out of range";
    if (head_in_flight_[head] != 0) return "head published again while in flight";
    next_stamp();
    chain_ = device_chain{};
    chain_.id_ = {head, generation_};
    chain_.bufs_ = scratch_.get();
    std::uint32_t idx = head;
    for (std::uint32_t steps = 1;; ++steps) {
      if (idx >= n) return "descriptor next index out of range";
      if (owned_[idx] != 0) return "descriptor belongs to another chain in flight";
      if (steps > n || seen_[idx] == stamp_) return "descriptor loop (chain longer than the queue size)";
      seen_[idx] = stamp_;
      const detail::descriptor d = detail::read_descriptor_once(ring_.desc(idx));
      if ((d.flags & ~known_flags) != 0) return "unknown descriptor flag bits";
      const bool more = (d.flags & desc_f_next) != 0;
      owner_next_[idx] = more ? d.next : end_of_chain;
      if ((d.flags & desc_f_indirect) != 0) {
        owner_next_[idx] = end_of_chain;
        return more ? "INDIRECT together with NEXT" : parse_indirect(d);
      }
      if (const char* why = append(d)) return why;
      if (!more) return nullptr;
      idx = d.next;
    }
  }

  const char* parse_indirect(const detail::descriptor& table) noexcept {
    if (!features_.indirect_desc) return "indirect descriptor without the negotiated feature";
    if (table.len == 0 || table.len % desc_size != 0) return "indirect table length not a non-zero multiple of 16";
    const std::uint32_t entries = table.len / desc_size;
    if (entries > ring_.size()) return "indirect table larger than the queue size";
    std::byte* base = mem_->translate(table.addr, table.len);
    if (base == nullptr) return "indirect table outside guest memory";
    std::uint32_t i = 0;
    for (std::uint32_t steps = 1;; ++steps) {
      if (i >= entries) return "indirect next index out of range";
      if (steps > entries || seen_[max_ + i] == stamp_) return "descriptor loop in indirect table";
      seen_[max_ + i] = stamp_;
      const detail::descriptor d = detail::read_descriptor_once(base + desc_size * i);
      if ((d.flags & ~known_flags) != 0) return "unknown descriptor flag bits";
      if ((d.flags & desc_f_indirect) != 0) return "nested indirect descriptor";
      if (const char* why = append(d)) return why;
      if ((d.flags & desc_f_next) == 0) return nullptr;
      i = d.next;
    }
  }

  // Appends one buffer descriptor to chain_ after every per-buffer check.
  const char* append(const detail::descriptor& d) noexcept {
    if (d.len == 0) return "zero-length descriptor";
    const bool w = (d.flags & desc_f_write) != 0;
    if (!w && chain_.writable_bytes_ != 0) return "readable descriptor after a writable one";
    if (mem_->translate(d.addr, d.len) == nullptr) return "buffer outside guest memory or addr+len overflow";
    if (w && ring_.overlaps(d.addr, d.len)) return "writable buffer overlaps the ring";
    if (chain_.count_ >= ring_.size()) return "chain longer than the queue size";
    if (chain_.readable_bytes_ + chain_.writable_bytes_ + d.len > max_chain_bytes) return "chain longer than 2^32 bytes";
    scratch_[chain_.count_++] = chain_buffer{d.addr, d.len, w};
    (w ? chain_.writable_bytes_ : chain_.readable_bytes_) += d.len;
    if (!w) ++chain_.readable_;
    return nullptr;
  }

  // A new stamp per parse: seen_[i] == stamp_ means "visited in this chain"
  // (direct indices in [0, max_), indirect entries in [max_, 2 max_)).
  void next_stamp() noexcept {
    if (++stamp_ == 0) {
      std::fill_n(seen_.get(), 2 * std::size_t{max_}, std::uint32_t{0});
      stamp_ = 1;
    }
  }

  // Marks the descriptors of the just-parsed chain (private links) as owned.
  void commit(std::uint16_t head) noexcept {
    for (std::uint32_t i = head; i != end_of_chain; i = owner_next_[i]) owned_[i] = 1;
    head_in_flight_[head] = 1;
    head_writable_[head] = chain_.writable_bytes_;
    ++in_flight_;
  }

  void release(std::uint16_t head) noexcept {
    for (std::uint32_t i = head; i != end_of_chain; i = owner_next_[i]) owned_[i] = 0;
    head_in_flight_[head] = 0;
    --in_flight_;
  }

  template <class Copy>
  std::size_t walk(std::span<const chain_buffer> bufs, bool writable, std::size_t total, Copy copy) const noexcept {
    std::size_t done = 0;
    for (const chain_buffer& b : bufs) {
      if (b.writable != writable || done == total || mem_ == nullptr) continue;
      std::byte* g = mem_->translate(b.addr, b.len);
      if (g == nullptr) continue;
      const std::size_t k = std::min<std::size_t>(b.len, total - done);
      copy(g, done, k);
      done += k;
    }
    return done;
  }

  std::uint32_t max_;
  std::unique_ptr<chain_buffer[]> scratch_;
  std::unique_ptr<std::uint16_t[]> owner_next_;
  std::unique_ptr<std::uint8_t[]> owned_;
  std::unique_ptr<std::uint8_t[]> head_in_flight_;
  std::unique_ptr<std::uint64_t[]> head_writable_;
  std::unique_ptr<std::uint32_t[]> seen_;
  std::uint32_t stamp_ = 0;
  const guest_memory* mem_ = nullptr;
  split_ring ring_{};
  ring_features features_{};
  device_chain chain_{};
  std::uint16_t last_avail_ = 0;
  std::uint16_t used_idx_ = 0;
  std::uint16_t signalled_used_ = 0;
  std::uint32_t in_flight_ = 0;
  std::uint64_t generation_ = 0;
  const char* broken_ = nullptr;
};

} // namespace flushkit::virtio
