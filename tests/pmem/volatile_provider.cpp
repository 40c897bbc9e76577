#include <flushkit/pmem/volatile_provider.hpp>

#include <doctest/doctest.h>

#include <ostream> // doctest prints a status through operator<<

TEST_SUITE("pmem/volatile_provider") {

TEST_CASE("a volatile flush does nothing and succeeds") {
  flushkit::pmem::volatile_provider p;
  CHECK_FALSE(p.flush());
  CHECK_FALSE(p.flush());
  CHECK(p.flushes() == 2);
}

} // TEST_SUITE
