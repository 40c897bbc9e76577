// flushkit/coalesce/coalescer.hpp - group commit: one backend flush covers every write completed before it.
#pragma once

#include <flushkit/coalesce/detail/failure_log.hpp>
#include <flushkit/core/capabilities.hpp>
#include <flushkit/core/completion.hpp>
#include <flushkit/core/detail/completion_op.hpp>
#include <flushkit/core/detail/handler_slab.hpp>
#include <flushkit/core/detail/io_object.hpp>
#include <flushkit/core/flush_result.hpp>
#include <flushkit/core/provider.hpp>
#include <flushkit/core/request.hpp>
#include <flushkit/core/status.hpp>
#include <flushkit/detail/assert.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/basic_waitable_timer.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/intrusive/list.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <type_traits>
#include <utility>

namespace flushkit {

/// What a failed backend flush does to later flushes.
enum class coalesce_error_mode : std::uint8_t {
  /// The error reaches exactly the requests the failed flush covered; later
  /// requests get a new backend flush. Default.
  per_flush,
  /// As `per_flush`, and afterwards every request not already made durable
  /// fails with the same error, without a backend flush, until
  /// `coalescer::reset_error()` (PostgreSQL's PANIC-on-fsync-failure).
  sticky,
};

/// When the next backend flush is issued once one has completed (or, for
/// `bounded`, also when a request reaches an idle coalescer). Every policy
/// keeps the group-commit rule: a flush covers only writes whose epoch was
/// taken before it was issued.
enum class batching : std::uint8_t {
  /// `end_of_turn` with an asynchronous backend, `immediate` with a
  /// synchronous one. The default.
  automatic,
  /// At once, for every request waiting when the previous flush completed.
  /// At N in flight this alternates small and large batches: the first
  /// request re-submitted from a completion finds the coalescer idle and
  /// starts a flush for itself alone.
  immediate,
  /// The next flush is issued from a handler posted to the coalescer's
  /// executor after the finished batch's completions were handed over, so
  /// that completions delivered to that event loop (posted before it) have
  /// run and re-submitted first; a request that finds the coalescer idle is
  /// flushed at once. Costs one posted handler per flush; needs the executor
  /// to be run.
  end_of_turn,
  /// The next flush waits until `min_batch` requests wait or `max_delay`
  /// has passed since it became possible (a steady timer on the coalescer's
  /// executor), whichever comes first; also a request that finds the
  /// coalescer idle waits so. At QD1 every request waits `max_delay`.
  bounded,
};

/// Construction options of a `coalescer`.
struct coalescer_options {
  /// What a failed backend flush does to later requests.
  coalesce_error_mode errors = coalesce_error_mode::per_flush;
  /// When the next backend flush is issued. `end_of_turn` and `bounded`
  /// need an asynchronous backend (a synchronous backend's flushes are
  /// issued by the callers, see `coalescer`, "Threads").
  flushkit::batching batching = flushkit::batching::automatic;
  /// `bounded`: issue as soon as this many requests wait (>= 1).
  std::size_t min_batch = 1;
  /// `bounded`: the longest a flush waits for `min_batch` (> 0).
  std::chrono::microseconds max_delay{0};
};

/// Counters of a `coalescer` (a consistent snapshot, see `coalescer::stats`).
struct coalescer_stats {
  std::uint64_t flushes_issued = 0;           ///< backend flushes started
  std::uint64_t flushes_failed = 0;           ///< backend flushes that returned an error
  std::uint64_t requests_completed = 0;       ///< requests given a final status (all kinds below)
  std::uint64_t requests_covered = 0;         ///< ... by a backend flush they waited for
  std::uint64_t requests_already_durable = 0; ///< ... at submission, from a flush that already covered them
  std::uint64_t requests_rejected = 0;        ///< ... by the sticky error, without a flush
  std::uint64_t last_batch = 0;               ///< requests covered by the last completed backend flush
  std::uint64_t largest_batch = 0;            ///< most requests one backend flush covered
  std::uint64_t flushed_epoch = 0;            ///< target of the last completed backend flush
  std::uint64_t durable_epoch = 0;            ///< target of the last successful backend flush
  std::uint64_t deferred_issues = 0;          ///< flushes issued by a deferred handler (end of turn, timer)

