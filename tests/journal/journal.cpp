// tests/journal/journal.cpp - the journal over real segment files: appends, order, recovery, rotation, release,
// bad input, failures, no_space, Asio tokens and cancellation.
#include <flushkit/journal/journal.hpp>

#include <flushkit/testing/volatile_segment_store.hpp>

#include "support/journal_support.hpp"
#include "support/temp_dir.hpp"

#include <doctest/doctest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include <signal.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FLUSHKIT_TEST_TSAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define FLUSHKIT_TEST_TSAN 1
#endif
#ifdef FLUSHKIT_TEST_TSAN
// The kill -9 test's child process starts the journal's threads after
// fork(); ThreadSanitizer kills such a child unless told not to.
extern "C" const char* __tsan_default_options() { return "die_after_fork=0"; }
#endif

namespace asio = boost::asio;
namespace fs = std::filesystem;
using flushkit::errc;
using flushkit::journal;
using flushkit::journal_options;
using flushkit::lsn_t;
using flushkit::make_error_code;
using flushkit::test::make_payload;
using flushkit::test::payload_id;

namespace {

constexpr std::uint64_t small_segment = 4096;

journal_options small_options() {
  journal_options o;
  o.segment_bytes = small_segment;
  return o;
}

std::vector<std::vector<std::byte>> payloads(std::uint64_t first_id, std::size_t n, std::size_t size) {
  std::vector<std::vector<std::byte>> out;
  for (std::size_t i = 0; i < n; ++i) out.push_back(make_payload(first_id + i, size));
  return out;
}

flushkit::segment_directory open_dir(const std::string& path, std::uint64_t segment_bytes = small_segment) {
  auto d = flushkit::segment_directory::open(path.c_str(), {.segment_bytes = segment_bytes});
  REQUIRE(d);
  return std::move(d).value();
}

std::vector<std::pair<lsn_t, std::uint64_t>> read_dir(const std::string& path,
                                                     std::uint64_t segment_bytes = small_segment) {
  flushkit::status st;
  auto ids = flushkit::test::read_ids(open_dir(path, segment_bytes), &st);
  CHECK_FALSE(st);
  return ids;
}

std::size_t segment_files(const std::string& path) {
  std::size_t n = 0;
  for (const auto& e : fs::directory_iterator(path)) n += e.path().extension() == ".seg" ? 1u : 0u;
  return n;
}

std::vector<char> file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file_bytes(const std::string& path, const std::vector<char>& bytes) {
  std::fstream out(path, std::ios::binary | std::ios::in | std::ios::out);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string segment_path(const flushkit::test::temp_dir& d, std::uint64_t index) {
  return d / flushkit::segment_directory::file_name(index).data();
}

} // namespace

TEST_CASE("journal: appends complete in LSN order, durable, and read back exactly after reopening") {
  flushkit::test::temp_dir dir("flushkit-journal");
  asio::io_context io;
  const auto data = payloads(100, 200, 48);
  {
    auto j = journal::open(io, dir.path().c_str(), small_options());
    REQUIRE(j);
    CHECK(j->recovery().created);
    CHECK(j->recovery().next_lsn == 1);
    const auto out = flushkit::test::append_all(*j, io, data);
    REQUIRE(out.size() == data.size());
    for (std::size_t i = 0; i < out.size(); ++i) {
      CHECK_FALSE(out[i].ec);
      CHECK(out[i].lsn == i + 1); // completion order is LSN order, LSNs are consecutive
    }
    CHECK(j->durable_lsn() == 200);
    const auto s = j->stats();
    CHECK(s.appends == 200);
    CHECK(s.bytes == 200 * 48);
    CHECK(s.flushes >= 1);
    CHECK(s.flushes <= 200);
    CHECK(s.durable_lsn == 200);
    CHECK(s.next_lsn == 201);
    CHECK(s.rotations >= 2); // 200 records of 64 bytes need three 4 KiB segments
  }
  const auto ids = read_dir(dir.path());
  REQUIRE(ids.size() == 200);
  for (std::size_t i = 0; i < ids.size(); ++i) {
    CHECK(ids[i].first == i + 1);
    CHECK(ids[i].second == 100 + i);
  }
  auto again = journal::open(io, dir.path().c_str(), small_options());
  REQUIRE(again);
  CHECK_FALSE(again->recovery().created);
  CHECK(again->recovery().first_lsn == 1);
  CHECK(again->recovery().last_lsn == 200);
  CHECK(again->recovery().records == 200);
  CHECK(again->recovery().tail_bytes_zeroed == 0);
  const auto more = flushkit::test::append_all(*again, io, payloads(1000, 1, 48));
  REQUIRE(more.size() == 1);
  CHECK(more[0].lsn == 201);
}

TEST_CASE("journal: a record is the concatenation of its buffers; first_lsn numbers a new journal") {
  flushkit::test::temp_dir dir("flushkit-journal");
  asio::io_context io;
  journal_options o = small_options();
  o.first_lsn = 1000;
  auto j = journal::open(io, dir.path().c_str(), o);
  REQUIRE(j);
  const auto whole = make_payload(7, 40);
  std::array<asio::const_buffer, 3> parts{asio::buffer(whole.data(), 8), asio::buffer(whole.data() + 8, 30),
                                          asio::buffer(whole.data() + 38, 2)};
  lsn_t got = 0;
  j->async_append(parts, [&](boost::system::error_code ec, lsn_t lsn) {
    CHECK_FALSE(ec);
    got = lsn;
  });
  io.run();
  CHECK(got == 1000);
  j->close_and_wait();
  const auto ids = read_dir(dir.path());
  REQUIRE(ids.size() == 1);
  CHECK(ids[0] == std::pair<lsn_t, std::uint64_t>{1000, 7});
}

TEST_CASE("journal: bad input gets a clear status and uses no LSN") {
  flushkit::test::temp_dir dir("flushkit-journal");
  asio::io_context io;
  auto j = journal::open(io, dir.path().c_str(), small_options());
  REQUIRE(j);
  CHECK(j->max_record_bytes() == small_segment - 32 - 16);
  std::vector<std::byte> big(j->max_record_bytes() + 1), fits(j->max_record_bytes());
  std::array<asio::const_buffer, 9> nine{};
  for (auto& b : nine) b = asio::buffer(fits.data(), 1);
  std::vector<std::pair<boost::system::error_code, lsn_t>> out;
  auto record = [&](boost::system::error_code ec, lsn_t lsn) { out.emplace_back(ec, lsn); };
  j->async_append(asio::const_buffer(), record);
  j->async_append(asio::buffer(big), record);
  j->async_append(std::vector<asio::const_buffer>(nine.begin(), nine.end()), record);
  j->async_append(asio::buffer(fits), record);
  io.run();
  REQUIRE(out.size() == 4);
  CHECK(out[0].first == errc::invalid_request);
  CHECK(out[1].first == errc::invalid_request);
  CHECK(out[2].first == errc::invalid_request);
  CHECK(out[0].second == 0);
  CHECK_FALSE(out[3].first);
  CHECK(out[3].second == 1); // the refused ones took no LSN
  j->close_and_wait();
  j->async_append(asio::buffer(fits), record);
  io.restart();
  io.run();
  REQUIRE(out.size() == 5);
  CHECK(out[4].first == errc::shutting_down);
}

TEST_CASE("journal: options that cannot work are refused") {
  flushkit::test::temp_dir dir("flushkit-journal");
  asio::io_context io;
  journal_options o = small_options();
  o.spare_segments = 0;
  CHECK(journal::open(io, dir.path().c_str(), o).error() == errc::invalid_request);
  o = small_options();
  o.first_lsn = 0;
  CHECK(journal::open(io, dir.path().c_str(), o).error() == errc::invalid_request);
  o = small_options();
  o.segment_bytes = 5000; // not a multiple of 4096
  CHECK(journal::open(io, dir.path().c_str(), o).error() == errc::invalid_request);
}

TEST_CASE("journal: rotation fills segments without straddling, spares are made ahead") {
  flushkit::test::temp_dir dir("flushkit-journal");
  asio::io_context io;
  journal_options o = small_options();
  o.spare_segments = 2;
  // 4096 - 32 = 4064 bytes per segment: two records of 2016 payload (2032 each) fill one exactly.
  auto j = journal::open(io, dir.path().c_str(), o);
  REQUIRE(j);
  const auto out = flushkit::test::append_all(*j, io, payloads(1, 7, 2016));
  for (const auto& r : out) CHECK_FALSE(r.ec);
  const auto s = j->stats();
  CHECK(s.rotations == 3); // segments 0..3 hold 2, 2, 2, 1 records
  j->close_and_wait();
  CHECK(segment_files(dir.path()) >= 4);
  const auto ids = read_dir(dir.path());
  REQUIRE(ids.size() == 7);
  CHECK(ids.back().first == 7);
  // segment 1 begins with LSN 3 right after its header
  const auto seg1 = file_bytes(segment_path(dir, 1));
  REQUIRE(seg1.size() == small_segment);
  std::uint64_t lsn = 0;
  std::memcpy(&lsn, seg1.data() + 32 + 8, 8);
  CHECK(lsn == 3);
}

TEST_CASE("journal: open returns with the spares ready; recovery keeps zero spares, deletes unacknowledged data") {
  flushkit::test::temp_dir dir("flushkit-journal");
  asio::io_context io;
  journal_options o = small_options();
  o.spare_segments = 2;
  {
    auto j = journal::open(io, dir.path().c_str(), o);
    REQUIRE(j);
    CHECK(j->stats().segments_created == 2); // before open returned: no rotation waits for a zero-fill
    CHECK(fs::exists(segment_path(dir, 2)));
    static_cast<void>(flushkit::test::append_all(*j, io, payloads(1, 3, 2016))); // segment 1 now current
    CHECK(j->stats().rotation_waits == 0);
  }
  {
    auto j = journal::open(io, dir.path().c_str(), o);
    REQUIRE(j);
    CHECK(j->recovery().segments_discarded == 0); // segments 2 and 3 are zero: kept as spares
    CHECK(j->stats().segments_created == 0);
  }
  auto bytes = file_bytes(segment_path(dir, 3));
  bytes[100] = 1; // as if an unacknowledged batch had reached segment 3
  write_file_bytes(segment_path(dir, 3), bytes);
  auto j = journal::open(io, dir.path().c_str(), o);
  REQUIRE(j);
  CHECK(j->recovery().segments_discarded == 1);
  CHECK(j->recovery().last_lsn == 3);
  CHECK(j->stats().segments_created == 1); // segment 3 again, zero-filled
  CHECK(file_bytes(segment_path(dir, 3))[100] == 0);
}

TEST_CASE("journal: release deletes the segments wholly below the checkpoint, never the current one") {
  flushkit::test::temp_dir dir("flushkit-journal");
  asio::io_context io;
  {
    auto j = journal::open(io, dir.path().c_str(), small_options());
    REQUIRE(j);
    static_cast<void>(flushkit::test::append_all(*j, io, payloads(1, 10, 2016))); // 5 segments, 2 records each
    CHECK(j->release(1) == 0);
    CHECK(j->release(5) == 2);        // segments 0 (LSN 1-2) and 1 (3-4)
    j->release(1'000'000);            // all but the current one (records 9-10)
    j->close_and_wait();              // waits for the keeper's deletions
    CHECK(j->stats().segments_removed == 4);
    CHECK(j->stats().segments == 1);
  }
  CHECK_FALSE(fs::exists(segment_path(dir, 0)));
  CHECK_FALSE(fs::exists(segment_path(dir, 3)));
  CHECK(fs::exists(segment_path(dir, 4)));
  auto j = journal::open(io, dir.path().c_str(), small_options());
  REQUIRE(j);
  CHECK(j->recovery().first_lsn == 9);
  CHECK(j->recovery().last_lsn == 10);
  const auto more = flushkit::test::append_all(*j, io, payloads(50, 1, 16));
  CHECK(more.at(0).lsn == 11);
  auto reader = j->read_from(10);
  flushkit::journal_record rec;
  REQUIRE(reader.next(rec));
  CHECK(rec.lsn == 10);
  REQUIRE(reader.next(rec));
  CHECK(rec.lsn == 11);
  CHECK(payload_id(rec.payload) == 50);
  CHECK_FALSE(reader.next(rec));
  CHECK_FALSE(reader.error());
}

TEST_CASE("journal: after a release, reopening starts at the first kept record and keeps numbering") {
  flushkit::test::temp_dir dir("flushkit-journal");
  asio::io_context io;
  {
    auto j = journal::open(io, dir.path().c_str(), small_options());
    REQUIRE(j);
    static_cast<void>(flushkit::test::append_all(*j, io, payloads(1, 2, 2016))); // segment 0 full
    static_cast<void>(flushkit::test::append_all(*j, io, payloads(3, 1, 2016))); // into segment 1
    CHECK(j->release(3) == 1);
  }
  auto j = journal::open(io, dir.path().c_str(), small_options());
  REQUIRE(j);
  CHECK(j->recovery().first_lsn == 3);
  CHECK(j->recovery().next_lsn == 4);
}

TEST_CASE("journal: recovery of a record torn at every byte offset") {
  // Reference: three records, the last of 40 payload bytes (56 on disk) at a known offset.
  flushkit::test::temp_dir ref("flushkit-journal");
  asio::io_context io;
  {
    auto j = journal::open(io, ref.path().c_str(), small_options());
    REQUIRE(j);
    static_cast<void>(flushkit::test::append_all(*j, io, payloads(1, 2, 24)));
    static_cast<void>(flushkit::test::append_all(*j, io, payloads(3, 1, 40)));
  }
  const auto image = file_bytes(segment_path(ref, 0));
  const std::size_t last_at = 32 + 2 * (16 + 24), last_len = 16 + 40;
  for (int garbage = 0; garbage < 2; ++garbage) {
    for (std::size_t cut = 0; cut < last_len; ++cut) {
      CAPTURE(cut);
      CAPTURE(garbage);
      flushkit::test::temp_dir dir("flushkit-journal-torn");
      fs::copy_file(segment_path(ref, 0), segment_path(dir, 0));
      auto torn = image;
      for (std::size_t i = last_at + cut; i < last_at + last_len; ++i)
        torn[i] = garbage != 0 ? static_cast<char>(0xA5 ^ i) : char{0};
      write_file_bytes(segment_path(dir, 0), torn);
      {
        auto j = journal::open(io, dir.path().c_str(), small_options());
        REQUIRE(j);
        CHECK(j->recovery().last_lsn == 2);
        CHECK(j->recovery().next_lsn == 3);
        CHECK((j->recovery().tail_bytes_zeroed > 0) == (garbage != 0 || cut > 0)); // what was not zero already
        const auto more = flushkit::test::append_all(*j, io, payloads(90, 1, 8)); // shorter than the torn record
        CHECK(more.at(0).lsn == 3);
      }
      const auto after = file_bytes(segment_path(dir, 0));
      CHECK(std::all_of(after.begin() + static_cast<std::ptrdiff_t>(last_at + 24), after.end(),
                        [](char c) { return c == 0; })); // the torn tail is gone, not only overwritten
      const auto ids = read_dir(dir.path());
      REQUIRE(ids.size() == 3);
      CHECK(ids[2] == std::pair<lsn_t, std::uint64_t>{3, 90});
    }
  }
}

TEST_CASE("journal: nonzero bytes far past the end of the log are zeroed and synced") {
  flushkit::test::temp_dir dir("flushkit-journal");
  asio::io_context io;
  {
    auto j = journal::open(io, dir.path().c_str(), small_options());
    REQUIRE(j);
    static_cast<void>(flushkit::test::append_all(*j, io, payloads(1, 3, 24)));
  }
  auto bytes = file_bytes(segment_path(dir, 0));
  bytes[3000] = 'x'; // stale bytes after a zero gap
  write_file_bytes(segment_path(dir, 0), bytes);
  auto j = journal::open(io, dir.path().c_str(), small_options());
  REQUIRE(j);
  CHECK(j->recovery().last_lsn == 3);
  CHECK(j->recovery().tail_bytes_zeroed > 0);
  CHECK(file_bytes(segment_path(dir, 0))[3000] == 0);
}

TEST_CASE("journal: a CRC-corrupt middle record ends the log there") {
  flushkit::test::temp_dir dir("flushkit-journal");
  asio::io_context io;
  {
    auto j = journal::open(io, dir.path().c_str(), small_options());
    REQUIRE(j);
    static_cast<void>(flushkit::test::append_all(*j, io, payloads(1, 10, 24)));
  }
  auto bytes = file_bytes(segment_path(dir, 0));
  bytes[32 + 4 * 40 + 16 + 5] ^= 0x01; // a payload byte of LSN 5
  write_file_bytes(segment_path(dir, 0), bytes);
  auto j = journal::open(io, dir.path().c_str(), small_options());
  REQUIRE(j);
  CHECK(j->recovery().last_lsn == 4);
  CHECK(j->recovery().records == 4);
  const auto more = flushkit::test::append_all(*j, io, payloads(70, 1, 24));
  CHECK(more.at(0).lsn == 5);
  j->close_and_wait();
  const auto ids = read_dir(dir.path());
  REQUIRE(ids.size() == 5);
  CHECK(ids[4].second == 70); // records 6..10 after the corrupt one are gone
}

TEST_CASE("journal: a store that is not a journal is refused") {
  flushkit::test::temp_dir dir("flushkit-journal");
  asio::io_context io;
  {
    std::ofstream f(segment_path(dir, 0), std::ios::binary);
    const std::vector<char> junk(small_segment, 'j');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  CHECK(journal::open(io, dir.path().c_str(), small_options()).error() == errc::io_error);
}

TEST_CASE("journal: a failed sync fails its batch and every later append: read-only until reopened") {
  flushkit::testing::volatile_segment_store store({.segment_bytes = small_segment});
  asio::io_context io;
  {
    auto j = flushkit::basic_journal<flushkit::testing::volatile_segment_store&>::open(io, store);
    REQUIRE(j);
    const auto ok = flushkit::test::append_all(*j, io, payloads(1, 3, 24));
    CHECK(ok.back().lsn == 3);
    store.cut_power_after(0); // the next write fails, and every operation after it
    const auto failed = flushkit::test::append_all(*j, io, payloads(4, 2, 24));
    REQUIRE(failed.size() == 2);
    CHECK(failed[0].ec == errc::io_error);
    CHECK(failed[0].lsn == 0);
    CHECK(j->error() == errc::io_error);
    store.reboot(flushkit::testing::crash_policy::keep_all()); // the medium works again...
    const auto later = flushkit::test::append_all(*j, io, payloads(6, 1, 24));
    CHECK(later.at(0).ec == errc::io_error); // ...but the journal stays read-only
    CHECK(failed[1].ec == errc::io_error); // failed with its batch, or refused by the read-only journal
    CHECK(j->stats().failed_appends >= 1);
    CHECK(j->durable_lsn() == 3);
  }
  auto j = flushkit::basic_journal<flushkit::testing::volatile_segment_store&>::open(io, store);
  REQUIRE(j);
  CHECK(j->recovery().last_lsn >= 3); // reopening recovers; the failed appends may or may not be there
  CHECK_FALSE(j->error());
}

namespace {

/// A store whose `sync` waits at a gate the test opens: holds a batch in
/// flight so that the next appends fill the other buffer and then wait.
struct gated_store {
  flushkit::testing::volatile_segment_store inner{{.segment_bytes = 64 * 1024}};
  std::mutex m;
  std::condition_variable cv;
  bool closed = false;
  int syncs_waiting = 0;

  std::uint64_t segment_bytes() const noexcept { return inner.segment_bytes(); }
  flushkit::status list(std::vector<std::uint64_t>& out) { return inner.list(out); }
  flushkit::status create(std::uint64_t i) { return inner.create(i); }
  flushkit::status remove(std::uint64_t i) { return inner.remove(i); }
  flushkit::status write(std::uint64_t i, std::uint64_t o, std::span<const std::byte> b) { return inner.write(i, o, b); }
  flushkit::status read(std::uint64_t i, std::uint64_t o, std::span<std::byte> b) { return inner.read(i, o, b); }
  flushkit::status sync(std::uint64_t i) {
    std::unique_lock lock(m);
    ++syncs_waiting;
    cv.notify_all();
    cv.wait(lock, [&] { return !closed; });
    --syncs_waiting;
    return inner.sync(i);
  }
  void close_gate() {
    std::lock_guard lock(m);
    closed = true;
  }
  void wait_for_sync() {
    std::unique_lock lock(m);
    cv.wait(lock, [&] { return syncs_waiting > 0; });
  }
  void open_gate() {
    std::lock_guard lock(m);
    closed = false;
    cv.notify_all();
  }
};

} // namespace

TEST_CASE("journal: cancelling an append that waits for buffer space withdraws it; a framed one completes") {
  gated_store store;
  asio::io_context io;
  journal_options o;
  o.buffer_bytes = 1; // raised to one record of max_record_bytes
  o.max_record_bytes = 1000;
  auto j = flushkit::basic_journal<gated_store&>::open(io, store, o);
  REQUIRE(j);
  const auto p = make_payload(1, 1000);
  std::vector<std::pair<boost::system::error_code, lsn_t>> out(4);
  store.close_gate();
  j->async_append(asio::buffer(p), [&](auto ec, lsn_t l) { out[0] = {ec, l}; });
  store.wait_for_sync(); // the first record's batch is in flight
  asio::cancellation_signal cancel_framed, cancel_waiting;
  j->async_append(asio::buffer(p), asio::bind_cancellation_slot(cancel_framed.slot(), [&](auto ec, lsn_t l) {
                    out[1] = {ec, l};
                  }));
  j->async_append(asio::buffer(p), asio::bind_cancellation_slot(cancel_waiting.slot(), [&](auto ec, lsn_t l) {
                    out[2] = {ec, l};
                  }));
  CHECK(j->stats().buffer_waits == 1);
  cancel_framed.emit(asio::cancellation_type::terminal); // framed into the buffer: too late
  cancel_waiting.emit(asio::cancellation_type::terminal);
  io.restart();
  io.poll();
  CHECK(out[2].first == asio::error::operation_aborted);
  CHECK(out[2].second == 0);
  CHECK(j->stats().withdrawn == 1);
  store.open_gate();
  j->async_append(asio::buffer(p), [&](auto ec, lsn_t l) { out[3] = {ec, l}; });
  io.restart();
  io.run();
  CHECK_FALSE(out[0].first);
  CHECK(out[0].second == 1);
  CHECK_FALSE(out[1].first);
  CHECK(out[1].second == 2);
  CHECK_FALSE(out[3].first);
  CHECK(out[3].second == 3); // the withdrawn append used no LSN
}

TEST_CASE("journal: tokens - coroutine, future, as_tuple, default deferred; handlers run on their executor") {
  flushkit::test::temp_dir dir("flushkit-journal");
  asio::io_context io;
  auto j = journal::open(io, dir.path().c_str(), small_options());
  REQUIRE(j);
  const auto p = make_payload(1, 32);
  std::vector<lsn_t> got;
  bool inside_initiation = true;
  j->async_append(asio::buffer(p), [&](boost::system::error_code ec, lsn_t lsn) {
    CHECK_FALSE(ec);
    CHECK_FALSE(inside_initiation);
    CHECK(io.get_executor().running_in_this_thread());
    got.push_back(lsn);
  });
  inside_initiation = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        got.push_back(co_await j->async_append(asio::buffer(p), asio::use_awaitable));
        got.push_back(co_await j->async_append(asio::buffer(p))); // default token: deferred
        auto [ec, lsn] = co_await j->async_append(asio::buffer(p), asio::as_tuple(asio::use_awaitable));
        CHECK_FALSE(ec);
        got.push_back(lsn);
      },
      asio::detached);
  io.run();
  CHECK(got == std::vector<lsn_t>{1, 2, 3, 4});
  auto f = j->async_append(asio::buffer(p), asio::use_future); // completes without `io` running
  CHECK(f.get() == 5);
  j->close_and_wait();
  auto g = j->async_append(asio::buffer(p), asio::use_future);
  io.restart();
  io.run();
  CHECK_THROWS_AS(g.get(), boost::system::system_error);
}

