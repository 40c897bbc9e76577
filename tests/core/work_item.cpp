#include <flushkit/core/work_item.hpp>

#include <doctest/doctest.h>

TEST_SUITE("core/work_item") {

TEST_CASE("run calls the function with the item and its context") {
  int calls = 0;
  flushkit::work_item item(
      [](flushkit::work_item& self, void* ctx) {
        ++*static_cast<int*>(ctx);
        CHECK(self.context() == ctx);
      },
      &calls);
  CHECK_FALSE(item.is_queued());
  item.run();
  item.run();
  CHECK(calls == 2);
}

TEST_CASE("set replaces the function and the context") {
  int a = 0, b = 0;
  auto bump = [](flushkit::work_item&, void* ctx) { ++*static_cast<int*>(ctx); };
  flushkit::work_item item(bump, &a);
  item.set(bump, &b);
  item.run();
  CHECK(a == 0);
  CHECK(b == 1);
}

} // TEST_SUITE
