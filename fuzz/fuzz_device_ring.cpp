// fuzz/fuzz_device_ring.cpp - libFuzzer target: a hostile guest ring against device_queue and pmem_host.
//
// Input layout (all little-endian; docs/reliability.md "## Fuzzing"):
//   [0]      queue size = 1 << (b % 8) (1..128); bit 7: every flush of the
//            pmem_host phase fails (EIO)
//   [1]      bit 0 EVENT_IDX, bit 1 INDIRECT_DESC, (b >> 2) % 6 = placement
//   [2]      warm-up mode and [3] its argument: chains popped and pushed
//            before the image is loaded (last-seen avail index / used index):
//            0xFF -> 65535 - [3] % 32, odd -> [3], else 0
//   [4..5]   avail.idx delta: avail.idx = warm-up + delta after the image load
//   [6..11]  placement 4 only: desc, avail, used offsets from the guest base
//   [12]     op count (b % 33), then 4 bytes per op, then the guest memory
//            image (at most 8 KiB, zero-padded).
// Guest memory: two adjacent 4 KiB regions at guest 0x10000 and 0x11000
// (one host buffer), so ranges straddling them must be rejected.
//
// Invariants checked after every step (violation -> __builtin_trap()):
//   * in_flight() <= size() and equals the chains this harness holds;
//   * broken is sticky: pop/process_all return an error and no chain,
//     push_used fails, nothing is written to guest memory, in_flight is frozen;
//   * every chain: 1..size buffers, each len > 0, addr + len not overflowing,
//     inside ONE region, readable before writable, writable ones outside the
//     ring, byte totals consistent and <= 2^32, head never popped twice;
//   * push_used's status is the one the model predicts; device operations
//     write only the used ring and the writable buffers of answered chains;
//   * loops are bounded: process_all calls back at most size() times.
// Then the same image is handed to pmem_host (the virtio-pmem device):
// kick, run both executors to completion, check its counters and used ring.
#define FK_CHECK_TARGET "fuzz_device_ring"
#include "fuzz_check.hpp"

#include <flushkit/virtio/device_queue.hpp>
#include <flushkit/virtio/pmem_host.hpp>

#include <boost/asio/io_context.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <span>

namespace fv = flushkit::virtio;
using flushkit::errc;
using flushkit::status;

namespace {

constexpr std::uint64_t guest_base = 0x10000;
constexpr std::uint64_t region_bytes = 4096;
constexpr std::size_t mem_bytes = 2 * region_bytes;
constexpr std::size_t header_bytes = 13;
constexpr std::size_t op_bytes = 4;
constexpr std::size_t max_ops = 32;
constexpr std::size_t max_held = 2 * 128;
constexpr std::size_t max_resp = 4;

bool verbose() {
  static const bool v = std::getenv("FLUSHKIT_FUZZ_VERBOSE") != nullptr;
  return v;
}

std::uint16_t le16(const std::uint8_t* p) { return static_cast<std::uint16_t>(p[0] | (p[1] << 8)); }

/// Guest RAM: one 16-aligned host buffer (ASan red zones around it), two regions.
struct guest {
  guest() : host(static_cast<std::byte*>(::operator new(mem_bytes, std::align_val_t{64}))) {
    std::memset(host, 0, mem_bytes);
    FK_CHECK(!mem.add_region(guest_base, host, region_bytes));
    FK_CHECK(!mem.add_region(guest_base + region_bytes, host + region_bytes, region_bytes));
  }
  ~guest() { ::operator delete(host, std::align_val_t{64}); }
  guest(const guest&) = delete;
  guest& operator=(const guest&) = delete;

  void load(std::span<const std::uint8_t> image) const {
    std::memset(host, 0, mem_bytes);
    std::memcpy(host, image.data(), std::min(image.size(), mem_bytes));
  }

