// flushkit/virtio/pmem_guest.hpp - the virtio-pmem guest driver: an asynchronous flush provider over a virtqueue.
#pragma once

// notifier.hpp first: it names `detail::handler_slab` unqualified inside
// flushkit::virtio, which breaks once flushkit::virtio::detail is declared.
#include <flushkit/virtio/notifier.hpp>

#include <flushkit/core/capabilities.hpp>
#include <flushkit/core/completion.hpp>
#include <flushkit/core/detail/completion_op.hpp>
#include <flushkit/core/detail/io_object.hpp>
#include <flushkit/core/flush_result.hpp>
#include <flushkit/core/request.hpp>
#include <flushkit/core/status.hpp>
#include <flushkit/core/work_item.hpp>
#include <flushkit/detail/assert.hpp>
#include <flushkit/core/detail/handler_slab.hpp>
#include <flushkit/exec/ordered_executor.hpp>
#include <flushkit/virtio/detail/le_access.hpp>
#include <flushkit/virtio/detail/pmem_guest_context.hpp>
#include <flushkit/virtio/driver_queue.hpp>
#include <flushkit/virtio/guest_memory.hpp>
#include <flushkit/virtio/pmem_protocol.hpp>
#include <flushkit/virtio/split_ring.hpp>

#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>

