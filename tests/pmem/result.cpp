#include <flushkit/pmem/result.hpp>

#include <doctest/doctest.h>

#include <ostream> // doctest prints a status through operator<<

#include <memory>

TEST_SUITE("pmem/result") {

TEST_CASE("a result holds either a value or an error") {
  flushkit::pmem::result<std::unique_ptr<int>> ok(std::make_unique<int>(7));
  REQUIRE(ok);
  CHECK(**ok == 7);
  CHECK_FALSE(ok.error());
  std::unique_ptr<int> moved = std::move(ok).value();
  CHECK(*moved == 7);

  flushkit::pmem::result<int> bad(make_error_code(flushkit::errc::invalid_request));
  CHECK_FALSE(bad);
  CHECK_FALSE(bad.has_value());
  CHECK(bad.error() == flushkit::errc::invalid_request);
}

} // TEST_SUITE
