// tests/support/pmem_test_driver.hpp - minimal virtio-pmem driver (driver_queue + pmem_control) for host-device tests.
#pragma once

#include "support/virtio_guest.hpp"

#include <flushkit/virtio/detail/le_access.hpp>
#include <flushkit/virtio/driver_queue.hpp>
#include <flushkit/virtio/pmem_protocol.hpp>

#include <cstdint>
#include <cstring>
#include <vector>

namespace flushkit_test {

/// What came back for one request.
struct pmem_answer {
  std::uint32_t slot = 0; ///< the request's slot (token)
  std::uint32_t len = 0;  ///< used len
  std::uint32_t ret = 0;  ///< le32 ret read from the response (only if len >= 4)
};

/// Drives the register handshake and the ring like a guest driver, with
/// the ring at the start of guest RAM and per-request buffers at fixed places
/// in its second half (slot i: request at data + 64 i, response 32 bytes later).
class pmem_test_driver {
public:
  static constexpr std::uint32_t slots = 256;

  /// Guest RAM [base, base + size) as seen through `mem` (any host mapping).
  pmem_test_driver(const fv::guest_memory& mem, std::uint64_t base, std::uint64_t size, fv::pmem_control& ctl,
                   std::uint32_t n = 128)
      : mem_(mem), base_(base), data_(base + size / 2), ctl_(ctl), n_(n), q_(n) {}
  pmem_test_driver(const guest_ram& ram, fv::pmem_control& ctl, std::uint32_t n = 128)
      : pmem_test_driver(ram.mem, ram.base(), ram.size(), ctl, n) {}

  /// Handshake up to DRIVER_OK; `want` = features the driver would like.
  /// Returns false when the queue could not be configured.
  bool init(std::uint64_t want = fv::f_version_1 | fv::f_event_idx, bool accept_all = false) {
    namespace ds = fv::device_status;
    ctl_.status.store(ds::acknowledge | ds::driver);
    const std::uint64_t f = accept_all ? want : (ctl_.device_features.load() & want);
    ctl_.driver_features.store(f);
    ctl_.status.fetch_or(ds::features_ok);
    if (fv::legacy_layout(n_, base_, 4096, addrs_)) return false;
    ctl_.queue_size.store(n_);
    ctl_.queue_desc.store(addrs_.desc);
    ctl_.queue_avail.store(addrs_.avail);
    ctl_.queue_used.store(addrs_.used);
    if (q_.configure(mem_, addrs_, fv::ring_features::from_bits(f))) return false;
    ctl_.queue_enable.store(1);
    ctl_.status.fetch_or(ds::driver_ok);
    return true;
  }

  /// Driver reset: status 0, the queue forgotten (nothing may be in flight
  /// from the driver's view: detached first).
  void reset_device() {
    ctl_.status.store(0);
    ctl_.queue_enable.store(0);
    while (q_.detach_unused() != nullptr) {
    }
    q_.reset();
  }

  std::uint64_t req_addr(std::uint32_t slot) const { return data_ + 64u * slot; }
  std::uint64_t resp_addr(std::uint32_t slot) const { return data_ + 64u * slot + 32; }
  std::byte* req_host(std::uint32_t slot) const { return mem_.translate(req_addr(slot), 32); }
  std::byte* resp_host(std::uint32_t slot) const { return mem_.translate(resp_addr(slot), 32); }

  /// Adds a request of `type` in `slot` with a `resp_len`-byte response, the
  /// response pre-filled with 0xAA. Returns the driver_queue status.
  flushkit::status add(std::uint32_t slot, std::uint32_t type = fv::pmem_req_type_flush, std::uint32_t resp_len = 4) {
    std::memset(req_host(slot), 0, 32);
    std::memset(resp_host(slot), 0xAA, 32);
    fv::detail::store_le<std::uint32_t>(req_host(slot), type);
    const fv::buffer out[1] = {{req_addr(slot), 4}};
    const fv::buffer in[1] = {{resp_addr(slot), resp_len}};
    return add_chain(out, in, slot);
  }
  /// Adds an arbitrary chain (framing tests).
  flushkit::status add_chain(std::span<const fv::buffer> out, std::span<const fv::buffer> in, std::uint32_t slot) {
    return q_.add(out, in, &tokens_[slot]);
  }

  /// Returns whether a kick is needed (kick_prepare).
  bool kick_needed() { return q_.kick_prepare(); }

  /// Collects every used element.
  std::vector<pmem_answer> collect() {
    std::vector<pmem_answer> v;
    for (;;) {
      const fv::used_result r = q_.get_used();
      if (r.error || r.token == nullptr) break;
      pmem_answer a;
      a.slot = static_cast<std::uint32_t>(static_cast<std::uint32_t*>(r.token) - tokens_);
      a.len = r.len;
      if (r.len >= 4) a.ret = fv::detail::load_le<std::uint32_t>(resp_host(a.slot));
      v.push_back(a);
    }
    return v;
  }

  std::uint32_t in_flight() const { return q_.in_flight(); }
  std::uint16_t used_idx() const {
    return fv::detail::load_le<std::uint16_t>(q_.ring().used_idx(), std::memory_order_acquire);
  }
  fv::driver_queue& queue() { return q_; }
  const fv::ring_addresses& addresses() const { return addrs_; }

private:
  const fv::guest_memory& mem_;
  std::uint64_t base_;
  std::uint64_t data_;
  fv::pmem_control& ctl_;
  std::uint32_t n_;
  fv::driver_queue q_;
  fv::ring_addresses addrs_{};
  std::uint32_t tokens_[slots]{};
};

} // namespace flushkit_test
