// tests/support/counting_new.hpp - replaces global operator new/delete and counts calls.
//
// Every form of operator new (plain, array, aligned, nothrow) increments one
// relaxed atomic; every form of operator delete frees. Include in exactly one
// translation unit of a program: each tests/alloc/ executable, and the bench
// (bench/alloc_counter.cpp).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace flushkit::test {

inline std::atomic<std::size_t> allocation_count{0};

/// Number of global allocations made while `f` runs.
template <class F> std::size_t allocations_during(F&& f) {
  const std::size_t before = allocation_count.load();
  f();
  return allocation_count.load() - before;
}

namespace detail {

inline constexpr std::size_t plain_alignment = alignof(std::max_align_t);

inline void* counted_alloc(std::size_t n, std::size_t align) noexcept {
  allocation_count.fetch_add(1, std::memory_order_relaxed);
  if (n == 0) n = 1;
  if (align <= plain_alignment) return std::malloc(n);
  return std::aligned_alloc(align, (n + align - 1) / align * align);
}

inline void* counted_alloc_or_throw(std::size_t n, std::size_t align) {
  if (void* p = counted_alloc(n, align)) return p;
  throw std::bad_alloc();
}

} // namespace detail
} // namespace flushkit::test

void* operator new(std::size_t n) {
  return flushkit::test::detail::counted_alloc_or_throw(n, flushkit::test::detail::plain_alignment);
}
void* operator new[](std::size_t n) {
  return flushkit::test::detail::counted_alloc_or_throw(n, flushkit::test::detail::plain_alignment);
}
void* operator new(std::size_t n, std::align_val_t a) {
  return flushkit::test::detail::counted_alloc_or_throw(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return flushkit::test::detail::counted_alloc_or_throw(n, static_cast<std::size_t>(a));
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  return flushkit::test::detail::counted_alloc(n, flushkit::test::detail::plain_alignment);
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  return flushkit::test::detail::counted_alloc(n, flushkit::test::detail::plain_alignment);
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return flushkit::test::detail::counted_alloc(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return flushkit::test::detail::counted_alloc(n, static_cast<std::size_t>(a));
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
