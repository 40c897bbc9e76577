// flushkit/core/request.hpp - the request (the kernel's struct bio).
#pragma once

#include <flushkit/core/status.hpp>
#include <flushkit/core/work_item.hpp>
#include <flushkit/detail/assert.hpp>
#include <flushkit/core/detail/completion_slot.hpp>

#include <boost/intrusive/list_hook.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <thread>

namespace flushkit {

/// What a request does.
enum class req_op : std::uint8_t {
  read,  ///< copy from the medium into the segments
  write, ///< copy the segments onto the medium
  flush, ///< no data; only meaningful with `req_flags::preflush`
};

/// Durability flags of a request (REQ_PREFLUSH / REQ_FUA).
enum class req_flags : std::uint8_t {
  none = 0,
  preflush = 1, ///< make everything completed before this request durable before its data is written
  fua = 2,      ///< the request completes only once its own data is durable
};

constexpr req_flags operator|(req_flags a, req_flags b) noexcept {
  return static_cast<req_flags>(static_cast<std::uint8_t>(a) | static_cast<std::uint8_t>(b));
}
constexpr req_flags operator&(req_flags a, req_flags b) noexcept {
  return static_cast<req_flags>(static_cast<std::uint8_t>(a) & static_cast<std::uint8_t>(b));
}
constexpr req_flags without(req_flags a, req_flags b) noexcept {
  return static_cast<req_flags>(static_cast<std::uint8_t>(a) & ~static_cast<std::uint8_t>(b));
}
constexpr bool has(req_flags set, req_flags f) noexcept { return (set & f) != req_flags::none; }

/// One contiguous piece of a request's data, in the shape of `struct iovec`.
/// For a write the bytes are only read; for a read they are written.
struct segment {
  /// Start of the bytes.
  void* base = nullptr;
  /// Number of bytes.
  std::size_t len = 0;
};

/// A caller-owned I/O request: op, flags, byte offset, segments, and one
/// completion slot.
///
/// Lifetime: the caller keeps the request and its segments alive and does not
/// touch them from `submit` until the completion has been delivered. Requests
/// are neither copyable nor movable; every queue links them intrusively, so no
/// component ever allocates for a request.
///
/// Exactly once: `complete(st)` delivers the status to the waiter (a callback
/// from `on_complete`, or an Asio completion handler from `async_wait`). A
/// second completion is a contract violation, reported in debug builds and
/// ignored otherwise (`try_complete` returns false).
class request {
public:
  /// Callback form of a waiter: runs on the thread that completes the
  /// request, or inside `on_complete` if the request already completed.
  /// `st` refers to the status stored in the request: copy it before letting
  /// anyone `prepare()` the request again (for instance before handing the
  /// request to another thread for reuse).
  using completion_fn = void (*)(void* context, request& req, const status& st);
  /// See `intercept_completion`.
  using intercept_fn = void (*)(void* context, request& req, const status& st);

  request() = default;
  /// Effects: `prepare(op, offset, segments, flags)`.
  request(req_op op, std::uint64_t offset, std::span<const segment> segments,
          req_flags flags = req_flags::none) noexcept {
    prepare(op, offset, segments, flags);
  }
  request(const request&) = delete;
  request& operator=(const request&) = delete;
  ~request() { FLUSHKIT_ASSERT(!link_.is_linked() && !work.is_queued(), "request destroyed while queued"); }

  /// (Re)initialises the request for a new submission. Only while it is idle:
  /// never submitted, or its completion has been delivered.
  void prepare(req_op op, std::uint64_t offset, std::span<const segment> segments,
               req_flags flags = req_flags::none) noexcept {
    FLUSHKIT_ASSERT(!link_.is_linked() && !work.is_queued(), "request prepared while queued");
    op_ = op;
    flags_ = flags;
    offset_ = offset;
    segments_ = segments;
    slot_.reset();
    user_fn_ = nullptr;
    user_context_ = nullptr;
    intercept_depth_ = 0;
    segment_use_.store(segments_idle, std::memory_order_relaxed);
    epoch = 0;
  }

  /// What the request does.
  req_op op() const noexcept { return op_; }
  /// PREFLUSH / FUA flags (after any stripping by the device).
  req_flags flags() const noexcept { return flags_; }
  /// Used by devices that strip PREFLUSH/FUA (no volatile write cache).
  void set_flags(req_flags f) noexcept { flags_ = f; }
  /// Byte offset on the medium of the first segment.
  std::uint64_t offset() const noexcept { return offset_; }
  /// The data segments (empty for a flush); the caller owns the memory.
  std::span<const segment> segments() const noexcept { return segments_; }

  /// Total number of data bytes over all segments.
  std::size_t size() const noexcept {
    std::size_t n = 0;
    for (const segment& s : segments_) n += s.len;
    return n;
  }
  /// True for a read or write that carries at least one byte (bio_has_data).
  bool has_data() const noexcept { return op_ != req_op::flush && size() != 0; }

  /// Completes the request. Precondition: not yet completed.
  void complete(const status& st) noexcept {
    const bool first = try_complete(st);
    FLUSHKIT_ASSERT(first, "request completed twice");
    static_cast<void>(first);
  }

  /// Completes the request unless it already completed; returns whether this
  /// call completed it. An installed interception takes the status instead
  /// (and is removed) and the request stays pending.
  bool try_complete(const status& st) noexcept {
    if (intercept_depth_ > 0) {
      const interception top = intercepts_[--intercept_depth_];
      top.fn(top.context, *this, st);
      return true;
    }
    return slot_.complete(st);
  }

