#include <flushkit/virtio/device_queue.hpp>

#include "support/virtio_guest.hpp"

#include <doctest/doctest.h>
#include <sys/mman.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <ostream>
#include <cstring>
#include <string>
#include <thread>

namespace fv = flushkit::virtio;
using flushkit::errc;
using flushkit::status;
using flushkit_test::guest_ram;
using flushkit_test::raw_guest;

namespace {

constexpr std::uint16_t NEXT = fv::desc_f_next;
constexpr std::uint16_t WRITE = fv::desc_f_write;
constexpr std::uint16_t INDIRECT = fv::desc_f_indirect;

// A guest with an 8-entry (by default) ring and a device queue on it.
struct rig {
  explicit rig(std::uint32_t n = 8, fv::ring_features f = {true, true})
      : a(flushkit_test::ring_at(ram, n)), g(ram, a), dq(n) {
    REQUIRE_FALSE(dq.configure(ram.mem, a, f));
  }
  std::uint64_t req() const { return ram.data(0); }
  std::uint64_t resp() const { return ram.data(64); }
  // A flush-like chain: 4 readable bytes at req(), 4 writable at resp().
  void flush_chain(std::uint16_t head, std::uint16_t second) {
    g.desc(head, req(), 4, NEXT, second);
    g.desc(second, resp(), 4, WRITE);
  }
  // Expects the next pop to break the queue with `why` in the reason.
  void expect_broken(const char* why) {
    const fv::pop_result r = dq.pop();
    CHECK(r.error == errc::device_broken);
    CHECK(r.chain == nullptr);
    REQUIRE(dq.broken());
    CHECK(std::string(dq.broken_reason()).find(why) != std::string::npos);
    // Sticky, no spin: further pops fail at once, even with more published.
    g.set_avail_idx(static_cast<std::uint16_t>(g.avail_idx + 1));
    CHECK(dq.pop().error == errc::device_broken);
    CHECK(dq.process_all([](const fv::device_chain&) { FAIL("no chain from a broken queue"); }) ==
          errc::device_broken);
  }
  const fv::device_chain& expect_chain() {
    const fv::pop_result r = dq.pop();
    REQUIRE_FALSE(r.error);
    REQUIRE(r.chain != nullptr);
    return *r.chain;
  }
  std::byte* table(std::uint64_t off) { return ram.host(ram.data(0x1000 + off)); }
  std::uint64_t table_gpa(std::uint64_t off) { return ram.data(0x1000 + off); }

  guest_ram ram;
  fv::ring_addresses a;
  raw_guest g;
  fv::device_queue dq;
};

} // namespace

