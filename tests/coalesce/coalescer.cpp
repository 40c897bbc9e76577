#include <flushkit/coalesce/coalescer.hpp>

#include <flushkit/core/region.hpp>
#include <flushkit/exec/ordered_executor.hpp>
#include <flushkit/pmem/backing.hpp>
#include <flushkit/pmem/file_sync_provider.hpp>
#include <flushkit/pmem/pmem_device.hpp>
#include <flushkit/testing/volatile_cache.hpp>

#include "support/executor_provider.hpp"
#include "support/fake_providers.hpp"
#include "support/held_flush_provider.hpp"
#include "support/violation_capture.hpp"

#include <doctest/doctest.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

using flushkit::coalesce_error_mode;
using flushkit::coalescer;
using flushkit::coalescer_options;
using flushkit::errc;
using flushkit::flush_result;
using flushkit::req_flags;
using flushkit::req_op;
using flushkit::request;
using flushkit::status;
using flushkit::test::gated_sync_provider;
using flushkit::test::held_async_provider;
using flushkit::test::scripted_sync_provider;

namespace {

/// A request with a callback that records how often and how it completed.
struct tracked {
  request req{req_op::write, 0, {}};
  int completions = 0;
  status result{};

  explicit tracked(req_flags flags = req_flags::fua, req_op op = req_op::write) { reset(flags, op); }
  void reset(req_flags flags = req_flags::fua, req_op op = req_op::write) {
    req.prepare(op, 0, {}, flags);
    completions = 0;
    result = status{};
    req.on_complete(&tracked::done, this);
  }
  static void done(void* context, request&, const status& st) {
    auto* self = static_cast<tracked*>(context);
    ++self->completions;
    self->result = st;
  }
  bool succeeded() const { return completions == 1 && !result; }
  bool failed_with(errc e) const { return completions == 1 && result == e; }
};

/// Hands `t` to `c` the way a device does: a synchronous answer is
/// completed by the caller.
template <class C> void submit(C& c, tracked& t) {
  const flush_result r = c.flush(t.req);
  if (!r.is_async()) t.req.complete(r.sync_status());
}

using held_coalescer = coalescer<held_async_provider&>;

/// Today's policy, for the tests that release the backend by hand and never
/// run the event loop (the other policies continue from a handler on it).
constexpr coalescer_options immediate{.batching = flushkit::batching::immediate};

} // namespace

