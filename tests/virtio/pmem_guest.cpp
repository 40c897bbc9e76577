#include <flushkit/virtio/pmem_guest.hpp>

#include <flushkit/coalesce/coalescer.hpp>
#include <flushkit/core/region.hpp>
#include <flushkit/pmem/backing.hpp>
#include <flushkit/pmem/pmem_device.hpp>

#include "support/scripted_pmem_device.hpp"
#include "support/virtio_guest.hpp"

#include <doctest/doctest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <thread>
#include <type_traits>
#include <vector>

namespace asio = boost::asio;
namespace fv = flushkit::virtio;
using flushkit::errc;
using flushkit::request;
using flushkit::status;
using flushkit_test::guest_ram;
using flushkit_test::scripted_pmem_device;

namespace {

using io_exec = asio::io_context::executor_type;
using guest_t = fv::pmem_guest<io_exec, scripted_pmem_device>;

const status io_error = make_error_code(errc::io_error);

fv::pmem_guest_options opts(std::uint32_t queue = 64, bool one = true, std::uint32_t contexts = 0) {
  fv::pmem_guest_options o;
  o.queue_size = queue;
  o.one_in_flight = one;
  o.contexts = contexts;
  o.log = [](void*, const char*, const char*) {};
  return o;
}

/// Guest RAM, control block, scripted device and the driver, probed.
struct rig {
  explicit rig(const fv::pmem_guest_options& o = opts(), bool do_probe = true,
               std::uint64_t features = fv::f_version_1 | fv::f_event_idx, std::uint64_t size = 1 << 20)
      : dev(control, 256, features, 0x40000000, size),
        guest(io.get_executor(), control, ram.mem, {ram.base(), ram.host(ram.base()), ram.size()}, dev, o) {
    dev.attach(ram.mem);
    dev.connect(guest);
    if (do_probe) REQUIRE_FALSE(guest.probe());
  }
  ~rig() { pump(); }
  /// Runs ready handlers (single-threaded tests).
  void pump() {
    io.restart();
    io.poll();
  }
  std::uint32_t resp_word(std::uint32_t ctx) const {
    std::uint32_t v;
    std::memcpy(&v, ram.host(guest.response_address(ctx)), 4);
    return v;
  }

  asio::io_context io;
  guest_ram ram;
  fv::pmem_control control;
  scripted_pmem_device dev;
  guest_t guest;
};

/// Runs an io_context on a thread until destroyed.
struct io_thread {
  explicit io_thread(asio::io_context& io) : guard(io.get_executor()), t([&io] {
    io.restart();
    io.run();
  }) {}
  ~io_thread() {
    guard.reset();
    t.join();
  }
  asio::executor_work_guard<io_exec> guard;
  std::thread t;
};

/// Spins (yielding) until `pred` holds; fails after a generous deadline.
template <class Pred> bool eventually(Pred pred) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

/// An asynchronous flush through the provider interface, as `region` calls it.
struct async_flush {
  request req{flushkit::req_op::flush, 0, {}, flushkit::req_flags::preflush};
  std::atomic<int> completions{0};
  std::atomic<bool> done{false};
  status st;
  bool was_async = false;

  explicit async_flush(guest_t& g) {
    req.on_complete(&async_flush::record, this);
    const flushkit::flush_result r = g.flush(req);
    was_async = r.is_async();
    if (!was_async) req.complete(r.sync_status());
  }
  static void record(void* self, request&, const status& s) {
    auto* f = static_cast<async_flush*>(self);
    f->st = s;
    f->completions.fetch_add(1);
    f->done.store(true, std::memory_order_release);
  }
};

/// A blocking flush on its own thread.
struct blocking_flush {
  explicit blocking_flush(guest_t& g) : t([this, &g] { record(g.flush_and_wait()); }) {}
  ~blocking_flush() { join(); }
  void join() {
    if (t.joinable()) t.join();
  }
  void record(const status& s) {
    st = s;
    done.store(true, std::memory_order_release);
  }
  status st;
  std::atomic<bool> done{false};
  std::thread t;
};

} // namespace