namespace flushkit::virtio {

/// Guest RAM the driver owns for its ring and its request/response buffers:
/// the guest address, the host address of the same bytes, and the size.
/// `pmem_guest<...>::area_bytes(options)` says how much it needs.
struct driver_area {
  /// Guest physical address of the area (the driver aligns it up to a cache line).
  std::uint64_t guest = 0;
  /// The same bytes in this process.
  std::byte* host = nullptr;
  /// Bytes of the area (at least `pmem_guest<...>::area_bytes(options)`).
  std::uint64_t size = 0;
};

/// What the driver does when the device sets DEVICE_NEEDS_RESET.
enum class needs_reset_policy : std::uint8_t {
  /// The v7 kernel: NEEDS_RESET is only sampled at the start of each flush,
  /// which then fails with io_error without touching the ring; a request
  /// already in flight stays pending until remove() or freeze().
  fail_new_flushes,
  /// Recommended: `on_config_change()` (and a flush that sees the bit) marks
  /// the device broken, so the in-flight request and every waiter fail with
  /// io_error at once.
  mark_broken,
};

/// Log sink of the driver: `message` is a static string, `reason` too.
using pmem_guest_log_fn = void (*)(void* context, const char* message, const char* reason);

inline void pmem_guest_log_to_stderr(void*, const char* message, const char* reason) {
  std::fprintf(stderr, "flushkit virtio-pmem: %s (%s)\n", message, reason);
}

/// Construction options of `pmem_guest`.
struct pmem_guest_options {
  /// Virtqueue size (power of two, <= the device's queue_size_max).
  std::uint32_t queue_size = 64;
  /// Request contexts in the pool; 0 means `queue_size`. At least 2: context
  /// 0 is reserved for the ordered flush work, the others serve blocking
  /// `flush_and_wait()` callers (who wait, FIFO by the lock, when all are taken).
  std::uint32_t contexts = 0;
  /// The kernel's `flush_lock`: at most one request in flight on the ring.
  bool one_in_flight = true;
  /// What DEVICE_NEEDS_RESET does (see `needs_reset_policy`).
  needs_reset_policy on_needs_reset = needs_reset_policy::mark_broken;
  /// How long `restore()` waits for the device to acknowledge the reset that
  /// `freeze()` wrote (`pmem_control::reset_ack`).
  std::chrono::milliseconds reset_timeout{1000};
  /// Where "virtqueue is broken" goes (once per device object). Called with
  /// the driver lock held: the sink must not call back into the guest.
  pmem_guest_log_fn log = &pmem_guest_log_to_stderr;
  /// Context pointer passed to `log`.
  void* log_context = nullptr;
};

/// Counters and ring state of a `pmem_guest` (a snapshot taken under the lock).
struct pmem_guest_stats {
  std::uint64_t submitted = 0;        ///< chains added to the ring
  std::uint64_t host_errors = 0;      ///< answers with ret != 0
  std::uint64_t short_responses = 0;  ///< answers with used len < 4 (response not read)
  std::uint64_t late_completions = 0; ///< used buffers reclaimed after the device broke (reported as io_error)
  std::uint64_t ring_full_waits = 0;  ///< contexts that had to wait for a ring slot
  std::uint64_t admitted = 0;         ///< waiters admitted to the ring by a reclaimed buffer
  std::uint64_t tokens_drained = 0;   ///< tokens detached after a device reset
  std::uint32_t in_flight = 0;        ///< chains in the ring now
  std::uint32_t max_in_flight = 0;    ///< most chains ever in the ring at once
  std::uint32_t waiting = 0;          ///< contexts in the FIFO of ring waiters now
  std::uint32_t contexts_in_use = 0;  ///< contexts with a reference (submitter or ring) now
};

/// The virtio-pmem guest driver (`nd_virtio.c` + `virtio_pmem.c` with the v7
/// series): an asynchronous flush provider backed by a host flush request on
/// a split virtqueue. Use it as the provider of a `region<pmem_guest&>` (and
/// thus of a `pmem::pmem_device`), directly or behind a `coalescer`.
///
/// `Executor` is a concrete executor (`io_context::executor_type`, ...); the
/// driver runs its ordered flush work and its interrupt handling on one
/// strand of it. `Kick` notifies the device of new available buffers.
///
/// Every request context comes from a pool sized at construction; the request
/// and response words live in the driver area (guest RAM), the response in
/// its own cache line. The device is untrusted: a used length shorter than
/// the response, a host `ret` other than 0, any answer after the device broke
/// is `io_error`; a host value is never turned into anything but success or
/// `io_error`.
///
/// Threading: `flush(request&)`, `mark_broken`, `on_interrupt`,
/// `on_config_change`, `stats` may be called from any thread. The blocking
/// `flush_and_wait()`, `remove`, `freeze` must not be called from a thread that runs
/// the driver's executor (they wait for it). `probe`/`restore` are set-up
/// calls (no flush may run concurrently). Interrupts must stop (the transport
/// is torn down) before the object is destroyed.
/// Allocation: contexts, ring bookkeeping and handler blocks at construction;
/// none afterwards on any path.
template <class Executor, notifier Kick> class pmem_guest {
  using context = detail::pmem_guest_context;

public:
  /// The executor given at construction: handlers of `async_flush` without
  /// an associated executor run there. (The driver's own flush work and
  /// interrupt handling run on a strand of it, `driver_executor()`.)
  using executor_type = Executor;
  /// The driver's strand.
  using driver_executor_type = typename ordered_executor<Executor>::executor_type;
  /// The token `async_flush` uses when none is given.
  using default_token = flushkit::detail::default_token_t<Executor>;

  /// Effects: allocates the context pool and the ring bookkeeping; touches
  /// neither the device nor guest memory (that is `probe()`). `control`,
  /// `mem`, the driver area and `kick` must outlive the object.
  pmem_guest(const Executor& ex, pmem_control& control, const guest_memory& mem, const driver_area& area, Kick& kick,
             const pmem_guest_options& opts = {})
      : opts_(normalised(opts)), control_(control), mem_(mem), area_(area), kick_(kick), exec_(ex),
        q_(opts_.queue_size), contexts_(new context[opts_.contexts]) {}

  pmem_guest(const pmem_guest&) = delete;
  pmem_guest& operator=(const pmem_guest&) = delete;
  ~pmem_guest() {
    std::lock_guard lk(mu_);
    FLUSHKIT_ASSERT(!scheduled_ && !running_, "pmem_guest destroyed with interrupt work pending");
    FLUSHKIT_ASSERT(blocking_callers_ == 0, "pmem_guest destroyed while a blocking flush waits");
  }

  /// Bytes of driver area needed for `opts` (ring + one 128-byte slot per context).
  static std::uint64_t area_bytes(const pmem_guest_options& opts) noexcept {
    const pmem_guest_options o = normalised(opts);
    const auto l = detail::pmem_guest_layout::compute(0, o.queue_size, o.contexts);
    return l.end + detail::pmem_guest_cache_line; // slack for aligning the base
  }

  /// Effects: the VIRTIO initialisation on `control`: reset, ACKNOWLEDGE,
  /// DRIVER, feature negotiation (VERSION_1 required; EVENT_IDX taken when
  /// offered), FEATURES_OK (checked), queue set-up in the driver area with
  /// the split layout, queue_enable, config read (`start`, `size`, stable
  /// across `config_generation`), DRIVER_OK. Then flushes are accepted.
  /// Errors (the device gets FAILED): invalid_request for a second probe, a
  /// bad option or driver area, a queue size above the device's maximum,
  /// `size == 0` or `start + size` overflowing; not_supported without
  /// VERSION_1 or when FEATURES_OK does not stick; io_error when the config
  /// never stabilises.
  [[nodiscard]] status probe() {
    std::lock_guard lk(mu_);
    if (state_ != lifecycle::unprobed) return make_error_code(errc::invalid_request);
    if (status st = place_slots()) return fail_probe(st);
    if (status st = setup_locked()) return st;
    if (status st = read_config(range_)) return fail_probe(st);
    go_live_locked();
    return {};
  }

  /// Capability: a successful flush makes the whole pmem range durable (the
  /// host's fdatasync / msync of its backing): `durability_scope::page_cache`,
  /// so a device over the guest refuses `write_cache = false`.
  durability_scope durability() const noexcept { return durability_scope::page_cache; }

  /// The pmem range read by `probe()`.
  pmem_config range() const noexcept { return range_; }

  /// Asynchronous flush provider entry (`async_pmem_flush` with v7 patch 4 + 11).
  ///
  /// Effects: under the driver lock: when the device is broken (also before
  /// `probe`, during `freeze`, after `remove`) returns `done(io_error)` at
  /// once, touching neither the ring nor the pool; otherwise queues
  /// `req.work` on the driver's ordered executor and returns `async(req)`.
  /// The check and the queueing share the lock, so nothing is queued past the
  /// drain of `remove`/`freeze`. The work item takes the reserved context,
  /// posts the two-buffer chain (waiting FIFO for a slot when the ring is
  /// full or one request is in flight with `one_in_flight`), kicks, and ends
  /// when the device's used buffer comes back or the device breaks.
  /// Completion: `req.complete(st)` exactly once, on the driver's strand,
  /// after the previous queued flush completed (FIFO). Durable at success:
  /// everything the host's backing held when it processed the request.
  /// Errors: io_error (broken, NEEDS_RESET, host ret != 0, short response,
  /// answer after broken). Allocation: none.
  [[nodiscard]] flush_result flush(request& req) {
    std::lock_guard lk(mu_);
    if (broken_.load(std::memory_order_relaxed)) return flush_result::done(make_error_code(errc::io_error));
    req.work.set(&pmem_guest::run_async, this);
    if (exec_.submit(req.work)) return flush_result::done(make_error_code(errc::io_error));
    return flush_result::async(req);
  }

  /// Request-less flush (`virtio_pmem_flush`), asynchronous.
  ///
  /// Effects: `flush(req)` of an internal flush request. Completion
  /// signature: `void(boost::system::error_code)`: success when the host
  /// answered ret 0 with a full response, else `io_error`. Executor: the
  /// handler's associated executor, defaulting to `get_executor()`; never
  /// inside this call. Ordering: FIFO with every other flush of this driver.
  /// Durable at success: as `flush(request&)`. Cancellation: `terminal`
  /// detaches the handler with `operation_aborted`; the host request still
  /// runs and completes internally (its context stays reserved until then).
  /// Allocation: one block from the handler's allocator, none in steady state
  /// (see `flushkit::async_wait`).
  template <boost::asio::completion_token_for<completion_signature> Token> auto async_flush(Token&& token) {
    return boost::asio::async_initiate<Token, completion_signature>(initiate_flush{this}, token);
  }
  /// `async_flush(default_token())`: an operation to `co_await` (or launch
  /// with a token); discarding it flushes nothing, so that does not compile quietly.
  [[nodiscard]] auto async_flush() { return async_flush(default_token()); }

  /// Request-less flush (`virtio_pmem_flush`) that blocks the calling thread
  /// until the host answered. Deliberately not named `flush()`: it is not the
  /// `sync_flush_provider` entry, so no component (a device's `remove()`, a
  /// coalescer) calls it and waits for an executor by surprise.
  /// Precondition: not called on a thread that runs the driver's executor or
  /// the executor under its strand (it would wait for itself; checked in
  /// debug builds).
  /// Effects: takes a free context (waits while none is), submits like the
  /// asynchronous path, waits for the answer or for the device to break.
  /// Returns: success when the host answered ret 0 with a full response.
  /// Errors: io_error as for `flush(request&)`. Allocation: none.
  [[nodiscard]] status flush_and_wait() {
    FLUSHKIT_ASSERT(!exec_.get_executor().running_in_this_thread() &&
                        !exec_.get_executor().get_inner_executor().running_in_this_thread(),
                    "flush_and_wait() on a thread that runs the driver's executor");
    std::unique_lock lk(mu_);
    ++blocking_callers_;
    const status st = blocking_flush_locked(lk);
    --blocking_callers_;
    lk.unlock();
    cv_.notify_all();
    return st;
  }

  /// The device signalled used buffers (`virtio_pmem_host_ack`). Any thread;
  /// the work runs on the driver's strand: reclaim every used buffer (admit
  /// one ring waiter per reclaimed buffer, then complete its token), re-enable
  /// callbacks and re-check so an answer racing the re-enable is not lost.
  /// Never allocates (the handler is posted from embedded blocks).
  void on_interrupt() {
    std::lock_guard lk(mu_);
    schedule_service_locked();
  }

  /// The device signalled a configuration change. With
  /// `needs_reset_policy::mark_broken` and DEVICE_NEEDS_RESET set, marks the
  /// device broken ("device needs a reset"). Any thread.
  void on_config_change() {
    {
      std::lock_guard lk(mu_);
      if (state_ == lifecycle::live && opts_.on_needs_reset == needs_reset_policy::mark_broken)
        static_cast<void>(needs_reset_locked());
    }
    cv_.notify_all();
  }

  /// Effects: makes the device broken (sticky until `restore`): later flushes
  /// fail fast with io_error, every ring waiter wakes with io_error, the
  /// request awaiting the host completes with io_error without reading its
  /// response (its context stays owned by the ring until the used buffer
  /// comes back or is drained). Logs "virtqueue is broken" with `reason`
  /// (static string) once per device object. Any thread.
  void mark_broken(const char* reason) {
    {
      std::lock_guard lk(mu_);
      mark_broken_locked(reason, true);
    }
    cv_.notify_all();
  }

  /// `virtio_pmem_remove` in the v7 order: mark broken (not logged) -> drain
  /// the ordered executor (queued flushes complete with io_error, the
  /// in-flight one too) -> reset the device (status 0) -> drain the tokens
  /// (every chain still in the ring is detached, its context released) ->
  /// delete the queue. Blocks; not on the driver's executor. Idempotent, and
  /// safe after `freeze()`. Later flushes fail with io_error. It does not
  /// wait for the device to acknowledge the reset: a device that notices it
  /// late may still write a stale answer into the old ring, so keep guest
  /// memory mapped until the device is stopped or `pmem_control::reset_ack`
  /// caught up.
  void remove() { shut_down(true); }

  /// `virtio_pmem_freeze`: as `remove` but the object stays for `restore()`.
  void freeze() { shut_down(false); }

  /// `virtio_pmem_restore`: after `freeze()`, waits until the device has
  /// acknowledged the reset `freeze()` wrote (VIRTIO: the driver must see the
  /// reset complete before it re-initialises; here `pmem_control::reset_ack`
  /// reaches the driver's `reset_request`), then runs the initialisation again (queue set-up,
  /// DRIVER_OK) and clears the broken state. Without the wait, a flush the
  /// device finished after the freeze could be pushed into the new ring and
  /// be taken for a new request's acknowledgement. Blocks (bounded by
  /// `reset_timeout`); not on the driver's executor.
  /// Errors: invalid_request when not frozen; timeout when the device did not
  /// acknowledge the reset in time (still frozen; call again); as `probe()`
  /// otherwise.
  [[nodiscard]] status restore() {
    {
      std::lock_guard lk(mu_);
      if (state_ != lifecycle::frozen) return make_error_code(errc::invalid_request);
    }
    if (status st = await_reset_ack()) return st;
    std::lock_guard lk(mu_);
    if (state_ != lifecycle::frozen) return make_error_code(errc::invalid_request);
    if (status st = setup_locked()) return st;
    go_live_locked();
    return {};
  }

  /// True while the device is broken (before `probe`, after `mark_broken`, `freeze`, `remove`). Lock-free.
  bool broken() const noexcept { return broken_.load(std::memory_order_acquire); }
  /// Why the device broke (static string), or nullptr.
  const char* broken_reason() const {
    std::lock_guard lk(mu_);
    return broken_ ? reason_ : nullptr;
  }

  /// A snapshot of the counters and the ring state, taken under the driver lock.
  pmem_guest_stats stats() const {
    std::lock_guard lk(mu_);
    pmem_guest_stats s = stats_;
    s.in_flight = q_.in_flight();
    s.waiting = static_cast<std::uint32_t>(waiters_.size());
    s.contexts_in_use = in_use_;
    return s;
  }

  /// Guest addresses of the request and response words of context `i` (for
  /// layout checks).
  std::uint64_t request_address(std::uint32_t i) const noexcept { return contexts_[i].req_gpa; }
  /// Guest address of the response word of context `i` (for layout checks).
  std::uint64_t response_address(std::uint32_t i) const noexcept { return contexts_[i].resp_gpa; }
  /// Guest addresses of the ring areas placed by `probe` / `restore`.
  const ring_addresses& ring() const noexcept { return layout_.ring; }
  /// The options after normalisation (`contexts` resolved).
  const pmem_guest_options& options() const noexcept { return opts_; }
  /// The executor given at construction.
  executor_type get_executor() const noexcept { return exec_.get_executor().get_inner_executor(); }
  /// The driver's strand.
  driver_executor_type driver_executor() const noexcept { return exec_.get_executor(); }
  /// Handler allocations that did not fit the embedded blocks (0 expected).
  std::size_t slab_fallbacks() const noexcept { return slab_.fallbacks() + exec_.slab_fallbacks(); }

private:
  struct initiate_flush {
    using executor_type = Executor;
    pmem_guest* self;
    executor_type get_executor() const noexcept { return self->get_executor(); }

    template <class Handler> void operator()(Handler&& h) const {
      pmem_guest* g = self;
      flushkit::detail::request_op<std::decay_t<Handler>, Executor>::start(
          std::move(h), g->get_executor(), req_op::flush, 0, boost::asio::const_buffer(), req_flags::preflush,
          [g](request& r) {
            const flush_result fr = g->flush(r);
            if (!fr.is_async()) r.complete(fr.sync_status());
          });
    }
  };

  enum class lifecycle : std::uint8_t { unprobed, live, frozen, removed };
  using slab_type = flushkit::detail::handler_slab<256, 4>;

  struct service_handler {
    pmem_guest* self;
    void operator()() const { self->service(); }
  };

  static pmem_guest_options normalised(pmem_guest_options o) noexcept {
    if (o.contexts == 0) o.contexts = o.queue_size;
    return o;
  }

  [[nodiscard]] static status io_error() noexcept { return make_error_code(errc::io_error); }

  // ---- probe / restore --------------------------------------------------------

  // Validates the options and the driver area; gives every context its slot.
  [[nodiscard]] status place_slots() {
    if (validate_queue_size(opts_.queue_size) || opts_.contexts < 2 || opts_.contexts > 65536)
      return make_error_code(errc::invalid_request);
    layout_ = detail::pmem_guest_layout::compute(area_.guest, opts_.queue_size, opts_.contexts);
    if (layout_.end == 0 || layout_.end - area_.guest > area_.size || area_.host == nullptr ||
        mem_.translate(area_.guest, area_.size) != area_.host)
      return make_error_code(errc::invalid_request);
    for (std::uint32_t i = 0; i < opts_.contexts; ++i) {
      context& c = contexts_[i];
      c.req_gpa = layout_.slots + std::uint64_t{i} * sizeof(detail::pmem_guest_dma_slot);
      c.resp_gpa = c.req_gpa + offsetof(detail::pmem_guest_dma_slot, resp);
      c.req_host = mem_.translate(c.req_gpa, pmem_req_bytes);
      c.resp_host = mem_.translate(c.resp_gpa, pmem_resp_bytes);
      if (i != 0) free_.push_back(c);
    }
    return {};
  }

  [[nodiscard]] status fail_probe(status st) {
    control_.status.fetch_or(device_status::failed, std::memory_order_acq_rel);
    return st;
  }

  // Reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK, queue set-up.
  [[nodiscard]] status setup_locked() {
    control_.status.store(0, std::memory_order_seq_cst);
    control_.status.store(device_status::acknowledge, std::memory_order_release);
    control_.status.fetch_or(device_status::driver, std::memory_order_acq_rel);
    const std::uint64_t offered = control_.device_features.load(std::memory_order_acquire);
    if ((offered & f_version_1) == 0) return fail_probe(make_error_code(errc::not_supported));
    const std::uint64_t wanted = f_version_1 | (offered & f_event_idx);
    control_.driver_features.store(wanted, std::memory_order_release);
    control_.status.fetch_or(device_status::features_ok, std::memory_order_acq_rel);
    if ((control_.status.load(std::memory_order_acquire) & device_status::features_ok) == 0)
      return fail_probe(make_error_code(errc::not_supported));
    if (opts_.queue_size > control_.queue_size_max.load(std::memory_order_acquire))
      return fail_probe(make_error_code(errc::invalid_request));
    if (status st = q_.configure(mem_, layout_.ring, ring_features::from_bits(wanted))) return fail_probe(st);
    control_.queue_size.store(opts_.queue_size, std::memory_order_relaxed);
    control_.queue_desc.store(layout_.ring.desc, std::memory_order_relaxed);
    control_.queue_avail.store(layout_.ring.avail, std::memory_order_relaxed);
    control_.queue_used.store(layout_.ring.used, std::memory_order_relaxed);
    control_.queue_enable.store(1, std::memory_order_release);
    return {};
  }

  // Reads start/size, retrying while the device changes them (config_generation).
  [[nodiscard]] status read_config(pmem_config& out) {
    for (int attempt = 0; attempt < 16; ++attempt) {
      const auto gen = control_.config_generation.load(std::memory_order_acquire);
      const pmem_config r{control_.config_start.load(std::memory_order_acquire),
                         control_.config_size.load(std::memory_order_acquire)};
      if (gen != control_.config_generation.load(std::memory_order_acquire)) continue;
      if (r.size == 0 || r.size - 1 > UINT64_MAX - r.start) return make_error_code(errc::invalid_request);
      out = r;
      return {};
    }
    return io_error();
  }

  void go_live_locked() {
    control_.status.fetch_or(device_status::driver_ok, std::memory_order_acq_rel);
    broken_.store(false, std::memory_order_release);
    reason_ = nullptr;
    state_ = lifecycle::live;
  }

  // ---- submission ---------------------------------------------------------------

  static void run_async(work_item& w, void* self) { static_cast<pmem_guest*>(self)->start_async(request::from_work(w)); }

  // The ordered work item (`virtio_pmem_flush_work`), on the strand.
  void start_async(request& req) {
    std::unique_lock lk(mu_);
    if (broken_ || needs_reset_locked()) {
      lk.unlock();
      cv_.notify_all();
      return retire(req, io_error());
    }
    context& c = contexts_[0];
    FLUSHKIT_ASSERT(c.st == context::state::free && c.refs == 0, "reserved context still in use");
    begin_locked(c, &req);
    submit_locked(c);
    deliver(lk);
  }

  [[nodiscard]] status blocking_flush_locked(std::unique_lock<std::mutex>& lk) {
    cv_.wait(lk, [this] { return broken_ || !free_.empty(); });
    if (broken_ || needs_reset_locked()) return io_error();
    context& c = free_.front();
    free_.pop_front();
    begin_locked(c, nullptr);
    submit_locked(c);
    if (std::exchange(kick_pending_, false)) {
      lk.unlock();
      kick_.notify();
      lk.lock();
    }
    cv_.wait(lk, [&] { return c.done || broken_; });
    const status st = c.done ? c.result : io_error();
    put_ref_locked(c);
    return st;
  }

  // A fresh submission on context `c`: submitter reference, request word,
  // poisoned response (0 = the success value, so a read of an unwritten
  // response would look like success and tests would catch it).
  void begin_locked(context& c, request* async) {
    c.refs = 1;
    c.done = false;
    c.result = {};
    c.async = async;
    c.st = context::state::waiting;
    ++in_use_;
    detail::store_le<std::uint32_t>(c.req_host, pmem_req_type_flush);
    detail::store_le<std::uint32_t>(c.resp_host, resp_poison);
  }

  // Adds `c` to the ring, or to the tail of the FIFO of waiters when earlier
  // waiters exist or no slot is free.
  void submit_locked(context& c) {
    if (waiters_.empty() && try_add_locked(c)) return;
    waiters_.push_back(c);
    ++stats_.ring_full_waits;
  }

  // Returns false when `c` must wait for a slot (nothing changed); true when
  // it was added, or when the add broke the device (`c` then fails).
  bool try_add_locked(context& c) {
    if (opts_.one_in_flight && q_.in_flight() != 0) return false;
    const buffer out[] = {{c.req_gpa, pmem_req_bytes}};
    const buffer in[] = {{c.resp_gpa, pmem_resp_bytes}};
    const status st = q_.add(out, in, &c);
    if (st == errc::no_space) return false;
    if (st) {
      mark_broken_locked(q_.broken() ? q_.broken_reason() : "virtqueue add failed", true);
      return true;
    }
    c.st = context::state::in_ring;
    ++c.refs;
    ++stats_.submitted;
    stats_.max_in_flight = std::max(stats_.max_in_flight, q_.in_flight());
    if (q_.kick_prepare()) kick_pending_ = true;
    return true;
  }

  // Gives the slot a reclaimed buffer freed to the head of the FIFO (patch 6:
  // before the reclaimed token is completed).
  void admit_one_locked() {
    if (waiters_.empty() || broken_) return;
    context& c = waiters_.front();
    waiters_.pop_front();
    if (!try_add_locked(c)) return waiters_.push_front(c);
    ++stats_.admitted;
  }

  // ---- completion ---------------------------------------------------------------

  void schedule_service_locked() {
    if (scheduled_) return;
    scheduled_ = true;
    flushkit::detail::post_in_slab(exec_.get_executor(), slab_, service_handler{this});
  }

  // The interrupt work (`virtio_pmem_host_ack`), on the strand.
  void service() {
    std::unique_lock lk(mu_);
    scheduled_ = false;
    running_ = true;
    reap_locked();
    deliver(lk);
    lk.lock();
    running_ = false;
    cv_.notify_all();
  }

  void reap_locked() {
    if (!q_.configured()) return;
    q_.disable_callbacks();
    for (;;) {
      for (;;) {
        const used_result u = q_.get_used();
        if (u.error) {
          if (q_.broken()) mark_broken_locked(q_.broken_reason(), true);
          return;
        }
        if (u.token == nullptr) break;
        admit_one_locked();
        complete_token_locked(*static_cast<context*>(u.token), u.len);
      }
      if (q_.enable_callbacks()) return;
    }
  }

  void complete_token_locked(context& c, std::uint32_t len) {
    FLUSHKIT_ASSERT(c.st == context::state::in_ring, "used token not in the ring");
    c.st = context::state::reclaimed;
    c.result = answer_locked(c, len);
    c.done = true;
    put_ref_locked(c);
  }

  // The device's answer as a status: only a full response with ret 0 is
  // success; the response is read only when the device wrote all of it, and
  // never once the device is broken (patch 11, scenarios 17-19, 27).
  [[nodiscard]] status answer_locked(const context& c, std::uint32_t len) {
    if (broken_) {
      ++stats_.late_completions;
      return io_error();
    }
    if (len < pmem_resp_bytes) {
      ++stats_.short_responses;
      return io_error();
    }
    if (detail::load_le<std::uint32_t>(c.resp_host) != pmem_resp_ok) {
      ++stats_.host_errors;
      return io_error();
    }
    return {};
  }

  // Unlocks, wakes blocking waiters, kicks, and completes the asynchronous
  // request when it finished (on the strand: `finish` first, so the next
  // queued flush starts only after this handler returned).
  void deliver(std::unique_lock<std::mutex>& lk) {
    status st;
    request* done = take_async_locked(st);
    const bool kick = std::exchange(kick_pending_, false);
    lk.unlock();
    cv_.notify_all();
    if (kick) kick_.notify();
    if (done != nullptr) retire(*done, st);
  }

  request* take_async_locked(status& st) {
    context& c = contexts_[0];
    if (c.async == nullptr || !(c.done || broken_)) return nullptr;
    st = c.done ? c.result : io_error();
    request* r = c.async;
    c.async = nullptr;
    put_ref_locked(c);
    return r;
  }

  void retire(request& req, const status& st) {
    exec_.finish(req.work);
    req.complete(st);
  }

  void put_ref_locked(context& c) {
    FLUSHKIT_ASSERT(c.refs > 0, "context reference underflow");
    if (--c.refs != 0) return;
    c.st = context::state::free;
    c.async = nullptr;
    --in_use_;
    if (&c != &contexts_[0]) free_.push_back(c);
  }

  // ---- broken / lifecycle -----------------------------------------------------------

  bool needs_reset_locked() {
    if ((control_.status.load(std::memory_order_acquire) & device_status::needs_reset) == 0) return false;
    if (opts_.on_needs_reset == needs_reset_policy::mark_broken) mark_broken_locked("device needs a reset", true);
    return true;
  }

  void mark_broken_locked(const char* reason, bool log) {
    if (broken_) return;
    broken_.store(true, std::memory_order_release);
    reason_ = reason;
    if (log && !logged_) {
      logged_ = true;
      opts_.log(opts_.log_context, "virtqueue is broken", reason);
    }
    for (context& c : waiters_)
      if (c.async == nullptr) { // a blocking caller: done, even if a restore clears broken_ before it wakes
        c.result = io_error();
        c.done = true;
      }
    waiters_.clear(); // every waiter now sees broken_ (the asynchronous one through the strand)
    schedule_service_locked(); // the strand completes the asynchronous request
  }

  void shut_down(bool removing) {
    FLUSHKIT_ASSERT(!exec_.get_executor().running_in_this_thread(), "remove/freeze on the driver's executor");
    {
      std::lock_guard lk(mu_);
      if (state_ == lifecycle::removed || (!removing && state_ == lifecycle::frozen)) return;
      mark_broken_locked(removing ? "device removed" : "device frozen", false);
    }
    cv_.notify_all();
    if (removing)
      exec_.shutdown();
    else
      exec_.drain();
    std::unique_lock lk(mu_);
    cv_.wait(lk, [this] { return !scheduled_ && !running_; });
    control_.status.store(0, std::memory_order_seq_cst); // device reset: it stops using the ring
    reset_request_ = control_.reset_request.fetch_add(1, std::memory_order_seq_cst) + 1;
    reset_unacked_ = true;
    drain_tokens_locked();
    state_ = removing ? lifecycle::removed : lifecycle::frozen;
    lk.unlock();
    cv_.notify_all();
    kick_.notify(); // a device without a register trap notices the reset on a kick
  }

  // Waits (bounded) until the device acknowledged the last reset written by
  // shut_down (reset_ack caught up with it). Kicks again now and then, since
  // notifications may be merged or missed while the device resets.
  [[nodiscard]] status await_reset_ack() {
    std::uint32_t wanted = 0;
    {
      std::lock_guard lk(mu_);
      if (!reset_unacked_) return {};
      wanted = reset_request_;
    }
    const auto acked = [&] {
      const std::uint32_t ack = control_.reset_ack.load(std::memory_order_acquire);
      return static_cast<std::int32_t>(ack - wanted) >= 0;
    };
    const auto deadline = std::chrono::steady_clock::now() + opts_.reset_timeout;
    for (unsigned round = 0; !acked(); ++round) {
      if (std::chrono::steady_clock::now() >= deadline) return make_error_code(errc::timeout);
      if (round % 64 == 63) kick_.notify();
      if (round < 64)
        std::this_thread::yield();
      else
        std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    std::lock_guard lk(mu_);
    reset_unacked_ = false;
    return {};
  }

  // After the device reset: every chain still in the ring (answered or not)
  // fails with io_error and drops the ring's reference; then the queue is deleted.
  void drain_tokens_locked() {
    while (void* t = q_.detach_unused()) {
      context& c = *static_cast<context*>(t);
      c.st = context::state::reclaimed;
      if (!c.done) {
        c.result = io_error();
        c.done = true;
      }
      ++stats_.tokens_drained;
      put_ref_locked(c);
    }
    if (q_.configured()) q_.reset();
  }

  static constexpr std::uint32_t resp_poison = 0;

  const pmem_guest_options opts_;
  pmem_control& control_;
  const guest_memory& mem_;
  const driver_area area_;
  Kick& kick_;
  ordered_executor<Executor> exec_;

  mutable std::mutex mu_; // pmem_lock: ring, pool, waiters, broken, lifecycle
  std::condition_variable cv_;
  driver_queue q_;
  std::unique_ptr<context[]> contexts_;
  detail::pmem_guest_context_list free_;    // contexts 1..n-1 not in use
  detail::pmem_guest_context_list waiters_; // FIFO of contexts waiting for a ring slot
  detail::pmem_guest_layout layout_{};
  pmem_config range_{};
  pmem_guest_stats stats_{};
  std::uint32_t in_use_ = 0;
  std::uint32_t blocking_callers_ = 0;
  std::atomic<bool> broken_{true}; // until probe
  const char* reason_ = "not probed";
  bool logged_ = false;
  bool reset_unacked_ = false;          // shut_down wrote status 0; the device has not acknowledged yet
  std::uint32_t reset_request_ = 0;     // the reset_request value of that reset
  bool kick_pending_ = false;
  bool scheduled_ = false; // service handler posted, not started
  bool running_ = false;   // service handler running
  lifecycle state_ = lifecycle::unprobed;
  slab_type slab_;
};

} // namespace flushkit::virtio
