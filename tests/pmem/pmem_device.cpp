#include <flushkit/pmem/pmem_device.hpp>

#include <flushkit/coalesce/coalescer.hpp>
#include <flushkit/core/buffers.hpp>
#include <flushkit/pmem/backing.hpp>
#include <flushkit/pmem/cacheline_provider.hpp>
#include <flushkit/pmem/file_sync_provider.hpp>
#include <flushkit/pmem/hint_provider.hpp>
#include <flushkit/pmem/volatile_provider.hpp>
#include <flushkit/testing/fault_injector.hpp>

#include "support/pmem_support.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <doctest/doctest.h>

#include <array>
#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

namespace fk = flushkit;
namespace pm = flushkit::pmem;
using fk::errc;
using fk::req_flags;
using fk::req_op;
using fk::test::test_medium;

namespace {

constexpr std::size_t medium_size = 64 * 1024;
constexpr auto pf = req_flags::preflush;
constexpr auto fua = req_flags::fua;

using sync_device = pm::pmem_device<fk::region<fk::test::sequenced_sync_provider&>>;
using async_device = pm::pmem_device<fk::region<fk::test::sequenced_async_provider&>>;

std::vector<std::byte> pattern(std::size_t n, unsigned seed) {
  std::vector<std::byte> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>((i * 7 + seed) & 0xff);
  return v;
}

fk::status code(errc e) { return make_error_code(e); }

// Submits a request synchronously (sync providers complete inside submit).
template <class Device>
fk::status run(Device& dev, req_op op, std::uint64_t off, std::span<const fk::segment> segs, req_flags f) {
  fk::request req(op, off, segs, f);
  dev.submit(req);
  REQUIRE(req.completed());
  return req.result();
}

fk::segment seg_of(std::vector<std::byte>& v) { return {v.data(), v.size()}; }

// The medium equals `before` except [off, off + data.size()) == data.
template <class Medium>
void check_medium(const Medium& m, const std::vector<std::byte>& before, std::uint64_t off,
                  const std::vector<std::byte>& data) {
  std::vector<std::byte> expect = before;
  std::memcpy(expect.data() + off, data.data(), data.size());
  const std::vector<std::byte> now = m.medium_now();
  REQUIRE(now.size() == expect.size());
  CHECK(now == expect);
}

struct counting_clear {
  std::int64_t result = -1; // -1: clear everything
  int calls = 0;
  static std::int64_t fn(void* ctx, std::uint64_t, std::uint64_t len) {
    auto* self = static_cast<counting_clear*>(ctx);
    ++self->calls;
    return self->result == -1 ? static_cast<std::int64_t>(len) : self->result;
  }
};

#define FK_BACKINGS fk::test::anonymous_kind, fk::test::memfd_kind, fk::test::file_kind

} // namespace

