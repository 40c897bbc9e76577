// bench/alloc_counter.hpp - global allocation counter of the bench binary.
#pragma once

#include <cstdint>

namespace flushkit::bench {

/// True when this build counts allocations (operator new and the C family)
/// (off under sanitizers, whose runtimes own the allocator).
bool alloc_counting_enabled() noexcept;

/// Number of heap allocations so far (0 when counting is off).
std::uint64_t allocations() noexcept;

} // namespace flushkit::bench