TEST_CASE("journal: appenders on several threads: every completion implies its LSN and all below are durable") {
  flushkit::test::temp_dir dir("flushkit-journal");
  asio::io_context io;
  auto j = journal::open(io, dir.path().c_str(), {.segment_bytes = 64 * 1024});
  REQUIRE(j);
  constexpr int threads = 4, per_coroutine = 200, coroutines = 8;
  std::atomic<int> violations{0}, errors{0};
  std::mutex m;
  std::vector<std::pair<lsn_t, std::uint64_t>> acked;
  for (int c = 0; c < coroutines; ++c)
    asio::co_spawn(
        io,
        [&, c]() -> asio::awaitable<void> {
          for (int i = 0; i < per_coroutine; ++i) {
            const std::uint64_t id = static_cast<std::uint64_t>(c) * 100000 + static_cast<std::uint64_t>(i);
            const auto p = make_payload(id, 24 + static_cast<std::size_t>(i % 50));
            auto [ec, lsn] = co_await j->async_append(asio::buffer(p), asio::as_tuple(asio::use_awaitable));
            if (ec) ++errors;
            if (j->durable_lsn() < lsn) ++violations;
            std::lock_guard lock(m);
            acked.emplace_back(lsn, id);
          }
        },
        asio::detached);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back([&] { io.run(); });
  for (auto& t : pool) t.join();
  CHECK(errors == 0);
  CHECK(violations == 0);
  CHECK(j->stats().average_batch() >= 1.0);
  j->close_and_wait();
  std::sort(acked.begin(), acked.end());
  const auto ids = read_dir(dir.path(), 64 * 1024);
  CHECK(ids == acked); // every acknowledged LSN, with its payload; LSNs 1..N without a gap
  CHECK(acked.back().first == static_cast<lsn_t>(coroutines * per_coroutine));
}

