// fuzz/fuzz_driver_used.cpp - libFuzzer target: an untrusted device's used ring against driver_queue.
//
// Input layout (docs/reliability.md "## Fuzzing"):
//   [0]      queue size = 1 << (b % 8) (1..128); bit 7 EVENT_IDX
//   [1] [2]  warm-up: chains added, completed and collected before the script
//            (moves the indices towards the u16 wrap): [1] == 0xFF ->
//            65535 - [2] % 32, [1] odd -> [2], else 0
//   [3..]    script, 4 bytes per step (opcode, a, b, c), at most 256 steps:
//            0 add, 1 device completes an in-flight chain, 2 device writes a
//            raw used element, 3 device moves used.idx, 4 get_used, 5 device
//            reset + detach_unused + reset + configure, 6 detach_unused one,
//            7 kick_prepare / enable / disable callbacks, 8 mark_broken,
//            9 device scribbles one byte anywhere in the ring.
//
// A model of the driver's contract predicts every result exactly:
//   * add: io_error when broken, invalid_request / no_space as documented,
//     and a published chain of fresh descriptors (no descriptor shared with
//     another chain in flight), out buffers then in buffers;
//   * get_used never returns a token that is not in flight, never the same
//     token twice, never len > the chain's in bytes; it breaks on a used idx
//     past the chains in flight, an id out of range or not in flight, a len
//     too large, and broken stays broken (io_error, kick_prepare false);
//   * num_free() + descriptors of chains in flight == size, in_flight() ==
//     the model's count, after every step; detach_unused returns each chain
//     still in flight exactly once.
// Violations call __builtin_trap().
#define FK_CHECK_TARGET "fuzz_driver_used"
#include "fuzz_check.hpp"

#include <flushkit/virtio/driver_queue.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <new>
#include <span>

namespace fv = flushkit::virtio;
using flushkit::errc;
using flushkit::status;

namespace {

constexpr std::uint64_t guest_base = 0x10000;
constexpr std::size_t mem_bytes = 8192;
constexpr std::uint64_t data_gpa = guest_base + 4096;
constexpr std::size_t header_bytes = 3;
constexpr std::size_t op_bytes = 4;
constexpr std::size_t max_ops = 256;
constexpr std::uint32_t max_n = 128;

/// What the model knows about one chain in flight (indexed by head).
struct chain_model {
  void* token = nullptr;
  std::uint64_t in_bytes = 0;
  std::uint32_t ndesc = 0;
};

class driver_rig {
public:
  driver_rig(std::uint32_t n, bool event_idx)
      : host_(static_cast<std::byte*>(::operator new(mem_bytes, std::align_val_t{64}))), mem_(guest_base, host_, mem_bytes),
        q_(max_n), n_(n), f_{event_idx, false} {
    std::memset(host_, 0, mem_bytes);
    FK_CHECK(!fv::legacy_layout(n, guest_base, 4, a_));
    configure();
  }
  ~driver_rig() { ::operator delete(host_, std::align_val_t{64}); }
  driver_rig(const driver_rig&) = delete;
  driver_rig& operator=(const driver_rig&) = delete;

  /// `count` well-behaved add / complete / get_used cycles.
  void warm_up(std::uint16_t count) {
    const fv::buffer out{data_gpa, 4}, in{data_gpa + 64, 4};
    for (std::uint32_t i = 0; i < count; ++i) {
      FK_CHECK(!q_.add(std::span(&out, n_ >= 2 ? 1 : 0), std::span(&in, 1), next_token()));
      const auto head = fv::detail::load_le<std::uint16_t>(ring().avail_ring((q_avail_++) & (n_ - 1)));
      device_write_used(head, 4);
      const fv::used_result r = q_.get_used();
      FK_CHECK(!r.error && r.token != nullptr && r.len == 4);
      ++last_used_;
    }
  }

  void run_op(const std::uint8_t* op) {
    const std::uint8_t a = op[1], b = op[2], c = op[3];
    switch (op[0] % 10) {
    case 0: add(a, b, c); break;
    case 1: complete_in_flight(a, b, c); break;
    case 2: device_write_used(static_cast<std::uint32_t>(a | (b << 8)), c); break;
    case 3: set_device_used(static_cast<std::uint16_t>(dev_used_ + static_cast<std::int8_t>(a))); break;
    case 4: get_used(); break;
    case 5: device_reset(); break;
    case 6: detach_one(); break;
    case 7: notifications(a); break;
    case 8: q_.mark_broken("fuzz: transport failure"); break;
    default: scribble(static_cast<std::uint32_t>(a | (b << 8)), c); break;
    }
    check_accounting();
  }

private:
  const fv::split_ring& ring() const { return q_.ring(); }

  void configure() {
    FK_CHECK(!q_.configure(mem_, a_, f_));
    FK_CHECK(q_.num_free() == n_ && q_.in_flight() == 0 && !q_.broken());
    heads_.fill({});
    owned_.fill(0);
    q_avail_ = last_used_ = dev_used_ = 0;
  }