TEST_SUITE("virtio/device_queue") {

TEST_CASE("a valid chain pops with private buffers and push_used publishes id and len") {
  rig r;
  r.flush_chain(2, 5);
  r.g.publish(2);
  const fv::device_chain& c = r.expect_chain();
  CHECK(c.id().head == 2);
  CHECK(c.id().generation == r.dq.generation());
  REQUIRE(c.readable().size() == 1);
  REQUIRE(c.writable().size() == 1);
  CHECK(c.readable()[0].addr == r.req());
  CHECK(c.writable()[0].addr == r.resp());
  CHECK(c.readable_bytes() == 4);
  CHECK(c.writable_bytes() == 4);
  CHECK(r.dq.in_flight() == 1);
  const std::array<std::byte, 4> resp{std::byte{1}, std::byte{0}, std::byte{0}, std::byte{0}};
  CHECK(r.dq.write_chain(c.buffers(), resp) == 4);
  const fv::chain_id id = c.id();
  CHECK(r.dq.pop().chain == nullptr); // empty now
  CHECK_FALSE(r.dq.push_used(id, 4));
  CHECK(r.g.used_idx() == 1);
  CHECK(r.g.used_id(0) == 2);
  CHECK(r.g.used_len(0) == 4);
  CHECK(std::memcmp(r.ram.host(r.resp()), resp.data(), 4) == 0);
  CHECK(r.dq.in_flight() == 0);
  CHECK(r.dq.push_used(id, 4) == errc::invalid_request); // not in flight any more
}

TEST_CASE("scenario 38 head index at or beyond the queue size breaks the queue") {
  rig r;
  r.g.publish(8);
  r.expect_broken("head index out of range");
}

TEST_CASE("scenario 39 next index beyond the queue size breaks the queue") {
  rig r;
  r.g.desc(0, r.req(), 4, NEXT, 8);
  r.g.publish(0);
  r.expect_broken("next index out of range");
}

TEST_CASE("scenario 40 self loop and two cycle are detected and never hang") {
  SUBCASE("self loop") {
    rig r;
    r.g.desc(3, r.req(), 4, NEXT, 3);
    r.g.publish(3);
    r.expect_broken("loop");
  }
  SUBCASE("two cycle") {
    rig r;
    r.g.desc(1, r.req(), 4, NEXT, 6);
    r.g.desc(6, r.req(), 4, NEXT, 1);
    r.g.publish(1);
    r.expect_broken("loop");
  }
}

TEST_CASE("a chain of exactly queue size descriptors is legal and one more is a loop") {
  for (std::uint32_t n : {1u, 2u, 8u, 256u}) {
    CAPTURE(n);
    rig r(n);
    for (std::uint32_t i = 0; i < n; ++i)
      r.g.desc(i, r.req(), 1, i + 1 < n ? NEXT : 0, static_cast<std::uint16_t>(i + 1));
    r.g.publish(0);
    CHECK(r.expect_chain().buffers().size() == n);
    rig r2(n);
    for (std::uint32_t i = 0; i < n; ++i) r2.g.desc(i, r2.req(), 1, NEXT, static_cast<std::uint16_t>((i + 1) % n));
    r2.g.publish(0);
    r2.expect_broken("loop");
  }
}

TEST_CASE("scenario 41 a readable descriptor after a writable one breaks the queue") {
  rig r;
  r.g.desc(0, r.resp(), 4, WRITE | NEXT, 1);
  r.g.desc(1, r.req(), 4);
  r.g.publish(0);
  r.expect_broken("readable descriptor after a writable");
}

TEST_CASE("scenario 42 indirect table length rules") {
  for (std::uint32_t len : {0u, 8u, 17u, 16u * 9u, 16u * 65536u - 16u}) {
    CAPTURE(len);
    rig r;
    r.g.desc(0, r.table_gpa(0), len, INDIRECT);
    r.g.publish(0);
    r.expect_broken(len == 0 || len % 16 != 0 ? "multiple of 16" : "larger than the queue size");
  }
}

TEST_CASE("scenario 42 nested indirect and INDIRECT with NEXT and the missing feature are rejected") {
  SUBCASE("nested") {
    rig r;
    raw_guest::desc_at(r.table(0), r.table_gpa(64), 32, INDIRECT);
    r.g.desc(0, r.table_gpa(0), 16, INDIRECT);
    r.g.publish(0);
    r.expect_broken("nested indirect");
  }
  SUBCASE("INDIRECT together with NEXT is rejected, not ignored") {
    rig r;
    raw_guest::desc_at(r.table(0), r.req(), 4);
    r.g.desc(0, r.table_gpa(0), 16, INDIRECT | NEXT, 1);
    r.g.desc(1, r.resp(), 4, WRITE);
    r.g.publish(0);
    r.expect_broken("INDIRECT together with NEXT");
  }
  SUBCASE("feature not negotiated") {
    rig r(8, {true, false});
    raw_guest::desc_at(r.table(0), r.req(), 4);
    r.g.desc(0, r.table_gpa(0), 16, INDIRECT);
    r.g.publish(0);
    r.expect_broken("without the negotiated feature");
  }
  SUBCASE("table outside guest memory") {
    rig r;
    r.g.desc(0, r.ram.base() + r.ram.size() - 16, 32, INDIRECT);
    r.g.publish(0);
    r.expect_broken("indirect table outside guest memory");
  }
  SUBCASE("loop inside the table") {
    rig r;
    raw_guest::desc_at(r.table(0), r.req(), 4, NEXT, 1);
    raw_guest::desc_at(r.table(16), r.req(), 4, NEXT, 0);
    r.g.desc(0, r.table_gpa(0), 32, INDIRECT);
    r.g.publish(0);
    r.expect_broken("loop in indirect table");
  }
  SUBCASE("next beyond the table") {
    rig r;
    raw_guest::desc_at(r.table(0), r.req(), 4, NEXT, 2);
    r.g.desc(0, r.table_gpa(0), 32, INDIRECT);
    r.g.publish(0);
    r.expect_broken("indirect next index out of range");
  }
}

TEST_CASE("a valid indirect table pops its entries and ignores WRITE on the pointer") {
  for (std::uint64_t misalign : {0u, 3u}) {
    CAPTURE(misalign); // an unaligned table address is accepted (read bytewise)
    rig r;
    raw_guest::desc_at(r.table(misalign), r.req(), 4, NEXT, 1);
    raw_guest::desc_at(r.table(misalign + 16), r.resp(), 4, WRITE);
    r.g.desc(0, r.table_gpa(misalign), 32, INDIRECT | WRITE);
    r.g.publish(0);
    const fv::device_chain& c = r.expect_chain();
    REQUIRE(c.buffers().size() == 2);
    CHECK(c.readable()[0].addr == r.req());
    CHECK(c.writable()[0].addr == r.resp());
    CHECK_FALSE(r.dq.push_used(c.id(), 4));
  }
}

TEST_CASE("scenario 43 normal descriptors chained to a trailing indirect descriptor are accepted") {
  rig r;
  raw_guest::desc_at(r.table(0), r.resp(), 4, WRITE);
  r.g.desc(4, r.req(), 4, NEXT, 6);
  r.g.desc(6, r.table_gpa(0), 16, INDIRECT);
  r.g.publish(4);
  const fv::device_chain& c = r.expect_chain();
  REQUIRE(c.buffers().size() == 2);
  CHECK(c.readable()[0].addr == r.req());
  CHECK(c.writable()[0].addr == r.resp());
  // The ring slots 4 and 6 are owned while in flight.
  r.g.desc(1, r.req(), 4, NEXT, 6);
  r.g.publish(1);
  r.expect_broken("belongs to another chain in flight");
}

TEST_CASE("direct plus indirect descriptors longer than the queue size are rejected") {
  rig r(4);
  for (std::uint16_t i = 0; i < 3; ++i)
    raw_guest::desc_at(r.table(16u * i), r.req(), 4, NEXT, static_cast<std::uint16_t>(i + 1));
  raw_guest::desc_at(r.table(48), r.req(), 4);
  r.g.desc(0, r.req(), 4, NEXT, 1);
  r.g.desc(1, r.table_gpa(0), 64, INDIRECT); // 1 direct + 4 table entries = 5 > 4
  r.g.publish(0);
  r.expect_broken("chain longer than the queue size");
}

TEST_CASE("scenario 44 zero length descriptors break the queue and a short response is a short len") {
  SUBCASE("zero-length request") {
    rig r;
    r.g.desc(0, r.req(), 0, NEXT, 1);
    r.g.desc(1, r.resp(), 4, WRITE);
    r.g.publish(0);
    r.expect_broken("zero-length");
  }
  SUBCASE("zero-length entry in an indirect table") {
    rig r;
    raw_guest::desc_at(r.table(0), r.req(), 0);
    r.g.desc(0, r.table_gpa(0), 16, INDIRECT);
    r.g.publish(0);
    r.expect_broken("zero-length");
  }
  SUBCASE("a 2-byte response buffer gets 2 bytes and used len 2") {
    rig r;
    r.g.desc(0, r.req(), 4, NEXT, 1);
    r.g.desc(1, r.resp(), 2, WRITE);
    r.g.publish(0);
    const fv::device_chain& c = r.expect_chain();
    const std::array<std::byte, 4> resp{std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}};
    const std::size_t n = r.dq.write_chain(c.buffers(), resp);
    CHECK(n == 2);
    CHECK(r.dq.push_used(c.id(), 4) == errc::invalid_request); // more than the writable bytes
    CHECK_FALSE(r.dq.push_used(c.id(), static_cast<std::uint32_t>(n)));
    CHECK(r.g.used_len(0) == 2);
    CHECK(r.ram.host(r.resp())[2] == std::byte{0}); // nothing past the buffer
  }
}

