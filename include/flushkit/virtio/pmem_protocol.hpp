// flushkit/virtio/pmem_protocol.hpp - virtio-pmem wire format and the control block a transport shares.
#pragma once

#include <atomic>
#include <cstdint>

namespace flushkit::virtio {

/// VIRTIO device ID of virtio-pmem.
inline constexpr std::uint32_t pmem_device_id = 27;
/// Feature bit 0: the range is exposed as shared memory region 0 (not used by flushkit's devices).
inline constexpr std::uint64_t pmem_f_shmem_region = std::uint64_t{1} << 0;
/// VIRTIO_F_VERSION_1 (bit 32).
inline constexpr std::uint64_t f_version_1 = std::uint64_t{1} << 32;
/// VIRTIO_RING_F_INDIRECT_DESC (bit 28) and VIRTIO_RING_F_EVENT_IDX (bit 29).
inline constexpr std::uint64_t f_indirect_desc = std::uint64_t{1} << 28;
inline constexpr std::uint64_t f_event_idx = std::uint64_t{1} << 29;

/// `struct virtio_pmem_req` (device-readable): le32 type.
inline constexpr std::uint32_t pmem_req_type_flush = 0;
inline constexpr std::uint32_t pmem_req_bytes = 4;
/// `struct virtio_pmem_resp` (device-writable): le32 ret. 0 is success; every
/// device in the field answers 1 for failure (the spec says -1); a driver
/// treats any non-zero value as failure.
inline constexpr std::uint32_t pmem_resp_ok = 0;
inline constexpr std::uint32_t pmem_resp_error = 1;
inline constexpr std::uint32_t pmem_resp_bytes = 4;

/// The persistent-memory range a virtio-pmem device exposes (the contents of
/// `struct virtio_pmem_config`): guest physical address and length in bytes.
/// The device publishes it; the driver reads it in `probe()` and refuses a
/// size of 0 or a range that overflows (scenario 55).
struct pmem_config {
  /// Guest physical address of the first byte of the range.
  std::uint64_t start = 0;
  /// Bytes of the range.
  std::uint64_t size = 0;
};

/// Device status bits (VIRTIO 1.x, 2.1).
namespace device_status {
/// ACKNOWLEDGE: the guest noticed the device.
inline constexpr std::uint8_t acknowledge = 1;
/// DRIVER: the guest knows how to drive it.
inline constexpr std::uint8_t driver = 2;
/// DRIVER_OK: the driver is ready.
inline constexpr std::uint8_t driver_ok = 4;
/// FEATURES_OK: feature negotiation is complete.
inline constexpr std::uint8_t features_ok = 8;
/// DEVICE_NEEDS_RESET: the device hit an error it cannot recover from without a reset.
inline constexpr std::uint8_t needs_reset = 64;
/// FAILED: the guest gave up on the device.
inline constexpr std::uint8_t failed = 128;
} // namespace device_status

/// The control registers of one virtio-pmem device with one queue: what a PCI
/// or MMIO transport exposes (common configuration + `struct
/// virtio_pmem_config`), reduced to what virtio-pmem uses.
///
/// It lives in memory both sides can see: a plain object for the in-process
/// transport, the head of a `memfd` mapping for the cross-process transport.
/// Every field is a lock-free atomic, so it works across processes. Either
/// side reads it; the writer of each field is named below.
struct pmem_control {
  std::atomic<std::uint8_t> status{0};            ///< driver writes bits; device sets needs_reset; 0 = reset
  std::atomic<std::uint64_t> device_features{0};  ///< device
  std::atomic<std::uint64_t> driver_features{0};  ///< driver (subset of device_features)
  std::atomic<std::uint32_t> queue_size_max{0};   ///< device
  std::atomic<std::uint32_t> queue_size{0};       ///< driver (power of two <= queue_size_max)
  std::atomic<std::uint64_t> queue_desc{0};       ///< driver: guest address of the descriptor table
  std::atomic<std::uint64_t> queue_avail{0};      ///< driver: guest address of the avail ring
  std::atomic<std::uint64_t> queue_used{0};       ///< driver: guest address of the used ring
  std::atomic<std::uint32_t> queue_enable{0};     ///< driver: 1 once the addresses are valid
  std::atomic<std::uint64_t> config_start{0};     ///< device: `virtio_pmem_config.start` (guest address of the pmem range)
  std::atomic<std::uint64_t> config_size{0};      ///< device: `virtio_pmem_config.size` in bytes
  std::atomic<std::uint32_t> config_generation{0};///< device: bumped on every config change
  /// driver: incremented each time it resets the device by writing status 0.
  /// Shared memory has no register trap, so the device learns of a reset
  /// when it next looks; the driver waits for `reset_ack` before it
  /// re-initialises (VIRTIO: wait for the reset to complete).
  std::atomic<std::uint32_t> reset_request{0};
  /// device: the last `reset_request` it has carried out. Once it equals the
  /// driver's value, no answer from before that reset reaches the ring.
  std::atomic<std::uint32_t> reset_ack{0};
};

static_assert(std::atomic<std::uint8_t>::is_always_lock_free && std::atomic<std::uint32_t>::is_always_lock_free &&
                  std::atomic<std::uint64_t>::is_always_lock_free,
              "pmem_control is shared between processes and needs lock-free atomics");

} // namespace flushkit::virtio