  /// Requests a backend flush covered, on average (0 before the first).
  double average_batch() const noexcept {
    return flushes_issued == 0 ? 0.0
                               : static_cast<double>(requests_covered) / static_cast<double>(flushes_issued);
  }

  /// Backend flushes per acknowledged request (0 when nothing completed).
  double flushes_per_ack() const noexcept {
    return requests_completed == 0
               ? 0.0
               : static_cast<double>(flushes_issued) / static_cast<double>(requests_completed);
  }
};

/// Flush coalescing (group commit) in front of a flush provider.
///
/// `Provider` is a synchronous or asynchronous flush provider, held by value
/// or, for `Provider = P&`, by reference (it must then outlive the
/// coalescer). The coalescer is itself an asynchronous flush provider
/// (`flush_result flush(request&)`), so `region<coalescer<P>&>`, a pmem
/// device or a virtio-pmem driver can use it. It is not a synchronous
/// provider: the request-less flush is `flush_and_wait()`, named for what it
/// does. It has each capability of `Provider` (`note_dirty`, `durability()`,
/// `usable()`, see core/capabilities.hpp), forwarded unchanged.
///
/// Epochs. The coalescer counts data completions: `note_write_completed()`
/// returns the next value `e` of a monotonic counter, to be taken when (after)
/// a write's data step completed. So epoch order is completion order, not
/// submission order, and at any instant the writes with an epoch are exactly
/// epochs `1..counter`: the completed prefix is the counter itself, also
/// when writes complete out of submission order. A backend flush snapshots
/// the counter when it is issued (its `target`); it covers exactly the
/// epochs `<= target`, i.e. every write that completed before it was issued.
/// A request with epoch `e` completes with the outcome of the first backend
/// flush with `target >= e`. A request that reaches `flush(req)` with
/// `req.epoch == 0` is stamped at that call (the call is its data-completion
/// point). The coalescer resets `req.epoch` to 0 before it completes the
/// request, so the next `flush(req)` of the same request (a FUA after a
/// PREFLUSH) is a new completion point.
///
/// Rules: at most one backend flush in flight; requests arriving during it
/// wait, and after it completes one new backend flush is issued for all of
/// them, when `coalescer_options::batching` says (at once, at the end of the
/// event loop's turn, or after a bounded wait). A request whose epoch is
/// covered by the in-flight flush joins it. Errors: see
/// `coalesce_error_mode`; an error is never retried into a success.
///
/// Durability classes: there is one. Every request the coalescer completes
/// successfully was covered by the backend's one flush operation (the same
/// call for a plain, PREFLUSH or FUA request, and for the request-less
/// flush), so no request is ever covered by a weaker flush.
///
/// Threads: every member function may be called from any thread. User
/// completions are never called with the internal mutex held. With a
/// synchronous backend, each backend flush is issued, and its batch
/// completed, by a thread inside `flush(req)` for a request of that batch:
/// the thread that finds the coalescer idle; or, while a flush is in flight,
/// the first caller whose request it does not cover, which waits until that
/// flush and its batch completed and then issues the next flush for every
/// request queued by then (later callers queue and return at once). So a
/// `flush(req)` call issues at most one backend flush and no caller waits
/// longer than its own flush plus one more, except that a thread also
/// flushes the requests its own completion callbacks submit. With an
/// asynchronous backend, the thread that delivers the backend completion
/// issues the next flush (no caller waits for another one's flush).
/// Allocation: none.
///
/// An Asio I/O object: `executor_type` / `get_executor()` (where handlers of
/// `async_flush` without an associated executor run, and where the
/// `end_of_turn` and `bounded` policies run their deferred issue),
/// constructed from an executor or an execution context.
///
/// Lifetime: destroy it only when `idle()`: no request waiting or in
/// flight, no `flush_and_wait` caller inside, and no thread still
/// delivering (a completion runs before the delivering thread has left;
/// `wait_until_idle()` blocks until it has). Not from inside a completion
/// it is delivering. A deferred handler still queued on the executor then
/// does nothing: it and its memory (from a block the handler co-owns,
/// allocated once at construction for these policies) outlive the
/// coalescer safely.
template <class Provider, class Executor = boost::asio::any_io_executor>
class coalescer : public forward_capabilities<coalescer<Provider, Executor>, std::remove_reference_t<Provider>> {
  using provider_type = std::remove_reference_t<Provider>;
  static_assert(flush_provider<provider_type>,
                "flushkit::coalescer: Provider must have `flushkit::status flush()` or "
                "`flushkit::flush_result flush(flushkit::request&)`");
  static_assert(detail::check_capability_chain<provider_type>());
  static constexpr bool backend_is_async = async_flush_provider<provider_type>;
  using hook_type = boost::intrusive::member_hook<request, decltype(request::link_), &request::link_>;
  using request_list = boost::intrusive::list<request, hook_type, boost::intrusive::constant_time_size<true>>;

public:
  /// The executor a handler without an associated executor runs on.
  using executor_type = Executor;
  /// The token `async_flush` uses when none is given.
  using default_token = detail::default_token_t<Executor>;

