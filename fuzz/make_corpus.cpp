// fuzz/make_corpus.cpp - writes the seed corpus of the fuzz targets (one file per hostile-ring case family).
//
// Usage: make_corpus <fuzz/corpus dir>. Deterministic: the same bytes every
// run. Families follow the hostile-ring list (anchors section 4.3, items 1-12
// for the device, 14 for the driver) plus valid rings. Input layouts are
// described at the top of fuzz_device_ring.cpp and fuzz_driver_used.cpp.
#include <flushkit/virtio/split_ring.hpp>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <vector>

namespace fv = flushkit::virtio;

namespace {

constexpr std::uint64_t guest_base = 0x10000;
constexpr std::uint16_t NEXT = fv::desc_f_next, WRITE = fv::desc_f_write, INDIRECT = fv::desc_f_indirect;
constexpr std::uint64_t req_off = 0x200, resp_off = 0x240, table_off = 0x300;

enum op : std::uint8_t { pop = 0, process_all = 1, push_held = 2, scribble = 3, avail_add = 4, notify = 5, reset = 6 };

struct table_entry {
  std::uint64_t addr;
  std::uint32_t len;
  std::uint16_t flags;
  std::uint16_t next;
};

/// A fuzz_device_ring input: header, script, guest image with a legacy ring
/// (align 4) of `n` entries at guest 0x10000 (placement 0).
class ring_seed {
public:
  ring_seed(std::uint8_t log2n, bool event_idx, bool indirect)
      : n_(1u << log2n), header_{log2n, static_cast<std::uint8_t>((event_idx ? 1 : 0) | (indirect ? 2 : 0))} {
    header_.resize(13, 0);
    (void)fv::legacy_layout(n_, guest_base, 4, a_);
    image_.resize(0x400, 0);
  }
  std::uint64_t gpa(std::uint64_t off) const { return guest_base + off; }
  ring_seed& desc(std::uint32_t i, std::uint64_t addr, std::uint32_t len, std::uint16_t flags = 0, std::uint16_t next = 0) {
    return desc_at(a_.desc - guest_base + 16 * i, addr, len, flags, next);
  }
  ring_seed& desc_at(std::uint64_t off, std::uint64_t addr, std::uint32_t len, std::uint16_t flags = 0,
                     std::uint16_t next = 0) {
    put(off, addr, 8).put(off + 8, len, 4).put(off + 12, flags, 2).put(off + 14, next, 2);
    return *this;
  }
  /// Publishes the heads in order: avail ring entries and avail.idx delta.
  ring_seed& publish(std::initializer_list<std::uint16_t> heads) {
    for (std::uint16_t h : heads) put(a_.avail - guest_base + 4 + 2 * (avail_++ % n_), h, 2);
    header_[4] = static_cast<std::uint8_t>(avail_);
    header_[5] = static_cast<std::uint8_t>(avail_ >> 8);
    return *this;
  }
  /// Avail ring entry for absolute avail index `idx` (for warmed-up devices).
  ring_seed& avail_entry(std::uint16_t idx, std::uint16_t head) {
    return put(a_.avail - guest_base + 4 + 2 * (idx % n_), head, 2);
  }
  /// An indirect table at image offset `off`.
  ring_seed& table(std::uint64_t off, std::initializer_list<table_entry> entries) {
    for (const table_entry& e : entries) {
      desc_at(off, e.addr, e.len, e.flags, e.next);
      off += 16;
    }
    return *this;
  }
  ring_seed& avail_delta(std::uint16_t d) {
    header_[4] = static_cast<std::uint8_t>(d);
    header_[5] = static_cast<std::uint8_t>(d >> 8);
    return *this;
  }
  ring_seed& warm(std::uint8_t mode, std::uint8_t arg) {
    header_[2] = mode;
    header_[3] = arg;
    return *this;
  }
  ring_seed& type(std::uint64_t off, std::uint32_t t) { return put(off, t, 4); }
  ring_seed& script(std::initializer_list<std::initializer_list<std::uint8_t>> ops) {
    for (auto o : ops) {
      std::vector<std::uint8_t> v(o);
      v.resize(4, 0);
      ops_.insert(ops_.end(), v.begin(), v.end());
    }
    header_[12] = static_cast<std::uint8_t>(ops_.size() / 4);
    return *this;
  }
  /// A flush request chain head -> second: 4 readable bytes, 4 writable.
  ring_seed& flush_chain(std::uint16_t head, std::uint16_t second, std::uint64_t req = req_off) {
    return desc(head, gpa(req), 4, NEXT, second).desc(second, gpa(resp_off), 4, WRITE);
  }
  const fv::ring_addresses& rings() const { return a_; }
  std::vector<std::uint8_t> bytes() const {
    std::vector<std::uint8_t> out(header_);
    out.insert(out.end(), ops_.begin(), ops_.end());
    out.insert(out.end(), image_.begin(), image_.end());
    return out;
  }

private:
  ring_seed& put(std::uint64_t off, std::uint64_t v, int bytes) {
    if (image_.size() < off + static_cast<std::uint64_t>(bytes)) image_.resize(off + static_cast<std::uint64_t>(bytes), 0);
    for (int k = 0; k < bytes; ++k) image_[off + static_cast<std::uint64_t>(k)] = static_cast<std::uint8_t>(v >> (8 * k));
    return *this;
  }

