// Every flushkit asynchronous operation x every Asio completion token, with
// success and failure: the error value the handler sees, the executor it runs
// on, and that it never runs inside the initiating function.
#include <flushkit/coalesce/coalescer.hpp>
#include <flushkit/core/completion.hpp>
#include <flushkit/core/region.hpp>
#include <flushkit/exec/ordered_executor.hpp>
#include <flushkit/pmem/backing.hpp>
#include <flushkit/pmem/pmem_device.hpp>
#include <flushkit/pmem/volatile_provider.hpp>

#include "../../demo/virtio_topology.hpp"
#include "support/executor_provider.hpp"

#include <doctest/doctest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/system/system_error.hpp>

#include <array>
#include <cstring>
#include <type_traits>
#include <atomic>
#include <cstddef>
#include <future>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
namespace pm = flushkit::pmem;
using flushkit::errc;
using flushkit::req_flags;
using flushkit::status;

namespace {

using pool_ex = asio::thread_pool::executor_type;
using pool_provider = flushkit::test::executor_provider<pool_ex>;

pm::device_options scratch_options() {
  pm::device_options o;
  o.medium = pm::persistence::none;
  return o;
}

// ---- operations: each fixture owns `app` (run by the test thread), starts
// its operation with a token, knows its failure value and where a handler
// without an executor must run.

/// async_wait on a caller's request that a pool thread completes later.
struct request_wait {
  static constexpr const char* name = "async_wait, completed later on a pool thread";
  asio::io_context app;
  asio::thread_pool pool{1};
  flushkit::request req{flushkit::req_op::flush, 0, {}, req_flags::preflush};
  ~request_wait() { pool.join(); }
  // The completion is queued before the wait starts, but the pool thread
  // waits for `go`, so it lands after initiation (or during it).
  std::atomic<bool> go{false};
  template <class Token> auto start(bool fail, Token&& token) {
    go.store(false);
    asio::post(pool, [this, fail] {
      go.wait(false);
      req.complete(fail ? status{errc::io_error} : status{});
    });
    struct release_on_exit {
      std::atomic<bool>* go;
      ~release_on_exit() {
        go->store(true);
        go->notify_all();
      }
    } release{&go};
    return flushkit::async_wait(req, app.get_executor(), std::forward<Token>(token));
  }
  static status failure() { return errc::io_error; }
  bool on_default_executor() { return app.get_executor().running_in_this_thread(); }
};

/// async_wait on a request that completed before the wait began.
struct completed_wait {
  static constexpr const char* name = "async_wait, completed before initiation";
  asio::io_context app;
  flushkit::request req{flushkit::req_op::flush, 0, {}, req_flags::preflush};
  template <class Token> auto start(bool fail, Token&& token) {
    if (!req.completed()) req.complete(fail ? status{errc::timeout} : status{});
    return flushkit::async_wait(req, app.get_executor(), std::forward<Token>(token));
  }
  static status failure() { return errc::timeout; }
  bool on_default_executor() { return app.get_executor().running_in_this_thread(); }
};

/// pmem_device::async_write over a synchronous provider: known at initiation.
struct sync_device_write {
  static constexpr const char* name = "pmem_device::async_write, synchronous provider";
  asio::io_context app;
  std::vector<std::byte> medium = std::vector<std::byte>(4096);
  pm::pmem_device<flushkit::region<pm::volatile_provider>> dev{app, std::span(medium), scratch_options()};
  std::array<char, 8> data{'f', 'l', 'u', 's', 'h', 'k', 'i', 't'};
  template <class Token> auto start(bool fail, Token&& token) {
    const std::uint64_t at = fail ? medium.size() : 0; // past the end: invalid_request
    return dev.async_write(at, asio::buffer(data), req_flags::fua, std::forward<Token>(token));
  }
  static status failure() { return errc::invalid_request; }
  bool on_default_executor() { return app.get_executor().running_in_this_thread(); }
};

/// A device over an asynchronous provider completing on a pool thread.
struct async_device {
  asio::io_context app;
  asio::thread_pool pool{1};
  flushkit::ordered_executor<pool_ex> flusher{pool.get_executor()};
  pool_provider provider{flusher};
  std::vector<std::byte> medium = std::vector<std::byte>(4096);
  pm::pmem_device<flushkit::region<pool_provider&>> dev{app, std::span(medium), scratch_options(), provider};
  std::array<char, 8> data{'f', 'l', 'u', 's', 'h', 'k', 'i', 't'};
  ~async_device() { pool.join(); }
  static status failure() { return errc::io_error; } // the region's policy for a provider failure
  bool on_default_executor() { return app.get_executor().running_in_this_thread(); }
};

struct async_device_write : async_device {
  static constexpr const char* name = "pmem_device::async_write, asynchronous provider";
  template <class Token> auto start(bool fail, Token&& token) {
    provider.result = fail ? status{errc::no_space} : status{};
    return dev.async_write(512, asio::buffer(data), req_flags::preflush | req_flags::fua, std::forward<Token>(token));
  }
};

struct async_device_flush : async_device {
  static constexpr const char* name = "pmem_device::async_flush, asynchronous provider";
  template <class Token> auto start(bool fail, Token&& token) {
    provider.result = fail ? status{errc::no_space} : status{};
    return dev.async_flush(std::forward<Token>(token));
  }
};

/// coalescer::async_flush over an asynchronous backend on a pool thread.
struct coalescer_flush {
  static constexpr const char* name = "coalescer::async_flush";
  asio::io_context app;
  asio::thread_pool pool{1};
  flushkit::ordered_executor<pool_ex> flusher{pool.get_executor()};
  pool_provider provider{flusher};
  flushkit::coalescer<pool_provider&> coalescer{app, provider};
  ~coalescer_flush() { pool.join(); }
  template <class Token> auto start(bool fail, Token&& token) {
    provider.result = fail ? status{errc::no_space} : status{};
    return coalescer.async_flush(std::forward<Token>(token));
  }
  static status failure() { return errc::no_space; } // the backend's status, unchanged
  bool on_default_executor() { return app.get_executor().running_in_this_thread(); }
};

/// pmem_guest::async_flush over the in-process virtio-pmem host; the guest's
/// executor is its own loop thread.
struct guest_flush {
  static constexpr const char* name = "pmem_guest::async_flush";
  asio::io_context app;
  pm::backing medium = pm::backing::memfd(1 << 16).value();
  flushkit::demo::inproc_topology topo{medium};
  template <class Token> auto start(bool fail, Token&& token) {
    if (fail) topo.guest().mark_broken("token matrix: a failing flush");
    return topo.guest().async_flush(std::forward<Token>(token));
  }
  static status failure() { return errc::io_error; }
  bool on_default_executor() { return topo.guest().get_executor().running_in_this_thread(); }
};

// ---- tokens

/// What one completion looked like.
struct observation {
  status ec{errc::cancelled}; // never a real outcome here
  bool ran = false;
  bool after_initiation = false;
  bool on_expected_executor = false;
};

/// A callback that records what it saw; `initiated` is set once the
/// initiating function returned on `initiator`. A handler on another thread
/// may run while that call is still returning; on the initiating thread it
/// must not run before.
template <class OnExecutor> struct recorder {
  observation* out;
  std::atomic<bool>* initiated;
  std::atomic<bool>* handled;
  std::thread::id initiator;
  OnExecutor on_executor;
  void operator()(boost::system::error_code ec) const {
    out->ec = ec;
    out->ran = true;
    out->after_initiation = initiated->load() || std::this_thread::get_id() != initiator;
    out->on_expected_executor = on_executor();
    handled->store(true);
    handled->notify_all();
  }
};

/// Runs `start(recorder)` from a handler on `app` - a thread that runs the
/// default executor, where an inline delivery would be possible - and waits
/// for the handler: runs `app` (which returns once it has no work) and then
/// waits for a handler running on another thread.
template <class Fixture, class Start, class OnExecutor>
observation run_callback(Fixture& fx, Start start, OnExecutor on_executor) {
  observation o;
  std::atomic<bool> initiated{false}, handled{false};
  asio::post(fx.app, [&] {
    start(recorder<OnExecutor>{&o, &initiated, &handled, std::this_thread::get_id(), on_executor});
    initiated.store(true);
  });
  fx.app.run();
  handled.wait(false);
  return o;
}

/// Runs `body` (a coroutine returning the status it observed) on `app`.
template <class Fixture, class Body> observation run_coroutine(Fixture& fx, Body body) {
  observation o;
  asio::co_spawn(
      fx.app,
      [&]() -> asio::awaitable<void> {
        o.ec = co_await body();
        o.ran = true;
        o.after_initiation = true; // a coroutine resumes only after its co_await suspended it
        o.on_expected_executor = fx.app.get_executor().running_in_this_thread();
      },
      asio::detached);
  fx.app.run();
  return o;
}

enum class token_kind {
  callback,
  bound_strand,
  use_awaitable,
  as_tuple,
  redirect_error,
  use_future,
  deferred,
  bound_allocator,
  bound_cancellation_slot,
};

const char* token_name(token_kind t) {
  static constexpr std::array<const char*, 9> names{"callback",  "bind_executor(strand)", "use_awaitable",
                                                    "as_tuple",  "redirect_error",        "use_future",
                                                    "deferred",  "bind_allocator",        "bind_cancellation_slot"};
  return names[static_cast<std::size_t>(t)];
}

/// A std::allocator that counts what it hands out.
template <class T> struct counting_allocator {
  using value_type = T;
  std::size_t* count;
  explicit counting_allocator(std::size_t* c) noexcept : count(c) {}
  template <class U> counting_allocator(const counting_allocator<U>& o) noexcept : count(o.count) {}
  T* allocate(std::size_t n) {
    ++*count;
    return std::allocator<T>().allocate(n);
  }
  void deallocate(T* p, std::size_t n) noexcept { std::allocator<T>().deallocate(p, n); }
  template <class U> bool operator==(const counting_allocator<U>& o) const noexcept { return count == o.count; }
};

template <class Fixture> observation observe(token_kind t, bool fail) {
  Fixture fx;
  auto on_default = [&fx] { return fx.on_default_executor(); };
  switch (t) {
  case token_kind::callback:
    return run_callback(fx, [&](auto h) { fx.start(fail, h); }, on_default);
  case token_kind::bound_strand: {
    auto strand = asio::make_strand(fx.app);
    return run_callback(fx, [&](auto h) { fx.start(fail, asio::bind_executor(strand, h)); },
                        [strand] { return strand.running_in_this_thread(); });
  }
  case token_kind::use_awaitable:
    return run_coroutine(fx, [&]() -> asio::awaitable<status> {
      try {
        co_await fx.start(fail, asio::use_awaitable);
        co_return status{};
      } catch (const boost::system::system_error& e) {
        co_return e.code();
      }
    });
  case token_kind::as_tuple:
    return run_coroutine(fx, [&]() -> asio::awaitable<status> {
      auto [ec] = co_await fx.start(fail, asio::as_tuple(asio::use_awaitable));
      co_return ec;
    });
  case token_kind::redirect_error:
    return run_coroutine(fx, [&]() -> asio::awaitable<status> {
      boost::system::error_code ec{errc::cancelled};
      co_await fx.start(fail, asio::redirect_error(asio::use_awaitable, ec));
      co_return ec;
    });
  case token_kind::use_future: {
    observation o;
    std::future<void> f = fx.start(fail, asio::use_future);
    try {
      f.get();
      o.ec = {};
    } catch (const boost::system::system_error& e) {
      o.ec = e.code();
    }
    o.ran = o.after_initiation = o.on_expected_executor = true; // the future's own executor
    return o;
  }
  case token_kind::deferred:
    return run_callback(
        fx,
        [&](auto h) {
          auto op = fx.start(fail, asio::deferred);
          std::move(op)(h);
        },
        on_default);
  case token_kind::bound_allocator: {
    std::size_t allocations = 0;
    observation o = run_callback(
        fx, [&](auto h) { fx.start(fail, asio::bind_allocator(counting_allocator<void>(&allocations), h)); },
        on_default);
    CHECK(allocations >= 1); // the operation block came from the handler's allocator
    return o;
  }
  case token_kind::bound_cancellation_slot: {
    asio::cancellation_signal never_emitted;
    return run_callback(fx, [&](auto h) { fx.start(fail, asio::bind_cancellation_slot(never_emitted.slot(), h)); },
                        on_default);
  }
  }
  return {};
}

constexpr std::array all_tokens{token_kind::callback,       token_kind::bound_strand,   token_kind::use_awaitable,
                                token_kind::as_tuple,       token_kind::redirect_error, token_kind::use_future,
                                token_kind::deferred,       token_kind::bound_allocator,
                                token_kind::bound_cancellation_slot};

} // namespace