TEST_CASE("scenario 45 avail idx more than the queue size ahead or backwards breaks the queue once") {
  SUBCASE("ahead") {
    rig r;
    r.g.set_avail_idx(9);
    r.expect_broken("more than the queue size ahead");
  }
  SUBCASE("backwards") {
    rig r;
    r.flush_chain(0, 1);
    r.g.publish(0);
    (void)r.expect_chain();
    r.g.set_avail_idx(0); // guest decrements avail.idx: 0 - 1 = 65535 pending
    r.expect_broken("more than the queue size ahead");
  }
  SUBCASE("exactly the queue size ahead is legal") {
    rig r(4);
    for (std::uint16_t i = 0; i < 4; ++i) {
      r.g.desc(i, r.req(), 4);
      r.g.publish(i);
    }
    int seen = 0;
    CHECK_FALSE(r.dq.process_all([&](const fv::device_chain&) { ++seen; }));
    CHECK(seen == 4);
  }
}

TEST_CASE("scenario 47 a chain the device model rejects can make the queue need a reset") {
  rig r;
  r.g.desc(0, r.req(), 4); // head-only: no in buffer
  r.g.publish(0);
  const fv::device_chain& c = r.expect_chain(); // legal at the ring level
  CHECK(c.writable().empty());
  const fv::chain_id id = c.id();
  r.dq.mark_broken("request without an in buffer");
  CHECK(r.dq.push_used(id, 0) == errc::device_broken);
  CHECK(r.g.used_idx() == 0);
  r.flush_chain(1, 2);
  r.g.publish(1);
  CHECK(r.dq.pop().error == errc::device_broken);
  CHECK(std::string(r.dq.broken_reason()) == "request without an in buffer");
}

