#include <flushkit/testing/fault_injector.hpp>

#include <flushkit/core/capabilities.hpp>
#include <flushkit/core/region.hpp>
#include <flushkit/exec/ordered_executor.hpp>
#include <flushkit/testing/volatile_cache.hpp>

#include "support/fake_providers.hpp"
#include "support/violation_capture.hpp"

#include <doctest/doctest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <future>
#include <memory>
#include <system_error>
#include <thread>
#include <vector>

using flushkit::errc;
using flushkit::flush_result;
using flushkit::ordered_executor;
using flushkit::region;
using flushkit::req_op;
using flushkit::request;
using flushkit::status;
using flushkit::work_item;
using flushkit::test::scripted_async_provider;
using flushkit::test::scripted_sync_provider;
using flushkit::testing::fault;
using flushkit::testing::fault_injector;
using flushkit::testing::fault_kind;
using flushkit::testing::fault_options;
using flushkit::testing::selection;

namespace {

using io_executor = boost::asio::io_context::executor_type;
using pool_executor = boost::asio::thread_pool::executor_type;

// The inner asynchronous provider: takes the request, runs its work item on
// an ordered executor, completes it there with `result`. Thread-safe.
template <class Executor> class ordered_provider {
public:
  explicit ordered_provider(ordered_executor<Executor>& ex) : ex_(&ex) {}

  status result{};
  std::atomic<int> calls{0};

  flush_result flush(request& req) {
    calls.fetch_add(1);
    req.work.set(&ordered_provider::run, this);
    const status st = ex_->submit(req.work);
    return st ? flush_result::done(st) : flush_result::async(req);
  }

private:
  static void run(work_item& item, void* ctx) {
    auto* self = static_cast<ordered_provider*>(ctx);
    request& req = request::from_work(item);
    self->ex_->finish(item);
    req.complete(self->result);
  }

  ordered_executor<Executor>* ex_;
};

// Counts the completions of one request and keeps the last status.
struct probe {
  std::atomic<int> completions{0};
  status last{};
  bool on_io_thread = false;
  boost::asio::io_context* ioc = nullptr;

  void attach(request& req) { req.on_complete(&probe::record, this); }

  static void record(void* ctx, request&, const status& st) {
    auto* p = static_cast<probe*>(ctx);
    p->last = st;
    p->on_io_thread = p->ioc != nullptr && p->ioc->get_executor().running_in_this_thread();
    p->completions.fetch_add(1);
    p->completions.notify_all();
  }
};

// Submits `req` through `p` the way a caller does: a synchronous answer is
// completed by the caller.
template <class P> void submit(P& p, request& req) {
  const flush_result r = p.flush(req);
  if (!r.is_async()) req.complete(r.sync_status());
}

// Statuses a test may inject: flushkit values, errno values, a foreign category.
const status odd_statuses[] = {
    errc::io_error,
    errc::no_memory,
    errc::timeout,
    std::error_code(ENOMEM, std::system_category()),
    std::make_error_code(std::future_errc::broken_promise),
    status(4242, flushkit::flushkit_category()),
    status{},
};

struct both_kinds_provider {
  status flush() { return {}; }
  flush_result flush(request&) { return flush_result::done(); }
};

// One io_context with an ordered executor and the async inner provider on it.
struct async_rig {
  boost::asio::io_context ioc;
  ordered_executor<io_executor> ex{ioc.get_executor()};
  ordered_provider<io_executor> inner{ex};

  fault_options options(std::uint64_t seed = 1) {
    fault_options o(seed);
    o.executor = ioc.get_executor();
    return o;
  }
  void run() {
    ioc.run();
    ioc.restart();
  }
};

std::vector<bool> failure_pattern(std::uint64_t seed, bool with_exact_rule) {
  scripted_sync_provider inner;
  fault_injector<scripted_sync_provider&> inj(inner, fault_options(seed));
  if (with_exact_rule) inj.add_rule(selection::calls({5}), fault::fail_before(errc::timeout));
  inj.add_rule(selection::rate(0.25), fault::fail_before(errc::io_error));
  std::vector<bool> failed;
  for (int i = 0; i < 10000; ++i) failed.push_back(inj.flush() == errc::io_error);
  return failed;
}

} // namespace