  std::uint32_t n_;
  std::vector<std::uint8_t> header_;
  std::vector<std::uint8_t> ops_;
  std::vector<std::uint8_t> image_;
  fv::ring_addresses a_{};
  std::uint16_t avail_ = 0;
};

void write(const std::filesystem::path& dir, const std::string& name, const std::vector<std::uint8_t>& bytes) {
  std::filesystem::create_directories(dir);
  std::ofstream f(dir / name, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw std::runtime_error("cannot write " + (dir / name).string());
}

void device_seeds(const std::filesystem::path& dir) {
  auto seed = [] { return ring_seed(3, true, true); }; // 8 entries, EVENT_IDX + INDIRECT
  {
    ring_seed s = seed();
    s.flush_chain(0, 1).flush_chain(2, 3).type(req_off, 0);
    s.table(table_off, {{s.gpa(req_off), 4, NEXT, 1}, {s.gpa(resp_off), 4, WRITE, 0}});
    s.desc(4, s.gpa(table_off), 32, INDIRECT).publish({0, 2, 4}).script({{process_all}, {notify, 0}});
    write(dir, "00-valid-flush-chains", s.bytes());
  }
  {
    ring_seed s(4, false, false); // 16 entries, no features
    s.flush_chain(10, 12).flush_chain(14, 15).publish({10, 14}).script({{pop, 1}, {pop, 0}, {push_held, 0, 0, 0}});
    write(dir, "00-valid-no-features", s.bytes());
  }
  {
    ring_seed s = seed(); // 1: head 1 is the middle of in-flight chain 0 -> 1; then head 9 and next 9
    s.flush_chain(0, 1).desc(2, s.gpa(req_off), 4, NEXT, 9).publish({0, 1, 9, 2}).script({{pop, 1}, {pop, 1}, {pop}});
    write(dir, "01-index-out-of-range-and-shared", s.bytes());
  }
  {
    ring_seed s = seed(); // 2: a chain of exactly 8 descriptors (legal), then a self loop
    for (std::uint16_t i = 0; i < 8; ++i) s.desc(i, s.gpa(req_off), 1, i < 7 ? NEXT : 0, static_cast<std::uint16_t>(i + 1));
    s.publish({0, 0}).script({{pop, 1}, {push_held, 0, 0, 1}, {scribble, 0x7C, 0, 1}, {scribble, 0x7E, 0, 0}, {pop}});
    write(dir, "02-loops", s.bytes()); // the scribbles turn desc 7 into NEXT -> 0: a loop
  }
  {
    ring_seed s = seed(); // 3: valid indirect, then nested indirect
    s.table(table_off, {{s.gpa(req_off), 4, NEXT, 1}, {s.gpa(resp_off), 4, WRITE, 0}});
    s.table(table_off + 0x40, {{s.gpa(table_off), 32, INDIRECT, 0}});
    s.desc(0, s.gpa(table_off), 32, INDIRECT).desc(1, s.gpa(table_off + 0x40), 16, INDIRECT);
    s.publish({0, 1}).script({{process_all}});
    write(dir, "03-indirect-nested", s.bytes());
  }
  {
    ring_seed s = seed(); // 4: device at 65535, two chains across the u16 wrap, then avail jumps ahead
    s.flush_chain(0, 1).flush_chain(2, 3).warm(0xFF, 0);
    s.avail_entry(65535, 0).avail_entry(0, 2).avail_delta(2);
    s.script({{process_all}, {avail_add, 200}, {pop}, {pop}, {process_all}});
    write(dir, "04-avail-idx-wrap-and-jump", s.bytes());
  }
  {
    ring_seed s(1, true, false); // 5: 2 entries: a third chain while 2 are in flight; after a reset, head 0 twice
    s.desc(0, s.gpa(req_off), 4).desc(1, s.gpa(req_off), 4).publish({0, 1});
    s.script({{pop, 1}, {pop, 1}, {avail_add, 1}, {pop}, {reset}, {scribble, 0x22, 0, 2}, {scribble, 0x26, 0, 0},
              {pop, 1}, {pop, 1}});
    write(dir, "05-more-in-flight-and-head-twice", s.bytes());
  }
  {
    ring_seed s = seed(); // 6: trailing descriptors (valid), short status, zero-length status
    s.desc(0, s.gpa(req_off), 4, NEXT, 1).desc(1, s.gpa(resp_off), 4, WRITE | NEXT, 2).desc(2, s.gpa(resp_off + 8), 4, WRITE);
    s.desc(3, s.gpa(req_off), 4, NEXT, 4).desc(4, s.gpa(resp_off), 2, WRITE);
    s.desc(5, s.gpa(req_off), 4, NEXT, 6).desc(6, s.gpa(resp_off), 0, WRITE);
    s.publish({0, 3, 5}).script({{pop}, {pop}, {pop}});
    write(dir, "06-framing-lengths", s.bytes());
  }
  {
    ring_seed s = seed(); // 7: request writable and status readable; unknown flag bit
    s.desc(0, s.gpa(resp_off), 4, WRITE | NEXT, 1).desc(1, s.gpa(req_off), 4).desc(2, s.gpa(req_off), 4, 0x8);
    s.publish({0, 2}).script({{pop}, {pop}});
    write(dir, "07-wrong-direction-unknown-flags", s.bytes());
  }
  {
    ring_seed s = seed(); // 8: addr + len wraps; straddles the two regions; status inside the used ring
    s.desc(0, s.gpa(req_off), 4, NEXT, 1).desc(1, s.rings().used, 4, WRITE);
    s.desc(2, 0xFFFF'FFFF'FFFF'FFF0, 0x20).desc(3, guest_base + 4096 - 8, 16);
    s.publish({0, 2, 3}).script({{pop}, {pop}, {pop}});
    write(dir, "08-address-overflow-and-ring-overlap", s.bytes());
  }
  {
    ring_seed s = seed(); // 9: 7 direct descriptors + a trailing table of 2: 9 buffers > 8; then u32-max lengths
    for (std::uint16_t i = 0; i < 7; ++i) s.desc(i, s.gpa(req_off), 1, NEXT, static_cast<std::uint16_t>(i + 1));
    s.table(table_off, {{s.gpa(req_off), 4, NEXT, 1}, {s.gpa(resp_off), 4, WRITE, 0}});
    s.desc(7, s.gpa(table_off), 32, INDIRECT);
    s.table(table_off + 0x40, {{s.gpa(req_off), 0xFFFF'FFFF, NEXT, 1}, {s.gpa(resp_off), 0xFFFF'FFFF, WRITE, 0}});
    s.publish({0}).script({{pop}, {reset}, {scribble, 0x00, 0, 0x40}, {scribble, 0x01, 0, 0x03}, {scribble, 0x08, 0, 32},
                            {scribble, 0x0C, 0, INDIRECT}, {pop}});
    write(dir, "09-chain-bytes", s.bytes());
  }
  {
    ring_seed s = seed(); // 10: unknown request types 1 and 0xFFFFFFFF (answered ret 1, not broken)
    s.flush_chain(0, 1, req_off).flush_chain(2, 3, req_off + 8).type(req_off, 1).type(req_off + 8, 0xFFFF'FFFF);
    s.publish({0, 2}).script({{process_all}});
    write(dir, "10-unknown-type", s.bytes());
  }
  {
    ring_seed s = seed(); // 11: the guest rewrites a popped descriptor's len/flags before the push
    s.flush_chain(0, 1).publish({0, 0}).script({{pop, 1}, {scribble, 0x18, 0, 0xFF}, {scribble, 0x1C, 0, 0}, {push_held, 0, 0, 1}, {pop}});
    write(dir, "11-toctou-rewrite", s.bytes());
  }
  {
    ring_seed s = seed(); // 12: reset while a chain is in flight; a stale push must write nothing
    s.flush_chain(0, 1).publish({0}).script({{pop, 1}, {reset}, {push_held, 0, 0, 0}, {pop}, {7, 0, 0, 0}});
    write(dir, "12-reset-in-flight", s.bytes());
  }
}

void driver_seeds(const std::filesystem::path& dir) {
  auto script = [](std::uint8_t h0, std::uint8_t h1, std::uint8_t h2,
                   std::initializer_list<std::initializer_list<std::uint8_t>> ops) {
    std::vector<std::uint8_t> v{h0, h1, h2};
    for (auto o : ops) {
      std::vector<std::uint8_t> x(o);
      x.resize(4, 0);
      v.insert(v.end(), x.begin(), x.end());
    }
    return v;
  };
  // ops: 0 add, 1 complete, 2 raw used, 3 used.idx move, 4 get_used, 5 reset, 6 detach, 7 notif, 8 broken, 9 scribble
  write(dir, "00-valid-add-complete", script(0x83, 0, 0, {{0, 0x05, 3, 3}, {0, 0x05, 3, 3}, {7, 0}, {1, 0, 0}, {4}, {1, 0, 0}, {4}, {4}, {7, 1}}));
  write(dir, "00-valid-near-u16-wrap", script(0x03, 0xFF, 0, {{0, 0x05}, {1, 0, 0}, {4}, {0, 0x05}, {1, 0, 0}, {4}}));
  write(dir, "14-untrusted-device", script(0x03, 0, 0, {{0, 0x05}, {0, 0x05}, {1, 0, 0}, {4}, {2, 0, 0, 4}, {4}, {4}, {5}, {0, 0x05}, {2, 9, 0, 0}, {4}, {5}, {0, 0x05}, {1, 0, 1}, {4}, {5}, {0, 0x05}, {3, 5}, {4}}));
}

} // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_corpus <corpus dir>\n");
    return 2;
  }
  const std::filesystem::path root(argv[1]);
  device_seeds(root / "fuzz_device_ring");
  driver_seeds(root / "fuzz_driver_used");
  return 0;
}
