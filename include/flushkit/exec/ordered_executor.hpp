// flushkit/exec/ordered_executor.hpp - an ordered, allocation-free work queue on an Asio strand.
#pragma once

#include <flushkit/core/completion.hpp>
#include <flushkit/core/status.hpp>
#include <flushkit/core/work_item.hpp>
#include <flushkit/detail/assert.hpp>
#include <flushkit/core/detail/handler_slab.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/intrusive/list.hpp>

#include <condition_variable>
#include <cstddef>
#include <mutex>

namespace flushkit {

/// The analog of an ordered `WQ_MEM_RECLAIM` workqueue.
///
/// Items (`work_item`, embedded in the caller's object) run one at a time in
/// submission order on a `boost::asio::strand<Executor>`. Item n+1 starts only
/// after item n called `finish()`, also when item n finishes later from
/// another thread (a coroutine that suspended, a host that acked).
///
/// `Executor` must be a concrete executor (`io_context::executor_type`,
/// `thread_pool::executor_type`): a strand over `any_io_executor` allocates on
/// every post in Boost 1.81.
///
/// Allocation: none per item. The executor keeps at most one drain handler
/// posted; it and the strand's invoker are allocated from blocks embedded in
/// the executor (`slab_fallbacks()` counts any overflow to the heap), so
/// submission cannot fail for lack of memory.
///
/// Lifecycle: `freeze()` stops starting items (the running one finishes),
/// `thaw()` resumes; `drain()` waits until nothing is queued or running;
/// `shutdown()` makes every later `submit` fail synchronously with
/// `errc::shutting_down` and then drains. Work is never silently dropped.
template <class Executor = boost::asio::io_context::executor_type> class ordered_executor {
public:
  /// The concrete executor the strand runs on.
  using inner_executor_type = Executor;
  /// The strand every item runs on.
  using executor_type = boost::asio::strand<Executor>;

  /// An executor whose items run on a new strand over `ex`. Allocates nothing per item afterwards.
  explicit ordered_executor(const Executor& ex) : strand_(ex) {}
  ordered_executor(const ordered_executor&) = delete;
  ordered_executor& operator=(const ordered_executor&) = delete;
  ~ordered_executor() {
    std::lock_guard lk(mu_);
    FLUSHKIT_ASSERT(idle_locked(), "ordered_executor destroyed with work queued or running");
  }

  /// The strand every item runs on.
  executor_type get_executor() const noexcept { return strand_; }

  /// Queues `item`. Returns success, or `errc::shutting_down` after
  /// `shutdown()` began, in which case the item was not queued and will never
  /// run. Thread-safe; never blocks on the running item; never allocates.
  [[nodiscard]] status submit(work_item& item) noexcept {
    std::unique_lock lk(mu_);
    if (shutting_down_) return make_error_code(errc::shutting_down);
    FLUSHKIT_ASSERT(!item.is_queued(), "work_item submitted twice");
    queue_.push_back(item);
    ++submitted_;
    if (!scheduled_ && !frozen_) {
      scheduled_ = true;
      post_drain();
    }
    return {};
  }

  /// Marks the running `item` finished and lets the next one start. Call it
  /// exactly once per started item, from `run` or later from any thread.
  void finish(work_item& item) noexcept {
    std::unique_lock lk(mu_);
    FLUSHKIT_ASSERT(current_ == &item, "finish() for an item that is not running");
    static_cast<void>(item);
    current_ = nullptr;
    ++finished_;
    if (phase_ == phase::running_inline) {
      phase_ = phase::finished_inline; // the drain loop continues
      return;
    }
    phase_ = phase::none;
    continue_or_stop(lk);
  }

  /// Stops starting items; the running item is not interrupted.
  void freeze() noexcept {
    std::lock_guard lk(mu_);
    frozen_ = true;
  }

  /// Resumes after `freeze()`.
  void thaw() noexcept {
    std::lock_guard lk(mu_);
    frozen_ = false;
    if (!scheduled_ && !queue_.empty()) {
      scheduled_ = true;
      post_drain();
    }
  }

  /// Blocks until no item is queued or running. Must not be called from the
  /// strand (it would wait for itself). While frozen with items queued it
  /// waits for `thaw()`.
  void drain() {
    FLUSHKIT_ASSERT(!strand_.running_in_this_thread(), "drain() called from the executor's strand");
    std::unique_lock lk(mu_);
    idle_cv_.wait(lk, [this] { return idle_locked(); });
  }

  /// Rejects every later `submit` with `errc::shutting_down`, thaws, and
  /// waits until every item queued before runs to its end. Same calling rule
  /// as `drain()`. Idempotent.
  void shutdown() {
    {
      std::lock_guard lk(mu_);
      shutting_down_ = true;
    }
    thaw();
    drain();
  }

  /// True once `shutdown()` began: `submit` now fails with `errc::shutting_down`.
  bool is_shutting_down() const noexcept {
    std::lock_guard lk(mu_);
    return shutting_down_;
  }
  /// True between `freeze()` and `thaw()`.
  bool is_frozen() const noexcept {
    std::lock_guard lk(mu_);
    return frozen_;
  }
  /// True when nothing is queued or running.
  bool idle() const noexcept {
    std::lock_guard lk(mu_);
    return idle_locked();
  }
  /// Items accepted by `submit` so far.
  std::size_t submitted() const noexcept {
    std::lock_guard lk(mu_);
    return submitted_;
  }
  /// Items `finish()`ed so far.
  std::size_t finished() const noexcept {
    std::lock_guard lk(mu_);
    return finished_;
  }
  /// Handler allocations that did not fit the embedded blocks (0 expected).
  std::size_t slab_fallbacks() const noexcept { return slab_.fallbacks(); }

private:
  enum class phase { none, running_inline, running_async, finished_inline };
  using slab_type = detail::handler_slab<256, 4>;
  using queue_type = boost::intrusive::list<
      work_item,
      boost::intrusive::member_hook<work_item, decltype(work_item::hook_), &work_item::hook_>,
      boost::intrusive::constant_time_size<false>>;

  struct drain_handler {
    ordered_executor* self;
    void operator()() const { self->run_queue(); }
  };

  bool idle_locked() const noexcept { return queue_.empty() && current_ == nullptr && !scheduled_; }

  void post_drain() {
    detail::post_in_slab(strand_, slab_, drain_handler{this});
  }

  // Called with the lock held when the running item finished outside the
  // drain loop: post the next round, or go idle.
  void continue_or_stop(std::unique_lock<std::mutex>& lk) {
    if (!frozen_ && !queue_.empty()) {
      post_drain();
      return;
    }
    scheduled_ = false;
    notify_if_idle(lk);
  }

  void notify_if_idle(std::unique_lock<std::mutex>&) {
    if (idle_locked()) idle_cv_.notify_all();
  }

  void run_queue() {
    std::unique_lock lk(mu_);
    for (;;) {
      if (frozen_ || queue_.empty()) {
        scheduled_ = false;
        notify_if_idle(lk);
        return;
      }
      work_item& item = queue_.front();
      queue_.pop_front();
      current_ = &item;
      phase_ = phase::running_inline;
      lk.unlock();
      item.run();
      lk.lock();
      if (phase_ == phase::running_inline) {
        phase_ = phase::running_async; // finish() will continue
        return;
      }
      phase_ = phase::none;
    }
  }

  executor_type strand_;
  mutable std::mutex mu_;
  std::condition_variable idle_cv_;
  queue_type queue_;
  work_item* current_ = nullptr;
  phase phase_ = phase::none;
  bool scheduled_ = false;
  bool frozen_ = false;
  bool shutting_down_ = false;
  std::size_t submitted_ = 0;
  std::size_t finished_ = 0;
  slab_type slab_;
};

} // namespace flushkit
