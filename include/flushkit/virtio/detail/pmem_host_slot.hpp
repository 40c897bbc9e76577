// flushkit/virtio/detail/pmem_host_slot.hpp - per-request state of the virtio-pmem host device (fixed pool).
#pragma once

#include <flushkit/core/status.hpp>
#include <flushkit/core/detail/handler_slab.hpp>
#include <flushkit/virtio/device_queue.hpp>

#include <array>
#include <concepts>
#include <cstdint>
#include <memory>

namespace flushkit::virtio::detail {

/// A reference to any `status flush()` object, type-erased to a function
/// pointer and a context (no allocation, copyable).
class flush_target_ref {
public:
  template <class T>
  explicit flush_target_ref(T& t) noexcept
      : ctx_(&t), fn_([](void* c) -> status { return static_cast<T*>(c)->flush(); }) {}
  status operator()() const { return fn_(ctx_); }

private:
  void* ctx_;
  status (*fn_)(void*);
};

/// One flush request in progress: the chain to answer, the response buffers
/// (at most 4: each is >= 1 byte and the response is 4 bytes), the device
/// generation it was popped in, the result, and the embedded blocks the two
/// executor hops allocate their handlers from.
struct pmem_host_slot {
  static constexpr std::uint32_t none = UINT32_MAX;
  static constexpr std::size_t max_resp_buffers = 4;

  chain_id id{};
  std::array<chain_buffer, max_resp_buffers> resp{};
  std::size_t resp_count = 0;
  std::uint64_t generation = 0;
  bool inject_failure = false;
  status result{};
  std::uint32_t next = none; ///< free list / held list link
  flushkit::detail::handler_slab<160, 2> slab; ///< pool hop + device hop
};

/// Fixed pool of slots with an index free list (device thread only).
class pmem_host_slots {
public:
  explicit pmem_host_slots(std::uint32_t n) : slots_(new pmem_host_slot[n]), n_(n) {
    for (std::uint32_t i = 0; i < n; ++i) slots_[i].next = i + 1 < n ? i + 1 : pmem_host_slot::none;
    free_ = n > 0 ? 0 : pmem_host_slot::none;
  }
  bool empty() const noexcept { return free_ == pmem_host_slot::none; }
  std::uint32_t in_use() const noexcept { return used_; }
  pmem_host_slot& take() noexcept {
    pmem_host_slot& s = slots_[free_];
    free_ = s.next;
    s.next = pmem_host_slot::none;
    ++used_;
    return s;
  }
  void give(pmem_host_slot& s) noexcept {
    s.next = free_;
    free_ = index(s);
    --used_;
  }
  std::uint32_t index(const pmem_host_slot& s) const noexcept { return static_cast<std::uint32_t>(&s - slots_.get()); }
  pmem_host_slot& operator[](std::uint32_t i) noexcept { return slots_[i]; }
  /// Handler allocations that did not fit the embedded blocks (0 expected).
  std::size_t fallbacks() const noexcept {
    std::size_t f = 0;
    for (std::uint32_t i = 0; i < n_; ++i) f += slots_[i].slab.fallbacks();
    return f;
  }

private:
  std::unique_ptr<pmem_host_slot[]> slots_;
  std::uint32_t n_;
  std::uint32_t free_ = pmem_host_slot::none;
  std::uint32_t used_ = 0;
};

/// FIFO of held slots (knob "hold flushes until released"), linked by index.
class pmem_host_held {
public:
  void push(pmem_host_slots& slots, pmem_host_slot& s) noexcept {
    const std::uint32_t i = slots.index(s);
    s.next = pmem_host_slot::none;
    if (tail_ == pmem_host_slot::none) head_ = i; else slots[tail_].next = i;
    tail_ = i;
    ++count_;
  }
  pmem_host_slot* pop(pmem_host_slots& slots) noexcept {
    if (head_ == pmem_host_slot::none) return nullptr;
    pmem_host_slot& s = slots[head_];
    head_ = s.next;
    if (head_ == pmem_host_slot::none) tail_ = pmem_host_slot::none;
    s.next = pmem_host_slot::none;
    --count_;
    return &s;
  }
  std::uint32_t size() const noexcept { return count_; }

private:
  std::uint32_t head_ = pmem_host_slot::none;
  std::uint32_t tail_ = pmem_host_slot::none;
  std::uint32_t count_ = 0;
};

} // namespace flushkit::virtio::detail
