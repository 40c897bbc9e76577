// Stress: pmem_device<region<pmem_guest&>> and pmem_device<region<coalescer<pmem_guest&>&>>
// over pmem_host (real file, fdatasync) on the in-process transport, in phases:
//  (a) clean: no fault, every request succeeds;
//  (b) faults paced by completed requests: host fail_next, slow flushes, hold
//      then release, mark_broken always followed by freeze/restore, freeze/restore
//      mid-flight and frozen windows;
//  (c) recovery: no fault pending, guest live, device active, everything idle;
//  (d) clean tail: every request succeeds again;
//  (e) remove while flushes are held in the device: every request completes
//      exactly once, none hangs; then a FUA fails synchronously.
// Plus a loop of fresh rigs each doing a burst of 4 concurrent FUA writes.
#include "support/stress_harness.hpp"

#include <flushkit/coalesce/coalescer.hpp>
#include <flushkit/core/region.hpp>
#include <flushkit/pmem/backing.hpp>
#include <flushkit/pmem/file_sync_provider.hpp>
#include <flushkit/pmem/pmem_device.hpp>
#include <flushkit/virtio/inproc_transport.hpp>
#include <flushkit/virtio/pmem_guest.hpp>
#include <flushkit/virtio/pmem_host.hpp>

#include "support/violation_capture.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/system/system_error.hpp>

#include <doctest/doctest.h>

#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <future>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

namespace asio = boost::asio;
namespace fv = flushkit::virtio;
namespace pm = flushkit::pmem;
namespace st = flushkit_test::stress;
using flushkit::status;
using ex_t = asio::io_context::executor_type;
using host_t = fv::pmem_host<ex_t, asio::thread_pool::executor_type, fv::inproc_notifier<ex_t>>;
using guest_t = fv::pmem_guest<ex_t, fv::inproc_notifier<ex_t>>;

constexpr std::uint64_t default_requests = 30'000;
const status io_error = make_error_code(flushkit::errc::io_error);

std::string unique_path() {
  static std::atomic<unsigned> n{0};
  const std::string name = "flushkit-stress-" + std::to_string(::getpid()) + "-" + std::to_string(n.fetch_add(1));
  return (std::filesystem::temp_directory_path() / name).string();
}

/// Polls `pred` until it holds; false after `limit` (a bound, not a timing assertion).
template <class Pred> bool eventually(Pred pred, std::chrono::seconds limit = std::chrono::seconds(30)) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!pred())
    if (std::chrono::steady_clock::now() > end) return false;
    else std::this_thread::yield();
  return true;
}