  /// A coalescer in front of `p` (moved in, or bound by reference for
  /// `Provider = P&`), whose handlers default to `ex` (an executor or an
  /// execution context).
  /// Throws: `std::invalid_argument` for options that cannot work:
  /// `end_of_turn` or `bounded` with a synchronous backend, or `bounded`
  /// with `min_batch == 0` or `max_delay <= 0`.
  template <detail::executor_source<Executor> ExecutorOrContext>
  coalescer(ExecutorOrContext&& ex, Provider p, coalescer_options opts = {})
      : ex_(detail::to_executor<Executor>(std::forward<ExecutorOrContext>(ex))), provider_(std::forward<Provider>(p)),
        opts_(checked(opts)) {
    make_timer();
  }
  /// A coalescer whose provider is constructed in place from `args`.
  template <detail::executor_source<Executor> ExecutorOrContext, class... Args>
  coalescer(ExecutorOrContext&& ex, std::in_place_t, coalescer_options opts, Args&&... args)
      : ex_(detail::to_executor<Executor>(std::forward<ExecutorOrContext>(ex))), provider_(std::forward<Args>(args)...),
        opts_(checked(opts)) {
    make_timer();
  }
  coalescer(const coalescer&) = delete;
  coalescer& operator=(const coalescer&) = delete;
  ~coalescer() {
    std::unique_lock<std::mutex> anchor_lock;
    if (anchor_) anchor_lock = std::unique_lock(anchor_->mutex); // no deferred handler is inside now
    FLUSHKIT_ASSERT(idle(), "coalescer destroyed with requests pending or a thread inside it");
    if (anchor_) anchor_->self = nullptr; // a deferred handler still queued finds nothing to do
  }

  /// The batching policy in effect (`automatic` resolved).
  flushkit::batching batching() const noexcept { return opts_.batching; }

  /// True when no request is waiting or in flight and no thread is inside
  /// the coalescer delivering or issuing: it may be destroyed (a deferred
  /// handler may still be queued; it finds nothing to do).
  bool idle() const {
    std::lock_guard lock(mutex_);
    return idle_locked();
  }

  /// Blocks until `idle()`: every request completed and the thread that
  /// delivered the last completions has left the coalescer. Then it may be
  /// destroyed. Call it after the last request's completion, not from inside
  /// a completion this coalescer delivers (it would wait for itself).
  /// Allocation: none.
  void wait_until_idle() {
    std::unique_lock lock(mutex_);
    idle_cv_.wait(lock, [this] { return idle_locked(); });
  }

  /// The executor given at construction.
  executor_type get_executor() const noexcept { return ex_; }

  /// The backend provider.
  provider_type& provider() noexcept { return provider_; }
  /// The backend provider.
  const provider_type& provider() const noexcept { return provider_; }

  /// Declares that a write's data step has completed.
  /// Effects: takes the next epoch. Call it after the data reached the
  /// provider's volatile layer. Returns: the epoch (> 0). Lock-free.
  std::uint64_t note_write_completed() noexcept {
    return completed_.fetch_add(1, std::memory_order_acq_rel) + 1;
  }