TEST_CASE("scenario 49 chains behind one coalesced notification are all processed") {
  rig r;
  r.flush_chain(0, 1);
  r.flush_chain(2, 3);
  r.flush_chain(4, 5);
  r.g.publish(0);
  r.g.publish(2);
  r.g.publish(4);
  std::uint16_t heads[3] = {};
  int seen = 0;
  CHECK_FALSE(r.dq.process_all([&](const fv::device_chain& c) {
    heads[seen++] = c.id().head;
    CHECK_FALSE(r.dq.push_used(c.id(), 4));
  }));
  CHECK(seen == 3);
  CHECK(heads[0] == 0);
  CHECK(heads[1] == 2);
  CHECK(heads[2] == 4);
  CHECK(r.g.used_idx() == 3);
  // EVENT_IDX: the device asks to be notified at the next avail index.
  CHECK(fv::detail::load_le<std::uint16_t>(r.g.ring.avail_event()) == 3);
}

TEST_CASE("scenario 50 a spurious notification with an empty ring is not an error") {
  rig r;
  int seen = 0;
  CHECK_FALSE(r.dq.process_all([&](const fv::device_chain&) { ++seen; }));
  CHECK_FALSE(r.dq.process_all([&](const fv::device_chain&) { ++seen; }));
  CHECK(seen == 0);
  CHECK_FALSE(r.dq.broken());
  CHECK_FALSE(r.dq.should_notify());
}

TEST_CASE("scenario 53 the device notifies exactly when used_event is crossed including the wrap") {
  rig r(4);
  r.flush_chain(0, 1);
  auto cycle = [&] { // one request through the ring
    r.g.publish(0);
    const fv::device_chain& c = r.expect_chain();
    REQUIRE_FALSE(r.dq.push_used(c.id(), 4));
  };
  fv::detail::store_le<std::uint16_t>(r.g.ring.used_event(), 2);
  cycle(); // used idx 1
  CHECK_FALSE(r.dq.should_notify());
  cycle(); // 2
  CHECK_FALSE(r.dq.should_notify());
  cycle(); // 3: used_event 2 crossed
  CHECK(r.dq.should_notify());
  fv::detail::store_le<std::uint16_t>(r.g.ring.used_event(), 65535);
  while (r.g.used_idx() != 65535) {
    cycle();
    REQUIRE_FALSE(r.dq.should_notify());
  }
  cycle(); // 65535 -> 0
  CHECK(r.g.used_idx() == 0);
  CHECK(r.dq.should_notify());
  // Two pushes before one decision that straddle used_event still notify once.
  fv::detail::store_le<std::uint16_t>(r.g.ring.used_event(), 1);
  cycle(); // 0 -> 1
  CHECK_FALSE(r.dq.should_notify());
  cycle(); // 1 -> 2
  cycle(); // 2 -> 3
  CHECK(r.g.used_idx() == 3);
  CHECK(r.dq.should_notify());
  CHECK_FALSE(r.dq.should_notify()); // nothing new
}