TEST_SUITE("pmem/pmem_device") {

TEST_CASE_TEMPLATE("scenario 1: failed PREFLUSH leaves the medium unchanged and skips FUA", K, FK_BACKINGS) {
  boost::asio::io_context io; // the I/O objects' executor (only submit() is used here)
  test_medium<K::value> m(medium_size);
  REQUIRE(m.ok());
  fk::test::sequenced_sync_provider p;
  p.script.then(code(errc::io_error));
  sync_device dev(io, m.bytes(), {}, p);
  const auto before = m.medium_now();
  auto data = pattern(4096, 1);
  const fk::segment s = seg_of(data);
  CHECK(run(dev, req_op::write, 8192, {&s, 1}, pf | fua) == errc::io_error);
  CHECK(p.script.flushes() == 1);
  CHECK(m.medium_now() == before);
}

TEST_CASE_TEMPLATE("scenario 2: FUA failure fails the request but the data is on the medium", K, FK_BACKINGS) {
  boost::asio::io_context io; // the I/O objects' executor (only submit() is used here)
  test_medium<K::value> m(medium_size);
  REQUIRE(m.ok());
  fk::test::sequenced_sync_provider p;
  p.script.then({});
  p.script.then(code(errc::timeout)); // any provider error becomes io_error
  sync_device dev(io, m.bytes(), {}, p);
  const auto before = m.medium_now();
  auto data = pattern(1000, 2);
  const fk::segment s = seg_of(data);
  CHECK(run(dev, req_op::write, 100, {&s, 1}, pf | fua) == errc::io_error);
  CHECK(p.script.flushes() == 2);
  check_medium(m, before, 100, data);
}

TEST_CASE("scenario 3: a successful FUA never masks a failed PREFLUSH (sync and async providers)") {
  test_medium<pm::backing_kind::anonymous> m(medium_size);
  REQUIRE(m.ok());
  auto data = pattern(512, 3);
  const fk::segment s = seg_of(data);
  const auto before = m.medium_now();
  {
    boost::asio::io_context io;
    fk::test::sequenced_sync_provider p;
    p.script.then(code(errc::io_error));
    p.script.then({});
    sync_device dev(io, m.bytes(), {}, p);
    CHECK(run(dev, req_op::write, 0, {&s, 1}, pf | fua) == errc::io_error);
    CHECK(p.script.flushes() == 1);
  }
  {
    boost::asio::io_context io;
    fk::test::sequenced_async_provider p(io);
    p.script.then(code(errc::io_error));
    p.script.then({});
    async_device dev(io, m.bytes(), {}, p);
    fk::request req(req_op::write, 0, {&s, 1}, pf | fua);
    dev.submit(req);
    CHECK_FALSE(req.completed());
    io.run();
    REQUIRE(req.completed());
    CHECK(req.result() == errc::io_error);
    CHECK(p.script.flushes() == 1);
  }
  CHECK(m.medium_now() == before);
}

TEST_CASE_TEMPLATE("scenario 4: a write over a badblock clears poison then writes and notifies", K, FK_BACKINGS) {
  boost::asio::io_context io; // the I/O objects' executor (only submit() is used here)
  test_medium<K::value> m(medium_size);
  REQUIRE(m.ok());
  fk::test::sequenced_sync_provider p;
  sync_device dev(io, m.bytes(), {}, p);
  counting_clear clear;
  dev.set_clear_poison(&counting_clear::fn, &clear);
  REQUIRE_FALSE(dev.bad_blocks().add(4, 2)); // bytes 2048..3071
  REQUIRE_FALSE(dev.bad_blocks().add(40, 1)); // elsewhere, untouched
  struct seen_t {
    std::uint64_t first = 0, count = 0;
  } seen;
  dev.bad_blocks().set_notify(
      [](void* ctx, std::uint64_t first, std::uint64_t count) { *static_cast<seen_t*>(ctx) = {first, count}; }, &seen);
  const auto before = m.medium_now();
  auto data = pattern(1024, 4);
  const fk::segment s = seg_of(data);
  CHECK(run(dev, req_op::write, 2048, {&s, 1}, fua) == fk::status{});
  check_medium(m, before, 2048, data);
  CHECK(clear.calls == 1);
  CHECK(dev.bad_blocks().bad_sectors() == 1);
  CHECK_FALSE(dev.bad_blocks().overlaps(4, 2));
  CHECK(dev.bad_blocks().notifications() == 1);
  CHECK(seen.first == 4);
  CHECK(seen.count == 2);
}

TEST_CASE_TEMPLATE("scenario 5: partial or failed poison clear fails the write without writing", K, FK_BACKINGS) {
  boost::asio::io_context io; // the I/O objects' executor (only submit() is used here)
  test_medium<K::value> m(medium_size);
  REQUIRE(m.ok());
  fk::test::sequenced_sync_provider p;
  sync_device dev(io, m.bytes(), {}, p);
  counting_clear clear;
  dev.set_clear_poison(&counting_clear::fn, &clear);
  REQUIRE_FALSE(dev.bad_blocks().add(8, 2)); // bytes 4096..5119
  const auto before = m.medium_now();
  auto data = pattern(1024, 5);
  const fk::segment s = seg_of(data);

  SUBCASE("partial clear removes only the cleared sector") {
    clear.result = 512;
    CHECK(run(dev, req_op::write, 4096, {&s, 1}, fua) == errc::io_error);
    CHECK(dev.bad_blocks().bad_sectors() == 1);
    CHECK_FALSE(dev.bad_blocks().overlaps(8, 1));
    CHECK(dev.bad_blocks().overlaps(9, 1));
    CHECK(dev.bad_blocks().notifications() == 1);
  }
  SUBCASE("negative clear removes nothing") {
    clear.result = -5;
    CHECK(run(dev, req_op::write, 4096, {&s, 1}, fua) == errc::io_error);
    CHECK(dev.bad_blocks().bad_sectors() == 2);
    CHECK(dev.bad_blocks().notifications() == 0);
  }
  CHECK(m.medium_now() == before);
  CHECK(p.script.flushes() == 0); // FUA skipped after the data error
}

TEST_CASE_TEMPLATE("scenario 6: a read overlapping a badblock fails and clears nothing", K, FK_BACKINGS) {
  boost::asio::io_context io; // the I/O objects' executor (only submit() is used here)
  test_medium<K::value> m(medium_size);
  REQUIRE(m.ok());
  std::memset(m.bytes().data(), 0x5a, medium_size);
  fk::test::sequenced_sync_provider p;
  sync_device dev(io, m.bytes(), {}, p);
  counting_clear clear;
  dev.set_clear_poison(&counting_clear::fn, &clear);
  REQUIRE_FALSE(dev.bad_blocks().add(3, 1)); // bytes 1536..2047
  std::vector<std::byte> buf(1024, std::byte{0xee});
  const fk::segment s = seg_of(buf);
  CHECK(run(dev, req_op::read, 1024, {&s, 1}, req_flags::none) == errc::io_error);
  CHECK(buf == std::vector<std::byte>(1024, std::byte{0xee})); // nothing copied
  CHECK(clear.calls == 0);
  CHECK(dev.bad_blocks().bad_sectors() == 1);
  CHECK(dev.bad_blocks().notifications() == 0);
  // A read next to the bad sector works.
  CHECK(run(dev, req_op::read, 0, {&s, 1}, req_flags::none) == fk::status{});
  CHECK(buf == std::vector<std::byte>(1024, std::byte{0x5a}));
}

TEST_CASE_TEMPLATE("scenario 7: a machine-check copy failure on read gives io_error", K, FK_BACKINGS) {
  boost::asio::io_context io; // the I/O objects' executor (only submit() is used here)
  test_medium<K::value> m(medium_size);
  REQUIRE(m.ok());
  fk::test::sequenced_sync_provider p;
  sync_device dev(io, m.bytes(), {}, p);
  // Model: the copy stops 100 bytes short, as copy_mc_to_kernel does on a poisoned line.
  dev.set_copy_mc(
      [](void*, void* dst, const void* src, std::size_t len) -> std::size_t {
        std::memcpy(dst, src, len - 100);
        return 100;
      },
      nullptr);
  std::vector<std::byte> buf(512);
  const fk::segment s = seg_of(buf);
  CHECK(run(dev, req_op::read, 0, {&s, 1}, req_flags::none) == errc::io_error);
  CHECK(dev.bad_blocks().empty()); // nothing learnt or cleared
}

TEST_CASE_TEMPLATE("scenario 8: a failing segment stops the loop and skips FUA", K, FK_BACKINGS) {
  boost::asio::io_context io; // the I/O objects' executor (only submit() is used here)
  test_medium<K::value> m(medium_size);
  REQUIRE(m.ok());
  fk::test::sequenced_sync_provider p;
  sync_device dev(io, m.bytes(), {}, p);
  const auto before = m.medium_now();
  auto a = pattern(512, 8), b = pattern(512, 9), c = pattern(512, 10);
  const std::array<fk::segment, 3> segs{seg_of(a), seg_of(b), seg_of(c)};

  SUBCASE("segment 1 is poisoned and cannot be cleared") {
    counting_clear clear;
    clear.result = 0;
    dev.set_clear_poison(&counting_clear::fn, &clear);
    REQUIRE_FALSE(dev.bad_blocks().add(1, 1));
    CHECK(run(dev, req_op::write, 0, segs, fua) == errc::io_error);
    check_medium(m, before, 0, a); // segment 0 written, 1 and 2 not
  }
  SUBCASE("segment 1 runs past the end of the medium") {
    CHECK(run(dev, req_op::write, medium_size - 1000, segs, fua) == errc::invalid_request);
    check_medium(m, before, medium_size - 1000, a);
  }
  CHECK(p.script.flushes() == 0);
}

TEST_CASE_TEMPLATE("scenario 9: an empty PREFLUSH issues exactly one provider flush", K, FK_BACKINGS) {
  boost::asio::io_context io; // the I/O objects' executor (only submit() is used here)
  test_medium<K::value> m(medium_size);
  REQUIRE(m.ok());
  fk::test::sequenced_sync_provider p;
  sync_device dev(io, m.bytes(), {}, p);
  const auto before = m.medium_now();
  CHECK(run(dev, req_op::flush, 0, {}, pf) == fk::status{});
  CHECK(p.script.flushes() == 1);
  CHECK(run(dev, req_op::write, 0, {}, pf) == fk::status{}); // an empty write with PREFLUSH is the same
  CHECK(p.script.flushes() == 2);
  p.script.then({});
  p.script.then({});
  p.script.then(code(errc::io_error));
  CHECK(run(dev, req_op::flush, 0, {}, pf) == errc::io_error);
  CHECK(m.medium_now() == before);
}

TEST_CASE("scenario 10: FUA with an async provider completes exactly once after the flush") {
  test_medium<pm::backing_kind::memfd> m(medium_size);
  REQUIRE(m.ok());
  boost::asio::io_context io;
  fk::test::sequenced_async_provider p(io);
  async_device dev(io, m.bytes(), {}, p);
  auto data = pattern(512, 10);
  const fk::segment s = seg_of(data);
  struct counter_t {
    int n = 0;
    fk::status st;
  } seen;
  for (fk::status provider_st : {fk::status{}, code(errc::io_error)}) {
    seen = {};
    p.script.then(provider_st); // the PREFLUSH
    p.script.then(provider_st); // the FUA (reached only on success)
    p.script.probe(m.bytes().data());
    const std::size_t before_flushes = p.script.flushes();
    fk::request req(req_op::write, 0, {&s, 1}, pf | fua);
    req.on_complete(
        [](void* ctx, fk::request&, const fk::status& st) {
          auto* c = static_cast<counter_t*>(ctx);
          ++c->n;
          c->st = st;
        },
        &seen);
    dev.submit(req);
    CHECK(seen.n == 0); // the submitter returned before completion
    io.run();
    io.restart();
    CHECK(seen.n == 1);
    CHECK(seen.st == (provider_st ? code(errc::io_error) : fk::status{}));
    CHECK(p.script.flushes() - before_flushes == (provider_st ? 1u : 2u));
  }
  CHECK(p.script.seen(0) == std::byte{0});      // PREFLUSH ran before the data step
  CHECK(p.script.seen(1) == data[0]);           // FUA ran after it
}

TEST_CASE("scenario 11: an async provider without a work item gives no_memory") {
  test_medium<pm::backing_kind::anonymous> m(medium_size);
  REQUIRE(m.ok());
  boost::asio::io_context io;
  fk::test::sequenced_async_provider p(io);
  p.fail_allocation = true;
  async_device dev(io, m.bytes(), {}, p);
  auto data = pattern(512, 11);
  const fk::segment s = seg_of(data);
  const auto before = m.medium_now();
  fk::request pre(req_op::write, 0, {&s, 1}, pf);
  dev.submit(pre);
  REQUIRE(pre.completed());
  CHECK(pre.result() == errc::no_memory);
  CHECK(m.medium_now() == before);
  fk::request post(req_op::write, 0, {&s, 1}, fua);
  dev.submit(post);
  REQUIRE(post.completed());
  CHECK(post.result() == errc::no_memory); // not io_error, not retried
  check_medium(m, before, 0, data);
  CHECK(io.poll() == 0);
}

TEST_CASE_TEMPLATE("scenario 12: no write cache strips PREFLUSH and FUA", K, FK_BACKINGS) {
  boost::asio::io_context io; // the I/O objects' executor (only submit() is used here)
  test_medium<K::value> m(medium_size);
  REQUIRE(m.ok());
  fk::test::sequenced_sync_provider p;
  p.script.then(code(errc::io_error)); // would fail if it were called
  // Over a file, stripping flushes acknowledges without syncing: only the
  // explicit opt-out allows it (the refusal itself is tested below).
  sync_device dev(io, m.bytes(), {.write_cache = false, .unsafe_acknowledge_volatile = true}, p);
  const auto before = m.medium_now();
  CHECK(run(dev, req_op::flush, 0, {}, pf) == fk::status{});
  CHECK(run(dev, req_op::write, 0, {}, pf | fua) == fk::status{});
  auto data = pattern(700, 12);
  const fk::segment s = seg_of(data);
  CHECK(run(dev, req_op::write, 300, {&s, 1}, pf | fua) == fk::status{});
  check_medium(m, before, 300, data);
  CHECK(p.script.flushes() == 0);
}

TEST_CASE_TEMPLATE("scenario 13: PREFLUSH or FUA on a read is invalid_request", K, FK_BACKINGS) {
  boost::asio::io_context io; // the I/O objects' executor (only submit() is used here)
  test_medium<K::value> m(medium_size);
  REQUIRE(m.ok());
  fk::test::sequenced_sync_provider p;
  sync_device dev(io, m.bytes(), {}, p);
  std::vector<std::byte> buf(512, std::byte{0x11});
  const fk::segment s = seg_of(buf);
  for (req_flags f : {pf, fua, pf | fua}) CHECK(run(dev, req_op::read, 0, {&s, 1}, f) == errc::invalid_request);
  CHECK(buf == std::vector<std::byte>(512, std::byte{0x11}));
  CHECK(p.script.flushes() == 0);
}

TEST_CASE("scenario 14: remove performs one final flush and ignores its error") {
  boost::asio::io_context io; // the I/O objects' executor (only submit() is used here)
  test_medium<pm::backing_kind::memfd> m(medium_size);
  REQUIRE(m.ok());
  fk::test::sequenced_sync_provider p;
  p.script.then(code(errc::io_error));
  {
    sync_device dev(io, m.bytes(), {}, p);
    dev.remove();
    CHECK(dev.removed());
    CHECK(p.script.flushes() == 1);
    CHECK(run(dev, req_op::flush, 0, {}, pf) == errc::shutting_down);
    dev.remove();
    CHECK(p.script.flushes() == 1);
  }
  CHECK(p.script.flushes() == 1); // the destructor does not flush again
  {
    sync_device dev(io, m.bytes(), {}, p);
  }
  CHECK(p.script.flushes() == 2); // the destructor runs remove()
}

TEST_CASE("scenario 15: the hint provider writes each unique DIMM hint once and always succeeds") {
  boost::asio::io_context io; // the I/O objects' executor (only submit() is used here)
  std::array<std::uint64_t, 3> words{};
  std::array<std::uint64_t*, 5> dimms{&words[0], &words[1], &words[0], nullptr, &words[2]};
  test_medium<pm::backing_kind::anonymous> m(medium_size);
  REQUIRE(m.ok());
  pm::pmem_device<fk::region<pm::hint_provider>> dev(io, m.bytes(), {}, std::in_place, dimms);
  CHECK(dev.region().provider().unique_hints() == 3);
  auto data = pattern(64, 15);
  const fk::segment s = seg_of(data);
  CHECK(run(dev, req_op::write, 0, {&s, 1}, pf | fua) == fk::status{});
  CHECK(dev.region().provider().hint_writes() == 6); // two flushes x three unique hints
  CHECK(words == std::array<std::uint64_t, 3>{1, 1, 1});

  pm::pmem_device<fk::region<pm::hint_provider>> none(io, m.bytes(), {}, std::in_place,
                                                      std::span<std::uint64_t* const>{});
  CHECK(run(none, req_op::flush, 0, {}, pf) == fk::status{});
  CHECK(none.region().provider().hint_writes() == 0);
}

TEST_CASE("flush counts: PREFLUSH+data+FUA is two, dataless PREFLUSH is one, no cache is zero") {
  boost::asio::io_context io; // the I/O objects' executor (only submit() is used here)
  test_medium<pm::backing_kind::anonymous> m(medium_size);
  REQUIRE(m.ok());
  auto data = pattern(256, 16);
  const fk::segment s = seg_of(data);
  fk::test::sequenced_sync_provider p;
  {
    sync_device dev(io, m.bytes(), {}, p);
    p.script.probe(m.bytes().data() + 512);
    CHECK(run(dev, req_op::write, 512, {&s, 1}, pf | fua) == fk::status{});
    CHECK(p.script.flushes() == 2);
    CHECK(p.script.seen(0) == std::byte{0}); // PREFLUSH saw the old byte
    CHECK(p.script.seen(1) == data[0]);      // FUA saw the new one
    CHECK(run(dev, req_op::flush, 0, {}, pf) == fk::status{});
    CHECK(p.script.flushes() == 3);
    CHECK(run(dev, req_op::write, 0, {&s, 1}, req_flags::none) == fk::status{});
    CHECK(p.script.flushes() == 3);
    dev.remove();
  }
  fk::test::sequenced_sync_provider q;
  sync_device nocache(io, m.bytes(), {.write_cache = false}, q);
  CHECK(run(nocache, req_op::write, 0, {&s, 1}, pf | fua) == fk::status{});
  CHECK(run(nocache, req_op::flush, 0, {}, pf) == fk::status{});
  CHECK(q.script.flushes() == 0);
}

TEST_CASE("the cache-line provider writes back only the lines the data step dirtied") {
  boost::asio::io_context io; // the I/O objects' executor (only submit() is used here)
  test_medium<pm::backing_kind::anonymous> m(medium_size);
  REQUIRE(m.ok());
  pm::pmem_device<fk::region<pm::cacheline_provider<>>> dev(io, m.bytes(), {}, std::in_place);
  auto data = pattern(130, 17); // page-aligned medium: bytes 64..193 cover lines 1..3
  const fk::segment s = seg_of(data);
  CHECK(run(dev, req_op::write, 64, {&s, 1}, fua) == fk::status{});
  CHECK(dev.region().provider().lines_written_back() == 3);
  CHECK(run(dev, req_op::flush, 0, {}, pf) == fk::status{});
  CHECK(dev.region().provider().lines_written_back() == 3); // nothing dirty any more
  CHECK(dev.region().provider().flushes() == 2);
}

TEST_CASE_TEMPLATE("async_write async_read and async_flush with use_awaitable", K, FK_BACKINGS) {
  test_medium<K::value> m(medium_size);
  REQUIRE(m.ok());
  boost::asio::io_context io;
  fk::test::sequenced_async_provider p(io);
  async_device dev(io, m.bytes(), {}, p);
  const auto before = m.medium_now();
  auto a = pattern(300, 20), b = pattern(200, 21);
  struct results_t {
    fk::status w, r, f, too_many;
    std::vector<std::byte> back;
    bool done = false;
  } res;
  res.back.resize(500);
  auto body = [](async_device& d, std::vector<std::byte>& x, std::vector<std::byte>& y,
                 results_t& out) -> boost::asio::awaitable<void> {
    const auto tuple_token = boost::asio::as_tuple(boost::asio::use_awaitable);
    const std::array<boost::asio::const_buffer, 2> two{boost::asio::buffer(x), boost::asio::buffer(y)};
    std::tie(out.w) = co_await d.async_write(4096, two, pf | fua, tuple_token);
    std::tie(out.r) = co_await d.async_read(4096, boost::asio::buffer(out.back), tuple_token);
    std::tie(out.f) = co_await d.async_flush(tuple_token);
    // A sequence whose type fixes a length above max_io_buffers does not
    // compile; one whose length only its value knows is invalid_request.
    static_assert(!fk::const_buffers<std::array<boost::asio::const_buffer, fk::max_io_buffers + 1>>);
    const std::vector<boost::asio::const_buffer> many(fk::max_io_buffers + 1);
    std::tie(out.too_many) = co_await d.async_write(0, many, fua, tuple_token);
    out.done = true;
  };
  boost::asio::co_spawn(io, body(dev, a, b, res), boost::asio::detached);
  io.run();
  REQUIRE(res.done);
  CHECK(res.w == fk::status{});
  CHECK(res.r == fk::status{});
  CHECK(res.f == fk::status{});
  CHECK(res.too_many == errc::invalid_request);
  std::vector<std::byte> ab = a;
  ab.insert(ab.end(), b.begin(), b.end());
  CHECK(res.back == ab);
  check_medium(m, before, 4096, ab);
  CHECK(p.script.flushes() == 3); // PREFLUSH + FUA, then the empty flush
}

TEST_CASE("async_write with a callback token and a synchronous provider never completes inline") {
  test_medium<pm::backing_kind::anonymous> m(medium_size);
  REQUIRE(m.ok());
  boost::asio::io_context io;
  fk::test::sequenced_sync_provider p;
  p.script.then(code(errc::io_error));
  sync_device dev(io, m.bytes(), {}, p);
  auto data = pattern(64, 22);
  int calls = 0;
  fk::status got;
  auto handler = [&](fk::status st) {
    ++calls;
    got = st;
  };
  dev.async_write(0, boost::asio::buffer(data), fua, boost::asio::bind_executor(io, handler));
  CHECK(calls == 0);
  io.run();
  CHECK(calls == 1);
  CHECK(got == errc::io_error);
}

TEST_CASE("concurrent FUA writes from threads with an async provider complete exactly once each") {
  constexpr int threads = 3, per_thread = 200;
  test_medium<pm::backing_kind::memfd> m(medium_size);
  REQUIRE(m.ok());
  for (int round = 0; round < 5; ++round) {
    boost::asio::io_context io;
    auto guard = boost::asio::make_work_guard(io);
    fk::test::sequenced_async_provider p(io);
    async_device dev(io, m.bytes(), {}, p);
    std::atomic<int> completions{0}, failures{0};
    std::thread runner([&] { io.run(); });
    std::vector<std::thread> submitters;
    for (int t = 0; t < threads; ++t)
      submitters.emplace_back([&, t] {
        std::array<std::byte, 256> data{};
        data.fill(static_cast<std::byte>(t + round + 1));
        const fk::segment s{data.data(), data.size()};
        for (int i = 0; i < per_thread; ++i) {
          fk::request req(req_op::write, static_cast<std::uint64_t>(t) * 4096 + static_cast<std::uint64_t>(i % 8) * 256,
                          {&s, 1}, pf | fua);
          std::atomic<bool> done{false};
          struct ctx_t {
            std::atomic<int>* completions;
            std::atomic<int>* failures;
            std::atomic<bool>* done;
          } ctx{&completions, &failures, &done};
          req.on_complete(
              [](void* c, fk::request&, const fk::status& st) {
                auto* x = static_cast<ctx_t*>(c);
                if (st) x->failures->fetch_add(1);
                x->completions->fetch_add(1);
                x->done->store(true, std::memory_order_release);
                x->done->notify_one();
              },
              &ctx);
          dev.submit(req);
          done.wait(false, std::memory_order_acquire);
        }
      });
    for (auto& th : submitters) th.join();
    guard.reset();
    runner.join();
    CHECK(completions.load() == threads * per_thread);
    CHECK(failures.load() == 0);
    CHECK(p.script.flushes() == 2u * threads * per_thread);
    for (int t = 0; t < threads; ++t)
      for (std::size_t i = 0; i < 2048; ++i)
        REQUIRE(m.bytes()[static_cast<std::size_t>(t) * 4096 + i] == static_cast<std::byte>(t + round + 1));
  }
}

} // TEST_SUITE