  /// Effects: `req.epoch = note_write_completed()`.
  void mark_completed(request& req) noexcept { req.epoch = note_write_completed(); }

  /// Makes the request's write durable.
  ///
  /// Effects: if `req.epoch == 0` it is stamped now. If a completed backend
  /// flush already covered the epoch, returns that flush's outcome
  /// synchronously. Otherwise (sticky error set) returns the sticky error
  /// synchronously, or the coalescer takes ownership: the request joins the
  /// in-flight flush if that covers its epoch, else waits for the next flush,
  /// which this call issues if none is in flight. With a synchronous backend
  /// and a flush in flight, the first such call blocks until that flush
  /// completed and then issues the next one (see "Threads").
  /// Returns: `flush_result::done(st)` (the caller completes the request) or
  /// `flush_result::async(req)`; the request may already have completed when
  /// this returns (the calling thread issued a synchronous backend flush).
  /// Completion signature `void(status)` via the request; runs on the thread
  /// that completed the covering backend flush, never under the mutex.
  /// Durable at success: every write whose epoch is <= `req.epoch`.
  /// Errors: the covering flush's status, unchanged; or the sticky error.
  /// Ordering: requests covered by one flush complete in arrival order.
  /// Allocation: none.
  flush_result flush(request& req) {
    std::unique_lock lock(mutex_);
    if (req.epoch == 0) req.epoch = note_write_completed();
    if (req.epoch <= flushed_epoch_) return finish_now(lock, req, log_.outcome(req.epoch), stats_.requests_already_durable);
    if (sticky_error_) return finish_now(lock, req, sticky_error_, stats_.requests_rejected);
    if (flush_active_ && req.epoch <= target_) {
      in_flight_.push_back(req);
      return flush_result::async(req);
    }
    waiting_.push_back(req);
    if (!busy_) {
      busy_ = true;
      drive(lock, cause::arrival);
    } else if (deferred_ && (sync_waiters_ > 0 || min_batch_reached())) {
      end_deferral(); // a blocked waiter cannot wait for a handler its own thread may have to run
      drive(lock, cause::deferred);
    } else if (!backend_is_async && successor_ == successor::none && driver_ != std::this_thread::get_id()) {
      successor_ = successor::appointed; // issues the next flush, after the one in flight
      successor_cv_.wait(lock, [this] { return successor_ == successor::handed_over; });
      successor_ = successor::none;
      drive(lock, cause::arrival);
    }
    return flush_result::async(req);
  }

  /// Request-less flush, blocking: makes every write completed before the
  /// call durable.
  ///
  /// Effects: submits an internal request stamped now and blocks until it
  /// completes; it is coalesced like any other. Returns: its status.
  /// Errors: as `flush(request&)`; `errc::invalid_request`, after a
  /// FLUSHKIT_ASSERT, when the calling thread is one this call would wait
  /// for: it is delivering this coalescer's completions, or it runs the
  /// backend's executor (when the backend has `get_executor()` whose
  /// executor has `running_in_this_thread()`, e.g. `pmem_guest`).
  /// Precondition: not called on another thread the backend's completions
  /// need (not detected). Allocation: none.
  status flush_and_wait() {
    sync_waiter w{this};
    request req(req_op::flush, 0, {}, req_flags::preflush);
    if (would_wait_for_itself()) {
      FLUSHKIT_ASSERT(false, "coalescer::flush_and_wait() on a thread it would wait for");
      return make_error_code(errc::invalid_request);
    }
    req.on_complete(&coalescer::sync_done, &w);
    const waiter_count counted(*this);
    const flush_result r = flush(req);
    if (!r.is_async()) return r.sync_status();
    std::unique_lock lock(sync_mutex_);
    sync_cv_.wait(lock, [&w] { return w.done; });
    return w.result;
  }