TEST_SUITE("asio/token_matrix") {

TEST_CASE_TEMPLATE("every completion token sees the operation's status on the right executor, after initiation",
                   Fixture, request_wait, completed_wait, sync_device_write, async_device_write, async_device_flush,
                   coalescer_flush, guest_flush) {
  for (token_kind t : all_tokens)
    for (bool fail : {false, true}) {
      CAPTURE(Fixture::name);
      CAPTURE(token_name(t));
      CAPTURE(fail);
      const observation o = observe<Fixture>(t, fail);
      CHECK(o.ran);
      CHECK(o.ec == (fail ? Fixture::failure() : status{}));
      CHECK(o.after_initiation);
      CHECK(o.on_expected_executor);
    }
}

TEST_CASE("a detached write still completes, and its bytes reach the medium") {
  sync_device_write fx;
  fx.start(false, asio::detached);
  CHECK(fx.dev.in_flight() == 0); // a synchronous provider finished inside submit
  fx.app.run();                   // the posted delivery runs and the detached handler drops it
  CHECK(std::memcmp(fx.medium.data(), fx.data.data(), fx.data.size()) == 0);
}

TEST_CASE("a buffer sequence whose type fixes more than max_io_buffers buffers is not const_buffers") {
  static_assert(flushkit::const_buffers<std::array<asio::const_buffer, flushkit::max_io_buffers>>);
  static_assert(!flushkit::const_buffers<std::array<asio::const_buffer, flushkit::max_io_buffers + 1>>);
  static_assert(!flushkit::const_buffers<std::span<const asio::const_buffer, flushkit::max_io_buffers + 1>>);
  static_assert(flushkit::const_buffers<std::span<const asio::const_buffer>>); // the value decides
  static_assert(flushkit::const_buffers<std::vector<asio::const_buffer>>);
  static_assert(!flushkit::const_buffers<std::string>);
  static_assert(!flushkit::mutable_buffers<asio::const_buffer>);

}

TEST_CASE("the default token is deferred for a plain executor, so co_await needs no token") {
  static_assert(std::is_same_v<decltype(sync_device_write{}.dev)::default_token, asio::deferred_t>);
  sync_device_write fx;
  bool threw = false;
  asio::co_spawn(
      fx.app,
      [&]() -> asio::awaitable<void> {
        co_await fx.dev.async_write(0, asio::buffer(fx.data), req_flags::fua);
        try {
          co_await fx.dev.async_write(fx.medium.size(), asio::buffer(fx.data), req_flags::fua);
        } catch (const boost::system::system_error& e) {
          threw = e.code() == errc::invalid_request;
        }
      },
      asio::detached);
  fx.app.run();
  CHECK(threw);
}

TEST_CASE("an executor with a default token of its own gives it to every operation") {
  using awaitable_executor = asio::use_awaitable_t<>::executor_with_default<asio::any_io_executor>;
  asio::io_context app;
  std::vector<std::byte> medium(4096);
  pm::pmem_device<flushkit::region<pm::volatile_provider>, awaitable_executor> dev(app, std::span(medium),
                                                                                    scratch_options());
  static_assert(std::is_same_v<decltype(dev)::default_token, asio::use_awaitable_t<>>);
  bool done = false;
  asio::co_spawn(
      app,
      [&]() -> asio::awaitable<void> {
        co_await dev.async_flush();
        done = true;
      },
      asio::detached);
  app.run();
  CHECK(done);
}

} // TEST_SUITE
