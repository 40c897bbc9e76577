#include <flushkit/pmem/cacheline_provider.hpp>

#include <doctest/doctest.h>

#include <ostream> // doctest prints a status through operator<<

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace fk = flushkit;
namespace pm = flushkit::pmem;

namespace {

static_assert(pm::line_writer<pm::cpu_line_writer>);
static_assert(fk::dirty_tracking<pm::cacheline_provider<>> &&
              fk::declares_durability<pm::cacheline_provider<>> &&
              fk::reports_usability<pm::cacheline_provider<>>);

// What a recording_writer was asked to do, and on which thread.
struct writer_event {
  bool fence = false;
  std::uintptr_t first = 0;
  std::size_t len = 0;
  std::thread::id thread;
  bool operator==(const writer_event&) const = default;
};

struct writer_log {
  std::mutex mu;
  std::vector<writer_event> events;
  std::atomic<bool> hold{false};    // write_back waits while set
  std::atomic<bool> entered{false}; // a write_back started
  void add(writer_event e) noexcept {
    std::lock_guard lk(mu);
    events.push_back(e);
  }
};

// A line writer that records its calls instead of touching the CPU cache.
struct recording_writer {
  writer_log* log;
  void write_back(const void* p, std::size_t len) noexcept {
    log->add({false, reinterpret_cast<std::uintptr_t>(p), len, std::this_thread::get_id()});
    log->entered = true;
    while (log->hold) std::this_thread::yield();
  }
  void fence() noexcept { log->add({true, 0, 0, std::this_thread::get_id()}); }
  fk::status usable() const noexcept { return {}; }
  fk::durability_scope durability() const noexcept { return fk::durability_scope::cpu_cache; }
};

writer_event wrote(const void* p, std::size_t len, std::thread::id t = std::this_thread::get_id()) {
  return {false, reinterpret_cast<std::uintptr_t>(p), len, t};
}
writer_event fenced(std::thread::id t = std::this_thread::get_id()) { return {true, 0, 0, t}; }

// Tests of the real write-back need a CPU that has a write-back instruction (any x86-64).
const bool no_write_back = static_cast<bool>(pm::cpu_line_writer().usable());

} // namespace

