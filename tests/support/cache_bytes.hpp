// tests/support/cache_bytes.hpp - a data step onto a volatile_cache's view, and byte checks of an image.
#pragma once

#include <flushkit/testing/volatile_cache.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace flushkit::test {

/// What a device's data step does: store `v` onto [off, off + len) of the
/// cache's view, then report it with `tracker.note_dirty` (the cache itself,
/// or a provider over it).
template <class Tracker>
void put(testing::volatile_cache& c, Tracker& tracker, std::size_t off, std::size_t len, std::uint8_t v) {
  std::memset(c.medium().data() + off, v, len);
  tracker.note_dirty(c.medium().data() + off, len);
}

/// `put` reported to the cache itself.
inline void put(testing::volatile_cache& c, std::size_t off, std::size_t len, std::uint8_t v) { put(c, c, off, len, v); }

/// True when every byte of [off, off + len) of `img` equals v.
inline bool all_of(std::span<const std::byte> img, std::size_t off, std::size_t len, std::uint8_t v) {
  return std::all_of(img.begin() + static_cast<std::ptrdiff_t>(off), img.begin() + static_cast<std::ptrdiff_t>(off + len),
                     [v](std::byte b) { return b == std::byte{v}; });
}

} // namespace flushkit::test
