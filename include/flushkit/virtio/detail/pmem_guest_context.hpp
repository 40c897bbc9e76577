// flushkit/virtio/detail/pmem_guest_context.hpp - request contexts and guest-RAM layout of the virtio-pmem guest driver.
#pragma once

#include <flushkit/core/request.hpp>
#include <flushkit/core/status.hpp>
#include <flushkit/virtio/split_ring.hpp>

#include <boost/intrusive/list.hpp>

#include <cstddef>
#include <cstdint>

namespace flushkit::virtio::detail {

/// The device-visible part of one request context, as laid out in guest RAM
/// (the driver area). Only the two wire fields live here; every CPU-owned
/// field (refcount, flags, hooks) lives in `pmem_guest_context`, in host
/// memory, so a device write (or a non-coherent invalidation) of the response
/// line can never clobber driver state (patch 10). The response has its own
/// 64-byte line, apart from the request word as well.
struct alignas(64) pmem_guest_dma_slot {
  alignas(64) std::uint32_t req;  ///< le32 type (device-readable)
  alignas(64) std::uint32_t resp; ///< le32 ret (device-writable)
};

inline constexpr std::size_t pmem_guest_cache_line = 64;
static_assert(alignof(pmem_guest_dma_slot) == pmem_guest_cache_line);
static_assert(offsetof(pmem_guest_dma_slot, req) == 0);
static_assert(offsetof(pmem_guest_dma_slot, resp) % pmem_guest_cache_line == 0 &&
                  offsetof(pmem_guest_dma_slot, resp) >= offsetof(pmem_guest_dma_slot, req) + pmem_guest_cache_line,
              "the response must sit in its own cache line");
static_assert(sizeof(pmem_guest_dma_slot) == 2 * pmem_guest_cache_line,
              "a slot is exactly two lines: nothing else shares the response line");

/// Where the ring and the DMA slots go inside the driver area (guest addresses).
struct pmem_guest_layout {
  ring_addresses ring{};
  std::uint64_t slots = 0; ///< guest address of slot 0 (64-aligned)
  std::uint64_t end = 0;   ///< one past the last byte used

  /// Returns: the layout for `queue_size` and `contexts` starting at guest
  /// address `base`; `end == 0` on overflow.
  static pmem_guest_layout compute(std::uint64_t base, std::uint32_t queue_size, std::uint32_t contexts) noexcept {
    pmem_guest_layout l;
    const std::uint64_t need = 128 + desc_table_bytes(queue_size) + avail_bytes(queue_size) +
                               used_bytes(queue_size) + std::uint64_t{contexts} * sizeof(pmem_guest_dma_slot);
    if (base > UINT64_MAX - need) return l;
    l.ring.size = queue_size;
    l.ring.desc = align_up(base, desc_align);
    l.ring.avail = l.ring.desc + desc_table_bytes(queue_size);
    l.ring.used = align_up(l.ring.avail + avail_bytes(queue_size), used_align);
    l.slots = align_up(l.ring.used + used_bytes(queue_size), pmem_guest_cache_line);
    l.end = l.slots + std::uint64_t{contexts} * sizeof(pmem_guest_dma_slot);
    return l;
  }
};

/// One flush request of the driver (`struct virtio_pmem_request`), taken from
/// a pool sized at construction. CPU-owned; the wire buffers are the slot in
/// guest RAM named by `req_gpa` / `resp_gpa`.
///
/// Ownership (patch 8): `refs` counts the submitter (1 while the flush path
/// waits for it) and the ring (1 from a successful add until the used buffer
/// is reclaimed or the token is drained after a device reset). The context
/// returns to the pool when it drops to 0. Every field is accessed under the
/// driver lock.
struct pmem_guest_context {
  enum class state : std::uint8_t { free, waiting, in_ring, reclaimed };

  boost::intrusive::list_member_hook<boost::intrusive::link_mode<boost::intrusive::safe_link>> hook;
  std::uint32_t refs = 0;
  state st = state::free;
  bool done = false;       ///< the device's answer (or the drain) was recorded in `result`
  status result;           ///< meaningful once `done`
  request* async = nullptr; ///< the request an asynchronous flush completes; nullptr for a blocking flush
  std::uint64_t req_gpa = 0;
  std::uint64_t resp_gpa = 0;
  std::byte* req_host = nullptr;
  std::byte* resp_host = nullptr;
};

using pmem_guest_context_list = boost::intrusive::list<
    pmem_guest_context,
    boost::intrusive::member_hook<pmem_guest_context, decltype(pmem_guest_context::hook), &pmem_guest_context::hook>,
    boost::intrusive::constant_time_size<true>>;

} // namespace flushkit::virtio::detail