  /// Request-less flush, asynchronous: makes every write completed before
  /// the call durable.
  ///
  /// Effects: `flush(req)` of an internal request stamped now, coalesced like
  /// any other. Completion signature: `void(boost::system::error_code)`, the
  /// covering flush's status (or the sticky error). Executor: the handler's
  /// associated executor, defaulting to `get_executor()`; never inside this
  /// call. Durable at success: every write whose epoch was taken before the
  /// call. Ordering: as `flush(request&)`. Cancellation: `terminal` detaches
  /// the handler with `operation_aborted`; the internal request still joins
  /// its flush. Blocking: with a synchronous backend this call may issue a
  /// backend flush on the calling thread, as `flush(request&)` does (put an
  /// asynchronous provider behind the coalescer for an event loop).
  /// Allocation: one block from the handler's allocator, none in steady state
  /// (see `flushkit::async_wait`).
  template <boost::asio::completion_token_for<completion_signature> Token> auto async_flush(Token&& token) {
    return boost::asio::async_initiate<Token, completion_signature>(initiate_flush{this}, token);
  }
  /// `async_flush(default_token())`: an operation to `co_await` (or launch
  /// with a token); discarding it flushes nothing, so that does not compile quietly.
  [[nodiscard]] auto async_flush() { return async_flush(default_token()); }

  /// The sticky error (success when none is set or in `per_flush` mode).
  status error() const {
    std::lock_guard lock(mutex_);
    return sticky_error_;
  }

  /// Clears the sticky error: later requests get backend flushes again.
  void reset_error() {
    std::lock_guard lock(mutex_);
    sticky_error_ = status{};
  }

  /// A consistent snapshot of the counters.
  coalescer_stats stats() const {
    std::lock_guard lock(mutex_);
    return stats_;
  }

private:
  struct initiate_flush {
    using executor_type = Executor;
    coalescer* self;
    executor_type get_executor() const noexcept { return self->ex_; }

    template <class Handler> void operator()(Handler&& h) const {
      coalescer* c = self;
      detail::request_op<std::decay_t<Handler>, Executor>::start(
          std::move(h), c->ex_, req_op::flush, 0, boost::asio::const_buffer(), req_flags::preflush,
          [c](request& r) {
            const flush_result fr = c->flush(r);
            if (!fr.is_async()) r.complete(fr.sync_status());
          });
    }
  };

  /// The appointed next driver of a synchronous backend (see "Threads").
  enum class successor : std::uint8_t { none, appointed, handed_over };
  /// Why `drive` runs: a request reached an idle coalescer, a flush
  /// completed, or a deferred issue became due.
  enum class cause : std::uint8_t { arrival, flushed, deferred };
  using timer_type = boost::asio::basic_waitable_timer<std::chrono::steady_clock,
                                                       boost::asio::wait_traits<std::chrono::steady_clock>, Executor>;
  using slab_type = detail::handler_slab<256, 3>;

  /// What a deferred handler reaches the coalescer through; shared with the
  /// handlers, so that one still queued when the coalescer is destroyed
  /// finds `self == nullptr` and its memory block still valid.
  struct deferral_anchor {
    std::mutex mutex; // taken before the coalescer's mutex_
    coalescer* self;
    slab_type slab;
  };

  /// A deferred issue (end-of-turn post or timer wait); stale once `gen` moved on.
  struct deferred_handler {
    std::shared_ptr<deferral_anchor> anchor;
    std::uint64_t gen;

    using allocator_type = detail::shared_slab_allocator<void, slab_type>;
    allocator_type get_allocator() const noexcept {
      return allocator_type(std::shared_ptr<slab_type>(anchor, &anchor->slab));
    }
    void operator()() const {
      std::unique_lock anchor_lock(anchor->mutex);
      coalescer* c = anchor->self;
      if (c == nullptr) return; // the coalescer is gone
      std::unique_lock lock(c->mutex_);
      run_locked(anchor_lock, lock, c);
    }
    /// Issues the deferred flush unless stale. Both locks held.
    void run_locked(std::unique_lock<std::mutex>& anchor_lock, std::unique_lock<std::mutex>& lock, coalescer* c) const {
      if (!c->take_deferral(gen)) return;
      if (c->waiting_.empty()) {
        c->busy_ = false; // nothing to issue: idle again, decided under both locks
        return c->notify_if_idle();
      }
      anchor_lock.unlock(); // requests wait: the coalescer may not be destroyed now
      c->drive(lock, cause::deferred);
    }
  };

