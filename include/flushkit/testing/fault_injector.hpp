// flushkit/testing/fault_injector.hpp - a provider wrapper that makes flushes fail, stall or hang
// on demand.
#pragma once

#include <flushkit/core/capabilities.hpp>
#include <flushkit/core/flush_result.hpp>
#include <flushkit/core/provider.hpp>
#include <flushkit/core/request.hpp>
#include <flushkit/core/status.hpp>
#include <flushkit/detail/assert.hpp>
#include <flushkit/core/detail/handler_slab.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/intrusive/list.hpp>
#include <boost/system/error_code.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <initializer_list>
#include <mutex>
#include <random>
#include <span>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace flushkit::testing {

/// What an injected fault does to one flush call.
enum class fault_kind : std::uint8_t {
  fail_before, ///< "flush not attempted": the inner provider is not called; the call reports the
               ///< status
  fail_after,  ///< "flush happened but reported failure": the inner provider flushes, its status is
               ///< replaced
  delay,       ///< the inner provider is called after at least the duration
  hang,        ///< the call is parked until `release_one` / `release_all`
};
inline constexpr std::size_t fault_kind_count = 4;

/// One fault. `result` is any status, including success (`fail_before` with
/// success models a device that acknowledges a flush it never did) or a value
/// of a foreign category.
struct fault {
  /// What the fault does.
  fault_kind kind = fault_kind::fail_before;
  /// The status reported by `fail_before` / `fail_after` (any value, success included).
  status result{};
  /// The minimum delay of `delay`.
  std::chrono::nanoseconds duration{};

  /// The inner provider is not called; the call reports `st`.
  static fault fail_before(status st) { return {fault_kind::fail_before, st, {}}; }
  /// The inner provider flushes; its status is replaced by `st`.
  static fault fail_after(status st) { return {fault_kind::fail_after, st, {}}; }
  /// The inner provider is called after at least `d`.
  static fault delay(std::chrono::nanoseconds d) { return {fault_kind::delay, {}, d}; }
  /// The call is parked until `release_one` / `release_all`.
  static fault hang() { return {fault_kind::hang, {}, {}}; }
};

/// Which calls a rule applies to. Calls are numbered from 1 in the order the
/// injector accepts them.
class selection {
public:
  /// Each call with probability `p` (0 <= p <= 1), drawn from the injector's
  /// seeded generator.
  static selection rate(double p) {
    FLUSHKIT_ASSERT(p >= 0.0 && p <= 1.0, "fault rate outside [0, 1]");
    selection s(mode::rate);
    s.p_ = p;
    return s;
  }
  /// Exactly the calls with these numbers (1-based, any order, duplicates allowed).
  static selection calls(std::span<const std::uint64_t> numbers) {
    selection s(mode::calls);
    s.calls_.assign(numbers.begin(), numbers.end());
    std::sort(s.calls_.begin(), s.calls_.end());
    FLUSHKIT_ASSERT(s.calls_.empty() || s.calls_.front() >= 1, "call numbers start at 1");
    return s;
  }
  /// Exactly the calls with these numbers (1-based).
  static selection calls(std::initializer_list<std::uint64_t> numbers) {
    return calls(std::span<const std::uint64_t>(numbers.begin(), numbers.size()));
  }
  /// Every call from number `first` (1-based) on.
  static selection from(std::uint64_t first) {
    FLUSHKIT_ASSERT(first >= 1, "call numbers start at 1");
    selection s(mode::from);
    s.first_ = first;
    return s;
  }

  /// Whether call `n` is selected. A rate selection draws exactly one number
  /// from `rng` per call, so its decisions depend only on the seed and on `n`.
  bool matches(std::uint64_t n, std::mt19937_64& rng) const {
    switch (mode_) {
    case mode::rate:
      return static_cast<double>(rng() >> 11) * 0x1.0p-53 <
             p_; // uniform in [0, 1), same on every platform
    case mode::calls:
      return std::binary_search(calls_.begin(), calls_.end(), n);
    case mode::from:
      return n >= first_;
    }
    return false;
  }

private:
  enum class mode : std::uint8_t { rate, calls, from };
  explicit selection(mode m) : mode_(m) {}
  mode mode_;
  double p_ = 0.0;
  std::uint64_t first_ = 0;
  std::vector<std::uint64_t> calls_;
};