/// Guest and host wired over an in-process pair, each loop on its own thread,
/// the host's flushes on a 2-thread pool doing fdatasync of a real file.
struct virtio_rig {
  explicit virtio_rig(std::size_t medium_bytes)
      : path(unique_path()), file(pm::backing::file(path.c_str(), {.size = medium_bytes})), target(*file),
        host(dev_io.get_executor(), pool.get_executor(), pair.control(), pair.memory(), target, pair.interrupt(),
             fv::pmem_config{0x4000'0000, medium_bytes}),
        guest(drv_io.get_executor(), pair.control(), pair.memory(), {pair.guest_base(), pair.ram(), pair.ram_size()},
              pair.kick(), guest_options()) {
    host.set_config_notifier(pair.config_change());
    pair.connect_device(&host_t::kick_entry, &host);
    pair.connect_driver([](void* g) { static_cast<guest_t*>(g)->on_interrupt(); }, &guest);
    pair.connect_config([](void* g) { static_cast<guest_t*>(g)->on_config_change(); }, &guest);
    dev_thread = std::thread([this] { dev_io.run(); });
    drv_thread = std::thread([this] { drv_io.run(); });
  }
  virtio_rig(const virtio_rig&) = delete;
  virtio_rig& operator=(const virtio_rig&) = delete;
  ~virtio_rig() {
    dev_guard.reset();
    drv_guard.reset();
    dev_thread.join();
    drv_thread.join();
    pool.join();
    std::filesystem::remove(path);
  }
  static fv::pmem_guest_options guest_options() {
    fv::pmem_guest_options o;
    o.queue_size = 16;
    o.one_in_flight = false;
    o.log = [](void*, const char*, const char*) {};
    return o;
  }
  /// Runs `f` on the device loop and returns its result: stands in for the VMM trapping a register access.
  template <class F> auto on_device(F f) { return asio::post(dev_io, asio::use_future(f)).get(); }
  /// After the guest wrote status 0 (freeze/remove), the device notices the reset now, not at the next kick.
  void device_sees_reset() {
    on_device([this] { host.poll_status(); });
  }
  /// freeze, the device sees the reset, restore (the guest is live again).
  status freeze_restore() {
    guest.freeze();
    device_sees_reset();
    return guest.restore();
  }
  std::uint32_t held() {
    return on_device([this] { return host.held(); });
  }
  /// Nothing in flight anywhere: guest ring, waiters and contexts, device slots (stale flushes included).
  bool idle() {
    const fv::pmem_guest_stats g = guest.stats();
    const bool dev_idle = on_device([this] { return host.busy() == 0 && host.held() == 0; });
    return g.in_flight == 0 && g.waiting == 0 && g.contexts_in_use == 0 && dev_idle;
  }
  std::string describe() {
    const fv::pmem_guest_stats g = guest.stats();
    const fv::pmem_host_counters h = host.counters();
    const char* gr = guest.broken_reason();
    return "guest in_flight " + std::to_string(g.in_flight) + " waiting " + std::to_string(g.waiting) +
           " contexts " + std::to_string(g.contexts_in_use) + " submitted " + std::to_string(g.submitted) +
           " host_errors " + std::to_string(g.host_errors) + " short " + std::to_string(g.short_responses) +
           " late " + std::to_string(g.late_completions) + " broken " + (gr != nullptr ? gr : "no") +
           "; host kicks " + std::to_string(h.kicks) + " requests " + std::to_string(h.requests) + " flushes " +
           std::to_string(h.flushes_issued) + " failures " + std::to_string(h.failures) + " unsupported " +
           std::to_string(h.unsupported) + " malformed " + std::to_string(h.malformed) + " completed " +
           std::to_string(h.completed) + " stale " + std::to_string(h.stale) + " resets " + std::to_string(h.resets);
  }

  asio::io_context dev_io, drv_io;
  asio::executor_work_guard<ex_t> dev_guard{dev_io.get_executor()}, drv_guard{drv_io.get_executor()};
  asio::thread_pool pool{2};
  fv::inproc_pair<ex_t> pair{dev_io.get_executor(), drv_io.get_executor()};
  std::string path;
  pm::result<pm::backing> file;
  pm::file_sync_provider target;
  host_t host;
  guest_t guest;
  std::thread dev_thread, drv_thread;
};

/// Admission of new operations: open, or a budget of `k` more submissions
/// after which submitters wait until it opens again. Bounds how many new
/// operations a broken or frozen window sees (they fail in microseconds,
/// while a healthy one waits for an fdatasync).
class gate {
public:
  void pass() {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return budget_ != 0; });
    if (budget_ != open_) --budget_;
  }
  void limit(std::uint64_t k) {
    std::lock_guard lk(mu_);
    budget_ = k;
  }
  void open() {
    {
      std::lock_guard lk(mu_);
      budget_ = open_;
    }
    cv_.notify_all();
  }
  bool exhausted() const {
    std::lock_guard lk(mu_);
    return budget_ == 0;
  }

private:
  static constexpr std::uint64_t open_ = UINT64_MAX;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::uint64_t budget_ = open_;
};

/// The device as the harness sees it: every submission passes the gate first.
template <class Device> struct gated {
  Device& dev;
  gate& g;
  void submit(flushkit::request& r) {
    g.pass();
    dev.submit(r);
  }
  template <class... A> auto async_read(A&&... a) {
    g.pass();
    return dev.async_read(std::forward<A>(a)...);
  }
  template <class... A> auto async_write(A&&... a) {
    g.pass();
    return dev.async_write(std::forward<A>(a)...);
  }
  template <class... A> auto async_flush(A&&... a) {
    g.pass();
    return dev.async_flush(std::forward<A>(a)...);
  }
};