TEST_SUITE("virtio/pmem_guest") {

TEST_CASE("probe: status sequence features queue registers and config range") {
  rig r;
  const auto s = r.control.status.load();
  CHECK(s == (fv::device_status::acknowledge | fv::device_status::driver | fv::device_status::features_ok |
              fv::device_status::driver_ok));
  CHECK(r.control.driver_features.load() == (fv::f_version_1 | fv::f_event_idx));
  CHECK(r.control.queue_enable.load() == 1);
  CHECK(r.control.queue_size.load() == 64);
  CHECK(r.control.queue_desc.load() == r.guest.ring().desc);
  CHECK(r.guest.range().start == 0x40000000);
  CHECK(r.guest.range().size == (1u << 20));
  CHECK_FALSE(r.guest.broken());
  CHECK(r.guest.probe() == errc::invalid_request); // once
}

TEST_CASE("probe: EVENT_IDX only when offered and VERSION_1 required") {
  rig plain(opts(), true, fv::f_version_1);
  CHECK(plain.control.driver_features.load() == fv::f_version_1);
  async_flush f(plain.guest);
  plain.pump();
  CHECK(f.st == status{});

  rig legacy(opts(), false, 0);
  CHECK(legacy.guest.probe() == errc::not_supported);
  CHECK((legacy.control.status.load() & fv::device_status::failed) != 0);
  async_flush g(legacy.guest);
  CHECK_FALSE(g.was_async);
  CHECK(g.st == io_error);
}

TEST_CASE("probe: size zero and overflowing range and oversized queue are rejected") {
  rig zero(opts(), false, fv::f_version_1, 0);
  CHECK(zero.guest.probe() == errc::invalid_request);
  CHECK((zero.control.status.load() & fv::device_status::failed) != 0);
  CHECK((zero.control.status.load() & fv::device_status::driver_ok) == 0);

  rig over(opts(), false);
  over.control.config_start.store(UINT64_MAX - 10);
  over.control.config_size.store(100);
  CHECK(over.guest.probe() == errc::invalid_request);

  rig big(opts(512), false);
  CHECK(big.guest.probe() == errc::invalid_request);

  asio::io_context io;
  guest_ram ram(4096);
  fv::pmem_control control;
  scripted_pmem_device d(control);
  guest_t g(io.get_executor(), control, ram.mem, {ram.base(), ram.host(ram.base()), ram.size()}, d, opts(256));
  CHECK(guest_t::area_bytes(opts(256)) > ram.size());
  CHECK(g.probe() == errc::invalid_request);
}

TEST_CASE("scenario 16: host ret 0 succeeds and ret 1 or 0xFFFFFFFF is io_error") {
  rig r;
  const std::uint32_t rets[] = {0, 1, 0xFFFFFFFFu};
  for (std::uint32_t ret : rets) {
    r.dev.answer(ret);
    async_flush f(r.guest);
    REQUIRE(f.was_async);
    r.pump();
    CHECK(f.completions.load() == 1);
    CHECK(f.st == (ret == 0 ? status{} : io_error));
  }
  CHECK(r.guest.stats().host_errors == 2);
  r.dev.answer(1);
  io_thread t(r.io); // the blocking path needs the driver's executor running
  CHECK(r.guest.flush_and_wait() == io_error);
  r.guest.remove();
}

TEST_CASE("scenario 17: host ret -ENOMEM is io_error (pinned policy) also through a region") {
  rig r;
  r.dev.answer(static_cast<std::uint32_t>(-ENOMEM));
  async_flush f(r.guest);
  r.pump();
  CHECK(f.st == io_error);
  CHECK(f.st != errc::no_memory);

  flushkit::region<guest_t&> reg(r.guest);
  request req(flushkit::req_op::flush, 0, {}, flushkit::req_flags::preflush);
  status got;
  req.on_complete([](void* c, request&, const status& s) { *static_cast<status*>(c) = s; }, &got);
  const auto res = reg.flush(req);
  REQUIRE(res.is_async());
  r.pump();
  CHECK(got == io_error);
}

TEST_CASE("scenario 18: ret 1 on the async FUA path is io_error completed exactly once") {
  rig r;
  r.dev.answer(1);
  auto b = flushkit::pmem::backing::anonymous(4096);
  REQUIRE(b);
  flushkit::pmem::pmem_device<flushkit::region<guest_t&>> dev(r.io, b->bytes(), {}, r.guest);
  std::array<std::byte, 512> data{};
  data.fill(std::byte{0x5a});
  const flushkit::segment seg{data.data(), data.size()};
  request req(flushkit::req_op::write, 0, {&seg, 1}, flushkit::req_flags::fua);
  struct rec {
    int n = 0;
    status st;
  } out;
  req.on_complete(
      [](void* c, request&, const status& s) {
        auto* o = static_cast<rec*>(c);
        ++o->n;
        o->st = s;
      },
      &out);
  dev.submit(req);
  CHECK(out.n == 0); // asynchronous: the provider owns it
  r.pump();
  CHECK(out.n == 1);
  CHECK(out.st == io_error);
  CHECK(b->data()[0] == std::byte{0x5a}); // data written, reported not durable
  {
    io_thread t(r.io);
    dev.remove(); // no final flush: the guest is an asynchronous provider
    r.guest.remove();
  }
  CHECK(r.dev.chains() == 1);
}

TEST_CASE("scenario 19: used len below 4 is io_error and the poisoned response is never read") {
  rig r;
  r.dev.answer(1);
  { // leaves ret 1 in the response slot
    async_flush f(r.guest);
    r.pump();
    CHECK(f.st == io_error);
  }
  CHECK(r.resp_word(0) == 1);
  r.dev.hold(true);
  for (std::uint32_t len : {0u, 2u}) {
    async_flush f(r.guest);
    r.pump();
    REQUIRE(r.dev.held() == 1);
    CHECK(r.resp_word(0) == 0); // re-poisoned (0 = the success value) before submission
    r.dev.release(0, 0, len);   // a short answer: 2 bytes of ret 0, or nothing
    r.pump();
    CHECK(f.completions.load() == 1);
    CHECK(f.st == io_error);
  }
  CHECK(r.guest.stats().short_responses == 2);
}

TEST_CASE("scenario 20: an exhausted context pool waits instead of failing and submits nothing") {
  rig r(opts(64, false, 2)); // one context for blocking callers
  io_thread t(r.io);
  r.dev.hold(true);
  blocking_flush a(r.guest);
  REQUIRE(eventually([&] { return r.dev.held() == 1; }));
  blocking_flush b(r.guest);
  REQUIRE(eventually([&] { return r.guest.stats().contexts_in_use == 1; }));
  CHECK(r.dev.chains() == 1); // b has nothing in the ring
  CHECK_FALSE(b.done.load());
  r.dev.release(0);
  REQUIRE(eventually([&] { return r.dev.held() == 1; })); // b got the context
  r.dev.release(0);
  a.join();
  b.join();
  CHECK(a.st == status{});
  CHECK(b.st == status{});
  r.guest.remove();
}

TEST_CASE("scenario 21: NEEDS_RESET before submission fails without touching the ring") {
  for (auto policy : {fv::needs_reset_policy::fail_new_flushes, fv::needs_reset_policy::mark_broken}) {
    auto o = opts();
    o.on_needs_reset = policy;
    rig r(o);
    r.dev.set_needs_reset();
    async_flush f(r.guest);
    r.pump();
    CHECK(f.st == io_error);
    {
      io_thread t(r.io);
      CHECK(r.guest.flush_and_wait() == io_error);
    }
    CHECK(r.dev.chains() == 0);
    CHECK(r.guest.stats().submitted == 0);
    CHECK(r.guest.broken() == (policy == fv::needs_reset_policy::mark_broken));
  }
}

TEST_CASE("scenario 22: ring full waiters are admitted FIFO one per reclaimed buffer") {
  rig r(opts(2, false, 8)); // one chain fits
  io_thread t(r.io);
  r.dev.hold(true);
  constexpr int k = 5;
  std::atomic<int> order{0};
  std::array<int, k> finished_as{};
  std::vector<std::unique_ptr<std::thread>> threads;
  for (int i = 0; i < k; ++i) {
    threads.push_back(std::make_unique<std::thread>([&, i] {
      CHECK(r.guest.flush_and_wait() == status{});
      finished_as[static_cast<std::size_t>(i)] = order.fetch_add(1);
    }));
    // thread i is in the ring (i == 0) or the i-th waiter
    REQUIRE(eventually([&] { return r.guest.stats().contexts_in_use == static_cast<std::uint32_t>(i + 1); }));
  }
  CHECK(r.guest.stats().waiting == k - 1);
  for (int i = 0; i < k; ++i) {
    REQUIRE(eventually([&] { return r.dev.held() == 1; }));
    const auto s = r.guest.stats();
    CHECK(s.in_flight == 1);
    CHECK(s.waiting == static_cast<std::uint32_t>(k - 1 - i)); // exactly one admitted per reclaimed buffer
    r.dev.release(0);
    REQUIRE(eventually([&] { return order.load() == i + 1; }));
  }
  for (auto& th : threads) th->join();
  for (int i = 0; i < k; ++i) CHECK(finished_as[static_cast<std::size_t>(i)] == i); // FIFO
  CHECK(r.guest.stats().admitted == k - 1);
  r.guest.remove();
}

TEST_CASE("scenario 23: an answer between add and wait is not lost [race]") {
  rig r(opts(8, false, 8));
  io_thread t(r.io); // the device answers inside the kick, before the submitter waits
  std::atomic<int> ok{0};
  std::vector<std::thread> th;
  for (int i = 0; i < 4; ++i)
    th.emplace_back([&] {
      for (int n = 0; n < 300; ++n)
        if (!r.guest.flush_and_wait()) ok.fetch_add(1);
    });
  for (int n = 0; n < 300; ++n) {
    async_flush f(r.guest);
    REQUIRE(eventually([&] { return f.done.load(std::memory_order_acquire); }));
    CHECK(f.st == status{});
  }
  for (auto& x : th) x.join();
  CHECK(ok.load() == 1200);
  CHECK(r.guest.stats().contexts_in_use == 0);
  r.guest.remove();
}

TEST_CASE("scenario 24: a failed kick breaks the device and the ring keeps the context") {
  for (bool late_answer : {true, false}) {
    rig r(opts(64, false));
    io_thread t(r.io);
    r.dev.hold(true);
    r.dev.fail_kicks([](void* g) { static_cast<guest_t*>(g)->mark_broken("notify failed"); }, &r.guest);
    CHECK(r.guest.flush_and_wait() == io_error);
    CHECK(r.guest.broken());
    CHECK(r.guest.stats().contexts_in_use == 1); // the ring's reference
    if (late_answer) {
      r.dev.release(0, 0);
      REQUIRE(eventually([&] { return r.guest.stats().contexts_in_use == 0; }));
      CHECK(r.guest.stats().late_completions == 1);
    }
    r.guest.remove();
    const auto s = r.guest.stats();
    CHECK(s.contexts_in_use == 0);
    CHECK(s.tokens_drained == (late_answer ? 0u : 1u));
  }
}

TEST_CASE("scenario 25: broken wakes every ring waiter with io_error [race]") {
  for (int iter = 0; iter < 50; ++iter) {
    rig r(opts(2, false, 8));
    io_thread t(r.io);
    r.dev.hold(true);
    std::vector<std::unique_ptr<blocking_flush>> w;
    for (int i = 0; i < 5; ++i) w.push_back(std::make_unique<blocking_flush>(r.guest));
    if (iter % 2 == 0) REQUIRE(eventually([&] { return r.guest.stats().waiting == 4; }));
    r.guest.mark_broken("test");
    for (auto& b : w) {
      b->join();
      CHECK(b->st == io_error);
    }
    CHECK(r.guest.stats().waiting == 0);
    r.guest.remove();
    CHECK(r.guest.stats().contexts_in_use == 0);
  }
}

TEST_CASE("scenario 26: broken while awaiting the host returns io_error and a late answer is safe [race]") {
  for (int iter = 0; iter < 50; ++iter) {
    rig r(opts(64, false));
    io_thread t(r.io);
    r.dev.hold(true);
    blocking_flush b(r.guest);
    std::optional<async_flush> a;
    REQUIRE(eventually([&] { return r.dev.held() == 1; }));
    a.emplace(r.guest);
    REQUIRE(eventually([&] { return r.dev.held() == 2; }));
    CHECK(r.resp_word(0) == 0); // the response holds the success value: must not be read
    std::thread answer([&] { r.dev.release_all(); }); // races the broken state
    r.guest.mark_broken("test");
    b.join();
    answer.join();
    REQUIRE(eventually([&] { return a->done.load(std::memory_order_acquire); }));
    CHECK(a->completions.load() == 1);
    // Each result is its own: success only if the answer won the race.
    CHECK((b.st == status{} || b.st == io_error));
    r.guest.remove();
    CHECK(r.guest.stats().contexts_in_use == 0);
  }
}

TEST_CASE("scenario 26: with the answer never coming the waiter gets io_error without reading") {
  rig r(opts(64, false));
  io_thread t(r.io);
  r.dev.hold(true);
  blocking_flush b(r.guest);
  REQUIRE(eventually([&] { return r.dev.held() == 1; }));
  r.guest.mark_broken("test");
  b.join();
  CHECK(b.st == io_error);
  CHECK(r.guest.stats().contexts_in_use == 1);
  r.dev.release(0, 0); // the late answer: accepted, counted as an error
  REQUIRE(eventually([&] { return r.guest.stats().late_completions == 1; }));
  CHECK(r.guest.stats().contexts_in_use == 0);
  r.guest.remove();
}

TEST_CASE("scenario 27: an answer processed after broken is io_error although the host said 0") {
  rig r;
  r.dev.hold(true);
  async_flush f(r.guest);
  r.pump();
  REQUIRE(r.dev.held() == 1);
  r.dev.release(0, 0); // used buffer published, interrupt posted, not yet run
  r.guest.mark_broken("test");
  r.pump();
  CHECK(f.completions.load() == 1);
  CHECK(f.st == io_error);
  CHECK(r.guest.stats().late_completions == 1);
  CHECK(r.guest.stats().contexts_in_use == 0);
}

TEST_CASE("scenario 28: a flush after broken fails synchronously without ring access") {
  rig r;
  r.guest.mark_broken("test");
  const auto before = r.guest.stats();
  async_flush f(r.guest);
  CHECK_FALSE(f.was_async);
  CHECK(f.st == io_error);
  CHECK(r.guest.flush_and_wait() == io_error);
  CHECK(r.guest.stats().submitted == before.submitted);
  CHECK(r.dev.chains() == 0);
  {
    io_thread t(r.io);
    r.guest.remove(); // the queue is deleted
  }
  async_flush g(r.guest);
  CHECK_FALSE(g.was_async);
  CHECK(g.st == io_error);
}

TEST_CASE("scenario 29: FUA racing remove is completed before the drain or rejected synchronously [race]") {
  for (int iter = 0; iter < 100; ++iter) {
    rig r(opts(8, false));
    auto b = flushkit::pmem::backing::anonymous(4096);
    REQUIRE(b);
    flushkit::pmem::pmem_device<flushkit::region<guest_t&>> dev(r.io, b->bytes(), {}, r.guest);
    io_thread t(r.io);
    constexpr int n = 8;
    struct slot {
      request req;
      std::array<std::byte, 64> data{};
      flushkit::segment seg{};
      std::atomic<int> completions{0};
      std::atomic<bool> sync{false};
      std::atomic<std::uint64_t> done_at{0};
    };
    std::array<slot, n> s;
    std::atomic<std::uint64_t> seq{1};
    std::atomic<bool> in_submit{false};
    std::thread::id submitter;
    struct ctx_t {
      slot* sl;
      std::atomic<std::uint64_t>* seq;
      std::atomic<bool>* in_submit;
      std::thread::id* submitter;
    };
    std::array<ctx_t, n> ctx{};
    std::uint64_t removed_at = 0;
    std::thread a([&] {
      submitter = std::this_thread::get_id();
      for (int i = 0; i < n; ++i) {
        slot& sl = s[static_cast<std::size_t>(i)];
        sl.seg = {sl.data.data(), sl.data.size()};
        sl.req.prepare(flushkit::req_op::write, static_cast<std::uint64_t>(i) * 64, {&sl.seg, 1},
                       flushkit::req_flags::fua);
        ctx[static_cast<std::size_t>(i)] = {&sl, &seq, &in_submit, &submitter};
        sl.req.on_complete(
            [](void* c, request&, const status&) {
              auto* x = static_cast<ctx_t*>(c);
              x->sl->sync.store(x->in_submit->load() && std::this_thread::get_id() == *x->submitter);
              x->sl->done_at.store(x->seq->fetch_add(1));
              x->sl->completions.fetch_add(1);
            },
            &ctx[static_cast<std::size_t>(i)]);
        in_submit.store(true);
        dev.submit(sl.req);
        in_submit.store(false);
      }
    });
    std::thread rm([&] {
      r.guest.remove();
      removed_at = seq.fetch_add(1);
    });
    a.join();
    rm.join();
    for (slot& sl : s) {
      CHECK(sl.completions.load() == 1);
      if (!sl.sync.load()) CHECK(sl.done_at.load() < removed_at); // async ones completed before the drain returned
    }
    dev.remove();
  }
}

TEST_CASE("scenario 30: remove with tokens in the ring drains the strand then resets then drains tokens") {
  rig r(opts(64, false));
  io_thread t(r.io);
  r.dev.hold(true);
  std::atomic<std::uint8_t> status_at_completion{0xFF};
  request req(flushkit::req_op::flush, 0, {}, flushkit::req_flags::preflush);
  struct cap {
    fv::pmem_control* c;
    std::atomic<std::uint8_t>* out;
    status st;
  } c{&r.control, &status_at_completion, {}};
  req.on_complete(
      [](void* p, request&, const status& s) {
        auto* x = static_cast<cap*>(p);
        x->st = s;
        x->out->store(x->c->status.load());
      },
      &c);
  REQUIRE(r.guest.flush(req).is_async());
  blocking_flush b1(r.guest), b2(r.guest);
  REQUIRE(eventually([&] { return r.dev.held() == 3; }));
  r.guest.remove();
  b1.join();
  b2.join();
  CHECK(b1.st == io_error);
  CHECK(b2.st == io_error);
  CHECK(c.st == io_error);
  CHECK((status_at_completion.load() & fv::device_status::driver_ok) != 0); // strand drained before the reset
  CHECK(r.control.status.load() == 0);
  const auto s = r.guest.stats();
  CHECK(s.tokens_drained == 3);
  CHECK(s.contexts_in_use == 0);
  CHECK(s.in_flight == 0);
  r.guest.remove(); // idempotent
}

TEST_CASE("scenario 31: freeze fails flushes and restore makes them work again") {
  rig r(opts(64, false));
  io_thread t(r.io);
  r.dev.hold(true);
  blocking_flush held(r.guest);
  REQUIRE(eventually([&] { return r.dev.held() == 1; }));
  r.guest.freeze();
  held.join();
  CHECK(held.st == io_error);
  CHECK(r.guest.flush_and_wait() == io_error);
  async_flush during(r.guest);
  CHECK_FALSE(during.was_async);
  CHECK(r.guest.stats().contexts_in_use == 0);
  r.dev.poll_status(); // the device observes the reset
  REQUIRE_FALSE(r.guest.restore());
  CHECK_FALSE(r.guest.broken());
  r.dev.hold(false);
  CHECK(r.guest.flush_and_wait() == status{});
  async_flush after(r.guest);
  REQUIRE(eventually([&] { return after.done.load(std::memory_order_acquire); }));
  CHECK(after.st == status{});
  r.guest.remove();
}

TEST_CASE("scenario 32: remove after freeze is safe") {
  rig r;
  io_thread t(r.io);
  r.guest.freeze();
  r.guest.remove();
  CHECK(r.control.status.load() == 0);
  CHECK(r.guest.flush_and_wait() == io_error);
  CHECK(r.guest.restore() == errc::invalid_request);
}

TEST_CASE("scenario 33: NEEDS_RESET with a request in flight under both policies") {
  for (auto policy : {fv::needs_reset_policy::fail_new_flushes, fv::needs_reset_policy::mark_broken}) {
    auto o = opts();
    o.on_needs_reset = policy;
    rig r(o);
    r.dev.hold(true); // the host never answers
    async_flush f(r.guest);
    r.pump();
    REQUIRE(r.dev.held() == 1);
    r.dev.set_needs_reset();
    r.guest.on_config_change();
    r.pump();
    if (policy == fv::needs_reset_policy::fail_new_flushes) {
      CHECK_FALSE(f.done.load()); // the kernel: pending until remove
      io_thread t(r.io);
      r.guest.remove();
    }
    CHECK(f.completions.load() == 1);
    CHECK(f.st == io_error);
    if (policy == fv::needs_reset_policy::mark_broken) {
      io_thread t(r.io);
      r.guest.remove();
    }
  }
}

TEST_CASE("scenario 34: virtqueue is broken is logged once per device and not on remove") {
  struct log_rec {
    int n = 0;
    const char* reason = nullptr;
  };
  log_rec la, lb, lc;
  auto with_log = [](log_rec& l) {
    auto o = opts();
    o.log = [](void* c, const char* msg, const char* reason) {
      auto* x = static_cast<log_rec*>(c);
      if (std::strcmp(msg, "virtqueue is broken") == 0) ++x->n;
      x->reason = reason;
    };
    o.log_context = &l;
    return o;
  };
  rig a(with_log(la)), b(with_log(lb)), c(with_log(lc));
  a.guest.mark_broken("first");
  a.guest.mark_broken("second");
  b.guest.mark_broken("other device");
  {
    io_thread t(c.io);
    c.guest.freeze();
    c.dev.poll_status();
    REQUIRE_FALSE(c.guest.restore());
    c.guest.remove();
  }
  CHECK(la.n == 1);
  CHECK(std::strcmp(la.reason, "first") == 0);
  CHECK(lb.n == 1);
  CHECK(lc.n == 0);
  a.pump();
  b.pump();
}

TEST_CASE("scenario 35: the ordered work progresses when blocking callers hold every context") {
  rig r(opts(64, false, 3)); // two contexts for blocking callers, one reserved
  io_thread t(r.io);
  r.dev.hold(true);
  blocking_flush b1(r.guest), b2(r.guest);
  REQUIRE(eventually([&] { return r.dev.held() == 2; }));
  blocking_flush b3(r.guest); // waits for a context
  async_flush f(r.guest);
  REQUIRE(f.was_async);
  REQUIRE(eventually([&] { return r.dev.held() == 3; }));
  r.dev.release(2, 0); // the async flush's chain
  REQUIRE(eventually([&] { return f.done.load(std::memory_order_acquire); }));
  CHECK(f.st == status{});
  CHECK_FALSE(b3.done.load());
  r.dev.hold(false);
  r.dev.release_all();
  b1.join();
  b2.join();
  b3.join();
  CHECK(b3.st == status{});
  r.guest.remove();
}

TEST_CASE("scenario 36: one in flight with flush_lock on and the ring-full path with it off [race]") {
  SUBCASE("flush_lock on: never more than one request in flight") {
    rig r(opts(8, true, 8));
    io_thread t(r.io);
    std::vector<std::thread> th;
    std::atomic<int> fails{0};
    for (int i = 0; i < 4; ++i)
      th.emplace_back([&] {
        for (int n = 0; n < 200; ++n)
          if (r.guest.flush_and_wait()) fails.fetch_add(1);
      });
    for (int n = 0; n < 200; ++n) {
      async_flush f(r.guest);
      REQUIRE(eventually([&] { return f.done.load(std::memory_order_acquire); }));
      if (f.st) fails.fetch_add(1);
    }
    for (auto& x : th) x.join();
    CHECK(fails.load() == 0);
    CHECK(r.guest.stats().max_in_flight == 1);
    CHECK(r.dev.max_in_flight() == 1);
    r.guest.remove();
  }
  SUBCASE("flush_lock off with queue 4: two chains in flight and the third waits") {
    rig r(opts(4, false, 8));
    io_thread t(r.io);
    r.dev.hold(true);
    blocking_flush a(r.guest), b(r.guest), c(r.guest);
    REQUIRE(eventually([&] { return r.dev.held() == 2 && r.guest.stats().waiting == 1; }));
    CHECK(r.guest.stats().ring_full_waits >= 1);
    r.dev.hold(false);
    r.dev.release_all();
    REQUIRE(eventually([&] { return r.dev.held() == 0 && r.guest.stats().contexts_in_use == 0; }));
    a.join();
    b.join();
    c.join();
    CHECK(a.st == status{});
    CHECK(b.st == status{});
    CHECK(c.st == status{});
    CHECK(r.guest.stats().max_in_flight == 2);
    r.guest.remove();
  }
}

TEST_CASE("scenario 37: the response has its own cache line apart from the request and the ring") {
  static_assert(offsetof(fv::detail::pmem_guest_dma_slot, resp) % 64 == 0);
  static_assert(sizeof(fv::detail::pmem_guest_dma_slot) == 128);
  rig r(opts(64, false, 16));
  const auto& a = r.guest.ring();
  const std::uint64_t ring_end = a.used + fv::used_bytes(a.size);
  for (std::uint32_t i = 0; i < 16; ++i) {
    const std::uint64_t resp = r.guest.response_address(i), req = r.guest.request_address(i);
    CHECK(resp % 64 == 0);
    CHECK(req / 64 != resp / 64);
    CHECK(resp >= ring_end);
    if (i > 0) CHECK(r.guest.response_address(i - 1) / 64 != resp / 64);
  }
}

TEST_CASE("scenario 51: out of order answers reach their own waiter") {
  rig r(opts(64, false));
  io_thread t(r.io);
  r.dev.hold(true);
  blocking_flush first(r.guest);
  REQUIRE(eventually([&] { return r.dev.held() == 1; }));
  blocking_flush second(r.guest);
  REQUIRE(eventually([&] { return r.dev.held() == 2; }));
  r.dev.release(1, 1); // second: error, answered first
  second.join();
  CHECK(second.st == io_error);
  CHECK_FALSE(first.done.load());
  r.dev.release(0, 0);
  first.join();
  CHECK(first.st == status{});
  r.guest.remove();
}

TEST_CASE("pmem_device over pmem_guest: FUA writes and an empty flush") {
  rig r;
  auto b = flushkit::pmem::backing::anonymous(64 * 1024);
  REQUIRE(b);
  flushkit::pmem::pmem_device<flushkit::region<guest_t&>> dev(r.io, b->bytes(), {}, r.guest);
  std::array<std::byte, 512> data{};
  data.fill(std::byte{7});
  status st = io_error;
  dev.async_write(4096, asio::buffer(data), flushkit::req_flags::fua, [&](status s) { st = s; });
  r.pump();
  CHECK(st == status{});
  CHECK(b->data()[4096] == std::byte{7});
  status fl = io_error;
  dev.async_flush([&](status s) { fl = s; });
  r.pump();
  CHECK(fl == status{});
  CHECK(r.dev.chains() == 2);
  io_thread t(r.io);
  dev.remove();
  r.guest.remove();
}

TEST_CASE("coalescer over pmem_guest: one host flush covers concurrent requests") {
  rig r;
  r.dev.hold(true);
  flushkit::coalescer<guest_t&> co(r.io, r.guest);
  std::array<request, 4> reqs;
  std::array<status, 4> st;
  st.fill(io_error);
  for (std::size_t i = 0; i < reqs.size(); ++i) {
    reqs[i].prepare(flushkit::req_op::flush, 0, {}, flushkit::req_flags::preflush);
    reqs[i].on_complete([](void* c, request&, const status& s) { *static_cast<status*>(c) = s; }, &st[i]);
    co.mark_completed(reqs[i]); // every write completed before the first flush is issued
  }
  for (request& q : reqs) REQUIRE(co.flush(q).is_async());
  r.pump();
  CHECK(r.dev.held() == 1); // one backend flush for all four
  r.dev.hold(false);
  r.dev.release_all();
  r.pump();
  for (const status& s : st) CHECK(s == status{});
  CHECK(r.dev.chains() == 1);
}

} // TEST_SUITE