/// Configuration of a `fault_injector`.
struct fault_options {
  fault_options() = default;
  /// Options with `seed = s`.
  explicit fault_options(std::uint64_t s) : seed(s) {}

  /// Seed of the std::mt19937_64 behind every `selection::rate` rule.
  std::uint64_t seed = 0;
  /// Executor whose timers run asynchronous delays; empty by default.
  /// Required only when an asynchronous flush can meet a `delay` rule.
  boost::asio::any_io_executor executor;
  /// Timers created up front: how many asynchronous delays run at once. More
  /// delayed requests wait (linked, no allocation) for a timer to free up, so
  /// their delay only gets longer.
  std::size_t max_delayed = 8;
};

/// Snapshot of an injector's counters.
struct fault_counters {
  std::uint64_t calls = 0;                                ///< flush calls accepted
  std::array<std::uint64_t, fault_kind_count> injected{}; ///< faults injected, by kind
  std::size_t parked = 0;                                 ///< hung calls not yet released
  std::size_t delayed = 0;                                ///< asynchronous delays not yet over

  /// Faults of kind `k` injected.
  std::uint64_t of(fault_kind k) const noexcept { return injected[static_cast<std::size_t>(k)]; }
};

/// A flush provider that wraps `Provider` and injects faults chosen by rules.
///
/// `Provider` is held like `region` holds it: by value, or by reference
/// (`fault_injector<P&>`; the provider must outlive the injector). The
/// injector is a provider of the same kind(s): `status flush()` when the
/// inner provider has it, `flush_result flush(request&)` when the inner
/// provider has that. Capabilities: the injector has each capability of
/// its provider (`dirty_tracking`, `durability()`, `usable()`, see
/// core/capabilities.hpp), forwarded unchanged and never faulted.
///
/// Rules are checked in the order they were added; the first that selects a
/// call decides its fault; a call no rule selects goes straight to the inner
/// provider. Every rule is evaluated on every call (rate rules always draw),
/// so a given seed and rule list give the same fault for the same call number.
///
/// Thread-safety: `flush`, `add_rule`, `release_*`, `wait_parked` and the
/// observers may be called from any threads at once. Call numbers follow the
/// order in which concurrent calls take the injector's lock. The inner
/// provider is called without that lock, concurrently if `flush` is.
///
/// Allocation: none per call. Rules allocate when added; parked and waiting
/// requests are linked through `request::link_`. With `fault_options::executor`
/// set, the constructor allocates one block holding the delay timers and the
/// memory their handlers use; it outlives the injector until the last pending
/// timer handler ran or was destroyed.
template <class Provider>
class fault_injector
    : public forward_capabilities<fault_injector<Provider>, std::remove_reference_t<Provider>> {
  static_assert(flush_provider<std::remove_cvref_t<Provider>>,
                "flushkit: fault_injector wraps a flush provider (see docs/providers.md)");
  using provider_type = std::remove_reference_t<Provider>;
  static_assert(flushkit::detail::check_capability_chain<provider_type>());

public:
  /// True when the request-less `status flush()` is available (the inner provider has it).
  static constexpr bool has_sync_flush = sync_flush_provider<provider_type>;
  /// True when `flush_result flush(request&)` is available (the inner provider has it).
  static constexpr bool has_async_flush = async_flush_provider<provider_type>;

  /// An injector around `p` (moved in, or bound by reference for `Provider = P&`), without rules.
  /// Allocates the block of `opt.max_delayed` timers when `opt.executor` is set and that is not 0.
  explicit fault_injector(Provider p, fault_options opt = {})
      : provider_(std::forward<Provider>(p)), rng_(opt.seed),
        delays_(opt.executor != nullptr && opt.max_delayed != 0 ? new delay_state(*this, opt)
                                                                : nullptr) {}
  fault_injector(const fault_injector&) = delete;
  fault_injector& operator=(const fault_injector&) = delete;

  /// Effects: completes every request still delayed (timer running or
  /// waiting for one) with `errc::cancelled`, exactly once, on this thread,
  /// and cancels the timers; their handlers, whenever the executor runs or
  /// destroys them, then only release the timer block. Parked calls left
  /// over are released with `errc::cancelled` too, so none is lost, but
  /// parking is a test bug: reported in debug builds.
  /// Blocks only while a delay's timer handler is calling the inner provider
  /// on another thread (never waiting for the executor to run anything).
  /// Precondition: no thread is still inside `flush`.
  ~fault_injector() {
    FLUSHKIT_ASSERT(parked() == 0, "fault_injector destroyed with parked flushes");
    release_all(make_error_code(errc::cancelled));
    if (delays_ != nullptr) cancel_delays();
  }

  /// The wrapped provider.
  provider_type& provider() noexcept { return provider_; }
  /// The wrapped provider.
  const provider_type& provider() const noexcept { return provider_; }

  /// Adds a rule after the existing ones. Allowed at any time.
  fault_injector& add_rule(selection when, fault what) {
    if constexpr (has_async_flush)
      FLUSHKIT_ASSERT(what.kind != fault_kind::delay || delays_ != nullptr,
                      "an asynchronous delay needs fault_options::executor and max_delayed > 0");
    std::lock_guard lk(mu_);
    rules_.push_back({std::move(when), what});
    return *this;
  }

  /// Synchronous flush with faults.
  ///
  /// Effects: by the chosen fault: `fail_before` returns its status without
  /// calling the inner provider; `fail_after` calls it, then returns the
  /// fault's status; `delay` sleeps on the calling thread for the duration
  /// (that blocking is the modelled fault), then calls it; `hang` blocks the
  /// caller until released (see `release_one`). Without a fault, or after a
  /// delay or a successful release, returns the inner provider's status.
  status flush() requires has_sync_flush {
    fault* f = choose();
    if (f == nullptr) return provider_.flush();
    switch (f->kind) {
    case fault_kind::fail_before:
      return f->result;
    case fault_kind::fail_after:
      static_cast<void>(provider_.flush());
      return f->result;
    case fault_kind::delay:
      std::this_thread::sleep_for(f->duration);
      return provider_.flush();
    case fault_kind::hang:
      return resume_caller(park_caller());
    }
    return f->result;
  }

  /// Asynchronous flush of `req` with faults.
  ///
  /// Effects, by the chosen fault:
  ///  - none: the inner provider's result, unchanged;
  ///  - `fail_before`: `flush_result::done(status)`, inner provider not called,
  ///    `req` untouched (the caller completes it);
  ///  - `fail_after`: the inner provider flushes; a synchronous answer becomes
  ///    `done(status)`; an asynchronous one completes `req` with the fault's
  ///    status instead of the provider's, when the provider completes it;
  ///  - `delay`: returns `async(req)` at once; when a timer on
  ///    `fault_options::executor` expires (at least the duration later) the
  ///    inner provider is called on that executor's thread and its answer
  ///    completes `req`;
  ///  - `hang`: returns `async(req)` and parks `req` until released.
  /// Completion signature `void(flushkit::status)` via `request::complete`;
  /// it runs on the inner provider's completion thread, the timer's executor,
  /// or the thread calling `release_*`. Ordering: none added beyond the inner
  /// provider's; delayed or parked requests may overtake one another.
  /// Durability: exactly the inner provider's; a failed call says nothing.
  /// Allocation: none.
  flush_result flush(request& req) requires has_async_flush {
    fault* f = choose();
    if (f == nullptr) return provider_.flush(req);
    switch (f->kind) {
    case fault_kind::fail_before:
      return flush_result::done(f->result);
    case fault_kind::fail_after:
      return flush_then_override(req, *f);
    case fault_kind::delay:
      return start_delay(req, *f);
    case fault_kind::hang:
      return park(req);
    }
    return flush_result::done(f->result);
  }

  /// Releases the oldest parked call (asynchronous requests before blocked
  /// synchronous callers). With success the hung flush goes on: the inner
  /// provider is called now (for a request, on this thread) and its answer is
  /// the result. With an error the call fails with it and the inner provider
  /// is not called. Returns false if nothing was parked.
  bool release_one(status st = {}) {
    std::unique_lock lk(mu_);
    if (!parked_.empty()) {
      request& req = parked_.front();
      parked_.pop_front();
      lk.unlock();
      resume_request(req, st);
      return true;
    }
    if (sync_parked_.empty()) return false;
    wake(sync_parked_.front(), st);
    sync_parked_.pop_front();
    return true;
  }

  /// Releases every parked call as `release_one(st)` would. Returns how many.
  std::size_t release_all(status st = {}) {
    request_list taken;
    std::size_t n = 0;
    {
      std::lock_guard lk(mu_);
      taken.swap(parked_);
      n = taken.size() + sync_parked_.size();
      for (sync_waiter& w : sync_parked_) wake(w, st);
      sync_parked_.clear();
    }
    while (!taken.empty()) {
      request& req = taken.front();
      taken.pop_front();
      resume_request(req, st);
    }
    return n;
  }

  /// Blocks until at least `n` calls are parked (for tests that release from
  /// another thread).
  void wait_parked(std::size_t n) {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return parked_locked() >= n; });
  }

  /// Calls parked by `hang` rules and not yet released.
  std::size_t parked() const {
    std::lock_guard lk(mu_);
    return parked_locked();
  }

  /// A snapshot of the counters.
  fault_counters counters() const {
    std::lock_guard lk(mu_);
    fault_counters c = counters_;
    c.parked = parked_locked();
    if (delays_ != nullptr) {
      std::lock_guard dl(delays_->mu);
      c.delayed = delays_->delayed;
    }
    return c;
  }