// ---- refusing what cannot be durable (check_durable) ---------------------------

namespace {

/// Submits a FUA write of 64 bytes at 0 and returns its status.
template <class Device> fk::status fua_write(Device& dev) {
  auto data = pattern(64, 40);
  const fk::segment s = seg_of(data);
  return run(dev, req_op::write, 0, {&s, 1}, fua);
}

} // namespace

TEST_CASE_TEMPLATE("the data step is pwrite for a page-cache file backing and a store otherwise", K, FK_BACKINGS) {
  boost::asio::io_context io; // the I/O objects' executor (only submit() is used here)
  test_medium<K::value> m(medium_size);
  REQUIRE(m.ok());
  fk::test::sequenced_sync_provider p;
  sync_device dev(io, m.backing(), {}, p);
  const bool file = m.backing().kind() == pm::backing_kind::file &&
                    m.backing().persistence_mode() == pm::persistence::page_cache;
  CHECK(dev.data_step() == (file ? pm::data_step::pwrite : pm::data_step::store));
  sync_device span_dev(io, m.bytes(), {}, p);
  CHECK(span_dev.data_step() == pm::data_step::store); // a span has no file to write to
  sync_device stores(io, m.backing(), {.data = pm::data_step::store}, p);
  CHECK(stores.data_step() == pm::data_step::store);
}