/// Faults injected by the chaos thread of phase (b).
struct fault_counts {
  std::uint64_t fail_next = 0, slow = 0, holds = 0, broken = 0, freezes = 0, frozen_windows = 0;
  int failed_restores = 0;
  std::uint64_t total() const { return fail_next + slow + holds + broken + freezes + frozen_windows; }
  std::string to_string() const {
    return "fail_next " + std::to_string(fail_next) + ", slow windows " + std::to_string(slow) + ", holds " +
           std::to_string(holds) + ", mark_broken+freeze/restore " + std::to_string(broken) + ", freeze/restore " +
           std::to_string(freezes) + ", frozen windows " + std::to_string(frozen_windows);
  }
};

/// Phase (b): injects a fault every `every` completed operations on average
/// (paced by the ledger, not by the clock), until the ledger is complete.
/// Every fault is undone before the next one: a broken guest is always
/// frozen and restored, a hold is always released, a slow window ends.
class chaos {
public:
  chaos(virtio_rig& r, gate& g, st::ledger& l, std::uint64_t seed, std::uint64_t every)
      : rig_(r), gate_(g), ledger_(l), rng_(seed), every_(every) {}

  fault_counts run() {
    std::uint64_t next = draw();
    while (!over()) {
      if (ledger_.completed() < next) {
        std::this_thread::yield();
        continue;
      }
      inject();
      next = ledger_.completed() + draw();
    }
    return counts_;
  }

private:
  bool over() const { return ledger_.completed() >= ledger_.size(); }
  std::uint64_t draw() { return 1 + rng_() % (2 * every_); }
  /// Lets `k` more operations complete (or the run end).
  void let_run(std::uint64_t k) {
    const std::uint64_t target = ledger_.completed() + k;
    while (ledger_.completed() < target && !over()) std::this_thread::yield();
  }
  /// Admits at most `k` new operations until `reopen()` (those in flight are not affected).
  void close_after(std::uint64_t k) { gate_.limit(k); }
  /// Waits until the window admitted its operations (or the run ended).
  void let_window_run() {
    while (!gate_.exhausted() && !over()) std::this_thread::yield();
  }
  void restore_after_freeze() {
    rig_.device_sees_reset();
    if (rig_.guest.restore()) ++counts_.failed_restores;
    gate_.open();
  }
  void inject() {
    switch (rng_() % 6) {
    case 0:
      rig_.host.fail_next(static_cast<std::uint32_t>(1 + rng_() % 3));
      ++counts_.fail_next;
      break;
    case 1:
      rig_.host.set_flush_delay(std::chrono::microseconds(50 + rng_() % 250));
      let_run(draw());
      rig_.host.set_flush_delay({});
      ++counts_.slow;
      break;
    case 2: // flushes kept by the device until it has one, then released
      rig_.host.set_hold(true);
      while (rig_.held() == 0 && !over()) std::this_thread::yield();
      rig_.host.set_hold(false);
      rig_.on_device([this] { rig_.host.release_held(); });
      ++counts_.holds;
      break;
    case 3: // broken mid-flight, always recovered by freeze/restore
      close_after(rng_() % 16);
      rig_.guest.mark_broken("stress: chaos");
      let_window_run();
      rig_.guest.freeze();
      restore_after_freeze();
      ++counts_.broken;
      break;
    case 4: // freeze/restore mid-flight
      close_after(0);
      rig_.guest.freeze();
      restore_after_freeze();
      ++counts_.freezes;
      break;
    default: // frozen for a few operations (they fail fast), then restored
      close_after(rng_() % 16);
      rig_.guest.freeze();
      let_window_run();
      restore_after_freeze();
      ++counts_.frozen_windows;
      break;
    }
  }

  virtio_rig& rig_;
  gate& gate_;
  st::ledger& ledger_;
  std::mt19937_64 rng_;
  std::uint64_t every_;
  fault_counts counts_;
};