TEST_SUITE("coalesce/coalescer") {

TEST_CASE("an idle coalescer issues the backend flush inside flush() with no delay") {
  held_async_provider p;
  boost::asio::io_context io;
  held_coalescer c(io, p, immediate);
  tracked a;
  submit(c, a);
  CHECK(p.calls() == 1);
  CHECK(p.holding());
  CHECK(a.completions == 0);
  CHECK(p.release());
  CHECK(a.succeeded());
  const flushkit::coalescer_stats s = c.stats();
  CHECK(s.flushes_issued == 1);
  CHECK(s.requests_completed == 1);
  CHECK(s.requests_covered == 1);
  CHECK(s.last_batch == 1);
}

TEST_CASE("a synchronous backend completes the request before flush() returns") {
  scripted_sync_provider p;
  boost::asio::io_context io;
  coalescer<scripted_sync_provider&> c(io, p);
  tracked a;
  const flush_result r = c.flush(a.req);
  CHECK(r.is_async());
  CHECK(a.succeeded());
  CHECK(p.calls == 1);
  CHECK(c.stats().flushes_issued == 1);
}

TEST_CASE("requests arriving during an in-flight flush wait for the next flush") {
  held_async_provider p;
  boost::asio::io_context io;
  held_coalescer c(io, p, immediate);
  tracked a, b, d;
  submit(c, a);
  submit(c, b);
  submit(c, d);
  CHECK(p.calls() == 1);
  CHECK(p.release());
  CHECK(a.succeeded());
  CHECK(b.completions == 0);
  CHECK(d.completions == 0);
  CHECK(p.calls() == 2); // one new flush for both waiters, issued at completion
  CHECK(p.release());
  CHECK(b.succeeded());
  CHECK(d.succeeded());
  CHECK_FALSE(p.holding());
  CHECK(c.stats().flushes_issued == 2);
  CHECK(c.stats().last_batch == 2);
}

TEST_CASE("64 requests arriving while one flush is held take exactly 2 backend flushes") {
  held_async_provider p;
  boost::asio::io_context io;
  held_coalescer c(io, p, immediate);
  tracked first;
  std::vector<tracked> rest(64);
  submit(c, first);
  for (tracked& t : rest) submit(c, t);
  CHECK(p.release());
  CHECK(p.release());
  CHECK_FALSE(p.release());
  CHECK(first.succeeded());
  for (const tracked& t : rest) CHECK(t.succeeded());
  const flushkit::coalescer_stats s = c.stats();
  CHECK(s.flushes_issued == 2);
  CHECK(s.requests_completed == 65);
  CHECK(s.last_batch == 64);
  CHECK(s.largest_batch == 64);
}

TEST_CASE("64 requests from 64 threads during a blocked synchronous flush take exactly 2 flushes") {
  gated_sync_provider p;
  boost::asio::io_context io;
  coalescer<gated_sync_provider&> c(io, p);
  tracked first;
  std::thread driver([&] { submit(c, first); });
  p.wait_entered();
  std::vector<tracked> rest(64);
  std::atomic<int> returned{0};
  std::vector<std::thread> submitters;
  for (tracked& t : rest)
    submitters.emplace_back([&c, &t, &returned] {
      submit(c, t);
      returned.fetch_add(1);
      returned.notify_all();
    });
  // The first of them to arrive waits to issue the next flush; the other 63 queue and return.
  for (int v = returned.load(); v != 63; v = returned.load()) returned.wait(v);
  CHECK(c.stats().requests_completed == 0); // all 65 wait
  p.open();
  driver.join();
  for (std::thread& t : submitters) t.join();
  CHECK(first.succeeded());
  for (const tracked& t : rest) CHECK(t.succeeded());
  CHECK(p.calls() == 2);
  CHECK(c.stats().flushes_issued == 2);
  CHECK(c.stats().last_batch == 64);
}

TEST_CASE("sticky mode: the caller waiting to issue the next synchronous flush is rejected without one") {
  gated_sync_provider p;
  boost::asio::io_context io;
  coalescer<gated_sync_provider&> c(io, p, coalescer_options{coalesce_error_mode::sticky});
  tracked first, b, d;
  std::thread driver([&] { submit(c, first); });
  p.wait_entered();
  std::atomic<int> returned{0};
  std::vector<std::thread> submitters;
  for (tracked* t : {&b, &d})
    submitters.emplace_back([&c, t, &returned] {
      submit(c, *t);
      returned.fetch_add(1);
      returned.notify_all();
    });
  for (int v = returned.load(); v != 1; v = returned.load()) returned.wait(v); // one waits to issue, one queued
  p.open(errc::io_error);
  driver.join();
  for (std::thread& t : submitters) t.join();
  CHECK(first.failed_with(errc::io_error));
  CHECK(b.failed_with(errc::io_error));
  CHECK(d.failed_with(errc::io_error));
  CHECK(p.calls() == 1);
  CHECK(c.stats().requests_rejected == 2);
}

TEST_CASE("a write that completes after a flush was issued waits for the next one even if it started first") {
  held_async_provider p;
  boost::asio::io_context io;
  held_coalescer c(io, p, immediate);
  tracked a, b; // a is submitted to the medium before b, but b's data completes first
  c.mark_completed(b.req);
  submit(c, b); // flush 1 issued: covers b only
  c.mark_completed(a.req);
  submit(c, a);
  CHECK(a.req.epoch > b.req.epoch);
  CHECK(p.release());
  CHECK(b.succeeded());
  CHECK(a.completions == 0);
  CHECK(p.release());
  CHECK(a.succeeded());
  CHECK(c.stats().flushes_issued == 2);
}

TEST_CASE("the dm-log-writes order W1 W2 W3 C3 C2 Flush C1 covers W3 and W2 but not W1") {
  held_async_provider p;
  boost::asio::io_context io;
  held_coalescer c(io, p, immediate);
  tracked w1, w2, w3, fl(req_flags::preflush, req_op::flush);
  c.mark_completed(w3.req); // C3
  c.mark_completed(w2.req); // C2
  submit(c, fl);            // Wflush: issued now
  c.mark_completed(w1.req); // C1, after the flush was issued
  submit(c, w3);            // completed before the flush: joins it
  submit(c, w2);
  submit(c, w1);
  CHECK(p.calls() == 1);
  CHECK(p.release());
  CHECK(fl.succeeded());
  CHECK(w3.succeeded());
  CHECK(w2.succeeded());
  CHECK(w1.completions == 0);
  CHECK(c.stats().last_batch == 3);
  CHECK(p.release());
  CHECK(w1.succeeded());
  CHECK(c.stats().flushes_issued == 2);
}

TEST_CASE("a request whose flush already completed after its data is answered without a new flush") {
  held_async_provider p;
  boost::asio::io_context io;
  held_coalescer c(io, p, immediate);
  tracked a, b;
  c.mark_completed(a.req);
  submit(c, b); // issued after a's data completed
  CHECK(p.release());
  submit(c, a); // late: flush 1 already covered it
  CHECK(a.succeeded());
  CHECK(p.calls() == 1);
  CHECK(c.stats().requests_already_durable == 1);
  CHECK(c.stats().requests_completed == 2);
}

TEST_CASE("requests of every kind are covered by the same backend flush") {
  // One durability class: a plain write, a PREFLUSH, a FUA write and an empty
  // flush each wait for a full backend flush issued after they arrived.
  held_async_provider p;
  boost::asio::io_context io;
  held_coalescer c(io, p, immediate);
  tracked lead;
  tracked kinds[] = {tracked(req_flags::none), tracked(req_flags::preflush), tracked(req_flags::fua),
                     tracked(req_flags::preflush | req_flags::fua),
                     tracked(req_flags::preflush, req_op::flush)};
  submit(c, lead);
  for (tracked& t : kinds) submit(c, t);
  CHECK(p.release());
  for (const tracked& t : kinds) CHECK(t.completions == 0);
  CHECK(p.release());
  for (const tracked& t : kinds) CHECK(t.succeeded());
  CHECK(c.stats().last_batch == 5);
}

TEST_CASE("a flush error reaches exactly the requests that flush covered") {
  held_async_provider p;
  boost::asio::io_context io;
  held_coalescer c(io, p, immediate);
  tracked a, a2, a3, b, d;
  c.mark_completed(a2.req);
  c.mark_completed(a3.req);
  submit(c, a);  // flush 1: covers a, a2, a3
  submit(c, a2); // joins flush 1
  submit(c, b);  // waits for flush 2
  submit(c, a3); // joins flush 1
  submit(c, d);  // waits for flush 2
  CHECK(p.release(errc::io_error));
  CHECK(a.failed_with(errc::io_error));
  CHECK(a2.failed_with(errc::io_error));
  CHECK(a3.failed_with(errc::io_error));
  CHECK(b.completions == 0);
  CHECK(d.completions == 0);
  CHECK(p.release());
  CHECK(b.succeeded());
  CHECK(d.succeeded());
  const flushkit::coalescer_stats s = c.stats();
  CHECK(s.flushes_issued == 2);
  CHECK(s.flushes_failed == 1);
  CHECK(s.durable_epoch == s.flushed_epoch);
}

TEST_CASE("a late request covered by a failed flush gets its error and is never retried into success") {
  held_async_provider p;
  boost::asio::io_context io;
  held_coalescer c(io, p, immediate);
  tracked late1, late2, f1, f2, later;
  c.mark_completed(late1.req);
  submit(c, f1);
  CHECK(p.release(errc::timeout)); // flush 1 fails, covering late1
  c.mark_completed(late2.req);
  submit(c, f2);
  CHECK(p.release()); // flush 2 succeeds, covering late2
  submit(c, late1);
  submit(c, late2);
  CHECK(late1.failed_with(errc::timeout));
  CHECK(late2.succeeded());
  CHECK(p.calls() == 2); // no retry for late1
  submit(c, later);      // the coalescer keeps working in the default mode
  CHECK(p.release());
  CHECK(later.succeeded());
  CHECK(c.error() == status{});
}

TEST_CASE("a late request behind more failures than the log keeps still gets an error") {
  held_async_provider p;
  boost::asio::io_context io;
  held_coalescer c(io, p, immediate);
  tracked early;
  c.mark_completed(early.req);
  for (int i = 0; i < 20; ++i) { // 20 failed flushes: more than the log keeps
    tracked t;
    submit(c, t);
    CHECK(p.release(errc::io_error));
    CHECK(t.failed_with(errc::io_error));
  }
  submit(c, early); // covered by the first failed flush: still an error
  CHECK(early.failed_with(errc::io_error));
  CHECK(p.calls() == 20);
}

TEST_CASE("sticky mode fails every later request until reset_error") {
  held_async_provider p;
  boost::asio::io_context io;
  held_coalescer c(io, p, {.errors = coalesce_error_mode::sticky, .batching = flushkit::batching::immediate});
  tracked durable, a, b, d, e;
  c.mark_completed(durable.req);
  tracked first;
  submit(c, first);
  CHECK(p.release()); // covers `durable` successfully
  submit(c, a);       // flush 2
  submit(c, b);       // waits
  CHECK(p.release(errc::io_error));
  CHECK(a.failed_with(errc::io_error));
  CHECK(b.failed_with(errc::io_error)); // rejected without a flush
  CHECK(p.calls() == 2);
  CHECK(c.error() == errc::io_error);
  submit(c, d);
  CHECK(d.failed_with(errc::io_error));
  submit(c, durable); // made durable before the failure: success stays success
  CHECK(durable.succeeded());
  CHECK(p.calls() == 2);
  CHECK(c.stats().requests_rejected == 2);
  c.reset_error();
  submit(c, e);
  CHECK(p.release());
  CHECK(e.succeeded());
  CHECK(p.calls() == 3);
}

TEST_CASE("region over a coalescer applies the region error policy") {
  held_async_provider p;
  boost::asio::io_context io;
  held_coalescer c(io, p, immediate);
  flushkit::region<held_coalescer&> r(c);
  static_assert(flushkit::region<held_coalescer&>::is_async);
  tracked a, b;
  CHECK(r.flush(a.req).is_async());
  CHECK(r.flush(b.req).is_async());
  CHECK(p.release(errc::timeout));
  CHECK(a.failed_with(errc::io_error));
  CHECK(p.release());
  CHECK(b.succeeded());
}

TEST_CASE("the request-less flush_and_wait is coalesced and reports the backend status") {
  scripted_sync_provider p;
  boost::asio::io_context io;
  coalescer<scripted_sync_provider&> c(io, p);
  // Only an asynchronous provider: a region or device never blocks in it by surprise.
  static_assert(!flushkit::sync_flush_provider<coalescer<scripted_sync_provider&>>);
  static_assert(flushkit::async_flush_provider<coalescer<scripted_sync_provider&>>);
  static_assert(!flushkit::region<coalescer<scripted_sync_provider&>&>::has_sync_flush);
  CHECK(c.flush_and_wait() == status{});
  p.next = errc::no_space;
  CHECK(c.flush_and_wait() == errc::no_space);
  CHECK(p.calls == 2);
}

TEST_CASE("the request-less flush waits for a flush issued after it was called") {
  gated_sync_provider p;
  boost::asio::io_context io;
  coalescer<gated_sync_provider&> c(io, p);
  tracked first;
  std::thread driver([&] { submit(c, first); });
  p.wait_entered();
  status result = errc::timeout;
  std::thread caller([&] { result = c.flush_and_wait(); });
  p.open();
  driver.join();
  caller.join();
  CHECK(result == status{});
  CHECK(first.succeeded());
  CHECK(p.calls() == 2); // the request-less flush did not ride on the held one
}

TEST_CASE("flush_and_wait from a completion of the same coalescer is rejected") {
  flushkit::test::violation_capture violations;
  scripted_sync_provider p;
  boost::asio::io_context io;
  coalescer<scripted_sync_provider&> c(io, p);
  struct ctx_t {
    coalescer<scripted_sync_provider&>* c;
    status inner;
  } ctx{&c, {}};
  request req(req_op::write, 0, {});
  req.on_complete([](void* x, request&, const status&) {
    auto* k = static_cast<ctx_t*>(x);
    k->inner = k->c->flush_and_wait();
  }, &ctx);
  CHECK(c.flush(req).is_async());
  CHECK(req.completed());
  CHECK(ctx.inner == errc::invalid_request);
  CHECK(violations.violations() == (flushkit::test::asserts_enabled ? 1 : 0));
  CHECK(p.calls == 1);
}

TEST_CASE("flush_and_wait on the backend's executor is rejected, from another thread it waits") {
  using io_executor = boost::asio::io_context::executor_type;
  /// An asynchronous backend that says which executor completes it (as pmem_guest does).
  struct bound_provider : flushkit::test::executor_provider<io_executor> {
    flushkit::ordered_executor<io_executor>* exec;
    explicit bound_provider(flushkit::ordered_executor<io_executor>& ex) : executor_provider(ex), exec(&ex) {}
    auto get_executor() const noexcept { return exec->get_executor(); }
  };
  flushkit::test::violation_capture violations;
  boost::asio::io_context io;
  flushkit::ordered_executor<io_executor> ex(io.get_executor());
  bound_provider p(ex);
  coalescer<bound_provider&> c(io, p);
  status inner{};
  boost::asio::post(ex.get_executor(), [&] { inner = c.flush_and_wait(); });
  io.run();
  CHECK(inner == errc::invalid_request);
  CHECK(violations.violations() == (flushkit::test::asserts_enabled ? 1 : 0));
  CHECK(p.calls == 0);
  io.restart();
  auto guard = boost::asio::make_work_guard(io);
  std::thread backend([&io] { io.run(); });
  CHECK(c.flush_and_wait() == status{});
  guard.reset();
  backend.join();
  CHECK(p.calls == 1);
  CHECK(violations.violations() == (flushkit::test::asserts_enabled ? 1 : 0));
}

TEST_CASE("a coalescer forwards its provider's capabilities") {
  using vcache = flushkit::testing::volatile_cache;
  static_assert(flushkit::dirty_tracking<coalescer<vcache&>>);
  static_assert(!flushkit::dirty_tracking<coalescer<scripted_sync_provider&>>);
  vcache cache(flushkit::testing::volatile_cache_options{.size = 4096});
  boost::asio::io_context io;
  coalescer<vcache&> c(io, cache);
  CHECK(&std::as_const(c).provider() == &cache);
  c.note_dirty(cache.medium().data() + 64, 128); // as a device does after a data step
  CHECK(cache.pending_writes() == 1);
  tracked a;
  submit(c, a);
  CHECK(a.succeeded());
  CHECK(cache.pending_writes() == 0);
}

TEST_CASE("a backend that completes inside its flush call is handled without recursion") {
  struct inline_provider {
    int calls = 0;
    flush_result flush(request& r) {
      ++calls;
      r.complete({});
      return flush_result::async(r);
    }
  };
  struct loop_t {
    coalescer<inline_provider&>* c;
    request req;
    int remaining;
    static void done(void* x, request& r, const status& st) {
      auto* self = static_cast<loop_t*>(x);
      CHECK_FALSE(st);
      if (--self->remaining == 0) return;
      r.prepare(req_op::write, 0, {}, req_flags::fua);
      r.on_complete(&loop_t::done, self);
      CHECK(self->c->flush(r).is_async()); // queued: the delivering thread (or the turn's handler) drives
    }
  };
  for (const flushkit::batching policy : {flushkit::batching::immediate, flushkit::batching::end_of_turn}) {
    CAPTURE(static_cast<int>(policy));
    inline_provider p;
    boost::asio::io_context io;
    coalescer<inline_provider&> c(io, p, {.batching = policy});
    loop_t loop{&c, {}, 20000};
    loop.req.prepare(req_op::write, 0, {}, req_flags::fua);
    loop.req.on_complete(&loop_t::done, &loop);
    CHECK(c.flush(loop.req).is_async());
    io.run(); // end_of_turn: each next flush is issued from a handler on the loop
    CHECK(loop.remaining == 0);
    CHECK(p.calls == 20000);
    CHECK(c.stats().requests_completed == 20000);
    CHECK(c.stats().deferred_issues == (policy == flushkit::batching::end_of_turn ? 19999u : 0u));
    CHECK(c.idle());
  }
}

// ---- batching policies ------------------------------------------------------------

/// N requests kept in flight by their own completion handlers, which run on
/// the event loop (delivered with flushkit::async_wait, as a device's
/// completions reach a storage engine) and re-submit at once.
template <class C> struct closed_loop {
  struct slot {
    closed_loop* owner;
    request req;
    int completions = 0;
    status last{};
  };

  C& c;
  boost::asio::io_context& io;
  int rounds;
  std::vector<slot> slots;

  closed_loop(C& co, boost::asio::io_context& ctx, std::size_t n, int r) : c(co), io(ctx), rounds(r), slots(n) {
    for (slot& s : slots) s.owner = this;
  }
  void submit(slot& s) {
    s.req.prepare(req_op::write, 0, {}, req_flags::fua);
    flushkit::async_wait(s.req, io.get_executor(), [&s](const status& st) { s.owner->done(s, st); });
    const flush_result r = c.flush(s.req);
    if (!r.is_async()) s.req.complete(r.sync_status());
  }
  void done(slot& s, const status& st) {
    ++s.completions;
    s.last = st;
    if (s.completions < rounds) submit(s);
  }
  void start() {
    boost::asio::post(io, [this] {
      for (slot& s : slots) submit(s);
    });
  }
  /// Runs the loop, then releases the held backend flush; returns the batch sizes of the released flushes.
  std::vector<std::uint64_t> run_releasing(held_async_provider& p) {
    std::vector<std::uint64_t> batches;
    for (;;) {
      io.restart();
      io.poll();
      if (!p.holding()) return batches;
      REQUIRE(p.release());
      batches.push_back(c.stats().last_batch);
    }
  }
};

TEST_CASE("end_of_turn keeps a closed loop in one batch per flush; immediate alternates small and large") {
  using flushkit::batching;
  for (const batching policy : {batching::end_of_turn, batching::immediate}) {
    CAPTURE(static_cast<int>(policy));
    held_async_provider p;
    boost::asio::io_context io;
    held_coalescer c(io, p, {.batching = policy});
    closed_loop<held_coalescer> loop(c, io, 8, 4);
    loop.start();
    const std::vector<std::uint64_t> batches = loop.run_releasing(p);
    // The first arrival finds the coalescer idle and is flushed alone under every policy.
    const std::vector<std::uint64_t> expected = policy == batching::end_of_turn
                                                    ? std::vector<std::uint64_t>{1, 8, 8, 8, 7}
                                                    : std::vector<std::uint64_t>{1, 7, 1, 7, 1, 7, 1, 7};
    CHECK(batches == expected);
    for (const auto& s : loop.slots) {
      CHECK(s.completions == 4); // nobody starves
      CHECK_FALSE(s.last);
    }
    CHECK(c.stats().requests_covered == 32);
    CHECK(c.stats().deferred_issues == (policy == batching::end_of_turn ? 4u : 0u));
    CHECK(c.idle());
  }
}

TEST_CASE("end_of_turn: an arrival at an idle coalescer is flushed at once; the turn handler may outlive it") {
  held_async_provider p;
  boost::asio::io_context io;
  {
    held_coalescer c(io, p, {.batching = flushkit::batching::end_of_turn});
    tracked a;
    submit(c, a);
    CHECK(p.calls() == 1);
    CHECK(p.release());
    CHECK(a.succeeded());
    CHECK(c.idle()); // no request pending, though the turn handler is queued on io
  } // destroyed with the handler queued
  CHECK(io.poll() == 1); // it runs, finds the coalescer gone, and does nothing
  CHECK(p.calls() == 1);
}

TEST_CASE("end_of_turn: a turn handler never run is destroyed with its io_context, after the coalescer") {
  held_async_provider p;
  auto io = std::make_unique<boost::asio::io_context>();
  auto c = std::make_unique<held_coalescer>(*io, p, coalescer_options{.batching = flushkit::batching::end_of_turn});
  tracked a;
  submit(*c, a);
  CHECK(p.release());
  CHECK(a.succeeded());
  c.reset();
  io.reset(); // destroys the queued handler: its block must still be valid (ASan)
  CHECK(p.calls() == 1);
}

TEST_CASE("bounded: a flush waits for min_batch requests, or until max_delay passed") {
  SUBCASE("min_batch reached") {
    held_async_provider p;
    boost::asio::io_context io;
    held_coalescer c(io, p, {.batching = flushkit::batching::bounded, .min_batch = 4,
                             .max_delay = std::chrono::hours(1)});
    tracked r[4];
    for (int i = 0; i < 3; ++i) submit(c, r[i]);
    CHECK(p.calls() == 0);
    submit(c, r[3]); // the fourth issues the flush from its own flush() call
    CHECK(p.calls() == 1);
    CHECK(p.release());
    for (const tracked& t : r) CHECK(t.succeeded());
    CHECK(c.stats().last_batch == 4);
    CHECK(c.stats().deferred_issues == 1);
    CHECK(c.idle()); // the timer wait is left to expire (or to be cancelled by the destructor)
    CHECK(io.poll() == 0);
    CHECK(p.calls() == 1);
  }
  SUBCASE("max_delay passed") {
    held_async_provider p;
    boost::asio::io_context io;
    held_coalescer c(io, p, {.batching = flushkit::batching::bounded, .min_batch = 4,
                             .max_delay = std::chrono::milliseconds(1)});
    tracked a;
    const auto before = std::chrono::steady_clock::now();
    submit(c, a);
    CHECK(p.calls() == 0);
    CHECK(io.run_one() == 1); // the timer
    CHECK(std::chrono::steady_clock::now() - before >= std::chrono::milliseconds(1));
    CHECK(p.calls() == 1);
    CHECK(p.release());
    CHECK(a.succeeded());
    CHECK(c.stats().deferred_issues == 1);
    CHECK(c.idle());
  }
}

TEST_CASE("every policy fails exactly the failed flush's batch and keeps later writes out of it") {
  using flushkit::batching;
  const coalescer_options policies[] = {
      {.batching = batching::immediate},
      {.batching = batching::end_of_turn},
      {.batching = batching::bounded, .min_batch = 2, .max_delay = std::chrono::hours(1)},
  };
  for (const coalescer_options& o : policies) {
    CAPTURE(static_cast<int>(o.batching));
    held_async_provider p;
    boost::asio::io_context io;
    held_coalescer c(io, p, o);
    tracked a, b, late1, late2;
    submit(c, a);
    submit(c, b); // bounded: the second issues the flush
    const std::uint64_t covered = o.batching == batching::bounded ? 2 : 1;
    CHECK(p.calls() == 1);
    c.mark_completed(late1.req); // stamped after the flush was issued
    submit(c, late1);
    submit(c, late2);
    CHECK(p.release(make_error_code(errc::io_error)));
    io.restart();
    io.poll();
    CHECK(a.failed_with(errc::io_error));
    CHECK(b.completions == (covered == 2 ? 1 : 0));
    if (covered == 2) CHECK(b.failed_with(errc::io_error));
    CHECK(late1.completions == 0); // never covered by the flush issued before its epoch
    CHECK(late2.completions == 0);
    CHECK(p.calls() == 2); // the next flush covers everything that waited
    CHECK(p.release());
    io.restart();
    io.poll();
    if (covered == 1) CHECK(b.succeeded());
    CHECK(late1.succeeded());
    CHECK(late2.succeeded());
    CHECK(c.stats().flushes_failed == 1);
    CHECK(c.idle());
  }
}

TEST_CASE("batching options that cannot work are refused at construction") {
  using flushkit::batching;
  boost::asio::io_context io;
  scripted_sync_provider sync_p;
  held_async_provider async_p;
  CHECK(coalescer<scripted_sync_provider&>(io, sync_p).batching() == batching::immediate);
  CHECK(held_coalescer(io, async_p).batching() == batching::end_of_turn);
  CHECK_THROWS_AS(coalescer<scripted_sync_provider&>(io, sync_p, {.batching = batching::end_of_turn}),
                  std::invalid_argument);
  CHECK_THROWS_AS(coalescer<scripted_sync_provider&>(
                      io, sync_p, {.batching = batching::bounded, .min_batch = 2, .max_delay = std::chrono::seconds(1)}),
                  std::invalid_argument);
  CHECK_THROWS_AS(held_coalescer(io, async_p, {.batching = batching::bounded, .min_batch = 2}), std::invalid_argument);
  CHECK_THROWS_AS(held_coalescer(io, async_p, {.batching = batching::bounded, .min_batch = 0,
                                               .max_delay = std::chrono::seconds(1)}),
                  std::invalid_argument);
}

} // TEST_SUITE