TEST_CASE("a pwrite data step writes the file at the mapping's offset, and the mapping shows it") {
  boost::asio::io_context io; // the I/O objects' executor (only submit() is used here)
  fk::test::temp_file f;
  const std::size_t page = pm::backing::page_size();
  auto b = pm::backing::file(f.path(), {.size = 4 * page, .offset = 2 * page});
  REQUIRE(b);
  REQUIRE(b->offset() == 2 * page);
  fk::test::sequenced_sync_provider p;
  sync_device dev(io, *b, {}, p);
  REQUIRE(dev.data_step() == pm::data_step::pwrite);
  auto data = pattern(512, 3);
  const fk::segment s = seg_of(data);
  CHECK_FALSE(run(dev, req_op::write, 100, {&s, 1}, fua));
  CHECK(std::memcmp(b->data() + 100, data.data(), data.size()) == 0); // one page cache
  std::vector<std::byte> back(data.size());
  const int fd = ::open(f.path(), O_RDONLY);
  REQUIRE(fd >= 0);
  CHECK(::pread(fd, back.data(), back.size(), static_cast<::off_t>(2 * page + 100)) ==
        static_cast<::ssize_t>(back.size()));
  ::close(fd);
  CHECK(back == data);
  std::vector<std::byte> read(data.size());
  const fk::segment r = seg_of(read);
  CHECK_FALSE(run(dev, req_op::read, 100, {&r, 1}, req_flags::none));
  CHECK(read == data);
}

