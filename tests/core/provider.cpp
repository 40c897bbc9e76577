#include <flushkit/core/provider.hpp>

#include <doctest/doctest.h>

namespace {

struct sync_only {
  flushkit::status flush() { return {}; }
};
struct async_only {
  flushkit::flush_result flush(flushkit::request&) { return flushkit::flush_result::done(); }
};
struct both {
  flushkit::status flush() { return {}; }
  flushkit::flush_result flush(flushkit::request& r) { return flushkit::flush_result::async(r); }
};
struct wrong_return {
  int flush() { return 0; }
};
struct no_flush {};

} // namespace

TEST_SUITE("core/provider") {

TEST_CASE("the concepts classify providers by their flush signature") {
  static_assert(flushkit::sync_flush_provider<sync_only>);
  static_assert(!flushkit::async_flush_provider<sync_only>);
  static_assert(flushkit::async_flush_provider<async_only>);
  static_assert(!flushkit::sync_flush_provider<async_only>);
  static_assert(flushkit::sync_flush_provider<both> && flushkit::async_flush_provider<both>);
  static_assert(!flushkit::flush_provider<wrong_return>);
  static_assert(!flushkit::flush_provider<no_flush>);
  static_assert(!flushkit::flush_provider<flushkit::no_provider>);
  CHECK(flushkit::detail::check_provider<sync_only>());
  CHECK(flushkit::detail::check_provider<flushkit::no_provider>());
}

} // TEST_SUITE