TEST_CASE("without EVENT_IDX the device follows avail flags and sets used flags") {
  rig r(4, {false, false});
  r.flush_chain(0, 1);
  r.g.publish(0);
  CHECK_FALSE(r.dq.push_used(r.expect_chain().id(), 4));
  CHECK(r.dq.should_notify());
  fv::detail::store_le<std::uint16_t>(r.g.ring.avail_flags(), fv::avail_f_no_interrupt);
  r.g.publish(0);
  CHECK_FALSE(r.dq.push_used(r.expect_chain().id(), 4));
  CHECK_FALSE(r.dq.should_notify());
  r.dq.disable_notifications();
  CHECK(fv::detail::load_le<std::uint16_t>(r.g.ring.used_flags()) == fv::used_f_no_notify);
  CHECK(r.dq.enable_notifications());
  CHECK(fv::detail::load_le<std::uint16_t>(r.g.ring.used_flags()) == 0);
  r.g.publish(0);
  CHECK_FALSE(r.dq.enable_notifications()); // a chain arrived: pop again
}

TEST_CASE("hostile 1 the same head twice in flight or a head inside another chain breaks the queue") {
  SUBCASE("same head") {
    rig r;
    r.flush_chain(0, 1);
    r.g.publish(0);
    (void)r.expect_chain();
    r.g.publish(0);
    r.expect_broken("head published again while in flight");
  }
  SUBCASE("middle of another chain") {
    rig r;
    r.flush_chain(0, 1);
    r.g.publish(0);
    (void)r.expect_chain();
    r.g.publish(1);
    r.expect_broken("belongs to another chain in flight");
  }
  SUBCASE("after push_used the same descriptors are free again") {
    rig r;
    r.flush_chain(0, 1);
    for (int i = 0; i < 20; ++i) {
      r.g.publish(0);
      REQUIRE_FALSE(r.dq.push_used(r.expect_chain().id(), 4));
    }
    CHECK(r.g.used_idx() == 20);
  }
}

TEST_CASE("hostile 4 avail idx wraps from 65535 to 0") {
  rig r(2);
  r.g.desc(0, r.req(), 4);
  for (unsigned i = 0; i < 65538; ++i) {
    r.g.publish(0);
    REQUIRE_FALSE(r.dq.push_used(r.expect_chain().id(), 0));
  }
  CHECK(r.g.avail_idx == 2);
  CHECK(r.g.used_idx() == 2);
  CHECK_FALSE(r.dq.broken());
}

TEST_CASE("hostile 5 more chains in flight than the queue size breaks the queue") {
  rig r(4);
  for (std::uint16_t i = 0; i < 4; ++i) {
    r.g.desc(i, r.req(), 4);
    r.g.publish(i);
  }
  for (int i = 0; i < 4; ++i) (void)r.expect_chain();
  CHECK(r.dq.in_flight() == 4);
  r.g.publish(2); // a fifth while all four are in flight
  r.expect_broken("more chains in flight than the queue size");
}

TEST_CASE("hostile 6 extra trailing descriptors are legal at the ring level") {
  rig r;
  r.g.desc(0, r.req(), 4, NEXT, 1);
  r.g.desc(1, r.resp(), 4, WRITE | NEXT, 2);
  r.g.desc(2, r.resp() + 8, 8, WRITE);
  r.g.publish(0);
  const fv::device_chain& c = r.expect_chain();
  CHECK(c.writable().size() == 2);
  CHECK(c.writable_bytes() == 12);
}

TEST_CASE("hostile 7 unknown flag bits break the queue") {
  for (std::uint16_t bad : {std::uint16_t{8}, std::uint16_t{0x8000}}) {
    rig r;
    r.g.desc(0, r.req(), 4, bad);
    r.g.publish(0);
    r.expect_broken("unknown descriptor flag bits");
    rig r2;
    raw_guest::desc_at(r2.table(0), r2.req(), 4, bad);
    r2.g.desc(0, r2.table_gpa(0), 16, INDIRECT);
    r2.g.publish(0);
    r2.expect_broken("unknown descriptor flag bits");
  }
}