TEST_CASE("a dirty-tracking provider is told every range written, whichever the data step") {
  /// Records the ranges note_dirty reports; a flush always succeeds.
  struct noting_provider {
    std::vector<std::pair<const void*, std::size_t>> noted;
    void note_dirty(const void* p, std::size_t n) { noted.emplace_back(p, n); }
    fk::status flush() { return {}; }
  };
  static_assert(fk::dirty_tracking<noting_provider>);
  boost::asio::io_context io; // the I/O objects' executor (only submit() is used here)
  for (const pm::data_step step : {pm::data_step::pwrite, pm::data_step::store}) {
    CAPTURE(static_cast<int>(step));
    test_medium<pm::backing_kind::file> m(medium_size);
    REQUIRE(m.ok());
    noting_provider p;
    pm::pmem_device<fk::region<noting_provider&>> dev(io, m.backing(), {.data = step}, p);
    REQUIRE_FALSE(dev.error());
    REQUIRE(dev.data_step() == step);
    auto a = pattern(100, 1), b = pattern(300, 2);
    const fk::segment segs[] = {seg_of(a), seg_of(b)};
    CHECK_FALSE(run(dev, req_op::write, 4096, segs, fua));
    REQUIRE(p.noted.size() == 2);
    CHECK(p.noted[0] == std::pair<const void*, std::size_t>(m.bytes().data() + 4096, 100));
    CHECK(p.noted[1] == std::pair<const void*, std::size_t>(m.bytes().data() + 4196, 300));
  }
}

