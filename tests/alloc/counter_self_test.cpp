// The allocation counter (support/counting_new.hpp) sees what it claims: each
// allocating call made in a measured window is counted exactly once - the C
// family (where the counter interposes it) and every operator new.
#include "support/counting_new.hpp"

#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace {

// Makes `p` observable so the compiler cannot elide the allocation that
// produced it (or fold an allocation / free pair away).
[[gnu::noinline]] void escape(void* p) { asm volatile("" : : "r"(p) : "memory"); }

template <class F> std::size_t count(F&& f) { return flushkit::test::allocations_during(static_cast<F&&>(f)); }

struct alignas(64) overaligned {
  std::byte bytes[64];
};

} // namespace

// No doctest assertion runs inside a measured window: reporting one may
// allocate (with -s it does).

TEST_CASE("operator new in every form is counted exactly once per call") {
  CHECK(count([] {
          int* p = new int(7);
          escape(p);
          delete p;
        }) == 1);
  CHECK(count([] {
          int* p = new int[16];
          escape(p);
          delete[] p;
        }) == 1);
  std::uintptr_t address = 1;
  CHECK(count([&] {
          auto* p = new overaligned;
          escape(p);
          address = reinterpret_cast<std::uintptr_t>(p);
          delete p;
        }) == 1);
  CHECK(address % 64 == 0);
  CHECK(count([] {
          void* p = ::operator new(100, std::align_val_t{128}, std::nothrow);
          escape(p);
          ::operator delete(p, std::align_val_t{128});
        }) == 1);
  CHECK(count([] {
          int* p = new (std::nothrow) int(1);
          escape(p);
          delete p;
        }) == 1);
  // Frees are not counted.
  int* p = new int(3);
  escape(p);
  CHECK(count([&] { delete p; }) == 0);
}

TEST_CASE("the C allocation family is counted exactly once per call" *
          doctest::skip(!flushkit::test::counts_c_allocations)) {
  MESSAGE("counts_c_allocations = ", flushkit::test::counts_c_allocations);
  std::uintptr_t address = 1;
  CHECK(count([&] {
          void* p = std::aligned_alloc(64, 256);
          escape(p);
          address = reinterpret_cast<std::uintptr_t>(p);
          std::free(p);
        }) == 1);
  CHECK(address != 0);
  CHECK(address % 64 == 0);
  CHECK(count([] {
          void* p = std::malloc(40);
          escape(p);
          std::free(p);
        }) == 1);
  int rc = -1;
  CHECK(count([&] {
          void* p = nullptr;
          rc = posix_memalign(&p, 128, 512);
          escape(p);
          address = reinterpret_cast<std::uintptr_t>(p);
          std::free(p);
        }) == 1);
  CHECK(rc == 0);
  CHECK(address % 128 == 0);
  unsigned char last = 1;
  CHECK(count([&] {
          void* p = std::calloc(8, 16);
          escape(p);
          last = p != nullptr ? static_cast<unsigned char*>(p)[127] : 1;
          std::free(p);
        }) == 1);
  CHECK(last == 0);
  void* small = std::malloc(16);
  escape(small);
  CHECK(count([&] {
          small = std::realloc(small, 1 << 20); // growth: a new block
          escape(small);
        }) == 1);
  CHECK(small != nullptr);
  CHECK(count([&] { std::free(small); }) == 0);
  // operator new reaches malloc / aligned_alloc: still one count, never two.
  CHECK(count([] {
          int* p = new int(5);
          escape(p);
          delete p;
        }) == 1);
  CHECK(count([] {
          auto* p = new overaligned;
          escape(p);
          delete p;
        }) == 1);
  // The seven kinds in one window; the realloc's block comes from an eighth
  // call, a malloc.
  CHECK(count([&] {
          void* a = std::aligned_alloc(64, 64);
          void* m = std::malloc(24);
          void* pm = nullptr;
          rc = posix_memalign(&pm, 64, 64);
          void* c = std::calloc(4, 4);
          void* r = std::malloc(8);
          escape(r);
          r = std::realloc(r, 4096);
          int* n = new int(1);
          auto* o = new overaligned;
          escape(a), escape(m), escape(pm), escape(c), escape(r), escape(n), escape(o);
          std::free(a), std::free(m), std::free(pm), std::free(c), std::free(r);
          delete n;
          delete o;
        }) == 8);
  CHECK(rc == 0);
}
