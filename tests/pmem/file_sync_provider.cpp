#include <flushkit/pmem/file_sync_provider.hpp>

#include <flushkit/core/region.hpp>

#include "support/pmem_support.hpp"

#include <doctest/doctest.h>

#include <cstring>

namespace pm = flushkit::pmem;

TEST_SUITE("pmem/file_sync_provider") {

TEST_CASE("msync and fdatasync of a file backing succeed and the data is in the file") {
  flushkit::test::temp_file f;
  auto b = pm::backing::file(f.path(), {.size = 4096});
  REQUIRE(b);
  for (auto mode : {pm::file_sync_mode::msync, pm::file_sync_mode::fdatasync}) {
    pm::file_sync_provider p(*b, mode);
    std::memset(b->data(), static_cast<int>(mode) + 1, 4096);
    CHECK_FALSE(p.flush());
    CHECK(p.flushes() == 1);
    CHECK(flushkit::test::read_file(f.path(), 4096)[100] == static_cast<std::byte>(static_cast<int>(mode) + 1));
  }
}

TEST_CASE("fdatasync without a file fails and a region reports io_error") {
  auto b = pm::backing::anonymous(4096);
  REQUIRE(b);
  flushkit::region<pm::file_sync_provider> r(std::in_place, *b, pm::file_sync_mode::fdatasync);
  CHECK(r.provider().flush() == std::errc::bad_file_descriptor);
  CHECK(r.flush() == flushkit::errc::io_error);
}

} // TEST_SUITE