TEST_CASE("a pwrite data step without a file to write to is refused") {
  boost::asio::io_context io; // the I/O objects' executor (only submit() is used here)
  test_medium<pm::backing_kind::memfd> m(medium_size);
  REQUIRE(m.ok());
  fk::test::sequenced_sync_provider p;
  sync_device over_memfd(io, m.backing(), {.data = pm::data_step::pwrite}, p);
  CHECK(over_memfd.error() == errc::invalid_request);
  REQUIRE(over_memfd.error_reason() != nullptr);
  CHECK(std::string(over_memfd.error_reason()).find("pwrite") != std::string::npos);
  test_medium<pm::backing_kind::file> file(medium_size);
  REQUIRE(file.ok());
  sync_device over_span(io, file.bytes(), {.data = pm::data_step::pwrite}, p);
  CHECK(over_span.error() == errc::invalid_request);
  CHECK(fua_write(over_span) == errc::invalid_request);
}

TEST_CASE("a page-cache file without a write cache is refused: FUA would never sync") {
  boost::asio::io_context io; // the I/O objects' executor (only submit() is used here)
  test_medium<pm::backing_kind::file> m(medium_size);
  REQUIRE(m.ok());
  REQUIRE(m.backing().persistence_mode() == pm::persistence::page_cache);
  pm::file_sync_provider p(m.backing());
  pm::pmem_device<fk::region<pm::file_sync_provider&>> dev(io, m.backing(), {.write_cache = false}, p);
  CHECK(dev.error() == errc::invalid_request);
  REQUIRE(dev.error_reason() != nullptr);
  CHECK(std::string(dev.error_reason()).find("write_cache") != std::string::npos);
  CHECK(fua_write(dev) == errc::invalid_request);
  CHECK(dev.in_flight() == 0);
  CHECK(p.flushes() == 0);

  // Also with a provider that says nothing about itself: the medium decides.
  fk::test::sequenced_sync_provider q;
  sync_device quiet(io, m.backing(), {.write_cache = false}, q);
  CHECK(quiet.error() == errc::invalid_request);
  // And over a plain span, the device asks the kernel what the mapping is.
  sync_device span_dev(io, m.bytes(), {.write_cache = false}, q);
  CHECK(span_dev.error() == errc::invalid_request);
}