  std::byte* host;
  fv::guest_memory mem;
};

/// Ring placements: valid legacy, valid split over both regions, overlapping
/// areas, used ring past the end, raw offsets from the input, straddling.
fv::ring_addresses placement(unsigned which, std::uint32_t n, const std::uint8_t* raw) {
  fv::ring_addresses a{n, 0, 0, 0};
  const std::uint64_t b2 = guest_base + region_bytes;
  switch (which) {
  case 0: (void)fv::legacy_layout(n, guest_base, 4, a); break;
  case 1: a = {n, guest_base, b2, b2 + fv::align_up(fv::avail_bytes(n), 4)}; break;
  case 2: a = {n, guest_base, guest_base + fv::desc_table_bytes(n) - 2, b2}; break;
  case 3: a = {n, guest_base, b2, b2 + region_bytes - 4}; break;
  case 4: a = {n, guest_base + le16(raw), guest_base + le16(raw + 2), guest_base + le16(raw + 4)}; break;
  default: a = {n, b2 - 16, b2 + 0x200, b2 + 0x600}; break;
  }
  return a;
}

/// Byte mask of guest memory a device operation may change.
struct write_mask {
  std::array<bool, mem_bytes> ok{};
  void clear() { ok.fill(false); }
  void allow(std::uint64_t gpa, std::uint64_t len) {
    for (std::uint64_t i = 0; i < len; ++i) {
      const std::uint64_t off = gpa + i - guest_base;
      if (gpa + i >= guest_base && off < mem_bytes) ok[off] = true;
    }
  }
};

/// A chain this harness holds (popped, not yet pushed).
struct held_chain {
  fv::chain_id id;
  std::uint64_t writable_bytes = 0;
  std::array<fv::chain_buffer, max_resp> resp{};
  std::size_t resp_count = 0;
};

class device_rig {
public:
  device_rig(std::uint32_t n, fv::ring_features f, const fv::ring_addresses& a) : dq_(128), n_(n), f_(f), a_(a) {
    configured_ = !dq_.configure(g_.mem, a_, f_);
    if (!configured_) return;
    FK_CHECK(!fv::split_ring::map(g_.mem, a_, ring_));
    FK_CHECK(dq_.size() == n);
  }

  bool configured() const { return configured_; }
  guest& mem() { return g_; }
  const fv::split_ring& ring() const { return ring_; }

  /// `count` valid one-descriptor chains popped and pushed: the device's
  /// last_avail and used index end at `count` (u16 wrap reachable).
  void warm_up(std::uint16_t count) {
    fv::detail::write_descriptor(ring_.desc(0), {a_.desc, 1, 0, 0});
    for (std::uint32_t i = 0; i < count; ++i) {
      fv::detail::store_le<std::uint16_t>(ring_.avail_ring(i & (n_ - 1)), 0);
      fv::detail::store_le<std::uint16_t>(ring_.avail_idx(), static_cast<std::uint16_t>(i + 1));
      const fv::pop_result r = dq_.pop();
      FK_CHECK(!r.error && r.chain != nullptr);
      FK_CHECK(!dq_.push_used(r.chain->id(), 0));
    }
    used_ = count;
  }

  void set_avail_idx(std::uint16_t v) const { fv::detail::store_le<std::uint16_t>(ring_.avail_idx(), v); }

  void run_op(const std::uint8_t* op) {
    const std::uint8_t a = op[1], b = op[2], c = op[3];
    switch (op[0] % 9) {
    case 0: device_step([&] { pop_once((a & 1) != 0); }); break;
    case 1: device_step([&] { process_all((a & 1) != 0); }); break;
    case 2: device_step([&] { push_held(a, b, c); }); break;
    case 3: g_.host[static_cast<std::size_t>(a | (b << 8)) % mem_bytes] = std::byte{c}; break; // guest scribble
    case 4:
      if (configured_) set_avail_idx(static_cast<std::uint16_t>(fv::detail::load_le<std::uint16_t>(ring_.avail_idx()) + a));
      break;
    case 5: device_step([&] { notifications(a); }); break;
    case 6: reset_and_reconfigure(); break;
    case 7: device_step([&] { push_forged(a, b, c); }); break;
    default: device_step([&] { dq_.mark_broken("fuzz: device model error"); }); break;
    }
    check_always();
  }