namespace {

// Runs `body` in a forked child and returns its exit status (0: every check passed).
template <class Body> int in_child(Body body) {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(body());
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
}

} // namespace

TEST_CASE("journal: no_space when no segment can be created: the records before are acknowledged, the LSNs reused") {
  // A full medium: the store refuses a third segment (a real full disk or
  // quota gives the same `no_space` from `segment_directory::create`, see
  // the test below for the file size limit).
  flushkit::testing::volatile_segment_store store({.segment_bytes = 16 * 1024, .max_segments = 2});
  asio::io_context io;
  auto j = flushkit::basic_journal<flushkit::testing::volatile_segment_store&>::open(io, store);
  REQUIRE(j);
  static_cast<void>(flushkit::test::append_all(*j, io, payloads(1, 1, 8)));
  // 16352 bytes of records per segment: 4 records of 4016 after the first in segment 0, 4 in segment 1.
  const auto out = flushkit::test::append_all(*j, io, payloads(10, 12, 4000));
  int acked = 0, no_space = 0;
  for (const auto& r : out) acked += !r.ec ? 1 : 0, no_space += r.ec == errc::no_space ? 1 : 0;
  CHECK(acked == 8);
  CHECK(no_space == 4);
  CHECK(j->durable_lsn() == 9);
  CHECK_FALSE(j->error()); // not read-only: nothing unacknowledged was written
  store.set_max_segments(0);
  const auto retry = flushkit::test::append_all(*j, io, payloads(30, 1, 4000));
  CHECK_FALSE(retry.at(0).ec);
  CHECK(retry.at(0).lsn == 10); // the LSN of the first refused record
  j->close_and_wait();
  const auto ids = flushkit::test::read_ids(store);
  REQUIRE(ids.size() == 10);
  CHECK(ids.back() == std::pair<lsn_t, std::uint64_t>{10, 30});
}