TEST_CASE_TEMPLATE("a device over a plain span learns the medium's persistence from the mapping", K, FK_BACKINGS) {
  boost::asio::io_context io; // the I/O objects' executor (only submit() is used here)
  test_medium<K::value> m(medium_size);
  REQUIRE(m.ok());
  CHECK(pm::persistence_of(m.bytes()) == m.backing().persistence_mode());
  pm::pmem_device<fk::region<pm::cacheline_provider<>>> dev(io, m.bytes(), {}, std::in_place);
  CHECK(dev.options().medium == m.backing().persistence_mode());
  const bool refused = m.backing().persistence_mode() == pm::persistence::page_cache;
  CHECK(static_cast<bool>(dev.error()) == (refused || static_cast<bool>(dev.region().provider().usable())));
  std::vector<std::byte> heap(64);
  CHECK(pm::persistence_of(std::span<const std::byte>(heap)) == pm::persistence::none);
  CHECK_FALSE(pm::persistence_of({}).has_value());
}

TEST_CASE("cache-line write-back over a page-cache file is refused") {
  boost::asio::io_context io; // the I/O objects' executor (only submit() is used here)
  test_medium<pm::backing_kind::file> m(medium_size);
  REQUIRE(m.ok());
  pm::pmem_device<fk::region<pm::cacheline_provider<>>> dev(io, m.backing(), {}, std::in_place);
  CHECK(dev.error() == errc::invalid_request);
  CHECK(std::string(dev.error_reason()).find("file_sync_provider") != std::string::npos);
  CHECK(fua_write(dev) == errc::invalid_request);
  CHECK(dev.region().provider().lines_written_back() == 0);
}

TEST_CASE("the refusal sees through wrappers: a coalescer over cache-line write-back on a file") {
  boost::asio::io_context io; // the I/O objects' executor (only submit() is used here)
  test_medium<pm::backing_kind::file> m(medium_size);
  REQUIRE(m.ok());
  pm::cacheline_provider<> lines;
  fk::coalescer<pm::cacheline_provider<>&> c(io, lines);
  pm::pmem_device<fk::region<fk::coalescer<pm::cacheline_provider<>&>&>> dev(io, m.backing(), {}, c);
  CHECK(dev.error() == errc::invalid_request);
  CHECK(fua_write(dev) == errc::invalid_request);
}

TEST_CASE("a provider that makes nothing durable over a file is refused, over anonymous memory accepted") {
  boost::asio::io_context io; // the I/O objects' executor (only submit() is used here)
  test_medium<pm::backing_kind::file> file(medium_size);
  test_medium<pm::backing_kind::anonymous> anon(medium_size);
  REQUIRE(file.ok());
  REQUIRE(anon.ok());
  pm::pmem_device<fk::region<pm::volatile_provider>> on_file(io, file.backing(), {}, std::in_place);
  CHECK(on_file.error() == errc::invalid_request);
  pm::pmem_device<fk::region<pm::volatile_provider>> on_anon(io, anon.backing(), {.write_cache = false},
                                                            std::in_place);
  CHECK_FALSE(on_anon.error());
  CHECK(fua_write(on_anon) == fk::status{});
}