// ---------------------------------------------------------------------------
// Multi-threaded runs with real threads.

namespace {

/// One submitter thread's request and completion counter.
struct worker {
  request req;
  std::atomic<int> done{0};
  std::atomic<int> errors{0};

  static void on_done(void* context, request&, const status& st) {
    auto* self = static_cast<worker*>(context);
    if (st) self->errors.fetch_add(1);
    self->done.fetch_add(1);
    self->done.notify_all();
  }
  /// Submits one flush for the request and waits until it completed.
  template <class C> void flush_and_wait(C& c, int expected_done) {
    req.prepare(req_op::write, 0, {}, req_flags::fua);
    req.on_complete(&worker::on_done, this);
    const flush_result r = c.flush(req);
    if (!r.is_async()) req.complete(r.sync_status());
    for (int v = done.load(); v != expected_done; v = done.load()) done.wait(v);
  }
};

/// Synchronous provider: fdatasync of a real file.
struct fdatasync_provider {
  int fd;
  status flush() { return ::fdatasync(fd) == 0 ? status{} : flushkit::status_from_errno(errno); }
};

/// Synchronous backend of the fairness test. Counts the backend flushes each
/// thread issues, and marks each flush with an epoch taken when it starts:
/// every epoch below the mark was taken before the flush was issued.
struct marking_provider {
  coalescer<marking_provider&>* c = nullptr;
  std::atomic<std::uint64_t> newest_mark{0}; // mark of the latest flush started
  static inline thread_local int issued_by_this_thread = 0;
  static inline thread_local std::uint64_t mark_of_last_flush = 0;

