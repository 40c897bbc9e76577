// bench/stacks.hpp - provider stacks under a pmem_device, and the workload
// that drives a device with FUA writes.
//
// A stack owns the providers (and their threads) that a device's region
// refers to: `top()` is what the region calls, `flushes()` counts the flush
// calls that reached the medium, `quiesce()` joins the stack's threads once
// no request is in flight (before anything is destroyed).
#pragma once

#include "harness.hpp"
#include "model.hpp"

#include <flushkit/coalesce/coalescer.hpp>
#include <flushkit/core/completion.hpp>
#include <flushkit/core/detail/completion_op.hpp>
#include <flushkit/core/flush_result.hpp>
#include <flushkit/core/region.hpp>
#include <flushkit/core/request.hpp>
#include <flushkit/exec/offload_provider.hpp>
#include <flushkit/exec/ordered_executor.hpp>
#include <flushkit/pmem/backing.hpp>
#include <flushkit/pmem/file_sync_provider.hpp>
#include <flushkit/pmem/pmem_device.hpp>
#include <flushkit/pmem/volatile_provider.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/intrusive/list.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>

namespace flushkit::bench {

namespace pm = flushkit::pmem;
using io_executor = boost::asio::io_context::executor_type;

/// Runs an io_context on one thread until `join()`.
class io_runner {
public:
  explicit io_runner(boost::asio::io_context& ctx)
      : guard_(boost::asio::make_work_guard(ctx)), thread_([&ctx] { ctx.run(); }) {}
  io_runner(const io_runner&) = delete;
  io_runner& operator=(const io_runner&) = delete;
  ~io_runner() { join(); }
  void join() {
    guard_.reset();
    if (thread_.joinable()) thread_.join();
  }

private:
  boost::asio::executor_work_guard<io_executor> guard_;
  std::thread thread_;
};

/// The thread a storage engine submits from and wants its completions on
/// (its event loop). Every asynchronous model is driven from here, so every
/// model pays for getting the completion back to the submitter.
struct app_thread {
  boost::asio::io_context ctx{1};
  io_runner runner{ctx};
};

/// Where an asynchronous stack's ordered executor runs.
enum class placement {
  app,        ///< on the submitter's own event loop (a non-blocking provider needs no thread)
  own_thread, ///< on a thread of its own (a provider that blocks, such as fdatasync)
};

/// The innermost (synchronous) provider of a stack, built for `medium`.
template <class Inner> Inner make_inner(const pm::backing& medium) {
  if constexpr (std::is_same_v<Inner, pm::file_sync_provider>)
    return Inner(medium, pm::file_sync_mode::fdatasync);
  else
    return Inner{};
}

/// Synchronous stack: the region calls `Inner` directly inside submit, on
/// the submitting thread (one thread per request in flight).
template <class Inner> struct sync_stack {
  using top_type = Inner;
  static constexpr bool completes_on_app = false;
  sync_stack(const pm::backing& medium, app_thread&) : inner(make_inner<Inner>(medium)) {}
  top_type& top() noexcept { return inner; }
  std::uint64_t flushes() const noexcept { return inner.flushes(); }
  void quiesce() noexcept {}
  Inner inner;
};

/// flushkit: `Inner` behind the library's offload_provider (the documented
/// wiring for a blocking provider), its strand placed on the submitter's
/// event loop or on a thread of its own.
template <class Inner, placement Where = placement::own_thread> struct async_stack {
  using top_type = offload_provider<Inner&, io_executor>;
  static constexpr bool completes_on_app = true;
  async_stack(const pm::backing& medium, app_thread& app)
      : inner(make_inner<Inner>(medium)),
        provider(Where == placement::app ? app.ctx.get_executor() : ctx.get_executor(), inner) {
    if (Where == placement::own_thread) runner.emplace(ctx);
  }
  top_type& top() noexcept { return provider; }
  std::uint64_t flushes() const noexcept { return inner.flushes(); }
  void quiesce() {
    provider.shutdown_and_wait();
    if (runner) runner->join();
  }

  Inner inner;
  boost::asio::io_context ctx{1};
  top_type provider;
  std::optional<io_runner> runner;
};

/// flushkit-coalesce: a coalescer (batching `Policy`, by default the
/// library's default) in front of an asynchronous stack `Base`, an I/O
/// object of the submitter's event loop.
template <class Base, flushkit::batching Policy = flushkit::batching::automatic> struct coalesced_over {
  using top_type = coalescer<typename Base::top_type&>;
  static constexpr bool completes_on_app = true;
  coalesced_over(const pm::backing& medium, app_thread& app)
      : base(medium, app), group(app.ctx, base.top(), {.batching = Policy}) {}
  top_type& top() noexcept { return group; }
  std::uint64_t flushes() const noexcept { return base.flushes(); }
  void quiesce() { base.quiesce(); }

  Base base;
  top_type group;
};

/// The documented file stack: `Inner` behind offload_provider, behind a coalescer.
template <class Inner, flushkit::batching Policy = flushkit::batching::automatic>
using coalesced_stack = coalesced_over<async_stack<Inner>, Policy>;

/// Opens the medium a device writes to: the bench file, or anonymous memory
/// (pre-touched so page faults stay out of the measurement).
inline pm::backing open_medium(const bench_env& env) {
  if (env.file_path.empty()) {
    auto b = pm::backing::anonymous(static_cast<std::size_t>(env.medium_bytes));
    if (!b) throw std::runtime_error("anonymous backing: " + b.error().message());
    std::memset(b->data(), 0x5a, b->size());
    return std::move(*b);
  }
  pm::file_options opts;
  opts.size = static_cast<std::size_t>(env.medium_bytes);
  opts.create = false;
  auto b = pm::backing::file(env.file_path.c_str(), opts);
  if (!b) throw std::runtime_error("file backing " + env.file_path + ": " + b.error().message());
  return std::move(*b);
}

/// FUA writes through `pmem_device<region<Stack::top_type&>>`, an I/O
/// object of the application event loop.
///
/// Asynchronous stacks are driven from an application event loop: a write is
/// submitted there, and its completion is delivered back there with
/// `flushkit::async_wait` before the harness re-issues the slot, whatever
/// thread completed the request. Synchronous stacks complete inline.
template <class Stack, pm::data_step Data = pm::data_step::automatic> class device_workload final : public workload {
public:
  explicit device_workload(const bench_env& env)
      : medium_(open_medium(env)), stack_(medium_, app_),
        dev_(app_.ctx, medium_, pm::device_options{.data = Data}, stack_.top()) {} // from the backing, as documented
  ~device_workload() override {
    stack_.quiesce();
    app_.runner.join();
  }

  void submit(op& o) override {
    if constexpr (Stack::completes_on_app) {
      if (!app_.ctx.get_executor().running_in_this_thread())
        return boost::asio::post(app_.ctx, [this, &o] { submit(o); }); // first issue of a slot only
      o.req.prepare(req_op::write, o.offset, {&o.seg, 1}, req_flags::fua);
      flushkit::async_wait(o.req, app_.ctx.get_executor(), completion{&o});
    } else {
      o.prepare_fua_write();
    }
    dev_.submit(o.req);
  }
  std::uint64_t flushes() const override { return stack_.flushes(); }
  /// The request and, for an asynchronous stack, the operation block that
  /// async_wait takes for it (freed when the completion has run).
  std::int64_t bytes_per_request() const override {
    std::size_t bytes = sizeof(flushkit::request);
    if constexpr (Stack::completes_on_app) bytes += sizeof(flushkit::detail::wait_op<completion, io_executor>);
    return static_cast<std::int64_t>(bytes);
  }

private:
  struct completion {
    op* slot;
    void operator()(const status& st) const { slot->done(st); }
  };

  app_thread app_;
  pm::backing medium_;
  Stack stack_;
  pm::pmem_device<flushkit::region<typename Stack::top_type&>> dev_;
};

template <class Stack, pm::data_step Data = pm::data_step::automatic>
std::unique_ptr<workload> make_device_workload(const bench_env& env) {
  return std::make_unique<device_workload<Stack, Data>>(env);
}

} // namespace flushkit::bench