TEST_SUITE("pmem/cacheline_provider") {

TEST_CASE("every instruction the CPU supports runs; detection picks the best one") {
  alignas(64) static std::byte buf[256];
  for (auto insn : {pm::flush_instruction::clwb, pm::flush_instruction::clflushopt,
                    pm::flush_instruction::clflush}) {
    if (!pm::detail::cpu_supports(insn)) continue;
    pm::cacheline_provider<> p(insn);
    CHECK_FALSE(p.usable());
    CHECK(p.durability() == fk::durability_scope::cpu_cache);
    CHECK(p.instruction() == insn);
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
  if (pm::detail::cpu_supports(pm::flush_instruction::clwb))
    CHECK(best == pm::flush_instruction::clwb);
#else
  CHECK(best == pm::flush_instruction::fence_only);
#endif
}

TEST_CASE(
    "without a write-back instruction the provider is not usable and flush writes nothing back") {
  alignas(64) static std::byte buf[256];
  const fk::status not_supported = fk::make_error_code(fk::errc::not_supported);
  CHECK(pm::cpu_line_writer(pm::flush_instruction::fence_only).usable() == not_supported);
  pm::cacheline_provider<> p(pm::flush_instruction::fence_only);
  CHECK(p.usable() == not_supported);
  CHECK(p.durability() == fk::durability_scope::none);
  p.note_dirty(buf, 100);
  CHECK(p.dirty_ranges() == 0);
  CHECK(p.flush() == not_supported);
  CHECK(p.lines_written_back() == 0);
  CHECK(p.flushes() == 0);
}

TEST_CASE("only dirty lines are written back, once" * doctest::skip(no_write_back)) {
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

TEST_CASE("a full range set writes the new range back at once and never widens a range") {
  alignas(64) static std::byte buf[64 * 64];
  writer_log log;
  pm::cacheline_provider<2, recording_writer> p(recording_writer{&log});
  p.note_dirty(buf + 64 * 0, 1);
  p.note_dirty(buf + 64 * 20, 1);
  p.note_dirty(buf + 64 * 3, 1); // touches neither: written back and fenced now
  CHECK(p.dirty_ranges() == 2);
  CHECK(p.overflow_write_backs() == 1);
  CHECK(log.events == std::vector{wrote(buf + 64 * 3, 64), fenced()});
  p.note_dirty(buf + 64 * 1, 128); // lines 1..2 touch line 0: merges although the set is full
  CHECK(p.overflow_write_backs() == 1);
  CHECK_FALSE(p.flush());
  CHECK(p.lines_written_back() ==
        1 + 3 + 1); // line 3, then lines 0..2 and line 20: never line 4..19
  CHECK(p.dirty_ranges() == 0);
}

TEST_CASE("a full-set write-back is written back and fenced on the noting thread") {
  alignas(64) static std::byte buf[64 * 64];
  writer_log log;
  pm::cacheline_provider<1, recording_writer> p(recording_writer{&log});
  p.note_dirty(buf, 1);
  std::thread::id noter;
  std::thread t([&] {
    noter = std::this_thread::get_id();
    p.note_dirty(buf + 64 * 5 + 3, 100); // lines 5..6
  });
  t.join();
  CHECK_FALSE(p.flush());
  CHECK(log.events ==
        std::vector{wrote(buf + 64 * 5, 128, noter), fenced(noter), wrote(buf, 64), fenced()});
}

TEST_CASE("ranges in two mappings with an unmapped gap between them are never widened across it" *
          doctest::skip(no_write_back)) {
  const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  void* map = mmap(nullptr, 3 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(map != MAP_FAILED);
  auto* const first = static_cast<std::byte*>(map);
  std::byte* const second = first + 2 * page;
  REQUIRE(munmap(first + page, page) == 0); // the gap: CLWB there would be SIGSEGV
  pm::cacheline_provider<4> p;
  REQUIRE_FALSE(p.usable());
  constexpr std::size_t notes = 12;
  for (std::size_t i = 0; i < notes; ++i) {
    std::byte* const at =
        (i % 2 == 0 ? first : second) + 64 * 2 * (i / 2); // every other line of each mapping
    *at = std::byte{1};
    p.note_dirty(at, 1);
  }
  CHECK(p.dirty_ranges() == 4);
  CHECK(p.overflow_write_backs() == notes - 4);
  CHECK_FALSE(p.flush());
  CHECK(p.lines_written_back() == notes); // exactly the noted lines
  munmap(first, page);
  munmap(second, page);
}

TEST_CASE("a flush writes back outside the range lock and waits for an earlier flush still writing "
          "back") {
  alignas(64) static std::byte buf[64 * 64];
  writer_log log;
  pm::cacheline_provider<4, recording_writer> p(recording_writer{&log});
  p.note_dirty(buf, 1);
  log.hold = true;
  fk::status first_st, second_st;
  std::thread first([&] { first_st = p.flush(); });
  while (!log.entered) std::this_thread::yield();
  p.note_dirty(buf + 64 * 10, 1); // the range lock is free while the first flush writes back
  CHECK(p.dirty_ranges() == 1);
  std::atomic<bool> second_done{false};
  std::thread second([&] {
    second_st = p.flush();
    second_done = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK_FALSE(second_done.load()); // line 0, noted before it, is still being written back
  log.hold = false;
  first.join();
  second.join();
  CHECK_FALSE(first_st);
  CHECK_FALSE(second_st);
  CHECK(p.lines_written_back() == 2);
  CHECK(p.flushes() == 2);
}

TEST_CASE("concurrent note_dirty and flush write back every noted line exactly once" *
          doctest::skip(no_write_back)) {
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
    CHECK(p.lines_written_back() == 256); // no two noted lines touch, so none merges or widens
  }
}

} // TEST_SUITE("pmem/cacheline_provider")