  status flush() {
    ++issued_by_this_thread;
    mark_of_last_flush = c->note_write_completed();
    newest_mark.store(mark_of_last_flush);
    std::this_thread::sleep_for(std::chrono::microseconds(100)); // widens the overlap only
    return {};
  }
};

/// A submitter of the fairness test: its request, the epoch it took, and the
/// mark of the flush that completed it.
struct fair_client {
  request req;
  std::uint64_t epoch = 0;
  std::uint64_t covering_mark = 0;
  status result{};
  std::atomic<int> done{0};

  static void on_done(void* context, request&, const status& st) {
    auto* self = static_cast<fair_client*>(context);
    self->result = st;
    self->covering_mark = marking_provider::mark_of_last_flush; // a sync backend's batch completes on the issuing thread
    self->done.fetch_add(1);
    self->done.notify_all();
  }
};

std::string temp_path() {
  std::string p = (std::filesystem::temp_directory_path() / "flushkit-coalesce-XXXXXX").string();
  const int fd = ::mkstemp(p.data());
  REQUIRE(fd >= 0);
  ::close(fd);
  return p;
}

} // namespace

TEST_SUITE("coalesce/coalescer") {

TEST_CASE("stress: pwrite then coalesced fdatasync from 4 threads on a real file") {
  flushkit::test::violation_capture violations;
  const std::string path = temp_path();
  const int fd = ::open(path.c_str(), O_RDWR);
  REQUIRE(fd >= 0);
  fdatasync_provider p{fd};
  boost::asio::io_context io;
  coalescer<fdatasync_provider&> c(io, p);
  constexpr int threads = 4;
  constexpr int iterations = 400;
  constexpr std::size_t block = 4096;
  std::vector<worker> workers(threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      std::vector<unsigned char> buf(block);
      const auto off = static_cast<off_t>(static_cast<std::size_t>(t) * block);
      for (int i = 0; i < iterations; ++i) {
        std::memset(buf.data(), (t * 31 + i) & 0xff, block);
        REQUIRE(::pwrite(fd, buf.data(), block, off) == static_cast<ssize_t>(block));
        workers[static_cast<std::size_t>(t)].flush_and_wait(c, i + 1);
      }
    });
  for (std::thread& t : pool) t.join();
  for (const worker& w : workers) {
    CHECK(w.done.load() == iterations);
    CHECK(w.errors.load() == 0);
  }
  const flushkit::coalescer_stats s = c.stats();
  CHECK(s.requests_completed == static_cast<std::uint64_t>(threads * iterations));
  CHECK(s.flushes_per_ack() < 1.0);
  MESSAGE("fdatasync flushes per ack: " << s.flushes_per_ack() << " largest batch " << s.largest_batch);
  CHECK(violations.violations() == 0);
  std::vector<unsigned char> buf(block);
  for (int t = 0; t < threads; ++t) {
    REQUIRE(::pread(fd, buf.data(), block, static_cast<off_t>(static_cast<std::size_t>(t) * block)) ==
            static_cast<ssize_t>(block));
    const auto expected = static_cast<unsigned char>((t * 31 + iterations - 1) & 0xff);
    CHECK(buf[0] == expected);
    CHECK(buf[block - 1] == expected);
  }
  ::close(fd);
  ::unlink(path.c_str());
}

