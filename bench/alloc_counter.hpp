// bench/alloc_counter.hpp - global allocation counter of the bench binary.
#pragma once

#include <cstdint>

namespace flushkit::bench {

/// True when this build replaced the global operator new with a counting one
/// (off under sanitizers, whose runtimes own operator new).
bool alloc_counting_enabled() noexcept;

/// Number of global operator new calls so far (0 when counting is off).
std::uint64_t allocations() noexcept;

} // namespace flushkit::bench