  /// Final drain: answers everything available and everything held.
  void drain() {
    device_step([&] { process_all(false); });
    for (std::size_t i = held_count_; i-- > 0;) device_step([&] { push_held(static_cast<std::uint8_t>(i), 0, 0); });
    check_always();
  }

private:
  // Runs one device operation and checks what it may have changed.
  template <class Op> void device_step(Op op) {
    const bool was_broken = dq_.broken();
    const std::uint32_t in_flight = dq_.in_flight();
    std::memcpy(before_.data(), g_.host, mem_bytes);
    mask_.clear();
    if (configured_ && !was_broken) mask_.allow(a_.used, fv::used_bytes(n_));
    op();
    for (std::size_t i = 0; i < mem_bytes; ++i)
      FK_CHECK(before_[i] == g_.host[i] || mask_.ok[i]);
    if (was_broken) {
      FK_CHECK(dq_.broken());
      FK_CHECK(dq_.in_flight() == in_flight);
    }
    if (verbose() && dq_.broken() && !was_broken) std::fprintf(stderr, "broken: %s\n", dq_.broken_reason());
  }

  void check_always() const {
    FK_CHECK(dq_.in_flight() <= n_);
    if (configured_) FK_CHECK(dq_.in_flight() == current_held());
  }

  std::size_t current_held() const {
    return static_cast<std::size_t>(std::count_if(held_, held_ + held_count_, [&](const held_chain& h) {
      return h.id.generation == dq_.generation();
    }));
  }

  held_chain* find_held(std::uint16_t head) {
    for (std::size_t i = 0; i < held_count_; ++i)
      if (held_[i].id.head == head && held_[i].id.generation == dq_.generation()) return &held_[i];
    return nullptr;
  }

  void check_chain(const fv::device_chain& c) {
    FK_CHECK(configured_ && !dq_.broken());
    FK_CHECK(c.id().head < n_ && c.id().generation == dq_.generation());
    FK_CHECK(find_held(c.id().head) == nullptr); // a head is never in flight twice
    const auto bufs = c.buffers();
    FK_CHECK(!bufs.empty() && bufs.size() <= n_);
    std::uint64_t rb = 0, wb = 0;
    std::size_t readable = 0;
    for (const fv::chain_buffer& b : bufs) {
      FK_CHECK(b.len > 0 && b.addr <= UINT64_MAX - b.len);
      std::byte* h = g_.mem.translate(b.addr, b.len);
      FK_CHECK(h != nullptr && h >= g_.host && h + b.len <= g_.host + mem_bytes);
      if (b.writable) {
        FK_CHECK(!ring_.overlaps(b.addr, b.len));
        wb += b.len;
      } else {
        FK_CHECK(wb == 0); // readable before writable
        rb += b.len;
        ++readable;
      }
    }
    FK_CHECK(rb == c.readable_bytes() && wb == c.writable_bytes() && readable == c.readable().size());
    FK_CHECK(rb + wb <= (std::uint64_t{1} << 32));
  }

  void pop_once(bool hold) {
    const bool was_broken = dq_.broken();
    const fv::pop_result r = dq_.pop();
    FK_CHECK(!(r.error && r.chain != nullptr));
    if (!configured_) return FK_CHECK(r.error == not_configured_error() && r.chain == nullptr);
    if (was_broken) FK_CHECK(r.error == errc::device_broken && r.chain == nullptr);
    if (r.error) return FK_CHECK(r.error == errc::device_broken && dq_.broken());
    if (r.chain != nullptr) take(*r.chain, hold);
  }

  void process_all(bool hold) {
    const bool was_broken = dq_.broken();
    std::uint32_t calls = 0;
    const status st = dq_.process_all([&](const fv::device_chain& c) {
      FK_CHECK(++calls <= n_ && !was_broken);
      take(c, hold);
    });
    if (!configured_) return FK_CHECK(st == not_configured_error());
    FK_CHECK(!st || (st == errc::device_broken && dq_.broken()));
    if (!st) FK_CHECK(!dq_.broken());
  }