  static coalescer_options checked(coalescer_options o) {
    using flushkit::batching;
    if (o.batching == batching::automatic) o.batching = backend_is_async ? batching::end_of_turn : batching::immediate;
    if (!backend_is_async && o.batching != batching::immediate)
      throw std::invalid_argument("flushkit::coalescer: end_of_turn and bounded batching need an asynchronous backend");
    if (o.batching == batching::bounded && (o.min_batch == 0 || o.max_delay.count() <= 0))
      throw std::invalid_argument("flushkit::coalescer: bounded batching needs min_batch >= 1 and max_delay > 0");
    return o;
  }

  void make_timer() {
    if (opts_.batching == flushkit::batching::immediate) return;
    anchor_ = std::make_shared<deferral_anchor>();
    anchor_->self = this;
    if (opts_.batching == flushkit::batching::bounded) timer_.emplace(ex_);
  }

  struct sync_waiter {
    coalescer* self;
    bool done = false;
    status result{};
  };

  /// Counts a blocked `flush_and_wait` caller for its lifetime: while one
  /// waits, no flush is deferred (its own thread may be the one that would
  /// have to run the deferred handler).
  struct waiter_count {
    coalescer& c;
    explicit waiter_count(coalescer& co) : c(co) {
      std::lock_guard lock(c.mutex_);
      ++c.sync_waiters_;
    }
    waiter_count(const waiter_count&) = delete;
    waiter_count& operator=(const waiter_count&) = delete;
    ~waiter_count() {
      std::lock_guard lock(c.mutex_);
      --c.sync_waiters_;
      c.notify_if_idle();
    }
  };

  bool idle_locked() const noexcept {
    return !flush_active_ && waiting_.empty() && in_flight_.empty() && (!busy_ || deferred_) && sync_waiters_ == 0;
  }

  /// Wakes `wait_until_idle` callers when the state became idle. Lock held:
  /// they proceed once this thread released the mutex, its last access.
  void notify_if_idle() {
    if (idle_locked()) idle_cv_.notify_all();
  }

  bool min_batch_reached() const noexcept {
    return opts_.batching == flushkit::batching::bounded && waiting_.size() >= opts_.min_batch;
  }

  bool would_wait_for_itself() {
    {
      std::lock_guard lock(mutex_);
      if (busy_ && driver_ == std::this_thread::get_id()) return true;
    }
    if constexpr (requires { provider_.get_executor(); })
      return detail::runs_in_this_thread(provider_.get_executor()) == std::optional<bool>(true);
    else
      return false;
  }

  static void sync_done(void* context, request&, const status& st) {
    auto* w = static_cast<sync_waiter*>(context);
    std::lock_guard lock(w->self->sync_mutex_);
    w->result = st;
    w->done = true;
    w->self->sync_cv_.notify_all();
  }

  flush_result finish_now(std::unique_lock<std::mutex>& lock, request& req, const status& st,
                          std::uint64_t& counter) {
    ++counter;
    ++stats_.requests_completed;
    lock.unlock();
    req.epoch = 0;
    return flush_result::done(st);
  }

  /// Runs flushes while requests wait; after one, hands over to an appointed
  /// successor, or defers the next as the batching policy says.
  /// Precondition: lock held, busy_ set by or handed to this thread. Returns
  /// with the lock held; busy_ stays set only while an asynchronous backend
  /// flush or a deferred issue is pending (its handler continues) or after a
  /// hand-over.
  void drive(std::unique_lock<std::mutex>& lock, cause why) {
    driver_ = std::this_thread::get_id();
    for (;; why = cause::flushed) {
      if (why == cause::flushed && successor_ == successor::appointed) {
        successor_ = successor::handed_over;
        successor_cv_.notify_one();
        break;
      }
      if (sticky_error_) reject_waiting(lock);
      if (defer(why)) break;
      if (waiting_.empty()) {
        busy_ = false;
        break;
      }
      if (why == cause::deferred) ++stats_.deferred_issues;
      begin_flush();
      const std::optional<status> st = issue(lock);
      if (!st) break;
      end_flush(lock, *st);
    }
    driver_ = std::thread::id{};
    notify_if_idle();
  }