TEST_CASE("cache-line write-back on a CPU without a write-back instruction is not_supported") {
  boost::asio::io_context io; // the I/O objects' executor (only submit() is used here)
  test_medium<pm::backing_kind::anonymous> m(medium_size);
  REQUIRE(m.ok());
  pm::pmem_device<fk::region<pm::cacheline_provider<>>> dev(io, m.backing(), {}, std::in_place,
                                                            pm::flush_instruction::fence_only);
  CHECK(dev.error() == errc::not_supported);
  CHECK(std::string(dev.error_reason()).find("write-back instruction") != std::string::npos);
  CHECK(fua_write(dev) == errc::not_supported);
}

TEST_CASE("unsafe_acknowledge_volatile is the one way to acknowledge without syncing") {
  boost::asio::io_context io; // the I/O objects' executor (only submit() is used here)
  test_medium<pm::backing_kind::file> m(medium_size);
  REQUIRE(m.ok());
  fk::test::sequenced_sync_provider p;
  sync_device dev(io, m.backing(), {.write_cache = false, .unsafe_acknowledge_volatile = true}, p);
  CHECK_FALSE(dev.error());
  CHECK(fua_write(dev) == fk::status{});
  CHECK(p.script.flushes() == 0);
}

TEST_CASE("the documented stacks are accepted") {
  boost::asio::io_context io; // the I/O objects' executor (only submit() is used here)
  test_medium<pm::backing_kind::file> m(medium_size);
  REQUIRE(m.ok());
  pm::file_sync_provider p(m.backing());
  pm::pmem_device<fk::region<pm::file_sync_provider&>> dev(io, m.backing(), {}, p);
  CHECK_FALSE(dev.error());
  CHECK(dev.error_reason() == nullptr);
  CHECK(fua_write(dev) == fk::status{});
  CHECK(p.flushes() == 1);
}

// ---- lifetime: remove() and the destructor never wait for an executor ----------

TEST_CASE("remove over a coalescer whose backend's executor is stopped returns; the write completes once later") {
  static_assert(!fk::sync_flush_provider<fk::coalescer<fk::test::sequenced_async_provider&>>);
  boost::asio::io_context io; // not running
  test_medium<pm::backing_kind::anonymous> m(medium_size);
  REQUIRE(m.ok());
  fk::test::sequenced_async_provider backend(io);
  fk::coalescer<fk::test::sequenced_async_provider&> c(io, backend);
  auto data = pattern(64, 41);
  const fk::segment s = seg_of(data);
  fk::request req(req_op::write, 0, {&s, 1}, fua);
  int completions = 0;
  req.on_complete([](void* n, fk::request&, const fk::status&) { ++*static_cast<int*>(n); }, &completions);
  {
    pm::pmem_device<fk::region<fk::coalescer<fk::test::sequenced_async_provider&>&>> dev(io, m.bytes(), {}, c);
    dev.submit(req);
    dev.remove(); // used to wait in the coalescer's blocking flush for `io`
    CHECK(dev.in_flight() == 1);
    CHECK(completions == 0);
    io.run();
    CHECK(completions == 1);
    CHECK(req.result() == fk::status{});
    CHECK(dev.in_flight() == 0);
  }
  CHECK(completions == 1);
}

TEST_CASE("a PREFLUSH that finishes after remove completes with shutting_down and writes nothing") {
  boost::asio::io_context io;
  test_medium<pm::backing_kind::anonymous> m(medium_size);
  REQUIRE(m.ok());
  fk::test::sequenced_async_provider p(io);
  async_device dev(io, m.bytes(), {}, p);
  const auto before = m.medium_now();
  auto data = pattern(64, 42);
  const fk::segment s = seg_of(data);
  fk::request req(req_op::write, 0, {&s, 1}, pf | fua);
  int completions = 0;
  req.on_complete([](void* n, fk::request&, const fk::status&) { ++*static_cast<int*>(n); }, &completions);
  dev.submit(req);
  dev.remove();
  io.run();
  CHECK(completions == 1);
  CHECK(req.result() == errc::shutting_down);
  CHECK(m.medium_now() == before);
  CHECK(dev.in_flight() == 0);
}

// ---- capabilities reach the provider through every wrapper ---------------------

TEST_CASE("a FUA write through fault_injector and coalescer writes back the same lines as the bare provider") {
  boost::asio::io_context io; // the I/O objects' executor (only submit() is used here)
  test_medium<pm::backing_kind::anonymous> m(medium_size);
  REQUIRE(m.ok());
  pm::cacheline_provider<> bare, faulted, coalesced;
  if (bare.usable()) return; // no write-back instruction on this CPU: nothing to count
  fk::testing::fault_injector<pm::cacheline_provider<>&> injector(faulted);
  fk::coalescer<pm::cacheline_provider<>&> group(io, coalesced);
  pm::pmem_device<fk::region<pm::cacheline_provider<>&>> d0(io, m.bytes(), {}, bare);
  pm::pmem_device<fk::region<fk::testing::fault_injector<pm::cacheline_provider<>&>&>> d1(io, m.bytes(), {}, injector);
  pm::pmem_device<fk::region<fk::coalescer<pm::cacheline_provider<>&>&>> d2(io, m.bytes(), {}, group);
  CHECK(fua_write(d0) == fk::status{});
  CHECK(fua_write(d1) == fk::status{});
  CHECK(fua_write(d2) == fk::status{});
  CHECK(bare.lines_written_back() == 1);
  CHECK(faulted.lines_written_back() == 1); // was 0: the injector hid note_dirty
  CHECK(coalesced.lines_written_back() == 1);
}