TEST_CASE("a pmem device with a coalesced region acknowledges FUA writes from 4 threads") {
  namespace pm = flushkit::pmem;
  const std::string path = temp_path();
  constexpr std::size_t block = 4096;
  constexpr int threads = 4;
  constexpr int iterations = 200;
  auto b = pm::backing::file(path.c_str(), {.size = block * threads});
  REQUIRE(b);
  // Plugging the coalescer in: provider -> coalescer -> region -> device.
  pm::file_sync_provider fsync_provider(*b, pm::file_sync_mode::fdatasync);
  boost::asio::io_context io;
  coalescer<pm::file_sync_provider&> group(io, fsync_provider);
  pm::pmem_device<flushkit::region<coalescer<pm::file_sync_provider&>&>> dev(io, *b, {}, group);

  std::vector<worker> workers(threads);
  std::vector<std::thread> pool;
  for (std::size_t t = 0; t < threads; ++t)
    pool.emplace_back([&dev, &workers, t] {
      unsigned char buf[block];
      const flushkit::segment seg{buf, block};
      worker& w = workers[t];
      for (int i = 0; i < iterations; ++i) {
        std::memset(buf, static_cast<int>((t * 31 + static_cast<std::size_t>(i)) & 0xff), block);
        w.req.prepare(req_op::write, t * block, {&seg, 1}, req_flags::fua);
        w.req.on_complete(&worker::on_done, &w);
        dev.submit(w.req);
        for (int v = w.done.load(); v != i + 1; v = w.done.load()) w.done.wait(v);
      }
    });
  for (std::thread& t : pool) t.join();
  for (const worker& w : workers) {
    CHECK(w.done.load() == iterations);
    CHECK(w.errors.load() == 0);
  }
  const flushkit::coalescer_stats s = group.stats();
  CHECK(s.requests_completed == static_cast<std::uint64_t>(threads * iterations));
  CHECK(s.flushes_per_ack() < 1.0);
  const int fd = ::open(path.c_str(), O_RDONLY);
  REQUIRE(fd >= 0);
  for (std::size_t t = 0; t < threads; ++t) {
    unsigned char got[block];
    REQUIRE(::pread(fd, got, block, static_cast<off_t>(t * block)) == static_cast<ssize_t>(block));
    CHECK(got[block - 1] == static_cast<unsigned char>((t * 31 + iterations - 1) & 0xff));
  }
  ::close(fd);
  ::unlink(path.c_str());
}

