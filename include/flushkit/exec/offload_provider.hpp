// flushkit/exec/offload_provider.hpp - a blocking flush provider run off the caller's thread.
#pragma once

#include <flushkit/core/capabilities.hpp>
#include <flushkit/core/flush_result.hpp>
#include <flushkit/core/provider.hpp>
#include <flushkit/core/request.hpp>
#include <flushkit/core/status.hpp>
#include <flushkit/core/work_item.hpp>
#include <flushkit/detail/assert.hpp>
#include <flushkit/exec/ordered_executor.hpp>

#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <cstdint>
#include <type_traits>
#include <utility>

namespace flushkit {

/// An asynchronous flush provider that runs a synchronous, blocking one
/// (`status flush()`: an `fdatasync`, an `msync`) on a blocking executor, so
/// that no event loop ever waits for the disk: the device's submit, a
/// coalescer, or a coroutine's `co_await` hand the flush over and return.
///
/// `Provider` is held by value or, for `Provider = P&`, by reference (it must
/// then outlive this object). `Executor` is a concrete executor whose threads
/// may block (`thread_pool::executor_type`, or an `io_context` run by a thread
/// of its own); flushes run on one strand of it, one at a time, in
/// submission order (the kernel's ordered `WQ_MEM_RECLAIM` workqueue). Put a
/// `coalescer` in front to make one blocking flush cover every request that
/// completed before it started.
///
/// `flush(req)`: queues the request's embedded work item and returns
/// `async(req)`; the item calls `provider().flush()` on the executor's thread
/// and completes `req` there with its status (an exception from it is
/// `io_error`). After `shutdown()` it returns `done(shutting_down)` at once.
/// Durable at success: what `Provider::flush()` makes durable, for
/// everything written before the flush started (so, before `flush(req)` was
/// called). Ordering: FIFO. Allocation: none (the work node is the
/// request's, the executor's handlers come from embedded blocks).
///
/// Capabilities: forwards each capability of `Provider` (`note_dirty`,
/// `durability()`, `usable()`, see core/capabilities.hpp); `note_dirty` runs
/// on the caller's thread while a flush may run on the executor's, so the
/// provider's own contract for that applies (`cacheline_provider` locks).
///
/// Lifetime: `shutdown_and_wait()` (blocking: not from the executor's
/// threads) rejects later flushes and waits for the queued ones. The
/// destructor does not wait: it requires that no flush is queued or running
/// (checked in debug builds), as the executor must keep running until the
/// last one completed.
template <class Provider, class Executor = boost::asio::thread_pool::executor_type>
class offload_provider
    : public forward_capabilities<offload_provider<Provider, Executor>, std::remove_reference_t<Provider>> {
  using provider_type = std::remove_reference_t<Provider>;
  static_assert(sync_flush_provider<provider_type>,
                "flushkit::offload_provider: Provider must be a synchronous provider (`flushkit::status flush()`); "
                "an asynchronous one needs no offloading");
  static_assert(detail::check_capability_chain<provider_type>());

public:
  /// The executor the flushes block on.
  using executor_type = Executor;

  /// Runs `p`'s flushes on a strand of `blocking_ex`.
  offload_provider(const Executor& blocking_ex, Provider p) : exec_(blocking_ex), provider_(std::forward<Provider>(p)) {}
  /// Runs the flushes of a provider constructed in place from `args`.
  template <class... Args>
  offload_provider(const Executor& blocking_ex, std::in_place_t, Args&&... args)
      : exec_(blocking_ex), provider_(std::forward<Args>(args)...) {}
  offload_provider(const offload_provider&) = delete;
  offload_provider& operator=(const offload_provider&) = delete;
  /// Precondition: no flush queued or running (`idle()`); it never waits.
  ~offload_provider() = default;

  /// The blocking provider.
  provider_type& provider() noexcept { return provider_; }
  /// The blocking provider.
  const provider_type& provider() const noexcept { return provider_; }
  /// The executor given at construction.
  executor_type get_executor() const noexcept { return exec_.get_executor().get_inner_executor(); }

  /// Asynchronous flush provider entry: see the class comment.
  [[nodiscard]] flush_result flush(request& req) {
    req.work.set(&offload_provider::run, this);
    if (const status st = exec_.submit(req.work)) return flush_result::done(st);
    return flush_result::async(req);
  }

  /// Rejects later flushes with `shutting_down` and blocks until the queued
  /// ones completed. Not from the executor's threads. Idempotent.
  void shutdown_and_wait() {
    FLUSHKIT_ASSERT(!get_executor().running_in_this_thread(),
                    "offload_provider::shutdown_and_wait() on a thread of its executor (it would wait for itself)");
    exec_.shutdown();
  }
  /// True when no flush is queued or running.
  bool idle() const noexcept { return exec_.idle(); }

  /// Flushes run so far.
  std::uint64_t flushes() const noexcept { return flushes_.load(std::memory_order_relaxed); }
  /// Handler allocations that did not fit the embedded blocks (0 expected).
  std::size_t slab_fallbacks() const noexcept { return exec_.slab_fallbacks(); }

private:
  static void run(work_item& item, void* context) {
    auto* self = static_cast<offload_provider*>(context);
    const status st = self->blocking_flush();
    self->flushes_.fetch_add(1, std::memory_order_relaxed);
    self->exec_.finish(item);
    request::from_work(item).complete(st);
  }

  status blocking_flush() noexcept {
    try {
      return provider_.flush();
    } catch (...) {
      return make_error_code(errc::io_error);
    }
  }

  ordered_executor<Executor> exec_;
  Provider provider_;
  std::atomic<std::uint64_t> flushes_{0};
};

} // namespace flushkit