TEST_CASE("journal: a full tmpfs: no_space at rotation, acknowledged records kept, writable again after release") {
  if (::geteuid() != 0) {
    MESSAGE("skipped: mounting a size-limited tmpfs needs root");
    return;
  }
  flushkit::test::temp_dir dir("flushkit-journal-tmpfs");
  // In a child with its own mount namespace, so the mount goes away with it.
  const int rc = in_child([&]() -> int {
    if (::unshare(CLONE_NEWNS) != 0) return 90;
    ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr);
    if (::mount("tmpfs", dir.path().c_str(), "tmpfs", 0, "size=40k") != 0) return 91; // 2.5 segments
    asio::io_context io;
    journal_options o;
    o.segment_bytes = 16 * 1024;
    auto j = journal::open(io, dir.path().c_str(), o);
    if (!j) return 1;
    static_cast<void>(flushkit::test::append_all(*j, io, payloads(1, 1, 8)));
    const auto out = flushkit::test::append_all(*j, io, payloads(10, 12, 4000));
    int acked = 0, no_space = 0;
    for (const auto& r : out) acked += !r.ec ? 1 : 0, no_space += r.ec == errc::no_space ? 1 : 0;
    if (acked != 8 || no_space != 4) return 2; // segments 0 and 1 full, segment 2 does not fit
    if (j->error()) return 3;                  // not read-only
    j->release(6);                             // checkpoint: segment 0 (LSNs 1..5) goes, space comes back
    const auto retry = flushkit::test::append_all(*j, io, payloads(30, 1, 4000));
    if (retry.at(0).ec || retry.at(0).lsn != 10) return 4;
    j->close_and_wait();
    const auto ids = flushkit::test::read_ids(open_dir(dir.path(), 16 * 1024));
    if (ids.size() != 5 || ids.front().first != 6 || ids.back() != std::pair<lsn_t, std::uint64_t>{10, 30}) return 5;
    return 0;
  });
  if (rc == 90 || rc == 91) {
    MESSAGE("skipped: no mount namespace or tmpfs here (" << rc << ")");
    return;
  }
  CHECK(rc == 0);
}