TEST_CASE("with a synchronous backend no flush(req) call issues more than one backend flush") {
  marking_provider p;
  boost::asio::io_context io;
  coalescer<marking_provider&> c(io, p);
  p.c = &c;
  constexpr int threads = 4;
  constexpr int iterations = 150;
  std::vector<fair_client> clients(threads);
  std::vector<int> most_per_call(threads, 0), flushes_by(threads, 0), bad(threads, 0);
  std::vector<std::thread> pool;
  for (std::size_t t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      fair_client& k = clients[t];
      for (int i = 0; i < iterations; ++i) {
        k.req.prepare(req_op::write, 0, {}, req_flags::fua);
        k.req.on_complete(&fair_client::on_done, &k);
        c.mark_completed(k.req);
        k.epoch = k.req.epoch;
        const int before = marking_provider::issued_by_this_thread;
        const flush_result r = c.flush(k.req);
        most_per_call[t] = std::max(most_per_call[t], marking_provider::issued_by_this_thread - before);
        if (!r.is_async()) k.req.complete(r.sync_status()); // already durable: a started flush covered it
        for (int v = k.done.load(); v != i + 1; v = k.done.load()) k.done.wait(v);
        const std::uint64_t mark = r.is_async() ? k.covering_mark : p.newest_mark.load();
        if (k.result || mark <= k.epoch) ++bad[t]; // failed, or covered by a flush issued before its epoch
      }
      flushes_by[t] = marking_provider::issued_by_this_thread;
    });
  for (std::thread& t : pool) t.join();
  std::uint64_t flushes = 0;
  for (std::size_t t = 0; t < threads; ++t) {
    CHECK(most_per_call[t] <= 1);
    CHECK(bad[t] == 0);
    CHECK(clients[t].done.load() == iterations);
    flushes += static_cast<std::uint64_t>(flushes_by[t]);
  }
  const flushkit::coalescer_stats s = c.stats();
  CHECK(s.requests_completed == static_cast<std::uint64_t>(threads * iterations));
  CHECK(s.flushes_issued == flushes);
  MESSAGE("flushes " << s.flushes_issued << " for " << s.requests_completed << " requests, largest batch "
                     << s.largest_batch);
}