  void* next_token() { return reinterpret_cast<void*>(static_cast<std::uintptr_t>(++tokens_) * 16); }

  std::uint32_t model_in_flight() const {
    return static_cast<std::uint32_t>(
        std::count_if(heads_.begin(), heads_.end(), [](const chain_model& m) { return m.token != nullptr; }));
  }

  void check_accounting() const {
    std::uint32_t descs = 0;
    for (const chain_model& m : heads_) descs += m.token != nullptr ? m.ndesc : 0;
    FK_CHECK(q_.in_flight() == model_in_flight());
    FK_CHECK(q_.num_free() + descs == n_);
    FK_CHECK(q_.in_flight() <= n_);
  }

  // add(): `a` chooses the shape (out = a & 3, in = (a >> 2) & 3, bit 4 a
  // 4 GiB in buffer, bit 5 a zero-length buffer), b and c the lengths.
  void add(std::uint8_t a, std::uint8_t b, std::uint8_t c) {
    std::array<fv::buffer, 3> out{}, in{};
    const std::size_t nout = a & 3u, nin = (a >> 2) & 3u;
    std::uint64_t bytes = 0, in_bytes = 0;
    bool zero = false;
    for (std::size_t i = 0; i < nout + nin; ++i) {
      const bool is_in = i >= nout;
      std::uint32_t len = is_in ? 1u + c : 1u + b;
      if (is_in && (a & 0x10) != 0) len = UINT32_MAX;
      if (i == 0 && (a & 0x20) != 0) len = 0;
      (is_in ? in[i - nout] : out[i]) = fv::buffer{data_gpa + 8 * i, len};
      zero = zero || len == 0;
      bytes += len;
      if (is_in) in_bytes += len;
    }
    const std::size_t total = nout + nin;
    status expect{};
    if (q_.broken())
      expect = errc::io_error;
    else if (total == 0 || total > n_ || zero || bytes > (std::uint64_t{1} << 32))
      expect = errc::invalid_request;
    else if (total > q_.num_free())
      expect = errc::no_space;
    void* token = next_token();
    const std::uint16_t avail_before = fv::detail::load_le<std::uint16_t>(ring().avail_idx());
    const status st = q_.add(std::span(out.data(), nout), std::span(in.data(), nin), token);
    FK_CHECK(st == expect);
    if (st) return FK_CHECK(fv::detail::load_le<std::uint16_t>(ring().avail_idx()) == avail_before);
    const auto head = fv::detail::load_le<std::uint16_t>(ring().avail_ring((q_avail_++) & (n_ - 1)));
    FK_CHECK(fv::detail::load_le<std::uint16_t>(ring().avail_idx()) == q_avail_);
    check_published(head, out, nout, in, nin);
    heads_[head] = {token, in_bytes, static_cast<std::uint32_t>(total)};
  }

  // The chain the driver published: fresh descriptors, out then in, exact lengths.
  void check_published(std::uint16_t head, const std::array<fv::buffer, 3>& out, std::size_t nout,
                       const std::array<fv::buffer, 3>& in, std::size_t nin) {
    FK_CHECK(head < n_ && heads_[head].token == nullptr);
    std::uint16_t idx = head;
    for (std::size_t i = 0; i < nout + nin; ++i) {
      FK_CHECK(idx < n_ && owned_[idx] == 0);
      owned_[idx] = static_cast<std::uint16_t>(head + 1);
      const fv::detail::descriptor d = fv::detail::read_descriptor_once(ring().desc(idx));
      const fv::buffer& want = i < nout ? out[i] : in[i - nout];
      const bool last = i + 1 == nout + nin;
      FK_CHECK(d.addr == want.addr && d.len == want.len);
      FK_CHECK(((d.flags & fv::desc_f_write) != 0) == (i >= nout));
      FK_CHECK(((d.flags & fv::desc_f_next) != 0) == !last && (d.flags & fv::desc_f_indirect) == 0);
      idx = d.next;
    }
  }

  void release_model(std::uint16_t head) {
    heads_[head] = {};
    for (auto& o : owned_)
      if (o == head + 1) o = 0;
  }

  void set_device_used(std::uint16_t v) {
    dev_used_ = v;
    fv::detail::store_le<std::uint16_t>(ring().used_idx(), v, std::memory_order_release);
  }

  void device_write_used(std::uint32_t id, std::uint32_t len) {
    const std::uint32_t slot = dev_used_ & (n_ - 1);
    fv::detail::store_le<std::uint32_t>(ring().used_id(slot), id);
    fv::detail::store_le<std::uint32_t>(ring().used_len(slot), len);
    set_device_used(static_cast<std::uint16_t>(dev_used_ + 1));
  }

