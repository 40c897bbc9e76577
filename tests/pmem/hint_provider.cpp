#include <flushkit/pmem/hint_provider.hpp>

#include <doctest/doctest.h>

#include <ostream> // doctest prints a status through operator<<

#include <array>

using flushkit::pmem::hint_provider;

TEST_SUITE("pmem/hint_provider") {

TEST_CASE("duplicate hint addresses are written once per flush") {
  std::array<std::uint64_t, 2> w{};
  std::array<std::uint64_t*, 4> dimms{&w[0], &w[0], &w[1], &w[0]};
  hint_provider p(dimms);
  CHECK(p.unique_hints() == 2);
  CHECK_FALSE(p.flush());
  CHECK(p.hint_writes() == 2);
  CHECK(w[0] == 1);
  CHECK(w[1] == 1);
}

TEST_CASE("DIMMs without hints cause no writes and the flush still succeeds") {
  std::array<std::uint64_t*, 3> dimms{nullptr, nullptr, nullptr};
  hint_provider p(dimms);
  CHECK(p.unique_hints() == 0);
  CHECK_FALSE(p.flush());
  CHECK(p.hint_writes() == 0);
}

} // TEST_SUITE