  // An unconfigured queue answers invalid_request, unless the model broke it.
  status not_configured_error() const {
    return dq_.broken() ? make_error_code(errc::device_broken) : make_error_code(errc::invalid_request);
  }

  void take(const fv::device_chain& c, bool hold) {
    check_chain(c);
    FK_CHECK(held_count_ < max_held);
    held_chain& h = held_[held_count_++];
    h.id = c.id();
    h.writable_bytes = c.writable_bytes();
    h.resp_count = 0;
    for (const fv::chain_buffer& b : c.writable())
      if (h.resp_count < max_resp) h.resp[h.resp_count++] = b;
    if (!hold) answer(c, held_count_ - 1);
  }

  // The virtio-pmem request handling: 4 readable bytes (le32 type) and 4
  // writable bytes (le32 ret), else the device needs a reset.
  void answer(const fv::device_chain& c, std::size_t slot) {
    if (c.readable_bytes() < fv::pmem_req_bytes || c.writable_bytes() < fv::pmem_resp_bytes) {
      dq_.mark_broken("fuzz: virtio-pmem request framing");
      return;
    }
    unsigned char type[fv::pmem_req_bytes];
    FK_CHECK(dq_.read_chain(c.readable(), std::as_writable_bytes(std::span(type))) == fv::pmem_req_bytes);
    const std::uint32_t ret =
        fv::detail::decode_le<std::uint32_t>(type) == fv::pmem_req_type_flush ? fv::pmem_resp_ok : fv::pmem_resp_error;
    push_held(static_cast<std::uint8_t>(slot), 0, static_cast<std::uint8_t>(ret == 0 ? 0 : 4));
  }

  // Pushes held chain `pick`; `mode` % 4: write the response then push its
  // length, push len = writable bytes, writable bytes + 1, raw `raw`.
  void push_held(std::uint8_t pick, std::uint8_t raw, std::uint8_t mode) {
    if (held_count_ == 0) return;
    const std::size_t i = pick % held_count_;
    const held_chain h = held_[i];
    std::uint32_t len = raw;
    switch (mode % 4) {
    case 0: len = write_response(h, mode >= 4 ? fv::pmem_resp_error : fv::pmem_resp_ok); break;
    case 1: len = static_cast<std::uint32_t>(std::min<std::uint64_t>(h.writable_bytes, UINT32_MAX)); break;
    case 2: len = static_cast<std::uint32_t>(std::min<std::uint64_t>(h.writable_bytes + 1, UINT32_MAX)); break;
    default: break;
    }
    if (push_checked(h.id, len) || h.id.generation != dq_.generation()) held_[i] = held_[--held_count_];
  }

  std::uint32_t write_response(const held_chain& h, std::uint32_t ret) {
    if (dq_.broken() || h.id.generation != dq_.generation()) return 0; // a device writes nothing then
    unsigned char le[fv::pmem_resp_bytes];
    for (std::size_t k = 0; k < sizeof le; ++k) le[k] = static_cast<unsigned char>(ret >> (8 * k));
    const std::span<const fv::chain_buffer> w(h.resp.data(), h.resp_count);
    for (const fv::chain_buffer& b : w) mask_.allow(b.addr, b.len);
    const std::size_t len = dq_.write_chain(w, std::as_bytes(std::span(le)));
    FK_CHECK(len == std::min<std::uint64_t>(sizeof le, h.writable_bytes));
    return static_cast<std::uint32_t>(len);
  }

  // A chain id the harness makes up: any head, current or other generation.
  void push_forged(std::uint8_t a, std::uint8_t b, std::uint8_t c) {
    const fv::chain_id id{static_cast<std::uint16_t>(a | (b << 8)), dq_.generation() - (c & 1)};
    if (push_checked(id, c >> 1))
      for (std::size_t i = 0; i < held_count_; ++i)
        if (held_[i].id.head == id.head && held_[i].id.generation == id.generation) {
          held_[i] = held_[--held_count_];
          break;
        }
  }