/// Runs `n` operations of seed `seed` through `dev`; `side(ledger)` runs on
/// its own thread meanwhile (faults, remove). Returns the ledger's totals.
template <class Device>
st::summary run_phase(virtio_rig& rig, gated<Device>& dev, std::uint64_t seed, std::uint64_t n,
                      const st::load_shape& shape, const std::function<void(st::ledger&)>& side, double& seconds) {
  st::ledger ledger(seed, n);
  st::driver<gated<Device>> drv(dev, ledger, shape);
  drv.start();
  std::thread t;
  if (side) t = std::thread([&] { side(ledger); });
  seconds += drv.wait(std::chrono::seconds(120), [&] { std::fprintf(stderr, "stress: %s\n", rig.describe().c_str()); })
                 .count();
  drv.join();
  if (t.joinable()) t.join();
  return ledger.totals();
}

/// Operations of a ledger `(seed, n)` that reach the provider (PREFLUSH and/or FUA).
std::uint64_t flagged_ops(std::uint64_t seed, std::uint64_t n) {
  std::uint64_t k = 0;
  for (std::uint64_t id = 0; id < n; ++id)
    if (st::flagged(st::kind_of(seed, id))) ++k;
  return k;
}

/// Exactly once, none lost, nothing but ok / io_error, reads and plain writes never fail, content intact.
void check_ledger(const st::summary& s, std::uint64_t n) {
  CHECK(s.lost == 0);
  CHECK(s.doubles == 0);
  CHECK(s.completions == n);
  CHECK(s.unflagged_failures() == 0);
  CHECK(s.total(st::outcome::no_memory) == 0); // the guest never reports no_memory
  CHECK(s.total(st::outcome::other) == 0);
  CHECK(s.content_mismatches == 0);
}

void check_idle(virtio_rig& rig) {
  const bool idle = eventually([&] { return rig.idle(); });
  if (!idle) MESSAGE("not idle: " << rig.describe());
  CHECK(idle);
}

/// Submits FUA write `id` through `submit` and reports whether it completed before `submit` returned.
template <class Device> bool fua_completes_synchronously(Device& dev, status& got) {
  struct waiter {
    bool done = false;
    status st;
  } w;
  std::array<std::byte, 64> data{};
  const flushkit::segment seg{data.data(), data.size()};
  flushkit::request req(flushkit::req_op::write, 0, std::span<const flushkit::segment>(&seg, 1),
                        flushkit::req_flags::fua);
  req.on_complete(
      [](void* ctx, flushkit::request&, const status& s) {
        auto* wp = static_cast<waiter*>(ctx);
        wp->st = s;
        wp->done = true;
      },
      &w);
  dev.submit(req);
  got = w.st;
  return w.done;
}

struct phase_sizes {
  std::uint64_t clean, faults, tail, removal;
  explicit phase_sizes(std::uint64_t n) : clean(n / 8), faults(n - 3 * (n / 8)), tail(n / 8), removal(n / 8) {}
};

/// Waits, when it goes out of scope, until the driver loop has left the
/// coalescer (its completions run there), so that the coalescer may then be
/// destroyed.
struct idle_before_destruction {
  flushkit::coalescer<guest_t&>& c;
  ~idle_before_destruction() { c.wait_until_idle(); }
};