TEST_CASE("hostile 8 addresses overflowing or outside guest memory break the queue") {
  SUBCASE("addr + len wraps") {
    rig r;
    r.g.desc(0, ~0ull - 1, 4);
    r.g.publish(0);
    r.expect_broken("outside guest memory");
  }
  SUBCASE("past the end") {
    rig r;
    r.g.desc(0, r.ram.base() + r.ram.size() - 2, 4);
    r.g.publish(0);
    r.expect_broken("outside guest memory");
  }
  SUBCASE("below guest memory") {
    rig r;
    r.g.desc(0, 0, 4);
    r.g.publish(0);
    r.expect_broken("outside guest memory");
  }
  SUBCASE("straddling two adjacent regions") {
    rig r;
    void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(p != MAP_FAILED);
    const std::uint64_t next = r.ram.base() + r.ram.size();
    REQUIRE_FALSE(r.ram.mem.add_region(next, p, 4096));
    r.g.desc(0, next - 2, 4);
    r.g.desc(1, next + 8, 4);
    r.g.publish(1); // entirely in the second region: fine
    CHECK_FALSE(r.dq.push_used(r.expect_chain().id(), 0));
    r.g.publish(0);
    r.expect_broken("outside guest memory");
    ::munmap(p, 4096);
  }
  SUBCASE("a writable buffer inside the ring") {
    rig r;
    r.g.desc(0, r.req(), 4, NEXT, 1);
    r.g.desc(1, r.a.used + 4, 8, WRITE);
    r.g.publish(0);
    r.expect_broken("writable buffer overlaps the ring");
  }
  SUBCASE("a readable buffer inside the ring is harmless and accepted") {
    rig r;
    r.g.desc(0, r.a.desc, 16);
    r.g.publish(0);
    CHECK(r.expect_chain().readable().size() == 1);
  }
}