  void begin_flush() {
    target_ = completed_.load(std::memory_order_acquire);
    in_flight_.splice(in_flight_.end(), waiting_);
    flush_active_ = true;
    ++stats_.flushes_issued;
  }

  /// Calls the backend without the lock. Returns its status, or nullopt when
  /// the backend completes later (then `on_backend_done` takes over).
  std::optional<status> issue(std::unique_lock<std::mutex>& lock) {
    if constexpr (backend_is_async) {
      issuing_ = true;
      lock.unlock();
      backend_req_.prepare(req_op::flush, 0, {}, req_flags::preflush);
      backend_req_.on_complete(&coalescer::on_backend_done, this);
      const flush_result r = guarded([this] { return provider_.flush(backend_req_); }, flush_result::done(io_error()));
      lock.lock();
      issuing_ = false;
      if (!r.is_async()) return r.sync_status();
      std::optional<status> early = std::exchange(early_result_, std::nullopt);
      return early;
    } else {
      lock.unlock();
      const status st = guarded([this] { return provider_.flush(); }, io_error());
      lock.lock();
      return st;
    }
  }

  static status io_error() noexcept { return make_error_code(errc::io_error); }

  /// The backend's answer, or `failed` when it throws: an exception is a
  /// failed flush for the requests it covered, never a coalescer left busy.
  template <class Call, class Result> static Result guarded(Call call, Result failed) noexcept {
    try {
      return call();
    } catch (...) {
      return failed;
    }
  }

  /// Completion of an asynchronous backend flush, on the backend's thread.
  static void on_backend_done(void* context, request&, const status& result) {
    auto* self = static_cast<coalescer*>(context);
    const status st = result;
    std::unique_lock lock(self->mutex_);
    if (self->issuing_) {
      self->early_result_ = st; // the issuing thread is still inside provider_.flush
      return;
    }
    self->driver_ = std::this_thread::get_id();
    self->end_flush(lock, st);
    self->drive(lock, cause::flushed);
  }

  /// Whether the policy defers the next flush (and, if so, arms the handler
  /// that issues it). Lock held.
  bool defer(cause why) {
    using flushkit::batching;
    if (why == cause::deferred || sync_waiters_ > 0) return false;
    if (opts_.batching == batching::end_of_turn) {
      if (why != cause::flushed) return false;
      deferred_ = true;
      // run_on unwraps a type-erased executor, which would drop the handler's allocator.
      detail::run_on(ex_, deferred_handler{anchor_, deferral_gen_}, true);
      return true;
    }
    if (opts_.batching == batching::bounded && !waiting_.empty() && !min_batch_reached()) {
      deferred_ = true;
      deadline_ = std::chrono::steady_clock::now() + opts_.max_delay;
      if (!timer_waiting_) wait_for_deadline(); // else the pending wait re-arms itself for deadline_
      return true;
    }
    return false;
  }

  /// Bounded: the one timer wait, for `deadline_`. Lock held.
  void wait_for_deadline() {
    timer_waiting_ = true;
    timer_->expires_at(deadline_);
    timer_->async_wait(timer_handler{anchor_});
  }

  /// Bounded: the timer fired (or was cancelled by the destructor). Issues
  /// the deferred flush when its deadline passed, waits again when a later
  /// deferral moved it; does nothing when no deferral is armed.
  struct timer_handler {
    std::shared_ptr<deferral_anchor> anchor;
    using allocator_type = detail::shared_slab_allocator<void, slab_type>;
    allocator_type get_allocator() const noexcept {
      return allocator_type(std::shared_ptr<slab_type>(anchor, &anchor->slab));
    }
    void operator()(const boost::system::error_code&) const {
      std::unique_lock anchor_lock(anchor->mutex);
      coalescer* c = anchor->self;
      if (c == nullptr) return; // the coalescer is gone
      std::unique_lock lock(c->mutex_);
      c->timer_waiting_ = false;
      if (!c->deferred_) return;
      if (std::chrono::steady_clock::now() < c->deadline_) return c->wait_for_deadline();
      deferred_handler{anchor, c->deferral_gen_}.run_locked(anchor_lock, lock, c);
    }
  };