TEST_SUITE("testing/fault_injector") {

TEST_CASE("the injector offers the flush kinds of the provider it wraps") {
  using sync_inj = fault_injector<scripted_sync_provider>;
  using async_inj = fault_injector<scripted_async_provider&>;
  using both_inj = fault_injector<both_kinds_provider>;
  static_assert(flushkit::sync_flush_provider<sync_inj> &&
                !flushkit::async_flush_provider<sync_inj>);
  static_assert(flushkit::async_flush_provider<async_inj> &&
                !flushkit::sync_flush_provider<async_inj>);
  static_assert(flushkit::sync_flush_provider<both_inj> &&
                flushkit::async_flush_provider<both_inj>);
  static_assert(region<sync_inj&>::has_sync_flush && !region<sync_inj&>::is_async);
  static_assert(region<async_inj&>::is_async && !region<async_inj&>::has_sync_flush);

  both_inj inj(both_kinds_provider{});
  request req(req_op::flush, 0, {});
  CHECK_FALSE(inj.flush());
  CHECK_FALSE(inj.flush(req).is_async());
  CHECK(inj.counters().calls == 2);
}

TEST_CASE("usage example") {
  // A synchronous provider that fails on demand, wrapped by the injector.
  scripted_sync_provider disk;
  fault_injector<scripted_sync_provider&> inj(disk, fault_options(42));
  inj.add_rule(selection::calls({2}), fault::fail_before(errc::no_memory)) // flush not attempted
      .add_rule(selection::from(4), fault::fail_after(errc::io_error)); // flushed, reported failure

  CHECK(inj.flush() == status{});        // call 1: passes through
  CHECK(inj.flush() == errc::no_memory); // call 2: inner provider not called
  CHECK(inj.flush() == status{});        // call 3
  CHECK(inj.flush() == errc::io_error);  // call 4: inner provider called
  CHECK(disk.calls == 3);
  CHECK(inj.counters().of(fault_kind::fail_before) == 1);
  CHECK(inj.counters().of(fault_kind::fail_after) == 1);
}

TEST_CASE("without a matching rule every call reaches the inner provider") {
  scripted_sync_provider sync_inner;
  sync_inner.next = errc::no_space;
  fault_injector<scripted_sync_provider&> sync_inj(sync_inner);
  sync_inj.add_rule(selection::calls({100}), fault::hang());
  CHECK(sync_inj.flush() == errc::no_space);
  CHECK(sync_inner.calls == 1);

  async_rig rig;
  rig.inner.result = errc::device_broken;
  fault_injector<ordered_provider<io_executor>&> inj(rig.inner, rig.options());
  request req(req_op::flush, 0, {});
  probe p;
  p.attach(req);
  CHECK(inj.flush(req).is_async());
  rig.run();
  CHECK(p.completions == 1);
  CHECK(p.last == errc::device_broken);
  CHECK(rig.inner.calls == 1);
  CHECK(inj.counters().calls == 1);
  CHECK(inj.counters().of(fault_kind::hang) == 0);
}

TEST_CASE("fail_before reports any status without calling the inner provider") {
  for (const status& st : odd_statuses) {
    CAPTURE(st.message());
    scripted_sync_provider sync_inner;
    fault_injector<scripted_sync_provider&> sync_inj(sync_inner);
    sync_inj.add_rule(selection::from(1), fault::fail_before(st));
    CHECK(sync_inj.flush() == st);
    CHECK(sync_inner.calls == 0);

    scripted_async_provider async_inner;
    fault_injector<scripted_async_provider&> async_inj(async_inner);
    async_inj.add_rule(selection::from(1), fault::fail_before(st));
    request req(req_op::flush, 0, {});
    const flush_result r = async_inj.flush(req);
    CHECK_FALSE(r.is_async());
    CHECK(r.sync_status() == st);
    CHECK_FALSE(req.completed()); // the caller completes a synchronous answer
    CHECK(async_inner.calls == 0);
    CHECK(async_inj.counters().of(fault_kind::fail_before) == 1);
  }
}

TEST_CASE("fail_after flushes and then reports the chosen status") {
  for (const status& st : odd_statuses) {
    CAPTURE(st.message());
    scripted_sync_provider sync_inner;
    fault_injector<scripted_sync_provider&> sync_inj(sync_inner);
    sync_inj.add_rule(selection::from(1), fault::fail_after(st));
    CHECK(sync_inj.flush() == st);
    CHECK(sync_inner.calls == 1);

    // Asynchronous inner provider: its success is replaced at completion.
    async_rig rig;
    fault_injector<ordered_provider<io_executor>&> inj(rig.inner, rig.options());
    inj.add_rule(selection::from(1), fault::fail_after(st));
    request req(req_op::flush, 0, {});
    probe p;
    p.attach(req);
    CHECK(inj.flush(req).is_async());
    rig.run();
    CHECK(p.completions == 1);
    CHECK(p.last == st);
    CHECK(rig.inner.calls == 1);

    // Synchronous answer of an async provider: no interception is left behind.
    scripted_async_provider sync_answer;
    sync_answer.next = errc::no_space;
    fault_injector<scripted_async_provider&> inj2(sync_answer);
    inj2.add_rule(selection::from(1), fault::fail_after(st));
    request req2(req_op::flush, 0, {});
    probe p2;
    p2.attach(req2);
    submit(inj2, req2);
    CHECK(p2.completions == 1);
    CHECK(p2.last == st);
    CHECK(sync_answer.calls == 1);
  }
}

TEST_CASE("a synchronous delay blocks the caller for at least the duration then flushes") {
  scripted_sync_provider inner;
  inner.next = errc::no_space;
  fault_injector<scripted_sync_provider&> inj(inner);
  const auto d = std::chrono::milliseconds(20);
  inj.add_rule(selection::calls({1}), fault::delay(d));
  const auto start = std::chrono::steady_clock::now();
  CHECK(inj.flush() == errc::no_space);
  CHECK(std::chrono::steady_clock::now() - start >= d);
  CHECK(inner.calls == 1);
  CHECK(inj.counters().of(fault_kind::delay) == 1);
}

TEST_CASE("an asynchronous delay completes after the duration without blocking the io_context") {
  async_rig rig;
  rig.inner.result = errc::no_space;
  fault_injector<ordered_provider<io_executor>&> inj(rig.inner, rig.options());
  const auto d = std::chrono::milliseconds(20);
  inj.add_rule(selection::calls({1}), fault::delay(d));

  request req(req_op::flush, 0, {});
  probe p;
  p.ioc = &rig.ioc;
  p.attach(req);
  const auto start = std::chrono::steady_clock::now();
  CHECK(inj.flush(req).is_async()); // returns at once
  CHECK(rig.inner.calls == 0);      // the inner flush waits for the timer
  CHECK(inj.counters().delayed == 1);

  // Other work keeps running on the same single thread during the delay.
  int ticks = 0;
  struct ticker {
    boost::asio::io_context* ioc;
    request* req;
    int* ticks;
    void operator()() const {
      ++*ticks;
      if (!req->completed()) boost::asio::post(*ioc, *this);
    }
  };
  boost::asio::post(rig.ioc, ticker{&rig.ioc, &req, &ticks});
  rig.run();

  CHECK(p.completions == 1);
  CHECK(p.last == errc::no_space);
  CHECK(p.on_io_thread);
  CHECK(ticks > 1);
  CHECK(std::chrono::steady_clock::now() - start >= d);
  CHECK(rig.inner.calls == 1);
  CHECK(inj.counters().delayed == 0);
}

TEST_CASE("more asynchronous delays than timers wait for a free timer") {
  async_rig rig;
  fault_options o = rig.options();
  o.max_delayed = 1;
  fault_injector<ordered_provider<io_executor>&> inj(rig.inner, o);
  inj.add_rule(selection::from(1), fault::delay(std::chrono::milliseconds(1)));
  request reqs[3];
  probe probes[3];
  for (int i = 0; i < 3; ++i) {
    reqs[i].prepare(req_op::flush, 0, {});
    probes[i].attach(reqs[i]);
    CHECK(inj.flush(reqs[i]).is_async());
  }
  CHECK(inj.counters().delayed == 3);
  rig.run();
  for (const probe& p : probes) CHECK(p.completions == 1);
  CHECK(rig.inner.calls == 3);
  CHECK(inj.counters().delayed == 0);
}

TEST_CASE("destroying an injector with delays pending completes each request once with cancelled") {
  flushkit::test::violation_capture violations;
  constexpr std::size_t n = 5; // more than max_delayed: some wait for a timer
  request reqs[n];
  probe probes[n];
  auto delay_all = [&](fault_injector<ordered_provider<io_executor>&>& inj) {
    inj.add_rule(selection::from(1), fault::delay(std::chrono::milliseconds(1)));
    for (std::size_t i = 0; i < n; ++i) {
      reqs[i].prepare(req_op::flush, 0, {});
      probes[i].attach(reqs[i]);
      CHECK(inj.flush(reqs[i]).is_async());
    }
    CHECK(inj.counters().delayed == n);
  };
  auto check_cancelled = [&] {
    for (const probe& p : probes) {
      CHECK(p.completions == 1);
      CHECK(p.last == errc::cancelled);
    }
  };
  SUBCASE("the io_context runs the cancelled timers afterwards") {
    async_rig rig;
    fault_options o = rig.options();
    o.max_delayed = 2;
    {
      fault_injector<ordered_provider<io_executor>&> inj(rig.inner, o);
      delay_all(inj);
    }
    check_cancelled();
    rig.run();
    check_cancelled();
    CHECK(rig.inner.calls == 0);
  }
  SUBCASE("the io_context is destroyed without running them") {
    auto rig = std::make_unique<async_rig>();
    fault_options o = rig->options();
    o.max_delayed = 2;
    {
      fault_injector<ordered_provider<io_executor>&> inj(rig->inner, o);
      delay_all(inj);
    }
    check_cancelled();
    rig.reset();
    check_cancelled();
  }
  CHECK(violations.violations() == 0);
}

TEST_CASE("the injector forwards its provider's capabilities without faulting them") {
  using cache_inj = fault_injector<flushkit::testing::volatile_cache&>;
  static_assert(flushkit::dirty_tracking<cache_inj>);
  static_assert(flushkit::provider_wrapper<cache_inj>);
  static_assert(flushkit::detail::check_capability_chain<cache_inj>());
  static_assert(!flushkit::dirty_tracking<fault_injector<scripted_sync_provider&>>);
  static_assert(!flushkit::dirty_tracking<fault_injector<scripted_async_provider>>);

  flushkit::testing::volatile_cache_options opts;
  opts.size = 4096;
  flushkit::testing::volatile_cache cache(opts);
  cache_inj inj(cache);
  const cache_inj& view = inj;
  CHECK(&view.provider() == &cache);
  cache.medium()[8] = std::byte{1};
  inj.note_dirty(cache.medium().data() + 8, 1);
  CHECK(cache.pending_writes() == 1);
  CHECK(cache.counters().writes_noted == 1);
  CHECK_FALSE(inj.flush());
  CHECK(cache.pending_writes() == 0);
  CHECK(cache.durable()[8] == std::byte{1});
  CHECK(inj.counters().calls == 1); // note_dirty is not a flush call
}

TEST_CASE("a hung synchronous flush waits until another thread releases it") {
  scripted_sync_provider inner;
  inner.next = errc::no_space;
  fault_injector<scripted_sync_provider&> inj(inner);
  inj.add_rule(selection::calls({1, 2}), fault::hang());

  status first;
  std::thread caller([&] { first = inj.flush(); });
  inj.wait_parked(1);
  CHECK(inj.parked() == 1);
  CHECK(inner.calls == 0);
  std::thread releaser([&] { CHECK(inj.release_one(errc::timeout)); });
  releaser.join();
  caller.join();
  CHECK(first == errc::timeout); // released with an error: not flushed
  CHECK(inner.calls == 0);

  status second;
  std::thread caller2([&] { second = inj.flush(); });
  inj.wait_parked(1);
  CHECK(inj.release_all() == 1); // released with success: the flush goes on
  caller2.join();
  CHECK(second == errc::no_space);
  CHECK(inner.calls == 1);
  CHECK(inj.parked() == 0);
  CHECK_FALSE(inj.release_one());
  CHECK(inj.counters().of(fault_kind::hang) == 2);
}

TEST_CASE("a hung asynchronous request completes when another thread releases it") {
  async_rig rig;
  rig.inner.result = errc::no_space;
  fault_injector<ordered_provider<io_executor>&> inj(rig.inner, rig.options());
  inj.add_rule(selection::calls({1, 2}), fault::hang());

  request a(req_op::flush, 0, {});
  request b(req_op::flush, 0, {});
  probe pa;
  probe pb;
  pa.attach(a);
  pb.attach(b);
  CHECK(inj.flush(a).is_async());
  CHECK(inj.flush(b).is_async());
  CHECK(inj.parked() == 2);
  rig.run();
  CHECK(pa.completions == 0); // parked requests do not complete by themselves
  CHECK(pb.completions == 0);

  std::thread([&] { CHECK(inj.release_one(errc::timeout)); }).join(); // oldest first
  CHECK(pa.completions == 1);
  CHECK(pa.last == errc::timeout);
  CHECK(pb.completions == 0);

  std::thread([&] { CHECK(inj.release_all() == 1); }).join();
  rig.run();
  CHECK(pb.completions == 1);
  CHECK(pb.last == errc::no_space);
  CHECK(rig.inner.calls == 1);
  CHECK(inj.parked() == 0);
}

TEST_CASE("the same seed replays the same fault sequence") {
  const std::vector<bool> a = failure_pattern(7, false);
  const std::vector<bool> b = failure_pattern(7, false);
  const std::vector<bool> c = failure_pattern(8, false);
  CHECK(a == b);
  CHECK(a != c);
  std::size_t failures = 0;
  for (bool f : a) failures += f ? 1u : 0u;
  CHECK(failures > 2000); // p = 0.25 over 10,000 calls; exact for this seed
  CHECK(failures < 3000);

  // An exact-call rule in front does not shift the rate rule's decisions.
  std::vector<bool> d = failure_pattern(7, true);
  CHECK_FALSE(d[4]); // call 5 failed with the exact rule's status
  d[4] = a[4];
  CHECK(d == a);
}

TEST_CASE("a rate of 0 never selects and a rate of 1 always selects") {
  scripted_sync_provider inner;
  fault_injector<scripted_sync_provider&> inj(inner, fault_options(3));
  inj.add_rule(selection::rate(0.0), fault::fail_before(errc::timeout))
      .add_rule(selection::rate(1.0), fault::fail_before(errc::io_error));
  int io_errors = 0;
  for (int i = 0; i < 1000; ++i) io_errors += inj.flush() == errc::io_error ? 1 : 0;
  CHECK(io_errors == 1000);
  CHECK(inner.calls == 0);
}

TEST_CASE("exact call numbers and every call from N on with first match winning") {
  scripted_sync_provider inner;
  fault_injector<scripted_sync_provider&> inj(inner);
  inj.add_rule(selection::calls({6, 3}), fault::fail_before(errc::timeout))
      .add_rule(selection::from(5), fault::fail_before(errc::io_error))
      .add_rule(selection::calls({1, 5}), fault::fail_before(errc::no_space)); // 5 is shadowed
  const status expected[] = {errc::no_space, {}, errc::timeout, {}, errc::io_error, errc::timeout,
                             errc::io_error};
  for (const status& e : expected) CHECK(inj.flush() == e);
  CHECK(inner.calls == 2);
  const auto c = inj.counters();
  CHECK(c.calls == 7);
  CHECK(c.of(fault_kind::fail_before) == 5);
}

TEST_CASE("every request completes exactly once across four threads with mixed faults") {
  flushkit::test::violation_capture violations;
  boost::asio::thread_pool pool(2);
  ordered_executor<pool_executor> ex(pool.get_executor());
  ordered_provider<pool_executor> inner(ex);
  fault_options o(2024);
  o.executor = pool.get_executor();
  o.max_delayed = 2; // fewer timers than threads: delays also queue
  fault_injector<ordered_provider<pool_executor>&> inj(inner, o);
  inj.add_rule(selection::rate(0.1), fault::fail_before(errc::io_error))
      .add_rule(selection::rate(0.1), fault::fail_after(errc::timeout))
      .add_rule(selection::rate(0.15), fault::delay(std::chrono::microseconds(50)))
      .add_rule(selection::rate(0.1), fault::hang());

  constexpr int threads = 4;
  constexpr int per_thread = 1000;
  std::atomic<int> cancelled{0};
  probe probes[threads];
  auto worker = [&](int t) {
    request req;
    for (int i = 0; i < per_thread; ++i) {
      req.prepare(req_op::flush, 0, {});
      probes[t].attach(req);
      submit(inj, req);
      inj.release_all(i % 2 == 0 ? status{} : make_error_code(errc::cancelled));
      probes[t].completions.wait(i);
      if (probes[t].last == errc::cancelled) cancelled.fetch_add(1);
    }
  };
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) workers.emplace_back(worker, t);
  for (std::thread& w : workers) w.join();
  ex.drain();
  pool.join();

  for (const probe& p : probes) CHECK(p.completions == per_thread);
  CHECK(violations.violations() == 0);
  const auto c = inj.counters();
  CHECK(c.calls == threads * per_thread);
  CHECK(c.parked == 0);
  CHECK(c.delayed == 0);
  for (std::size_t k = 0; k < flushkit::testing::fault_kind_count; ++k) CHECK(c.injected[k] > 0);
  CHECK(static_cast<std::uint64_t>(inner.calls.load()) ==
        c.calls - c.of(fault_kind::fail_before) - static_cast<std::uint64_t>(cancelled.load()));
}

