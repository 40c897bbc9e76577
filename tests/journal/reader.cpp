// tests/journal/reader.cpp - reading records back from an LSN, bounded, across segments, without modifying.
#include <flushkit/journal/reader.hpp>

#include <flushkit/journal/journal.hpp>
#include <flushkit/testing/volatile_segment_store.hpp>

#include "support/journal_support.hpp"

#include <doctest/doctest.h>

#include <boost/asio/io_context.hpp>

using flushkit::lsn_t;
using store_type = flushkit::testing::volatile_segment_store;

TEST_CASE("journal_reader: from an LSN, up to a bound, across segments; an empty store reads nothing") {
  store_type store({.segment_bytes = 4096});
  {
    flushkit::journal_reader<store_type&> empty(store);
    flushkit::journal_record rec;
    CHECK_FALSE(empty.next(rec));
    CHECK_FALSE(empty.error());
  }
  boost::asio::io_context io;
  auto j = flushkit::basic_journal<store_type&>::open(io, store);
  REQUIRE(j);
  std::vector<std::vector<std::byte>> p;
  for (std::uint64_t i = 1; i <= 20; ++i) p.push_back(flushkit::test::make_payload(i, 1000)); // 4 per segment
  static_cast<void>(flushkit::test::append_all(*j, io, p));
  const std::size_t ops = store.operations();
  flushkit::journal_reader<store_type&> r(store, 7, 13);
  flushkit::journal_record rec;
  std::vector<lsn_t> seen;
  while (r.next(rec)) {
    CHECK(flushkit::test::payload_id(rec.payload) == rec.lsn);
    seen.push_back(rec.lsn);
  }
  CHECK_FALSE(r.error());
  CHECK(seen == std::vector<lsn_t>{7, 8, 9, 10, 11, 12, 13});
  CHECK(store.operations() == ops); // reading wrote nothing
  auto live = j->read_from(19);     // bounded by the durable LSN
  std::vector<lsn_t> tail;
  while (live.next(rec)) tail.push_back(rec.lsn);
  CHECK(tail == std::vector<lsn_t>{19, 20});
}

TEST_CASE("journal_reader: a read error ends the iteration and is reported") {
  store_type store({.segment_bytes = 4096});
  boost::asio::io_context io;
  {
    auto j = flushkit::basic_journal<store_type&>::open(io, store);
    REQUIRE(j);
    static_cast<void>(flushkit::test::append_all(*j, io, {flushkit::test::make_payload(1, 64)}));
  }
  store.cut_power();
  flushkit::journal_reader<store_type&> r(store);
  flushkit::journal_record rec;
  CHECK_FALSE(r.next(rec));
  CHECK(r.error() == flushkit::errc::io_error);
}