private:
  struct rule {
    selection when;
    fault what;
  };
  using list_hook =
      boost::intrusive::list_member_hook<boost::intrusive::link_mode<boost::intrusive::safe_link>>;
  struct sync_waiter {
    list_hook hook;
    status result{};
    bool released = false;
  };
  using request_list = boost::intrusive::list<
      request, boost::intrusive::member_hook<request, decltype(request::link_), &request::link_>>;
  using waiter_list = boost::intrusive::list<
      sync_waiter, boost::intrusive::member_hook<sync_waiter, list_hook, &sync_waiter::hook>>;
  using slab_type = flushkit::detail::handler_slab<256, 1>;

  struct delay_slot {
    explicit delay_slot(const boost::asio::any_io_executor& ex) : timer(ex) {}
    boost::asio::steady_timer timer;
    request* req = nullptr;
    slab_type slab;
  };

  // Everything a delay's timer handler touches. The injector and each
  // pending handler hold a reference; the last one frees the block, so a
  // handler that runs, or is destroyed unrun, after the injector is gone
  // touches nothing else.
  struct delay_state {
    delay_state(fault_injector& self, const fault_options& opt) : owner(&self) {
      for (std::size_t i = 0; i < opt.max_delayed; ++i) slots.emplace_back(opt.executor);
    }
    void release() noexcept {
      if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
    }

    std::atomic<std::size_t> refs{1};
    std::mutex mu;                // guards the members below (lock order: the injector's mu_ first)
    fault_injector* owner;        // null once the injector is destroyed
    std::deque<delay_slot> slots; // fixed after construction
    request_list waiting;         // delayed requests waiting for a free timer
    std::size_t delayed = 0;      // requests in a slot or waiting
    std::size_t forwarding = 0;   // handlers calling the inner provider
    std::condition_variable idle; // notified when `forwarding` drops
  };

  // Holds a reference to the block from `arm` until Asio destroys the handler.
  class timer_handler {
  public:
    timer_handler(delay_state& s, delay_slot& slot) noexcept : state_(&s), slot_(&slot) {
      s.refs.fetch_add(1, std::memory_order_relaxed);
    }
    timer_handler(timer_handler&& o) noexcept
        : state_(std::exchange(o.state_, nullptr)), slot_(o.slot_) {}
    timer_handler& operator=(timer_handler&&) = delete;
    ~timer_handler() {
      if (state_ != nullptr) state_->release();
    }
    void operator()(const boost::system::error_code&) const { on_timer(*state_, *slot_); }

  private:
    delay_state* state_;
    delay_slot* slot_;
  };

  // Numbers the call and returns the fault of the first matching rule.
  fault* choose() {
    std::lock_guard lk(mu_);
    const std::uint64_t n = ++counters_.calls;
    fault* chosen = nullptr;
    for (rule& r : rules_)
      if (r.when.matches(n, rng_) && chosen == nullptr) chosen = &r.what;
    if (chosen != nullptr) ++counters_.injected[static_cast<std::size_t>(chosen->kind)];
    return chosen;
  }

  std::size_t parked_locked() const noexcept { return parked_.size() + sync_parked_.size(); }

  // --- synchronous hang ---

  status park_caller() {
    sync_waiter w;
    std::unique_lock lk(mu_);
    sync_parked_.push_back(w);
    cv_.notify_all();
    cv_.wait(lk, [&] { return w.released; });
    return w.result;
  }

  void wake(sync_waiter& w, const status& st) {
    w.result = st;
    w.released = true;
    cv_.notify_all();
  }

  status resume_caller(const status& st) requires has_sync_flush {
    return st ? st : provider_.flush();
  }

  // --- asynchronous faults ---

  static void override_status(void* context, request& req, const status&) noexcept {
    req.complete(static_cast<fault*>(context)->result);
  }

  flush_result flush_then_override(request& req, fault& f) {
    req.intercept_completion(&fault_injector::override_status, &f);
    flush_result r = provider_.flush(req);
    if (r.is_async()) return r;
    req.cancel_interception();
    return flush_result::done(f.result);
  }

  flush_result park(request& req) {
    std::lock_guard lk(mu_);
    parked_.push_back(req);
    cv_.notify_all();
    return flush_result::async(req);
  }

  flush_result start_delay(request& req, fault& f) {
    if (delays_ == nullptr) return provider_.flush(req); // misconfigured; asserted in add_rule
    delay_state& d = *delays_;
    std::lock_guard lk(d.mu);
    ++d.delayed;
    for (delay_slot& s : d.slots)
      if (s.req == nullptr) {
        arm(d, s, req, f.duration);
        return flush_result::async(req);
      }
    // The injector owns req until it forwards it: its work item carries the
    // fault while it waits (the inner provider sets the item again if it uses it).
    req.work.set(nullptr, &f);
    d.waiting.push_back(req);
    return flush_result::async(req);
  }

  // Called with the block's lock held.
  static void arm(delay_state& d, delay_slot& s, request& req, std::chrono::nanoseconds duration) {
    s.req = &req;
    s.timer.expires_after(duration);
    s.timer.async_wait(flushkit::detail::in_slab(s.slab, timer_handler(d, s)));
  }

  // A timer expired or was cancelled. Once the injector is gone its slot is
  // empty (the destructor completed the request) and nothing else is touched.
  static void on_timer(delay_state& d, delay_slot& s) {
    std::unique_lock lk(d.mu);
    request* due = std::exchange(s.req, nullptr);
    if (d.owner == nullptr || due == nullptr) return;
    --d.delayed;
    if (!d.waiting.empty()) {
      request& next = d.waiting.front();
      d.waiting.pop_front();
      arm(d, s, next, static_cast<fault*>(next.work.context())->duration);
    }
    ++d.forwarding;
    fault_injector& self = *d.owner;
    lk.unlock();
    const delay_state* outer = std::exchange(forwarding_here_, &d);
    self.forward(*due); // a completion it runs may destroy the injector: touch only `d` after it
    forwarding_here_ = outer;
    lk.lock();
    if (--d.forwarding == 0) d.idle.notify_all();
  }

  // Destructor: cancels the delays, waits for handlers forwarding on other
  // threads, completes the delayed requests, drops the injector's reference.
  void cancel_delays() noexcept {
    delay_state& d = *delays_;
    request_list cancelled;
    {
      std::unique_lock lk(d.mu);
      d.owner = nullptr;
      for (delay_slot& s : d.slots) {
        s.timer.cancel();
        if (s.req != nullptr) cancelled.push_back(*std::exchange(s.req, nullptr));
      }
      cancelled.splice(cancelled.end(), d.waiting);
      d.delayed = 0;
      d.idle.wait(lk, [&] { return d.forwarding == (forwarding_here_ == &d ? 1u : 0u); });
    }
    while (!cancelled.empty()) {
      request& req = cancelled.front();
      cancelled.pop_front();
      req.complete(make_error_code(errc::cancelled));
    }
    d.release();
  }

  // The injector owns `req`: hand it to the inner provider and complete it
  // with a synchronous answer.
  void forward(request& req) {
    const flush_result r = provider_.flush(req);
    if (!r.is_async()) req.complete(r.sync_status());
  }

  // A released request: success lets the flush go on, an error completes it.
  void resume_request(request& req, const status& st) {
    if constexpr (has_async_flush)
      if (!st) return forward(req);
    req.complete(st);
  }

  Provider provider_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::mt19937_64 rng_;
  std::deque<rule> rules_;  // deque: a fault's address stays valid while rules are added
  request_list parked_;     // hung requests, oldest first
  waiter_list sync_parked_; // hung synchronous callers, oldest first
  fault_counters counters_;
  delay_state* delays_; // asynchronous delays; null without fault_options::executor
  // The block whose handler is calling the inner provider on this thread, if any.
  static inline thread_local const delay_state* forwarding_here_ = nullptr;
};

} // namespace flushkit::testing
