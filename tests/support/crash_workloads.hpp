// tests/support/crash_workloads.hpp - small crash-checker workloads and shared checks.
//
// Used by tests/testing/crash_checker*.cpp: the op alphabet of the exhaustive
// runs, the boundaries a workload must visit, and the "a device that
// acknowledges flushes without flushing is caught and replays" sequence.
#pragma once

#include <flushkit/core/request.hpp>
#include <flushkit/testing/crash_checker.hpp>

#include <doctest/doctest.h>

#include <array>
#include <cstddef>
#include <ostream> // MESSAGE prints a std::string through operator<<
#include <string>
#include <utility>
#include <vector>

namespace flushkit::test {

/// The op alphabet of the exhaustive runs: overlapping writes with every flag
/// combination, one crossing a 4 KiB page, and an empty flush.
inline const std::array<testing::crash_op, 5> crash_alphabet{
    testing::crash_op::write(0, 100),
    testing::crash_op::write(40, 100, req_flags::fua),
    testing::crash_op::write(4000, 200, req_flags::preflush),
    testing::crash_op::write(60, 8, req_flags::preflush | req_flags::fua),
    testing::crash_op::flush(),
};

/// Boundaries the checker must visit for workload `w` on a pmem_device whose
/// every region flush is one flush issued and completed in the checker's
/// volatile_cache (a synchronous provider over the cache, or the virtio-pmem
/// guest whose host flushes the cache): before submit + completion per op, a
/// noted write per data write, an issue/complete pair per provider flush
/// (PREFLUSH, FUA), one at the end, and the removal flush's pair.
inline std::size_t planned_boundaries(const std::vector<testing::crash_op>& w) {
  std::size_t n = 1 + 2;
  for (const testing::crash_op& op : w) {
    n += 2;
    if (has(op.flags, req_flags::preflush)) n += 2;
    if (op.kind == req_op::write && op.length != 0) n += has(op.flags, req_flags::fua) ? 3U : 1U;
  }
  return n;
}

/// Every workload of length 1..3 over `crash_alphabet`, and every one of
/// length 4 whose index is a multiple of `stride4` (1: all 625).
inline std::vector<std::vector<testing::crash_op>> small_workloads(std::size_t stride4) {
  constexpr std::size_t letters = crash_alphabet.size();
  std::vector<std::vector<testing::crash_op>> out;
  for (std::size_t len = 1; len <= 4; ++len) {
    std::size_t total = 1;
    for (std::size_t i = 0; i < len; ++i) total *= letters;
    for (std::size_t code = 0; code < total; code += (len == 4 ? stride4 : 1)) {
      std::vector<testing::crash_op> w;
      for (std::size_t i = 0, c = code; i < len; ++i, c /= letters)
        w.push_back(crash_alphabet[c % letters]);
      out.push_back(w);
    }
  }
  return out;
}

/// What `run_small` found and what it planned.
struct exhaustive_result {
  testing::crash_report report;
  std::size_t planned_workloads = 0;
  std::size_t planned_points = 0;
};

/// Runs `checker` exhaustively over `small_workloads(stride4)`.
template <class Checker> exhaustive_result run_small(Checker& checker, std::size_t stride4) {
  exhaustive_result r;
  for (const auto& w : small_workloads(stride4)) {
    ++r.planned_workloads;
    r.planned_points += planned_boundaries(w);
    r.report += checker.run_exhaustive(w);
  }
  return r;
}

/// Prints the example violations of `r` as doctest messages.
inline void print_examples(const testing::crash_report& r) {
  for (const testing::crash_violation& v : r.examples) MESSAGE(v.to_string());
}

/// A random violation and its replay from the violation's seed.
struct replayed_violation {
  testing::crash_violation found;
  testing::crash_report replay;
};

/// Checks that `random` (a `checker.run_random` report of a device that
/// acknowledges flushes without flushing) found a lost durable write, and that
/// replaying its seed finds it again at the same crash point.
template <class Checker>
replayed_violation check_lie_replays(Checker& checker, const testing::crash_report& random) {
  CHECK(random.violations > 0);
  REQUIRE_FALSE(random.examples.empty());
  const testing::crash_violation& v = random.examples.front();
  CHECK(v.kind == testing::violation_kind::lost_durable_write);
  testing::crash_report replay = checker.run_random_trial(v.seed);
  REQUIRE(replay.violations == 1);
  CHECK(replay.examples.front().crash_point == v.crash_point);
  return {v, std::move(replay)};
}

/// Checks that a single FUA write on a device that acknowledges flushes
/// without flushing is caught at its completion with drop_all, and that
/// `check_at` replays that crash state.
template <class Checker> void check_lie_caught_on_single_fua(Checker& checker) {
  const std::vector<testing::crash_op> one{testing::crash_op::write(0, 16, req_flags::fua)};
  const testing::crash_report single = checker.run_exhaustive(one);
  REQUIRE(single.violations > 0);
  const testing::crash_violation& s = single.examples.front();
  CHECK(s.boundary == testing::boundary_kind::completed);
  CHECK(checker.check_at(one, s.crash_point, s.policy).violations == 1);
}

} // namespace flushkit::test