TEST_CASE("stress: an asynchronous backend completing on its own thread") {
  flushkit::test::violation_capture violations;
  boost::asio::io_context io;
  auto guard = boost::asio::make_work_guard(io);
  flushkit::ordered_executor<> ex(io.get_executor());
  flushkit::test::executor_provider<boost::asio::io_context::executor_type> p(ex);
  coalescer<decltype(p)&> c(io, p);
  std::thread backend([&io] { io.run(); });
  constexpr int threads = 4;
  constexpr int iterations = 2000;
  std::vector<worker> workers(threads);
  std::vector<std::thread> pool;
  for (std::size_t t = 0; t < threads; ++t)
    pool.emplace_back([&c, &workers, t] {
      for (int i = 0; i < iterations; ++i) workers[t].flush_and_wait(c, i + 1);
    });
  for (std::thread& t : pool) t.join();
  guard.reset();
  backend.join();
  for (const worker& w : workers) {
    CHECK(w.done.load() == iterations);
    CHECK(w.errors.load() == 0);
  }
  const flushkit::coalescer_stats s = c.stats();
  CHECK(s.requests_completed == static_cast<std::uint64_t>(threads * iterations));
  CHECK(s.requests_covered + s.requests_already_durable == s.requests_completed);
  CHECK(s.flushes_issued == static_cast<std::uint64_t>(p.calls));
  CHECK(s.flushes_issued <= s.requests_completed);
  CHECK(violations.violations() == 0);
}

} // TEST_SUITE

TEST_SUITE("coalesce/coalescer") {

TEST_CASE("a synchronous backend that throws fails its batch with io_error and the coalescer goes on") {
  struct throwing_once {
    int calls = 0;
    status flush() {
      if (++calls == 1) throw std::runtime_error("backend failed");
      return {};
    }
  };
  throwing_once backend;
  boost::asio::io_context io;
  coalescer<throwing_once&> c(io, backend);
  tracked first;
  submit(c, first);
  CHECK(first.failed_with(errc::io_error));
  tracked second;
  submit(c, second);
  CHECK(second.succeeded());
  CHECK(c.flush_and_wait() == status{});
  CHECK(backend.calls == 3);
  CHECK(c.stats().flushes_failed == 1);
}

} // TEST_SUITE

// ---------------------------------------------------------------------------
// The request-less asynchronous flush (the coalescer as an Asio I/O object).