  /// The deferred issue happens now, from the caller (`min_batch` reached,
  /// or a blocked waiter arrived); a queued handler becomes stale (a pending
  /// timer wait is left to expire, so at most one is ever outstanding).
  /// Lock held.
  void end_deferral() {
    deferred_ = false;
    ++deferral_gen_;
  }

  /// A deferred handler ran (or was cancelled): whether its issue is still
  /// due (not stale). Lock held.
  bool take_deferral(std::uint64_t gen) noexcept {
    if (!deferred_ || gen != deferral_gen_) return false;
    deferred_ = false;
    ++deferral_gen_;
    return true;
  }

  /// Publishes the outcome of the in-flight flush and completes its batch.
  void end_flush(std::unique_lock<std::mutex>& lock, const status& st) {
    log_.record(flushed_epoch_, target_, st);
    flushed_epoch_ = target_;
    flush_active_ = false;
    if (st) {
      ++stats_.flushes_failed;
      if (opts_.errors == coalesce_error_mode::sticky && !sticky_error_) sticky_error_ = st;
    } else {
      stats_.durable_epoch = target_;
    }
    stats_.flushed_epoch = target_;
    stats_.last_batch = in_flight_.size();
    if (stats_.last_batch > stats_.largest_batch) stats_.largest_batch = stats_.last_batch;
    stats_.requests_covered += in_flight_.size();
    deliver(lock, in_flight_, st);
  }

  /// Sticky mode: every waiter fails with the sticky error, without a flush.
  void reject_waiting(std::unique_lock<std::mutex>& lock) {
    stats_.requests_rejected += waiting_.size();
    deliver(lock, waiting_, sticky_error_);
  }

  /// Completes every request of `from` with `st` outside the lock.
  void deliver(std::unique_lock<std::mutex>& lock, request_list& from, status st) {
    stats_.requests_completed += from.size();
    request_list batch;
    batch.splice(batch.end(), from);
    lock.unlock();
    while (!batch.empty()) {
      request& r = batch.front();
      batch.pop_front();
      r.epoch = 0;
      r.complete(st);
    }
    lock.lock();
  }

  Executor ex_;
  Provider provider_;
  const coalescer_options opts_;
  std::atomic<std::uint64_t> completed_{0};

  mutable std::mutex mutex_;
  request_list waiting_;   // wait for the next flush
  request_list in_flight_; // covered by the in-flight flush
  bool busy_ = false;      // a thread drives flushes, or an async flush is pending
  bool flush_active_ = false;
  bool issuing_ = false;
  std::optional<status> early_result_;
  std::thread::id driver_{};       // the thread issuing or completing flushes
  successor successor_ = successor::none;
  std::condition_variable successor_cv_;
  std::uint64_t target_ = 0;        // snapshot of the in-flight (or last) flush
  std::uint64_t flushed_epoch_ = 0; // target of the last completed flush
  status sticky_error_{};
  detail::failure_log<> log_;
  coalescer_stats stats_{};
  request backend_req_; // the backend flush request (asynchronous backends)
  bool deferred_ = false;             // a deferred issue is armed (busy_ is set)
  std::uint64_t deferral_gen_ = 0;    // tells a stale deferred handler from the armed one
  std::optional<timer_type> timer_;   // bounded batching
  bool timer_waiting_ = false;        // bounded: the one timer wait is pending
  std::chrono::steady_clock::time_point deadline_{}; // bounded: when the armed deferral issues
  std::size_t sync_waiters_ = 0;      // flush_and_wait callers blocked
  std::condition_variable idle_cv_;   // wait_until_idle
  std::shared_ptr<deferral_anchor> anchor_; // end_of_turn and bounded

  std::mutex sync_mutex_;
  std::condition_variable sync_cv_;
};

} // namespace flushkit
