// tests/support/counting_new.hpp - counts every heap allocation of the program.
//
// Include in exactly one translation unit of a program: each tests/alloc/
// executable, and the bench (bench/alloc_counter.cpp). What it defines in
// that executable depends on who owns malloc:
//
// * glibc, no sanitizer: the C allocation family - malloc, calloc, realloc,
//   free, aligned_alloc, posix_memalign, memalign, valloc, pvalloc -
//   forwarding to glibc's exported __libc_* entry points. The executable's
//   definitions interpose on every caller in the process, shared libraries
//   included, so an allocation Asio makes through std::aligned_alloc is
//   counted like any other. Every form of operator new is replaced and
//   allocates through that counted malloc / aligned_alloc (one count per
//   call, never two); every operator delete calls free.
// * ASan / TSan / MSan: the sanitizer owns malloc and operator new (TSan's
//   runtime even defines operator new non-weakly: a replacement does not
//   link). The counter is the sanitizer's user malloc hook,
//   __sanitizer_malloc_hook, which ASan's allocator calls once for every
//   allocation it makes for the program: operator new in every form and the
//   whole C family. TSan calls it from malloc, calloc, realloc and operator
//   new only, so under TSan the aligned family (aligned_alloc,
//   posix_memalign, memalign, valloc, pvalloc) is also defined here, counting
//   and forwarding to TSan's own __interceptor_* functions.
// * anything else: only operator new is replaced and counted.
//
// `counts_c_allocations` says whether the C family is counted (true in the
// first two cases). What is counted: every call that may hand out new
// memory - one per malloc, calloc, aligned_alloc, posix_memalign, memalign,
// valloc, pvalloc and operator new, and one per realloc unless it is
// realloc(p, 0) with p != null (a free). Frees are not counted.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

#if defined(__SANITIZE_THREAD__)
#define FLUSHKIT_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FLUSHKIT_TEST_TSAN 1
#endif
#endif

#if defined(__SANITIZE_ADDRESS__) || defined(FLUSHKIT_TEST_TSAN)
#define FLUSHKIT_TEST_SANITIZER_OWNS_MALLOC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define FLUSHKIT_TEST_SANITIZER_OWNS_MALLOC 1
#endif
#endif

// 1: interpose the C family (glibc); 2: the sanitizer's malloc hook;
// 0: operator new only.
#if defined(FLUSHKIT_TEST_SANITIZER_OWNS_MALLOC)
#define FLUSHKIT_TEST_COUNTING_MODE 2
#elif defined(__GLIBC__)
#define FLUSHKIT_TEST_COUNTING_MODE 1
#else
#define FLUSHKIT_TEST_COUNTING_MODE 0
#endif

namespace flushkit::test {

/// Every allocation of the process so far (see the header comment).
constinit inline std::atomic<std::size_t> allocation_count{0};

/// True when the C allocation family (malloc, aligned_alloc, ...) is counted
/// too, not only operator new (see the header comment).
inline constexpr bool counts_c_allocations = FLUSHKIT_TEST_COUNTING_MODE != 0;

/// True when the sanitizer's malloc hook counts (ASan, TSan, MSan builds).
inline constexpr bool counts_through_sanitizer_hook = FLUSHKIT_TEST_COUNTING_MODE == 2;

/// Number of allocations made while `f` runs.
template <class F> std::size_t allocations_during(F&& f) {
  const std::size_t before = allocation_count.load();
  f();
  return allocation_count.load() - before;
}

namespace detail {

inline constexpr std::size_t plain_alignment = alignof(std::max_align_t);

inline void count_one() noexcept { allocation_count.fetch_add(1, std::memory_order_relaxed); }

// One allocation for a replaced operator new. When the C family is
// interposed, malloc and aligned_alloc below count it; otherwise it is
// counted here.
inline void* new_alloc(std::size_t n, std::size_t align) noexcept {
  if constexpr (FLUSHKIT_TEST_COUNTING_MODE != 1) count_one();
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

#if FLUSHKIT_TEST_COUNTING_MODE == 1

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

#endif // FLUSHKIT_TEST_COUNTING_MODE == 1

#if FLUSHKIT_TEST_COUNTING_MODE == 2

// Called by the sanitizer's allocator right after each allocation it makes
// for the program (the runtime's own default is weak).
extern "C" void __sanitizer_malloc_hook(const volatile void* ptr, std::size_t size);
extern "C" void __sanitizer_malloc_hook(const volatile void*, std::size_t) {
  flushkit::test::detail::count_one();
}

#if defined(FLUSHKIT_TEST_TSAN)
// TSan (clang 14) calls the hook from its malloc, calloc, realloc and
// operator new, not from the aligned family. Its definitions of those are
// weak aliases of __interceptor_*: these count and forward.
extern "C" {
void* __interceptor_aligned_alloc(std::size_t align, std::size_t n);
void* __interceptor_memalign(std::size_t align, std::size_t n);
int __interceptor_posix_memalign(void** out, std::size_t align, std::size_t n);
void* __interceptor_valloc(std::size_t n);
void* __interceptor_pvalloc(std::size_t n);

void* aligned_alloc(std::size_t align, std::size_t n) noexcept {
  flushkit::test::detail::count_one();
  return __interceptor_aligned_alloc(align, n);
}
void* memalign(std::size_t align, std::size_t n) noexcept {
  flushkit::test::detail::count_one();
  return __interceptor_memalign(align, n);
}
int posix_memalign(void** out, std::size_t align, std::size_t n) noexcept {
  flushkit::test::detail::count_one();
  return __interceptor_posix_memalign(out, align, n);
}
void* valloc(std::size_t n) noexcept {
  flushkit::test::detail::count_one();
  return __interceptor_valloc(n);
}
void* pvalloc(std::size_t n) noexcept {
  flushkit::test::detail::count_one();
  return __interceptor_pvalloc(n);
}
} // extern "C"
#endif

#else // operator new is ours

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

#endif // FLUSHKIT_TEST_COUNTING_MODE == 2
