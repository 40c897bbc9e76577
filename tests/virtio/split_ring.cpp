#include <flushkit/virtio/split_ring.hpp>

#include <flushkit/virtio/device_queue.hpp>
#include <flushkit/virtio/driver_queue.hpp>

#include "support/virtio_guest.hpp"

#include <doctest/doctest.h>
// The legacy part of the uapi header (vring_init) is C only (void* conversions);
// in C++ only the structs and vring_need_event are used. vring_init, vring_size
// and the event macros are exercised by a C program compiled below with `cc`.
#define VIRTIO_RING_NO_LEGACY
#include <linux/virtio_ring.h>

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <ostream>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

namespace fv = flushkit::virtio;
using flushkit::errc;
using flushkit_test::guest_ram;

namespace {

// Host pointer -> guest address inside `ram`.
std::uint64_t gpa_of(const guest_ram& ram, const void* p) {
  return ram.base() + static_cast<std::uint64_t>(static_cast<const std::byte*>(p) - ram.host(ram.base()));
}

// A uapi `struct vring` pointing at the areas of `a` in `ram`.
vring uapi_ring(const guest_ram& ram, const fv::ring_addresses& a) {
  vring vr{};
  vr.num = a.size;
  vr.desc = reinterpret_cast<vring_desc*>(ram.host(a.desc));
  vr.avail = reinterpret_cast<vring_avail*>(ram.host(a.avail));
  vr.used = reinterpret_cast<vring_used*>(ram.host(a.used));
  return vr;
}

// The uapi event fields (vring_used_event / vring_avail_event), by their layout.
__virtio16& uapi_used_event(const vring& vr) { return vr.avail->ring[vr.num]; }
__virtio16& uapi_avail_event(const vring& vr) {
  return *reinterpret_cast<__virtio16*>(reinterpret_cast<char*>(vr.used) + 4 + 8 * std::size_t{vr.num});
}

// A C program using the real vring_init / vring_size / event macros. Modes:
//   layout N ALIGN      prints "size desc avail used used_event avail_event" offsets
//   write FILE          builds a ring (N=16, align 4096) in FILE with uapi writes
//   check FILE          checks the ring flushkit wrote in FILE (exit 0 when right)
constexpr const char* uapi_program = R"C(
#include <linux/virtio_ring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <fcntl.h>
#include <unistd.h>
#define BASE 0x100000ull
static void *map_file(const char *path) {
  int fd = open(path, O_RDWR);
  void *p = mmap(0, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  return p == MAP_FAILED ? 0 : p;
}
int main(int argc, char **argv) {
  struct vring vr;
  if (argc == 4 && !strcmp(argv[1], "layout")) {
    unsigned n = (unsigned)atoi(argv[2]); unsigned long al = strtoul(argv[3], 0, 0);
    char *p = (char *)0x10000000;
    vring_init(&vr, n, p, al);
    printf("%u %lu %lu %lu %lu %lu\n", vring_size(n, al), (unsigned long)((char *)vr.desc - p),
           (unsigned long)((char *)vr.avail - p), (unsigned long)((char *)vr.used - p),
           (unsigned long)((char *)&vring_used_event(&vr) - p), (unsigned long)((char *)&vring_avail_event(&vr) - p));
    return 0;
  }
  char *p = argc == 3 ? map_file(argv[2]) : 0;
  if (!p) return 2;
  vring_init(&vr, 16, p, 4096);
  if (!strcmp(argv[1], "write")) {
    memset(p, 0, vring_size(16, 4096));
    vr.desc[3].addr = BASE + 0x80000; vr.desc[3].len = 4; vr.desc[3].flags = VRING_DESC_F_NEXT; vr.desc[3].next = 9;
    vr.desc[9].addr = BASE + 0x80020; vr.desc[9].len = 8; vr.desc[9].flags = VRING_DESC_F_WRITE;
    vr.avail->ring[0] = 3;
    vring_used_event(&vr) = 0;
    vr.avail->idx = 1;
    return 0;
  }
  if (!strcmp(argv[1], "check")) {
    unsigned h = vr.avail->ring[0];
    struct vring_desc *d0 = &vr.desc[h], *d1 = &vr.desc[d0->next];
    int ok = vr.avail->idx == 1 && d0->addr == BASE + 0x80000 && d0->len == 4 && d0->flags == VRING_DESC_F_NEXT &&
             d1->addr == BASE + 0x80040 && d1->len == 12 && d1->flags == VRING_DESC_F_WRITE &&
             vr.used->idx == 1 && vr.used->ring[0].id == h && vr.used->ring[0].len == 3 &&
             vring_avail_event(&vr) == 1 && vring_need_event(vring_avail_event(&vr), 2, 1);
    return ok ? 0 : 1;
  }
  return 2;
}
)C";

// uapi_program compiled once (with the system C compiler) in a temp dir that
// is removed at exit.
struct uapi_tool_dir {
  uapi_tool_dir() {
    char tmpl[] = "/tmp/flushkit-uapi-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    std::ofstream(dir + "/uapi.c") << uapi_program;
    const std::string cmd = "cc -std=gnu11 -O0 -o " + dir + "/uapi " + dir + "/uapi.c";
    REQUIRE(std::system(cmd.c_str()) == 0);
  }
  ~uapi_tool_dir() {
    ::unlink((dir + "/uapi").c_str());
    ::unlink((dir + "/uapi.c").c_str());
    ::rmdir(dir.c_str());
  }
  std::string dir;
};

std::string uapi_tool() {
  static const uapi_tool_dir tool;
  return tool.dir + "/uapi";
}

int run_tool(const std::string& args, std::string* out = nullptr) {
  FILE* f = ::popen((uapi_tool() + " " + args).c_str(), "r");
  REQUIRE(f != nullptr);
  char buf[256];
  std::string text;
  while (std::fgets(buf, sizeof buf, f) != nullptr) text += buf;
  const int rc = ::pclose(f);
  if (out != nullptr) *out = text;
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

// One file of 1 MiB shared (MAP_SHARED) between this test and the C program;
// guest address BASE is file offset 0.
struct shared_file {
  shared_file() {
    char tmpl[] = "/tmp/flushkit-ring-XXXXXX";
    const int fd = ::mkstemp(tmpl);
    REQUIRE(fd >= 0);
    path = tmpl;
    REQUIRE(::ftruncate(fd, 1 << 20) == 0);
    void* p = ::mmap(nullptr, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    REQUIRE(p != MAP_FAILED);
    host = static_cast<std::byte*>(p);
    REQUIRE_FALSE(mem.add_region(guest_ram::default_base, host, 1 << 20));
  }
  ~shared_file() {
    ::munmap(host, 1 << 20);
    ::unlink(path.c_str());
  }
  std::string path;
  std::byte* host = nullptr;
  fv::guest_memory mem;
};

} // namespace

TEST_SUITE("virtio/split_ring") {

TEST_CASE("wire constants equal the uapi values") {
  CHECK(fv::desc_f_next == VRING_DESC_F_NEXT);
  CHECK(fv::desc_f_write == VRING_DESC_F_WRITE);
  CHECK(fv::desc_f_indirect == VRING_DESC_F_INDIRECT);
  CHECK(fv::avail_f_no_interrupt == VRING_AVAIL_F_NO_INTERRUPT);
  CHECK(fv::used_f_no_notify == VRING_USED_F_NO_NOTIFY);
  CHECK(fv::feature_indirect_desc == VIRTIO_RING_F_INDIRECT_DESC);
  CHECK(fv::feature_event_idx == VIRTIO_RING_F_EVENT_IDX);
  CHECK(fv::desc_size == sizeof(vring_desc));
  CHECK(fv::used_elem_size == sizeof(vring_used_elem));
  CHECK(fv::desc_align == VRING_DESC_ALIGN_SIZE);
  CHECK(fv::avail_align == VRING_AVAIL_ALIGN_SIZE);
  CHECK(fv::used_align == VRING_USED_ALIGN_SIZE);
  const auto f = fv::ring_features::from_bits((1ull << 29) | (1ull << 28));
  CHECK(f.event_idx);
  CHECK(f.indirect_desc);
  CHECK_FALSE(fv::ring_features::from_bits(1ull << 27).event_idx);
}

TEST_CASE("uapi struct sizes and offsets match the flushkit layout") {
  CHECK(sizeof(vring_desc) == 16);
  CHECK(offsetof(vring_desc, len) == 8);
  CHECK(offsetof(vring_desc, flags) == 12);
  CHECK(offsetof(vring_desc, next) == 14);
  CHECK(offsetof(vring_avail, idx) == 2);
  CHECK(offsetof(vring_avail, ring) == 4);
  CHECK(offsetof(vring_used, idx) == 2);
  CHECK(offsetof(vring_used, ring) == 4);
  CHECK(offsetof(vring_used_elem, len) == 4);
}

TEST_CASE("vring_size and vring_init of the uapi header agree with legacy_layout") {
  CHECK(fv::legacy_ring_bytes(128, 4096) == 5126);
  for (std::uint32_t n : {1u, 2u, 128u, 256u, 4096u, 32768u})
    for (unsigned long align : {4ul, 64ul, 4096ul}) {
      std::string out;
      REQUIRE(run_tool("layout " + std::to_string(n) + " " + std::to_string(align), &out) == 0);
      fv::ring_addresses a;
      REQUIRE_FALSE(fv::legacy_layout(n, 0x10000000, align, a));
      const std::uint64_t ue = a.avail + 4 + 2 * std::uint64_t{n} - 0x10000000;
      const std::uint64_t ae = a.used + 4 + 8 * std::uint64_t{n} - 0x10000000;
      const std::string want = std::to_string(fv::legacy_ring_bytes(n, align)) + " 0 " +
                               std::to_string(a.avail - 0x10000000) + " " + std::to_string(a.used - 0x10000000) + " " +
                               std::to_string(ue) + " " + std::to_string(ae) + "\n";
      CHECK(out == want);
    }
  std::string v128;
  REQUIRE(run_tool("layout 128 4096", &v128) == 0);
  CHECK(v128.rfind("5126 ", 0) == 0);
}

TEST_CASE("a ring written by C code with vring_init is consumed by device_queue and checked back by C code") {
  shared_file f;
  REQUIRE(run_tool("write " + f.path) == 0);
  fv::ring_addresses a;
  REQUIRE_FALSE(fv::legacy_layout(16, guest_ram::default_base, 4096, a));
  fv::device_queue dq(16);
  REQUIRE_FALSE(dq.configure(f.mem, a, {true, false}));
  const fv::pop_result p = dq.pop();
  REQUIRE_FALSE(p.error);
  REQUIRE(p.chain != nullptr);
  CHECK(p.chain->id().head == 3);
  REQUIRE(p.chain->readable().size() == 1);
  REQUIRE(p.chain->writable().size() == 1);
  CHECK(p.chain->readable()[0].addr == guest_ram::default_base + 0x80000);
  CHECK(p.chain->writable()[0].len == 8);
  CHECK(dq.process_all([](const fv::device_chain&) { FAIL("no second chain"); }) == flushkit::status{});
}

TEST_CASE("a ring written by driver_queue and device_queue is checked by C code through vring_init") {
  shared_file f;
  fv::ring_addresses a;
  REQUIRE_FALSE(fv::legacy_layout(16, guest_ram::default_base, 4096, a));
  fv::driver_queue q(16);
  fv::device_queue dq(16);
  REQUIRE_FALSE(q.configure(f.mem, a, {true, false}));
  REQUIRE_FALSE(dq.configure(f.mem, a, {true, false}));
  int token = 0;
  const fv::buffer out[] = {{guest_ram::default_base + 0x80000, 4}};
  const fv::buffer in[] = {{guest_ram::default_base + 0x80040, 12}};
  REQUIRE_FALSE(q.add(out, in, &token));
  const fv::pop_result p = dq.pop();
  REQUIRE(p.chain != nullptr);
  REQUIRE_FALSE(dq.push_used(p.chain->id(), 3));
  CHECK(dq.enable_notifications());
  CHECK(run_tool("check " + f.path) == 0);
  const fv::used_result r = q.get_used();
  CHECK(r.token == &token);
  CHECK(r.len == 3);
}

TEST_CASE("need_event vectors match the spec and vring_need_event") {
  CHECK(fv::need_event(0, 1, 0));
  CHECK_FALSE(fv::need_event(5, 5, 4));
  CHECK(fv::need_event(4, 6, 3));
  CHECK(fv::need_event(65535, 0, 65535));
  // Exhaustive agreement on a window around the wrap.
  for (unsigned e = 65530; e < 65546; ++e)
    for (unsigned nw = 65530; nw < 65546; ++nw)
      for (unsigned o = 65530; o < 65546; ++o) {
        const auto E = static_cast<std::uint16_t>(e), N = static_cast<std::uint16_t>(nw),
                   O = static_cast<std::uint16_t>(o);
        CHECK(fv::need_event(E, N, O) == (vring_need_event(E, N, O) != 0));
      }
}

TEST_CASE("queue sizes other than powers of two from 1 to 32768 are rejected") {
  for (std::uint32_t n = 1; n <= fv::max_queue_size; n *= 2) CHECK_FALSE(fv::validate_queue_size(n));
  for (std::uint32_t n : {0u, 3u, 6u, 100u, 32767u, 65536u, 0xFFFFFFFFu})
    CHECK(fv::validate_queue_size(n) == errc::invalid_request);
  fv::ring_addresses a;
  CHECK(fv::legacy_layout(100, 0, 4096, a) == errc::invalid_request);
  CHECK(fv::legacy_layout(128, 0, 3000, a) == errc::invalid_request);
  CHECK(fv::legacy_layout(128, 8, 4096, a) == errc::invalid_request);
  CHECK(fv::legacy_layout(128, ~0ull - 4095, 4096, a) == errc::invalid_request);
}

TEST_CASE("split_ring field addresses are the uapi struct member addresses") {
  guest_ram ram;
  for (std::uint32_t n : {1u, 2u, 128u, 256u, 4096u})
    for (unsigned long align : {4ul, 4096ul}) {
      fv::ring_addresses a;
      REQUIRE_FALSE(fv::legacy_layout(n, ram.base(), align, a));
      const vring vr = uapi_ring(ram, a);
      CHECK(a.desc == gpa_of(ram, vr.desc));
      fv::split_ring r;
      REQUIRE_FALSE(fv::split_ring::map(ram.mem, a, r));
      CHECK(r.used_event() == reinterpret_cast<std::byte*>(&uapi_used_event(vr)));
      CHECK(r.avail_event() == reinterpret_cast<std::byte*>(&uapi_avail_event(vr)));
      CHECK(r.avail_ring(0) == reinterpret_cast<std::byte*>(&vr.avail->ring[0]));
      CHECK(r.used_id(n - 1) == reinterpret_cast<std::byte*>(&vr.used->ring[n - 1].id));
      CHECK(r.avail_ring(n - 1) == reinterpret_cast<std::byte*>(&vr.avail->ring[n - 1]));
    }
}

TEST_CASE("separate 1.x placement checks alignments overlap and guest memory") {
  guest_ram ram;
  const std::uint64_t b = ram.base();
  fv::split_ring r;
  CHECK_FALSE(fv::split_ring::map(ram.mem, {8, b + 0x1000, b + 0x3002, b + 0x5004}, r));
  CHECK(fv::split_ring::map(ram.mem, {8, b + 0x1008, b + 0x3000, b + 0x5000}, r) == errc::invalid_request);
  CHECK(fv::split_ring::map(ram.mem, {8, b + 0x1000, b + 0x3001, b + 0x5000}, r) == errc::invalid_request);
  CHECK(fv::split_ring::map(ram.mem, {8, b + 0x1000, b + 0x3000, b + 0x5002}, r) == errc::invalid_request);
  CHECK(fv::split_ring::map(ram.mem, {8, b, b + 0x40, b + 0x1000}, r) == errc::invalid_request); // desc overlaps avail
  CHECK(fv::split_ring::map(ram.mem, {8, b, b + 0x1000, b + ram.size() - 8}, r) == errc::invalid_request);
  CHECK(fv::split_ring::map(ram.mem, {8, 0x1000, b + 0x1000, b + 0x2000}, r) == errc::invalid_request);
  CHECK(fv::split_ring::map(ram.mem, {12, b, b + 0x1000, b + 0x2000}, r) == errc::invalid_request);
  CHECK(fv::split_ring::map(ram.mem, {8, ~0ull & ~15ull, b + 0x1000, b + 0x2000}, r) == errc::invalid_request);
}

TEST_CASE("a ring built by driver_queue reads correctly through the uapi structs") {
  guest_ram ram;
  const std::uint32_t n = 8;
  const auto a = flushkit_test::ring_at(ram, n);
  fv::driver_queue q(n);
  REQUIRE_FALSE(q.configure(ram.mem, a, {true, false}));
  const fv::buffer out[] = {{ram.data(0), 4}};
  const fv::buffer in[] = {{ram.data(64), 4}, {ram.data(128), 12}};
  int token = 0;
  REQUIRE_FALSE(q.add(out, in, &token));
  const vring vr = uapi_ring(ram, a);
  CHECK(vr.avail->idx == 1);
  const unsigned head = vr.avail->ring[0];
  const vring_desc& d0 = vr.desc[head];
  CHECK(d0.addr == ram.data(0));
  CHECK(d0.len == 4);
  CHECK(d0.flags == VRING_DESC_F_NEXT);
  const vring_desc& d1 = vr.desc[d0.next];
  CHECK(d1.addr == ram.data(64));
  CHECK(d1.flags == (VRING_DESC_F_NEXT | VRING_DESC_F_WRITE));
  const vring_desc& d2 = vr.desc[d1.next];
  CHECK(d2.addr == ram.data(128));
  CHECK(d2.len == 12);
  CHECK(d2.flags == VRING_DESC_F_WRITE);
  // The device side as the kernel's vhost would write it: used elem, then idx.
  vr.used->ring[0].id = head;
  vr.used->ring[0].len = 7;
  vr.used->idx = 1;
  const fv::used_result r = q.get_used();
  CHECK_FALSE(r.error);
  CHECK(r.token == &token);
  CHECK(r.len == 7);
  CHECK(uapi_used_event(vr) == 1); // EVENT_IDX: used_event = last used index
}

TEST_CASE("a ring written through the uapi structs is consumed by device_queue") {
  guest_ram ram;
  const unsigned n = 16;
  const fv::ring_addresses la = flushkit_test::ring_at(ram, n);
  const vring vr = uapi_ring(ram, la);
  std::memset(ram.host(ram.base()), 0, fv::legacy_ring_bytes(n, 4096));
  // Chain 3 -> 9: 4 readable bytes then 8 writable bytes; avail ring entry 0 = 3.
  vr.desc[3] = vring_desc{ram.data(0), 4, VRING_DESC_F_NEXT, 9};
  vr.desc[9] = vring_desc{ram.data(32), 8, VRING_DESC_F_WRITE, 0};
  vr.avail->ring[0] = 3;
  vr.avail->idx = 1;
  uapi_used_event(vr) = 0;
  fv::device_queue dq(n);
  fv::ring_addresses a{n, gpa_of(ram, vr.desc), gpa_of(ram, vr.avail), gpa_of(ram, vr.used)};
  REQUIRE_FALSE(dq.configure(ram.mem, a, {true, false}));
  const fv::pop_result p = dq.pop();
  REQUIRE_FALSE(p.error);
  REQUIRE(p.chain != nullptr);
  CHECK(p.chain->id().head == 3);
  REQUIRE(p.chain->readable().size() == 1);
  REQUIRE(p.chain->writable().size() == 1);
  CHECK(p.chain->readable()[0].addr == ram.data(0));
  CHECK(p.chain->writable()[0].len == 8);
  CHECK_FALSE(dq.push_used(p.chain->id(), 6));
  CHECK(vr.used->idx == 1);
  CHECK(vr.used->ring[0].id == 3);
  CHECK(vr.used->ring[0].len == 6);
  CHECK(dq.should_notify()); // used_event 0 crossed by 0 -> 1
  CHECK(dq.enable_notifications());
  CHECK(uapi_avail_event(vr) == 1);
}

} // TEST_SUITE