template <bool Coalesced> void run_virtio(const std::string& name, std::uint64_t divisor) {
  using backend = std::conditional_t<Coalesced, flushkit::coalescer<guest_t&>, guest_t&>;
  using device = pm::pmem_device<flushkit::region<backend&>>;
  const auto cfg = st::run_config::from_env(default_requests);
  const std::uint64_t n = std::max<std::uint64_t>(cfg.requests / divisor, 400);
  const phase_sizes ph(n);
  MESSAGE(name << ": seed " << cfg.seed << " (FLUSHKIT_STRESS_SEED), requests " << n << " (FLUSHKIT_STRESS_REQUESTS / "
               << divisor << "): clean " << ph.clean << ", faults " << ph.faults << ", tail " << ph.tail
               << ", remove " << ph.removal);
  CAPTURE(cfg.seed);
  flushkit::test::violation_capture violations;
  st::load_shape shape;
  shape.threads = 2;
  shape.coroutines = 4;
  virtio_rig rig(shape.blocks() * st::block_bytes);
  REQUIRE(rig.file);
  REQUIRE(rig.pair.ok());
  REQUIRE_FALSE(rig.guest.probe());
  flushkit::coalescer<guest_t&> coal(rig.drv_io, rig.guest); // executors: the guest (driver) loop
  const idle_before_destruction coal_idle{coal};
  backend& back = [&]() -> backend& {
    if constexpr (Coalesced) return coal;
    else return rig.guest;
  }();
  device dev(rig.drv_io, rig.file->bytes(), pm::device_options{}, back);
  gate admission;
  gated<device> gdev{dev, admission};
  double seconds = 0;

  {
    INFO("phase (a) clean");
    const st::summary s = run_phase(rig, gdev, cfg.seed + 1, ph.clean, shape, {}, seconds);
    check_ledger(s, ph.clean);
    CHECK(s.total(st::outcome::ok) == ph.clean);
    CHECK(rig.host.counters().failures == 0);
    check_idle(rig);
  }

  fault_counts faults;
  const fv::pmem_guest_stats g0 = rig.guest.stats();
  const fv::pmem_host_counters h0 = rig.host.counters();
  st::summary fs;
  {
    INFO("phase (b) faults");
    const std::uint64_t every = std::clamp<std::uint64_t>(ph.faults / 40, 15, 500);
    fs = run_phase(
        rig, gdev, cfg.seed + 2, ph.faults, shape,
        [&](st::ledger& l) { faults = chaos(rig, admission, l, cfg.seed, every).run(); }, seconds);
    check_ledger(fs, ph.faults);
    CHECK(faults.failed_restores == 0);
    const std::uint64_t host_errors = rig.guest.stats().host_errors - g0.host_errors;
    if (faults.total() == 0) CHECK(fs.total(st::outcome::io_error) == 0);
    if constexpr (!Coalesced) CHECK(fs.total(st::outcome::io_error) >= host_errors); // a host error fails its request
    else if (host_errors != 0) CHECK(fs.total(st::outcome::io_error) != 0);
    CHECK(host_errors <= rig.host.counters().failures - h0.failures);
    CHECK(fs.total(st::outcome::io_error) <= flagged_ops(cfg.seed + 2, ph.faults));
  }

  {
    INFO("phase (c) recovery");
    rig.host.fail_next(0);
    rig.host.set_flush_delay({});
    rig.host.set_hold(false);
    rig.on_device([&] { rig.host.release_held(); });
    if (rig.guest.broken()) CHECK_FALSE(rig.freeze_restore());
    CHECK_FALSE(rig.guest.broken());
    CHECK(rig.on_device([&] { return rig.host.poll_status(); })); // DRIVER_OK seen: the queue is active
    check_idle(rig);
  }

  {
    INFO("phase (d) clean tail");
    const std::uint64_t failures_before = rig.host.counters().failures;
    const std::uint64_t errors_before = rig.guest.stats().host_errors;
    const st::summary s = run_phase(rig, gdev, cfg.seed + 3, ph.tail, shape, {}, seconds);
    check_ledger(s, ph.tail);
    CHECK(s.total(st::outcome::ok) == ph.tail);
    CHECK(rig.host.counters().failures == failures_before);
    CHECK(rig.guest.stats().host_errors == errors_before);
    check_idle(rig);
  }

  {
    INFO("phase (e) remove with flushes held in the device");
    constexpr std::uint32_t blocking = 3;
    rig.host.set_hold(true);
    std::vector<status> blocking_results(blocking);
    std::vector<std::thread> blockers;
    for (std::uint32_t i = 0; i < blocking; ++i)
      blockers.emplace_back([&, i] { blocking_results[i] = rig.guest.flush_and_wait(); });
    std::uint32_t held_at_remove = 0;
    const st::summary s = run_phase(
        rig, gdev, cfg.seed + 4, ph.removal, shape,
        [&](st::ledger&) {
          // The blocking callers' flushes and the ordered (asynchronous) one are all held.
          REQUIRE(eventually([&] { return rig.held() >= blocking + 1; }));
          held_at_remove = rig.held();
          rig.guest.remove();
        },
        seconds);
    for (auto& t : blockers) t.join();
    check_ledger(s, ph.removal);
    CHECK(held_at_remove >= blocking + 1);
    for (const status& b : blocking_results) CHECK(b == io_error);
    // No flush was ever answered: every request that reached the provider failed.
    if constexpr (!Coalesced) CHECK(s.total(st::outcome::io_error) == flagged_ops(cfg.seed + 4, ph.removal));
    else CHECK(s.total(st::outcome::io_error) != 0);
    rig.device_sees_reset(); // the device drops what it held
    status got;
    CHECK(fua_completes_synchronously(dev, got));
    CHECK(got == io_error);
    flushkit::request direct(flushkit::req_op::flush, 0, {}, flushkit::req_flags::preflush);
    const flushkit::flush_result r = rig.guest.flush(direct);
    CHECK_FALSE(r.is_async());
    if (!r.is_async()) CHECK(r.sync_status() == io_error);
    dev.remove();
    check_idle(rig);
  }

  const fv::pmem_host_counters hc = rig.host.counters();
  MESSAGE(name << ": " << n << " requests in " << seconds << " s; faults injected " << faults.total() << " ("
               << faults.to_string() << "); fault phase: " << fs.to_string() << "; host flushes "
               << hc.flushes_issued << " (failed " << hc.failures << ", stale " << hc.stale << ", resets "
               << hc.resets << ")");
  CHECK(violations.violations() == 0);
}

