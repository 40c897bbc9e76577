// bench/alloc_counter.cpp - counts every heap allocation of the bench process.
//
// The counter is the one the allocation tests use
// (tests/support/counting_new.hpp: operator new and the C allocation family).
// The harness reads the counter at the start and the end of the measured
// window, so allocs_per_op covers that window only.
#include "alloc_counter.hpp"

#ifndef FLUSHKIT_BENCH_COUNT_ALLOCS
#define FLUSHKIT_BENCH_COUNT_ALLOCS 1
#endif

#if FLUSHKIT_BENCH_COUNT_ALLOCS

#include "../tests/support/counting_new.hpp"

namespace flushkit::bench {
bool alloc_counting_enabled() noexcept { return true; }
std::uint64_t allocations() noexcept { return flushkit::test::allocation_count.load(std::memory_order_relaxed); }
} // namespace flushkit::bench

#else

namespace flushkit::bench {
bool alloc_counting_enabled() noexcept { return false; }
std::uint64_t allocations() noexcept { return 0; }
} // namespace flushkit::bench

#endif