  // push_used with the status the model predicts. Returns: true when pushed.
  bool push_checked(fv::chain_id id, std::uint32_t len) {
    const held_chain* h = id.generation == dq_.generation() ? find_held(id.head) : nullptr;
    status expect{};
    if (id.generation != dq_.generation())
      expect = errc::cancelled;
    else if (dq_.broken())
      expect = errc::device_broken;
    else if (!configured_ || h == nullptr || len > h->writable_bytes)
      expect = errc::invalid_request;
    const std::uint32_t slot = used_ & (n_ - 1);
    const status st = dq_.push_used(id, len);
    FK_CHECK(st == expect);
    if (st) return false;
    ++used_;
    FK_CHECK(fv::detail::load_le<std::uint16_t>(ring_.used_idx()) == used_);
    FK_CHECK(fv::detail::load_le<std::uint32_t>(ring_.used_id(slot)) == id.head);
    FK_CHECK(fv::detail::load_le<std::uint32_t>(ring_.used_len(slot)) == len);
    return true;
  }

  void notifications(std::uint8_t a) {
    const bool was_broken = dq_.broken();
    switch (a % 3) {
    case 0: {
      const bool notify = dq_.should_notify();
      if (was_broken || !configured_) FK_CHECK(!notify);
      break;
    }
    case 1: {
      const bool empty = dq_.enable_notifications();
      if (was_broken || !configured_) FK_CHECK(empty);
      break;
    }
    default: dq_.disable_notifications(); break;
    }
  }

  void reset_and_reconfigure() {
    const std::uint64_t gen = dq_.generation();
    // Keep chains of the generation being retired (pushes must be cancelled), drop older ones.
    held_count_ = static_cast<std::size_t>(std::remove_if(held_, held_ + held_count_, [&](const held_chain& h) {
                                              return h.id.generation != gen;
                                            }) - held_);
    dq_.reset();
    FK_CHECK(!dq_.broken() && dq_.in_flight() == 0 && !dq_.configured() && dq_.generation() == gen + 1);
    FK_CHECK(dq_.pop().error == errc::invalid_request);
    const bool again = !dq_.configure(g_.mem, a_, f_);
    FK_CHECK(again == configured_);
    used_ = 0;
  }