TEST_CASE("journal: a new journal in a directory over the file size limit fails to open with no_space") {
  flushkit::test::temp_dir dir("flushkit-journal");
  const int rc = in_child([&]() -> int {
    ::signal(SIGXFSZ, SIG_IGN);
    rlimit lim{};
    ::getrlimit(RLIMIT_FSIZE, &lim);
    const rlimit small{8 * 1024, lim.rlim_max};
    if (::setrlimit(RLIMIT_FSIZE, &small) != 0) return 2;
    asio::io_context io;
    journal_options o = small_options();
    o.segment_bytes = 16 * 1024;
    auto j = journal::open(io, dir.path().c_str(), o);
    return !j && j.error() == errc::no_space ? 0 : 1;
  });
  CHECK(rc == 0);
  CHECK(segment_files(dir.path()) == 0); // nothing left behind
}

TEST_CASE("journal: kill -9 of an appending process loses no acknowledged record") {
  flushkit::test::temp_dir dir("flushkit-journal");
  int pipe_fds[2];
  REQUIRE(::pipe(pipe_fds) == 0);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(pipe_fds[0]);
    asio::io_context io;
    auto j = journal::open(io, dir.path().c_str(), {.segment_bytes = 64 * 1024});
    if (!j) ::_exit(1);
    for (int c = 0; c < 16; ++c)
      asio::co_spawn(
          io,
          [&, c]() -> asio::awaitable<void> {
            for (std::uint64_t i = 0;; ++i) {
              const std::uint64_t id = static_cast<std::uint64_t>(c) << 32 | i;
              const auto p = make_payload(id, 100);
              const lsn_t lsn = co_await j->async_append(asio::buffer(p), asio::use_awaitable);
              const std::uint64_t ack[2] = {lsn, id};
              if (::write(pipe_fds[1], ack, sizeof ack) != sizeof ack) ::_exit(2);
            }
          },
          asio::detached);
    io.run();
    ::_exit(3);
  }
  ::close(pipe_fds[1]);
  std::vector<std::pair<lsn_t, std::uint64_t>> acked;
  std::uint64_t ack[2];
  while (acked.size() < 3000 && ::read(pipe_fds[0], ack, sizeof ack) == sizeof ack) acked.emplace_back(ack[0], ack[1]);
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  while (::read(pipe_fds[0], ack, sizeof ack) == sizeof ack) acked.emplace_back(ack[0], ack[1]);
  ::close(pipe_fds[0]);
  REQUIRE(acked.size() >= 3000);
  asio::io_context io;
  auto j = journal::open(io, dir.path().c_str(), {.segment_bytes = 64 * 1024});
  REQUIRE(j);
  j->close_and_wait();
  const auto ids = read_dir(dir.path(), 64 * 1024);
  std::map<lsn_t, std::uint64_t> recovered(ids.begin(), ids.end());
  std::size_t missing = 0;
  for (const auto& [lsn, id] : acked) missing += recovered.count(lsn) == 1 && recovered[lsn] == id ? 0u : 1u;
  CHECK(missing == 0);
  for (std::size_t i = 0; i < ids.size(); ++i) CHECK(ids[i].first == i + 1); // contiguous
}

TEST_CASE("journal: review regressions - default record limit, a deferred append outliving a move, two closers") {
  flushkit::test::temp_dir dir("flushkit-journal");
  asio::io_context io;
  journal_options o;
  o.segment_bytes = 8u << 20;
  auto opened = journal::open(io, dir.path().c_str(), o);
  REQUIRE(opened);
  // The default limit follows the staging buffer, not the segment: no 8 MiB buffers behind a 1 MiB option.
  CHECK(opened->max_record_bytes() == o.buffer_bytes - 16);
  const auto p = make_payload(5, 32);
  auto deferred_append = opened->async_append(asio::buffer(p)); // default token: not started yet
  journal moved = std::move(opened).value();                     // the handle moves; the operation must not care
  lsn_t got = 0;
  std::move(deferred_append)([&](boost::system::error_code ec, lsn_t lsn) {
    CHECK_FALSE(ec);
    got = lsn;
  });
  io.run();
  CHECK(got == 1);
  std::thread other([&] { moved.close_and_wait(); });
  moved.close_and_wait();
  other.join();
  CHECK(moved.stats().appends == 1);
}