  // The device completes in-flight chain number `pick` with len = in bytes,
  // in bytes + 1 or `raw`.
  void complete_in_flight(std::uint8_t pick, std::uint8_t how, std::uint8_t raw) {
    const std::uint32_t count = model_in_flight();
    if (count == 0) return;
    std::uint32_t k = pick % count, head = 0;
    for (; head < n_; ++head)
      if (heads_[head].token != nullptr && k-- == 0) break;
    const std::uint64_t ib = heads_[head].in_bytes;
    const std::uint64_t len = how % 3 == 0 ? ib : how % 3 == 1 ? ib + 1 : raw;
    device_write_used(head, static_cast<std::uint32_t>(std::min<std::uint64_t>(len, UINT32_MAX)));
  }

  void get_used() {
    const bool was_broken = q_.broken();
    const auto used = fv::detail::load_le<std::uint16_t>(ring().used_idx());
    const auto pending = static_cast<std::uint16_t>(used - last_used_);
    const std::uint32_t slot = last_used_ & (n_ - 1);
    const auto id = fv::detail::load_le<std::uint32_t>(ring().used_id(slot));
    const auto len = fv::detail::load_le<std::uint32_t>(ring().used_len(slot));
    const fv::used_result r = q_.get_used();
    FK_CHECK(!(r.error && r.token != nullptr));
    if (was_broken) return FK_CHECK(r.error == errc::io_error && q_.broken());
    if (pending == 0) return FK_CHECK(!r.error && r.token == nullptr);
    const bool bad = pending > model_in_flight() || id >= n_ || heads_[id].token == nullptr || len > heads_[id].in_bytes;
    if (bad) return FK_CHECK(r.error == errc::io_error && q_.broken());
    FK_CHECK(!r.error && r.token == heads_[id].token && r.len == len && !q_.broken());
    release_model(static_cast<std::uint16_t>(id));
    ++last_used_;
  }

  // detach_unused returns a token in flight, or nullptr exactly when none is.
  void detach_one() {
    void* t = q_.detach_unused();
    if (t == nullptr) return FK_CHECK(model_in_flight() == 0);
    const auto it = std::find_if(heads_.begin(), heads_.end(), [&](const chain_model& m) { return m.token == t; });
    FK_CHECK(it != heads_.end());
    release_model(static_cast<std::uint16_t>(it - heads_.begin()));
  }

  // The device resets: the driver takes every chain back, resets and configures again.
  void device_reset() {
    for (std::uint32_t i = 0; i <= n_; ++i) {
      if (model_in_flight() == 0) break;
      detach_one();
    }
    FK_CHECK(q_.detach_unused() == nullptr && q_.in_flight() == 0 && q_.num_free() == n_);
    const std::uint64_t gen = q_.generation();
    q_.reset();
    FK_CHECK(q_.generation() == gen + 1 && !q_.broken() && !q_.configured());
    configure();
  }

  void notifications(std::uint8_t a) {
    const bool was_broken = q_.broken();
    switch (a % 3) {
    case 0: {
      const bool kick = q_.kick_prepare();
      if (was_broken) FK_CHECK(!kick);
      break;
    }
    case 1: {
      const bool idle = q_.enable_callbacks();
      if (was_broken) FK_CHECK(idle);
      break;
    }
    default: q_.disable_callbacks(); break;
    }
  }

  // A device may write anywhere in the shared ring; the driver must not care
  // about anything but the used ring it validates.
  void scribble(std::uint32_t off, std::uint8_t v) {
    const auto ring_bytes = static_cast<std::uint32_t>(fv::legacy_ring_bytes(n_, 4));
    const std::uint64_t gpa = guest_base + off % ring_bytes;
    fv::detail::store_le<std::uint8_t>(host_ + (gpa - guest_base), v);
    if (gpa >= a_.used + 2 && gpa < a_.used + 4) dev_used_ = fv::detail::load_le<std::uint16_t>(ring().used_idx());
  }

  std::byte* host_;
  fv::guest_memory mem_;
  fv::driver_queue q_;
  std::uint32_t n_;
  fv::ring_features f_;
  fv::ring_addresses a_{};
  std::array<chain_model, max_n> heads_{};
  std::array<std::uint16_t, max_n> owned_{}; // descriptor -> head + 1 of its chain in flight
  std::uint16_t q_avail_ = 0, last_used_ = 0, dev_used_ = 0;
  std::uintptr_t tokens_ = 0;
};

std::uint16_t warm_count(std::uint8_t mode, std::uint8_t arg) {
  if (mode == 0xFF) return static_cast<std::uint16_t>(65535 - arg % 32);
  return (mode & 1) != 0 ? arg : 0;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < header_bytes) return 0;
  driver_rig rig(1u << (data[0] % 8), (data[0] & 0x80) != 0);
  rig.warm_up(warm_count(data[1], data[2]));
  const std::size_t ops = std::min((size - header_bytes) / op_bytes, max_ops);
  for (std::size_t i = 0; i < ops; ++i) rig.run_op(data + header_bytes + i * op_bytes);
  return 0;
}