  guest g_;
  fv::device_queue dq_;
  std::uint32_t n_;
  fv::ring_features f_;
  fv::ring_addresses a_;
  fv::split_ring ring_{};
  bool configured_ = false;
  std::uint16_t used_ = 0;
  held_chain held_[max_held];
  std::size_t held_count_ = 0;
  std::array<std::byte, mem_bytes> before_{};
  write_mask mask_;
};

// 0xFF: near the u16 wrap (65504..65535, ~40 ms under ASan, so kept rare);
// odd: 0..255; otherwise none.
std::uint16_t warm_count(std::uint8_t mode, std::uint8_t arg) {
  if (mode == 0xFF) return static_cast<std::uint16_t>(65535 - arg % 32);
  return (mode & 1) != 0 ? arg : 0;
}

// ---- the same image through pmem_host ---------------------------------------

struct counting_irq {
  std::uint64_t n = 0;
  void notify() { ++n; }
};

struct scripted_target {
  bool fail = false;
  std::uint64_t calls = 0;
  status flush() {
    ++calls;
    return fail ? make_error_code(errc::io_error) : status{};
  }
};

using io_ex = boost::asio::io_context::executor_type;

void settle(boost::asio::io_context& dev, boost::asio::io_context& pool) {
  for (int rounds = 0;; ++rounds) {
    FK_CHECK(rounds < 1000); // bounded: every handler chain ends
    dev.restart();
    pool.restart();
    if (dev.poll() + pool.poll() == 0) return;
  }
}

void run_pmem_host(std::span<const std::uint8_t> image, const fv::ring_addresses& a, std::uint8_t feature_bits,
                   std::uint16_t avail_idx, bool flush_fails) {
  static boost::asio::io_context dev, pool;
  guest g;
  g.load(image);
  fv::split_ring ring;
  const bool mapped = !fv::split_ring::map(g.mem, a, ring);
  if (mapped) fv::detail::store_le<std::uint16_t>(ring.avail_idx(), avail_idx);

  fv::pmem_control ctl;
  scripted_target target{flush_fails};
  counting_irq irq;
  fv::pmem_host_options opts;
  opts.queue_size_max = 128;
  fv::pmem_host<io_ex, io_ex, counting_irq> host(dev.get_executor(), pool.get_executor(), ctl, g.mem, target, irq,
                                                 fv::pmem_config{0x40000, 4096}, opts);
  ctl.queue_size = a.size;
  ctl.queue_desc = a.desc;
  ctl.queue_avail = a.avail;
  ctl.queue_used = a.used;
  ctl.driver_features = fv::f_version_1 | ((feature_bits & 1) != 0 ? fv::f_event_idx : 0) |
                        ((feature_bits & 2) != 0 ? fv::f_indirect_desc : 0);
  ctl.queue_enable = 1;
  ctl.status = fv::device_status::acknowledge | fv::device_status::driver | fv::device_status::features_ok |
               fv::device_status::driver_ok;
  for (int kick = 0; kick < 2; ++kick) {
    host.on_kick();
    settle(dev, pool);
    const fv::pmem_host_counters k = host.counters();
    FK_CHECK(host.busy() == 0 && host.queue().in_flight() <= a.size);
    FK_CHECK(k.completed <= k.requests && k.flushes_issued <= k.requests && target.calls == k.flushes_issued);
    if (host.needs_reset()) {
      FK_CHECK(host.queue().broken() && (ctl.status.load() & fv::device_status::needs_reset) != 0);
      FK_CHECK(k.malformed >= 1 || !mapped); // a ring violation, or registers the device refused
    }
    if (!host.active()) continue;
    FK_CHECK(mapped && host.queue().in_flight() == 0);
    // The device's used index starts at 0 (the image's used.idx stays until the first push).
    if (k.completed > 0) FK_CHECK(fv::detail::load_le<std::uint16_t>(ring.used_idx()) == static_cast<std::uint16_t>(k.completed));
    const std::uint64_t shown = std::min<std::uint64_t>(k.completed, a.size);
    for (std::uint64_t i = 0; i < shown; ++i) {
      const auto slot = static_cast<std::uint32_t>((k.completed - 1 - i) & (a.size - 1));
      FK_CHECK(fv::detail::load_le<std::uint32_t>(ring.used_id(slot)) < a.size);
      FK_CHECK(fv::detail::load_le<std::uint32_t>(ring.used_len(slot)) == fv::pmem_resp_bytes);
    }
    if (flush_fails) FK_CHECK(k.failures == k.flushes_issued);
  }
  host.reset();
  settle(dev, pool);
  FK_CHECK(!host.needs_reset() && host.busy() == 0 && !host.queue().broken());
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < header_bytes) return 0;
  const std::uint32_t n = 1u << (data[0] % 8);
  const fv::ring_features f{(data[1] & 1) != 0, (data[1] & 2) != 0};
  const fv::ring_addresses a = placement((data[1] >> 2) % 6u, n, data + 6);
  const std::uint16_t warm = warm_count(data[2], data[3]);
  const std::uint16_t delta = le16(data + 4);
  const std::size_t ops = std::min<std::size_t>(data[12] % (max_ops + 1), (size - header_bytes) / op_bytes);
  const std::uint8_t* op = data + header_bytes;
  const std::span<const std::uint8_t> image(op + ops * op_bytes, size - header_bytes - ops * op_bytes);

  {
    device_rig rig(n, f, a);
    if (rig.configured()) rig.warm_up(warm);
    rig.mem().load(image);
    if (rig.configured()) rig.set_avail_idx(static_cast<std::uint16_t>(warm + delta));
    static constexpr std::uint8_t default_op[op_bytes] = {1, 0, 0, 0}; // process_all, answering
    if (ops == 0) rig.run_op(default_op);
    for (std::size_t i = 0; i < ops; ++i) rig.run_op(op + i * op_bytes);
    rig.drain();
  }
  run_pmem_host(image, a, data[1], delta, (data[0] & 0x80) != 0);
  return 0;
}
