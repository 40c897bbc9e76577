// tests/support/counting_new.hpp - counts every heap allocation of the program.
//
// Include in exactly one translation unit of a program: each tests/alloc/
// executable, and the bench (bench/alloc_counter.cpp). It defines, in that
// executable:
//
// * on glibc without a sanitizer (`counts_c_allocations == true`): the C
//   allocation family - malloc, calloc, realloc, free, aligned_alloc,
//   posix_memalign, memalign, valloc, pvalloc - forwarding to glibc's exported
//   __libc_* entry points. The executable's definitions interpose on every
//   caller in the process, shared libraries included, so an allocation Asio
//   makes through std::aligned_alloc is counted like any other. Every form of
//   operator new allocates through that counted malloc / aligned_alloc (one
//   count per call, never two) and every operator delete calls free.
// * under ASan / TSan / MSan (or without glibc) the sanitizer runtime owns
//   malloc and its family: only operator new is replaced and counted there
//   (`counts_c_allocations == false`), so a C-level allocation is not seen.
//
// What is counted: every call that may hand out new memory - one per malloc,
// calloc, aligned_alloc, posix_memalign, memalign, valloc, pvalloc and
// operator new, and one per realloc unless it is realloc(p, 0) with p != null
// (a free). Frees are not counted.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define FLUSHKIT_TEST_SANITIZER_OWNS_MALLOC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define FLUSHKIT_TEST_SANITIZER_OWNS_MALLOC 1
#endif
#endif

#if !defined(FLUSHKIT_TEST_SANITIZER_OWNS_MALLOC) && defined(__GLIBC__)
#define FLUSHKIT_TEST_COUNT_C_ALLOCATIONS 1
#else
#define FLUSHKIT_TEST_COUNT_C_ALLOCATIONS 0
#endif

namespace flushkit::test {

/// Every allocation of the process so far (see the header comment).
constinit inline std::atomic<std::size_t> allocation_count{0};

/// True when the C allocation family (malloc, aligned_alloc, ...) is counted
/// too; false under a sanitizer, where only operator new is counted.
inline constexpr bool counts_c_allocations = FLUSHKIT_TEST_COUNT_C_ALLOCATIONS != 0;

/// Number of allocations made while `f` runs.
template <class F> std::size_t allocations_during(F&& f) {
  const std::size_t before = allocation_count.load();
  f();
  return allocation_count.load() - before;
}

namespace detail {

inline constexpr std::size_t plain_alignment = alignof(std::max_align_t);

inline void count_one() noexcept { allocation_count.fetch_add(1, std::memory_order_relaxed); }

// One allocation for operator new. With C-level counting, malloc and
// aligned_alloc below count it; otherwise it is counted here.
inline void* new_alloc(std::size_t n, std::size_t align) noexcept {
  if constexpr (!counts_c_allocations) count_one();
  if (n == 0) n = 1;
  if (align <= plain_alignment) return std::malloc(n);
  return std::aligned_alloc(align, (n + align - 1) / align * align);
}

inline void* new_alloc_or_throw(std::size_t n, std::size_t align) {
  if (void* p = new_alloc(n, align)) return p;
  throw std::bad_alloc();
}

} // namespace detail
} // namespace flushkit::test

#if FLUSHKIT_TEST_COUNT_C_ALLOCATIONS

#include <cerrno>
#include <malloc.h>

// glibc's own implementations, exported for exactly this use (an interposing
// malloc that forwards to them).
extern "C" {
void* __libc_malloc(std::size_t n) noexcept;
void* __libc_calloc(std::size_t count, std::size_t n) noexcept;
void* __libc_realloc(void* p, std::size_t n) noexcept;
void __libc_free(void* p) noexcept;
void* __libc_memalign(std::size_t align, std::size_t n) noexcept;
void* __libc_valloc(std::size_t n) noexcept;
void* __libc_pvalloc(std::size_t n) noexcept;

void* malloc(std::size_t n) noexcept {
  flushkit::test::detail::count_one();
  return __libc_malloc(n);
}
void* calloc(std::size_t count, std::size_t n) noexcept {
  flushkit::test::detail::count_one();
  return __libc_calloc(count, n);
}
void* realloc(void* p, std::size_t n) noexcept {
  if (p == nullptr || n != 0) flushkit::test::detail::count_one();
  return __libc_realloc(p, n);
}
void free(void* p) noexcept { __libc_free(p); }
void* memalign(std::size_t align, std::size_t n) noexcept {
  flushkit::test::detail::count_one();
  return __libc_memalign(align, n);
}
void* aligned_alloc(std::size_t align, std::size_t n) noexcept {
  flushkit::test::detail::count_one();
  if (align == 0 || (align & (align - 1)) != 0) {
    errno = EINVAL;
    return nullptr;
  }
  return __libc_memalign(align, n);
}
int posix_memalign(void** out, std::size_t align, std::size_t n) noexcept {
  flushkit::test::detail::count_one();
  if (align < sizeof(void*) || (align & (align - 1)) != 0) return EINVAL;
  void* p = __libc_memalign(align, n);
  if (p == nullptr) return ENOMEM;
  *out = p;
  return 0;
}
void* valloc(std::size_t n) noexcept {
  flushkit::test::detail::count_one();
  return __libc_valloc(n);
}
void* pvalloc(std::size_t n) noexcept {
  flushkit::test::detail::count_one();
  return __libc_pvalloc(n);
}
} // extern "C"

#endif // FLUSHKIT_TEST_COUNT_C_ALLOCATIONS

void* operator new(std::size_t n) {
  return flushkit::test::detail::new_alloc_or_throw(n, flushkit::test::detail::plain_alignment);
}
void* operator new[](std::size_t n) {
  return flushkit::test::detail::new_alloc_or_throw(n, flushkit::test::detail::plain_alignment);
}
void* operator new(std::size_t n, std::align_val_t a) {
  return flushkit::test::detail::new_alloc_or_throw(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return flushkit::test::detail::new_alloc_or_throw(n, static_cast<std::size_t>(a));
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  return flushkit::test::detail::new_alloc(n, flushkit::test::detail::plain_alignment);
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  return flushkit::test::detail::new_alloc(n, flushkit::test::detail::plain_alignment);
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return flushkit::test::detail::new_alloc(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return flushkit::test::detail::new_alloc(n, static_cast<std::size_t>(a));
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