/// Submits `n` concurrent FUA writes; counts completions and errors (a
/// failed write's future throws boost::system::system_error).
template <class Device> std::uint64_t fua_burst(Device& dev, int n, std::uint64_t& completions) {
  std::vector<std::future<void>> fs;
  std::array<std::byte, 64> data{};
  for (int i = 0; i < n; ++i)
    fs.push_back(dev.async_write(static_cast<std::uint64_t>(i) * 64, asio::buffer(data), flushkit::req_flags::fua,
                                 asio::use_future));
  std::uint64_t errors = 0;
  for (auto& f : fs) {
    if (f.wait_for(std::chrono::seconds(60)) != std::future_status::ready) continue;
    ++completions;
    try {
      f.get();
    } catch (const boost::system::system_error&) {
      ++errors;
    }
  }
  return errors;
}

/// Fresh rigs, each: probe, a burst of 4 concurrent FUA writes (all must succeed), remove.
template <bool Coalesced> void fresh_bursts(std::uint64_t iterations) {
  using backend = std::conditional_t<Coalesced, flushkit::coalescer<guest_t&>, guest_t&>;
  using device = pm::pmem_device<flushkit::region<backend&>>;
  std::uint64_t failed = 0;
  for (std::uint64_t i = 0; i < iterations && failed == 0; ++i) {
    virtio_rig rig(64 * 1024);
    REQUIRE(rig.file);
    REQUIRE_FALSE(rig.guest.probe());
    flushkit::coalescer<guest_t&> coal(rig.drv_io, rig.guest); // executors: the guest (driver) loop
  const idle_before_destruction coal_idle{coal};
    backend& back = [&]() -> backend& {
      if constexpr (Coalesced) return coal;
      else return rig.guest;
    }();
    device dev(rig.drv_io, rig.file->bytes(), pm::device_options{}, back);
    std::uint64_t completions = 0;
    const std::uint64_t errors = fua_burst(dev, 4, completions);
    if (errors != 0 || completions != 4) {
      ++failed;
      MESSAGE("iteration " << i << ": " << errors << " errors, " << completions << " completions; " << rig.describe());
    }
    dev.remove();
    rig.guest.remove();
  }
  CHECK(failed == 0);
}

std::uint64_t burst_iterations() { return std::max<std::uint64_t>(st::run_config::from_env(default_requests).requests / 1000, 30); }

} // namespace

TEST_SUITE("stress/virtio_stack") {

TEST_CASE("pmem_device over coalescer over pmem_guest and pmem_host: clean faults recovery tail and remove [stress]") {
  run_virtio<true>("virtio coalesced", 6);
}

TEST_CASE("pmem_device over pmem_guest and pmem_host: clean faults recovery tail and remove [stress]") {
  run_virtio<false>("virtio", 30);
}

TEST_CASE("fresh guest and host: a burst of 4 concurrent FUA writes all succeed [stress]") {
  fresh_bursts<false>(burst_iterations());
  fresh_bursts<true>(burst_iterations());
}

} // TEST_SUITE