  /// True once the final completion happened (the status is then readable).
  bool completed() const noexcept { return slot_.done(); }
  /// The final status; meaningful once `completed()` is true.
  const status& result() const noexcept { return slot_.result(); }

  /// Installs a callback waiter (no allocation). If the request already
  /// completed, `fn` runs before this function returns. At most one waiter
  /// per use: a second one is a contract violation, refused (the first keeps
  /// the completion).
  void on_complete(completion_fn fn, void* context) noexcept {
    FLUSHKIT_ASSERT(user_fn_ == nullptr, "a second waiter installed on one request");
    if (user_fn_ != nullptr) return;
    user_fn_ = fn;
    user_context_ = context;
    if (!slot_.arm(&request::deliver_to_user, this)) fn(context, *this, slot_.result());
  }

  /// Routes the next `complete()` to `fn` instead of the waiter, like
  /// bio_chain(): an adapter that hands the request to a provider for an
  /// intermediate step (a PREFLUSH) gets the step's status and continues;
  /// `fn` calls `complete()` again to pass a status on. Interceptions nest
  /// (last installed runs first), up to `max_interceptions` deep.
  void intercept_completion(intercept_fn fn, void* context) noexcept {
    FLUSHKIT_ASSERT(intercept_depth_ < max_interceptions, "too many nested interceptions");
    if (intercept_depth_ < max_interceptions) intercepts_[intercept_depth_++] = {fn, context};
  }

  /// Removes the most recent interception without calling it (the step it
  /// was installed for finished synchronously).
  void cancel_interception() noexcept {
    FLUSHKIT_ASSERT(intercept_depth_ > 0, "no interception to cancel");
    if (intercept_depth_ > 0) --intercept_depth_;
  }

  /// Deepest nesting of `intercept_completion`.
  /// A device over a region takes up to three levels (its bookkeeping, a
  /// PREFLUSH step, the region's error policy); two intercepting wrappers
  /// (fault injectors) fit below them.
  static constexpr std::size_t max_interceptions = 5;

  /// A component that reads or writes the request's segment memory after
  /// `submit` returned (a device copying data once an asynchronous PREFLUSH
  /// finished) brackets the copy with `begin_segment_use()` /
  /// `end_segment_use()`. `begin_segment_use()` returns false when the
  /// segments were withdrawn (a cancelled waiter no longer guarantees their
  /// memory): the component must not touch them and completes the request
  /// with `errc::cancelled`. Between the two calls the copy must not wait
  /// for anything.
  [[nodiscard]] bool begin_segment_use() noexcept {
    std::uint8_t idle = segments_idle;
    return segment_use_.compare_exchange_strong(idle, segments_in_use, std::memory_order_acquire);
  }
  /// See `begin_segment_use()`.
  void end_segment_use() noexcept { segment_use_.store(segments_idle, std::memory_order_release); }

  /// Called by a cancelled waiter before it gives the segment memory back to
  /// its owner: from now on no component touches the segments. Returns once
  /// a copy in progress on another thread (between `begin_segment_use()` and
  /// `end_segment_use()`) has finished; that is the only thing it waits for.
  void withdraw_segments() noexcept {
    for (;;) {
      std::uint8_t idle = segments_idle;
      if (segment_use_.compare_exchange_weak(idle, segments_withdrawn, std::memory_order_acq_rel)) return;
      if (idle == segments_withdrawn) return;
      std::this_thread::yield(); // a memcpy on another thread is finishing
    }
  }

  /// Low-level waiter installation used by `async_wait`; see completion_slot::arm.
  bool arm_waiter(detail::completion_slot::waiter_fn fn, void* context) noexcept {
    return slot_.arm(fn, context);
  }
  /// Low-level removal of that waiter by a cancelled `async_wait`: true when
  /// the completion will not call it (it had not begun); the request then
  /// completes without a waiter, and `completed()` turning true (after the
  /// aborted handler ran) is the point from which nothing in flushkit touches it.
  bool disarm_waiter() noexcept { return slot_.disarm(); }

  /// Work node for an ordered executor (the request's place in a work queue).
  /// Its `owner()` is this request.
  work_item work{this};

  /// The request whose embedded `work` item this is.
  static request& from_work(work_item& item) noexcept { return *static_cast<request*>(item.owner()); }

  /// Link for the component that currently owns the request (a device's wait
  /// list, a coalescer's batch). A request is in at most one such list.
  boost::intrusive::list_member_hook<boost::intrusive::link_mode<boost::intrusive::safe_link>> link_;

  /// Ordering stamp set by components that order requests (group commit).
  std::uint64_t epoch = 0;

  /// Free for the owner of the request.
  void* user_data = nullptr;

private:
  static void deliver_to_user(void* context, const status& st) noexcept {
    auto* self = static_cast<request*>(context);
    self->user_fn_(self->user_context_, *self, st);
  }

  static constexpr std::uint8_t segments_idle = 0;
  static constexpr std::uint8_t segments_in_use = 1;
  static constexpr std::uint8_t segments_withdrawn = 2;

  req_op op_ = req_op::write;
  req_flags flags_ = req_flags::none;
  std::uint8_t intercept_depth_ = 0; // beside op_ and flags_: no padding
  std::atomic<std::uint8_t> segment_use_{segments_idle};
  std::uint64_t offset_ = 0;
  std::span<const segment> segments_{};
  detail::completion_slot slot_{};
  completion_fn user_fn_ = nullptr;
  void* user_context_ = nullptr;
  struct interception {
    intercept_fn fn;
    void* context;
  };
  interception intercepts_[max_interceptions]{};
};

} // namespace flushkit
