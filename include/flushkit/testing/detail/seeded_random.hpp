// flushkit/testing/detail/seeded_random.hpp - a portable seeded generator (splitmix64) for replayable crash tests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>

namespace flushkit::testing::detail {

/// splitmix64: the same sequence for the same seed on every standard library
/// (std::uniform_int_distribution is not portable, so nothing here uses it).
class seeded_random {
public:
  explicit seeded_random(std::uint64_t seed) noexcept : state_(seed) {}

  std::uint64_t next() noexcept {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  /// A value in [0, bound); 0 when bound is 0. (Modulo bias is irrelevant here.)
  std::size_t below(std::size_t bound) noexcept {
    return bound == 0 ? 0 : static_cast<std::size_t>(next() % bound);
  }
  bool coin() noexcept { return (next() >> 63) != 0; }

  /// Fisher-Yates shuffle in place.
  template <class T> void shuffle(std::span<T> items) noexcept {
    for (std::size_t i = items.size(); i > 1; --i) std::swap(items[i - 1], items[below(i)]);
  }

private:
  std::uint64_t state_;
};

/// A seed derived from a base seed and one more value (stable, well mixed).
inline std::uint64_t mix_seed(std::uint64_t base, std::uint64_t value) noexcept {
  seeded_random r(base ^ (value * 0xd1b54a32d192ed03ULL));
  return r.next();
}

} // namespace flushkit::testing::detail