TEST_CASE("hostile 9 a chain longer than 2^32 bytes breaks the queue") {
  // A 5 GiB guest region reserved (never touched) so lengths near 2^32 are in bounds.
  const std::uint64_t big = 5ull << 30, gpa = 1ull << 32;
  void* p = ::mmap(nullptr, big, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  REQUIRE(p != MAP_FAILED);
  for (std::uint32_t tail : {1u, 2u}) {
    CAPTURE(tail);
    rig r;
    REQUIRE_FALSE(r.ram.mem.add_region(gpa, p, big));
    r.g.desc(0, gpa, 0xFFFFFFFFu, NEXT, 1);
    r.g.desc(1, gpa, tail);
    r.g.publish(0);
    if (tail == 1) {
      CHECK(r.expect_chain().readable_bytes() == (1ull << 32)); // exactly 2^32 is the limit
    } else {
      r.expect_broken("longer than 2^32 bytes");
    }
  }
  ::munmap(p, big);
}

TEST_CASE("hostile 11 descriptors are read once the guest rewriting them after pop changes nothing") {
  rig r;
  r.flush_chain(0, 1);
  r.g.publish(0);
  const fv::device_chain& c = r.expect_chain();
  const fv::chain_id id = c.id();
  // The guest rewrites both descriptors: huge length, bogus address, new links.
  r.g.desc(0, ~0ull - 8, 0xFFFFFFFF, NEXT, 7);
  r.g.desc(1, 0, 0, NEXT | WRITE, 0);
  CHECK(c.readable()[0].addr == r.req());
  CHECK(c.readable()[0].len == 4);
  CHECK(c.writable()[0].len == 4);
  CHECK(r.dq.push_used(id, 5) == errc::invalid_request); // checked against the private copy
  CHECK_FALSE(r.dq.push_used(id, 4));
  // Ownership was released through the private links (0 -> 1), not the rewritten next.
  r.flush_chain(1, 0);
  r.g.publish(1);
  CHECK(r.expect_chain().id().head == 1);
}

TEST_CASE("hostile 11 a guest flipping a descriptor concurrently gives a valid chain or a broken queue") {
  rig r;
  r.flush_chain(0, 1);
  std::atomic<bool> stop{false};
  std::thread flipper([&] {
    for (std::uint32_t i = 0; !stop.load(std::memory_order_relaxed); ++i) {
      const bool bad = (i & 1) != 0;
      r.g.desc(1, bad ? ~0ull - 2 : r.resp(), bad ? 0u : 4u, bad ? std::uint16_t{NEXT | WRITE} : WRITE,
               static_cast<std::uint16_t>(i));
    }
  });
  int valid = 0, broken = 0;
  for (int i = 0; i < 3000; ++i) {
    r.g.publish(0);
    const fv::pop_result p = r.dq.pop();
    if (p.error) {
      ++broken;
      REQUIRE(p.error == errc::device_broken);
      r.dq.reset(); // the guest restarts its ring (atomically: the flipper still runs)
      r.g.set_avail_idx(0);
      fv::detail::store_le<std::uint16_t>(r.g.ring.used_idx(), 0);
      REQUIRE_FALSE(r.dq.configure(r.ram.mem, r.a, {true, true}));
      continue;
    }
    REQUIRE(p.chain != nullptr);
    for (const fv::chain_buffer& b : p.chain->buffers()) {
      REQUIRE(b.len > 0);
      REQUIRE(r.ram.mem.translate(b.addr, b.len) != nullptr);
    }
    ++valid;
    REQUIRE_FALSE(r.dq.push_used(p.chain->id(), static_cast<std::uint32_t>(p.chain->writable_bytes())));
  }
  stop = true;
  flipper.join();
  CHECK(valid + broken == 3000);
}

TEST_CASE("hostile 12 lifecycle sizes misaligned rings reconfiguration and reset") {
  guest_ram ram;
  fv::device_queue dq(8);
  CHECK(dq.pop().error == errc::invalid_request); // not configured: no ring access
  CHECK(dq.push_used({0, 0}, 0) == errc::invalid_request);
  CHECK_FALSE(dq.should_notify());
  const std::uint64_t b = ram.base();
  for (std::uint32_t n : {0u, 3u, 16u, 65536u})
    CHECK(dq.configure(ram.mem, {n, b, b + 0x1000, b + 0x2000}, {}) == errc::invalid_request);
  CHECK(dq.configure(ram.mem, {8, b + 4, b + 0x1000, b + 0x2000}, {}) == errc::invalid_request);
  CHECK(dq.configure(ram.mem, {8, b, b + 0x1001, b + 0x2000}, {}) == errc::invalid_request);
  CHECK(dq.configure(ram.mem, {8, b, b + 0x1000, b + 0x2002}, {}) == errc::invalid_request);
  CHECK(dq.configure(ram.mem, {8, 0x10, 0x1000, 0x2000}, {}) == errc::invalid_request);
  fv::device_queue bad(100);
  CHECK(bad.configure(ram.mem, {8, b, b + 0x1000, b + 0x2000}, {}) == errc::invalid_request);
  const fv::ring_addresses a = flushkit_test::ring_at(ram, 8);
  REQUIRE_FALSE(dq.configure(ram.mem, a, {}));
  // The queue cannot be moved while active (the guest rewriting its registers).
  CHECK(dq.configure(ram.mem, {8, b + 0x8000, b + 0x9000, b + 0xa000}, {}) == errc::invalid_request);
}

TEST_CASE("reset makes chains of the previous generation stale and clears broken") {
  rig r;
  r.flush_chain(0, 1);
  r.g.publish(0);
  const fv::chain_id old = r.expect_chain().id();
  r.dq.mark_broken("test");
  r.dq.reset();
  CHECK_FALSE(r.dq.broken());
  CHECK_FALSE(r.dq.configured());
  CHECK(r.dq.push_used(old, 4) == errc::cancelled);
  r.g = raw_guest(r.ram, r.a); // the driver re-initialises its ring
  r.flush_chain(0, 1);
  REQUIRE_FALSE(r.dq.configure(r.ram.mem, r.a, {true, true}));
  CHECK(r.dq.push_used(old, 4) == errc::cancelled); // a late completion after re-init
  CHECK(r.g.used_idx() == 0);
  r.g.publish(0);
  const fv::chain_id now = r.expect_chain().id();
  CHECK(now.generation == old.generation + 1);
  CHECK_FALSE(r.dq.push_used(now, 4));
  CHECK(r.g.used_idx() == 1);
}

TEST_CASE("read_chain copies the readable bytes in order across buffers") {
  rig r;
  std::memcpy(r.ram.host(r.req()), "abcd", 4);
  std::memcpy(r.ram.host(r.req() + 32), "efgh", 4);
  r.g.desc(0, r.req(), 4, NEXT, 1);
  r.g.desc(1, r.req() + 32, 3, NEXT, 2);
  r.g.desc(2, r.resp(), 4, WRITE);
  r.g.publish(0);
  const fv::device_chain& c = r.expect_chain();
  std::array<std::byte, 16> buf{};
  CHECK(r.dq.read_chain(c.buffers(), buf) == 7);
  CHECK(std::memcmp(buf.data(), "abcdefg", 7) == 0);
  std::array<std::byte, 2> small{};
  CHECK(r.dq.read_chain(c.buffers(), small) == 2);
}

} // TEST_SUITE