TEST_CASE("a region applies its error policy to injected statuses") {
  scripted_sync_provider sync_inner;
  fault_injector<scripted_sync_provider&> sync_inj(sync_inner);
  sync_inj
      .add_rule(selection::calls({1}),
                fault::fail_before(std::error_code(ENOMEM, std::system_category())))
      .add_rule(selection::calls({2}), fault::fail_before(errc::timeout))
      .add_rule(selection::calls({3}), fault::fail_after(errc::no_memory))
      .add_rule(selection::calls({4}),
                fault::fail_after(std::make_error_code(std::future_errc::broken_promise)));
  region<fault_injector<scripted_sync_provider&>&> sync_region(sync_inj);
  CHECK(sync_region.flush() == errc::no_memory);
  CHECK(sync_region.flush() == errc::io_error);
  CHECK(sync_region.flush() == errc::no_memory);
  CHECK(sync_region.flush() == errc::io_error);

  async_rig rig;
  fault_injector<ordered_provider<io_executor>&> inj(rig.inner, rig.options());
  inj.add_rule(selection::calls({1}),
               fault::fail_after(std::error_code(ENOMEM, std::system_category())))
      .add_rule(selection::calls({2}), fault::fail_after(errc::timeout))
      .add_rule(selection::calls({3}), fault::hang())
      .add_rule(selection::calls({4}), fault::fail_before(errc::no_memory));
  region<fault_injector<ordered_provider<io_executor>&>&> async_region(inj);
  const status expected[] = {errc::no_memory, errc::io_error, errc::io_error, errc::no_memory};
  for (const status& e : expected) {
    request req(req_op::flush, 0, {});
    probe p;
    p.attach(req);
    submit(async_region, req);
    inj.release_all(errc::timeout);
    rig.run();
    CHECK(p.completions == 1);
    CHECK(p.last == e);
  }
}

TEST_CASE("destroying an injector with a parked request reports it and cancels the request") {
  flushkit::test::violation_capture violations;
  scripted_async_provider inner;
  request req(req_op::flush, 0, {});
  probe p;
  p.attach(req);
  {
    fault_injector<scripted_async_provider&> inj(inner);
    inj.add_rule(selection::from(1), fault::hang());
    CHECK(inj.flush(req).is_async());
  }
  CHECK(violations.violations() == (flushkit::test::asserts_enabled ? 1 : 0));
  CHECK(p.completions == 1);
  CHECK(p.last == errc::cancelled);
  CHECK(inner.calls == 0);
}

} // TEST_SUITE("testing/fault_injector")