TEST_SUITE("coalesce/coalescer") {

TEST_CASE("async_flush completes on the coalescer's executor with the covering flush's status") {
  boost::asio::io_context io;
  held_async_provider p;
  held_coalescer c(io, p, immediate);
  CHECK(c.get_executor() == boost::asio::any_io_executor(io.get_executor()));
  int calls = 0;
  status got = errc::timeout;
  c.async_flush([&](const status& st) {
    ++calls;
    got = st;
  });
  CHECK(p.calls() == 1); // an idle coalescer issues the backend flush inside the call
  CHECK(calls == 0);
  CHECK(p.release(errc::io_error));
  CHECK(calls == 0); // never on the completing thread: on the coalescer's executor
  io.run();
  CHECK(calls == 1);
  CHECK(got == errc::io_error);
  CHECK(c.stats().requests_completed == 1);
}

TEST_CASE("async_flush over a synchronous backend posts its result: never inside the call") {
  boost::asio::io_context io;
  scripted_sync_provider p;
  coalescer<scripted_sync_provider&> c(io, p);
  int calls = 0;
  status got = errc::timeout;
  c.async_flush([&](const status& st) {
    ++calls;
    got = st;
  });
  CHECK(p.calls == 1); // the backend flush ran on the calling thread
  CHECK(calls == 0);
  io.run();
  CHECK(calls == 1);
  CHECK(got == status{});
}

TEST_CASE("async_flush in a coroutine: use_awaitable throws a failure, as_tuple returns it") {
  boost::asio::io_context io;
  scripted_sync_provider p;
  coalescer<scripted_sync_provider&> c(io, p);
  status thrown{}, returned{}, deferred_thrown{};
  bool finished = false;
  boost::asio::co_spawn(
      io,
      [&]() -> boost::asio::awaitable<void> {
        co_await c.async_flush(boost::asio::use_awaitable); // success: returns
        p.next = errc::no_space;
        try {
          co_await c.async_flush(boost::asio::use_awaitable);
        } catch (const boost::system::system_error& e) {
          thrown = e.code();
        }
        p.next = errc::io_error;
        const auto [st] = co_await c.async_flush(boost::asio::as_tuple(boost::asio::use_awaitable));
        returned = st;
        try {
          co_await c.async_flush(); // the default token: deferred
        } catch (const boost::system::system_error& e) {
          deferred_thrown = e.code();
        }
        p.next = status{};
        co_await c.async_flush();
        finished = true;
      },
      boost::asio::detached);
  io.run();
  CHECK(finished);
  CHECK(thrown == errc::no_space);
  CHECK(returned == errc::io_error);
  CHECK(deferred_thrown == errc::io_error);
  CHECK(p.calls == 5);
}

TEST_CASE("async_flush: terminal cancellation delivers operation_aborted and the request still joins its flush") {
  boost::asio::io_context io;
  held_async_provider p;
  held_coalescer c(io, p, immediate);
  boost::asio::cancellation_signal sig;
  int calls = 0;
  status got{};
  c.async_flush(boost::asio::bind_cancellation_slot(sig.slot(), [&](const status& st) {
    ++calls;
    got = st;
  }));
  REQUIRE(p.calls() == 1);
  sig.emit(boost::asio::cancellation_type::terminal);
  CHECK(calls == 0); // posted
  io.run();
  CHECK(calls == 1);
  CHECK(got == boost::asio::error::operation_aborted);
  CHECK(c.stats().requests_completed == 0); // the internal request is still in its flush
  CHECK(p.release());
  io.restart();
  io.run();
  CHECK(calls == 1); // the handler ran once
  CHECK(c.stats().requests_completed == 1);
}

} // TEST_SUITE

// ---------------------------------------------------------------------------
// Lifetime and blocking waiters under the deferred policies, with the backend
// on a pool thread (found by review: a coalescer destroyed while the
// delivering thread was still inside it; flush_and_wait on the coalescer's
// own executor waiting for a handler that thread had to run).

namespace {

using pool_provider = flushkit::test::executor_provider<boost::asio::thread_pool::executor_type>;
using pool_coalescer = coalescer<pool_provider&>;

const coalescer_options every_policy[] = {
    {.batching = flushkit::batching::immediate},
    {.batching = flushkit::batching::end_of_turn},
    {.batching = flushkit::batching::bounded, .min_batch = 2, .max_delay = std::chrono::microseconds(100)},
};

/// Hands `r` to `c` as a device does.
void submit_async(pool_coalescer& c, request& r) {
  const flush_result fr = c.flush(r);
  if (!fr.is_async()) r.complete(fr.sync_status());
}

/// A request whose completion, on the delivering thread, releases a waiting thread.
struct released {
  request req{req_op::flush, 0, {}};
  std::atomic<bool> done{false};
  released() {
    req.on_complete(
        [](void* c, request&, const status&) {
          auto* self = static_cast<released*>(c);
          self->done.store(true, std::memory_order_release);
          self->done.notify_one();
        },
        this);
  }
};

} // namespace

TEST_SUITE("coalesce/coalescer") {

TEST_CASE("after wait_until_idle the coalescer can be destroyed by the thread its last completion released") {
  boost::asio::thread_pool pool(1);
  flushkit::ordered_executor<boost::asio::thread_pool::executor_type> ex(pool.get_executor());
  pool_provider p(ex);
  boost::asio::io_context io;
  auto guard = boost::asio::make_work_guard(io);
  std::thread loop([&io] { io.run(); });
  for (const coalescer_options& o : every_policy) {
    CAPTURE(static_cast<int>(o.batching));
    for (int i = 0; i < 500; ++i) {
      auto c = std::make_unique<pool_coalescer>(io, p, o);
      released r;
      submit_async(*c, r.req);
      r.done.wait(false, std::memory_order_acquire); // the pool thread may still be inside the coalescer
      c->wait_until_idle();
      REQUIRE(c->idle());
      c.reset(); // ASan: no thread is left inside it
      auto d = std::make_unique<pool_coalescer>(io, p, o);
      REQUIRE_FALSE(d->flush_and_wait());
      d->wait_until_idle();
      d.reset();
    }
  }
  guard.reset();
  loop.join();
  pool.join();
}

TEST_CASE("flush_and_wait from a handler on the coalescer's own executor returns under every policy") {
  for (const coalescer_options& o : every_policy) {
    CAPTURE(static_cast<int>(o.batching));
    boost::asio::thread_pool pool(1);
    flushkit::ordered_executor<boost::asio::thread_pool::executor_type> ex(pool.get_executor());
    pool_provider p(ex);
    boost::asio::io_context io;
    pool_coalescer c(io, p, o);
    status first = make_error_code(errc::timeout), second = make_error_code(errc::timeout);
    boost::asio::post(io, [&] {
      first = c.flush_and_wait(); // nothing deferred while a blocked waiter is counted
      second = c.flush_and_wait();
    });
    io.run();
    CHECK_FALSE(first);
    CHECK_FALSE(second);
    c.wait_until_idle();
    pool.join();
  }
}

} // TEST_SUITE
