#include <flushkit/pmem/cacheline_provider.hpp>

#include <doctest/doctest.h>

#include <ostream> // doctest prints a status through operator<<

#include <cstddef>
#include <thread>
#include <vector>

namespace pm = flushkit::pmem;

TEST_SUITE("pmem/cacheline_provider") {

TEST_CASE("every instruction the CPU supports runs; detection picks the best one") {
  alignas(64) static std::byte buf[256];
  for (auto insn : {pm::flush_instruction::clwb, pm::flush_instruction::clflushopt, pm::flush_instruction::clflush,
                    pm::flush_instruction::fence_only}) {
    if (!pm::detail::cpu_supports(insn)) continue;
    pm::cacheline_provider<> p(insn);
    buf[70] = std::byte{1};
    p.note_dirty(buf + 70, 1);
    CHECK_FALSE(p.flush());
    CHECK(p.lines_written_back() == 1);
    CHECK(buf[70] == std::byte{1}); // write-back never changes the data
  }
  const pm::flush_instruction best = pm::cacheline_provider<>().instruction();
  CHECK(pm::detail::cpu_supports(best));
#if defined(__x86_64__)
  CHECK(best != pm::flush_instruction::fence_only);
  if (pm::detail::cpu_supports(pm::flush_instruction::clwb)) CHECK(best == pm::flush_instruction::clwb);
#endif
}

TEST_CASE("only dirty lines are written back, once") {
  alignas(64) static std::byte buf[64 * 64];
  pm::cacheline_provider<> p;
  p.note_dirty(buf + 10, 1);        // line 0
  p.note_dirty(buf + 63, 2);        // lines 0..1
  p.note_dirty(buf + 64 * 10, 128); // lines 10..11
  CHECK(p.dirty_ranges() == 2);
  CHECK_FALSE(p.flush());
  CHECK(p.lines_written_back() == 4);
  CHECK_FALSE(p.flush());
  CHECK(p.lines_written_back() == 4);
  CHECK(p.flushes() == 2);
  p.note_dirty(buf, 0);
  CHECK(p.dirty_ranges() == 0);
}

TEST_CASE("a full range set widens into the nearest range and stays bounded") {
  alignas(64) static std::byte buf[64 * 64];
  pm::cacheline_provider<2> p;
  p.note_dirty(buf + 64 * 0, 1);
  p.note_dirty(buf + 64 * 20, 1);
  p.note_dirty(buf + 64 * 3, 1); // nearest is line 0: range 0..3
  CHECK(p.dirty_ranges() == 2);
  CHECK_FALSE(p.flush());
  CHECK(p.lines_written_back() == 5); // lines 0..3 and 20
}

TEST_CASE("concurrent note_dirty and flush lose no line") {
  alignas(64) static std::byte buf[64 * 512];
  for (int round = 0; round < 20; ++round) {
    pm::cacheline_provider<4> p;
    std::thread writer([&] {
      for (std::size_t i = 0; i < 512; i += 2) p.note_dirty(buf + 64 * i, 1);
    });
    for (int i = 0; i < 50; ++i) static_cast<void>(p.flush());
    writer.join();
    static_cast<void>(p.flush());
    CHECK(p.dirty_ranges() == 0);
    CHECK(p.lines_written_back() >= 256); // every noted line was written back at least once
  }
}

} // TEST_SUITE
