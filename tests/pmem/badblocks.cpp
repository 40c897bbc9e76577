#include <flushkit/pmem/badblocks.hpp>

#include <doctest/doctest.h>

#include <ostream> // doctest prints a status through operator<<

using flushkit::pmem::badblocks;

TEST_SUITE("pmem/badblocks") {

TEST_CASE("ranges merge and overlap checks are exact") {
  badblocks bb(4);
  CHECK(bb.empty());
  CHECK_FALSE(bb.overlaps(0, 1000));
  CHECK_FALSE(bb.add(10, 5)); // 10..14
  CHECK_FALSE(bb.add(15, 2)); // adjacent: 10..16
  CHECK_FALSE(bb.add(30, 1));
  CHECK(bb.size() == 2);
  CHECK(bb.bad_sectors() == 8);
  CHECK(bb.overlaps(16, 1));
  CHECK_FALSE(bb.overlaps(17, 13));
  CHECK(bb.overlaps(0, 11));
  CHECK_FALSE(bb.overlaps(0, 10));
  CHECK_FALSE(bb.add(5, 30)); // swallows both
  CHECK(bb.size() == 1);
  CHECK(bb.bad_sectors() == 30);
  CHECK(bb.add(1, 0) == flushkit::errc::invalid_request);
}

TEST_CASE("a full set refuses new ranges and splits that need a slot") {
  badblocks bb(2);
  CHECK_FALSE(bb.add(0, 10));
  CHECK_FALSE(bb.add(20, 10));
  CHECK(bb.add(40, 1) == flushkit::errc::no_space);
  CHECK_FALSE(bb.add(9, 2)); // merges, no new slot
  CHECK(bb.clear(4, 2) == flushkit::errc::no_space); // split of 0..10
  CHECK(bb.bad_sectors() == 21);
  CHECK(bb.notifications() == 0);
}

TEST_CASE("clear removes whole, partial and split ranges and notifies") {
  badblocks bb(8);
  int calls = 0;
  bb.set_notify([](void* ctx, std::uint64_t, std::uint64_t) { ++*static_cast<int*>(ctx); }, &calls);
  CHECK_FALSE(bb.add(0, 10));
  CHECK_FALSE(bb.add(20, 10));
  CHECK_FALSE(bb.clear(4, 2)); // split 0..3, 6..9
  CHECK(bb.size() == 3);
  CHECK_FALSE(bb.overlaps(4, 2));
  CHECK_FALSE(bb.clear(8, 14)); // 8..9 and 20..21
  CHECK(bb.bad_sectors() == 4 + 2 + 8);
  CHECK_FALSE(bb.clear(100, 5)); // nothing there: no notification
  CHECK(calls == 2);
  CHECK(bb.notifications() == 2);
  CHECK_FALSE(bb.clear(0, 1000));
  CHECK(bb.empty());
}

} // TEST_SUITE