TEST_CASE("a pmem_device over the guest is removed with the driver's executor stopped; its flush completes once") {
  static_assert(!flushkit::sync_flush_provider<guest_t>, "the blocking flush is flush_and_wait(), not flush()");
  static_assert(!flushkit::region<guest_t&>::has_sync_flush);
  rig r;
  std::vector<std::byte> medium(4096);
  std::array<std::byte, 64> data{};
  const flushkit::segment s{data.data(), data.size()};
  request req(flushkit::req_op::write, 0, {&s, 1}, flushkit::req_flags::fua);
  int completions = 0;
  req.on_complete([](void* n, request&, const status&) { ++*static_cast<int*>(n); }, &completions);
  {
    flushkit::pmem::pmem_device<flushkit::region<guest_t&>> dev(r.io, medium, {}, r.guest);
    dev.submit(req); // queued on the driver's executor, which nobody runs yet
    dev.remove();    // returns: it issues no flush that would wait for that executor
    CHECK(dev.in_flight() == 1);
    CHECK(completions == 0);
    r.guest.mark_broken("test: device removed");
    r.pump();
    CHECK(completions == 1);
    CHECK(req.result() == io_error);
    CHECK(dev.in_flight() == 0);
  }
  CHECK(completions == 1);
}

TEST_SUITE("virtio/pmem_guest") {

TEST_CASE("get_executor is the executor given at construction, driver_executor the driver's strand") {
  static_assert(std::is_same_v<guest_t::executor_type, io_exec>);
  static_assert(std::is_same_v<guest_t::driver_executor_type, asio::strand<io_exec>>);
  rig r;
  CHECK(r.guest.get_executor() == r.io.get_executor());
  CHECK(r.guest.driver_executor().get_inner_executor() == r.io.get_executor());
  bool on_strand = false;
  asio::post(r.guest.driver_executor(), [&] { on_strand = r.guest.driver_executor().running_in_this_thread(); });
  r.pump();
  CHECK(on_strand);
}

TEST_CASE("async_flush: the host's answer reaches the handler on get_executor(), never inside the call") {
  rig r;
  // One async_flush: no call inside it, exactly one once the context ran.
  auto flush_once = [&r] {
    int calls = 0;
    status got = make_error_code(errc::timeout);
    r.guest.async_flush([&](const status& st) {
      ++calls;
      got = st;
    });
    CHECK(calls == 0);
    r.pump();
    CHECK(calls == 1);
    return got;
  };
  const std::uint32_t rets[] = {0, 1};
  for (std::uint32_t ret : rets) {
    r.dev.answer(ret);
    CHECK(flush_once() == (ret == 0 ? status{} : io_error));
  }
  CHECK(r.dev.chains() == 2);
  r.guest.mark_broken("test"); // the result is known at initiation: still posted
  CHECK(flush_once() == io_error);
  CHECK(r.dev.chains() == 2);
}

} // TEST_SUITE
