// flushkit/core/detail/completion_slot.hpp - exactly-once completion state of a request.
#pragma once

#include <flushkit/core/status.hpp>
#include <flushkit/detail/assert.hpp>

#include <atomic>
#include <cstdint>

namespace flushkit::detail {

/// Holds the result of an operation and at most one waiter.
///
/// `complete` and `arm` may race from different threads. Exactly one of them
/// observes the other's bit and hands the result to the waiter:
///  - complete() first: it publishes the status (release); arm() sees
///    `completed` (acquire) and returns false, the caller delivers.
///  - arm() first: it publishes the waiter (release); complete() sees `armed`
///    (acquire) and calls the waiter.
/// A second completion never touches the status; it returns false. A second
/// `arm` in the same use never touches the waiter (see `arm`).
class completion_slot {
public:
  using waiter_fn = void (*)(void* context, const status& st);

  /// Claims the completion, stores `st`, and calls the waiter if one is armed.
  /// Returns false (and does nothing) if the slot was already completed.
  bool complete(const status& st) noexcept {
    if (claimed_.exchange(true, std::memory_order_acq_rel)) return false;
    status_ = st;
    const std::uint8_t old = state_.fetch_or(completed_bit, std::memory_order_acq_rel);
    if (old & armed_bit) waiter_(context_, status_);
    return true;
  }

  /// Installs the waiter. Returns true if `fn` will be called by `complete`,
  /// false if the slot already completed (the caller then delivers itself,
  /// reading `result()`).
  ///
  /// Errors: at most one waiter per use; a second `arm` (from any thread) is
  /// a contract violation reported with FLUSHKIT_ASSERT. Without assertions
  /// (or when the handler returns) it is refused: the first waiter stays
  /// installed, `fn` is never called, and the call returns true so that the
  /// caller does not deliver a result itself.
  bool arm(waiter_fn fn, void* context) noexcept {
    // arming_bit claims the waiter fields before they are written, so a
    // second arm cannot overwrite them while `complete` may be reading them.
    if (state_.fetch_or(arming_bit, std::memory_order_acq_rel) & arming_bit) {
      FLUSHKIT_ASSERT(false, "completion armed twice (a second waiter for one request)");
      return true;
    }
    waiter_ = fn;
    context_ = context;
    const std::uint8_t old = state_.fetch_or(armed_bit, std::memory_order_acq_rel);
    return (old & completed_bit) == 0;
  }

  /// Removes the armed waiter unless the completion already began: returns
  /// true when `complete` will not call it (the slot stays armed-once, so a
  /// second `arm` is still refused), false when it is being or was called.
  bool disarm() noexcept {
    std::uint8_t s = state_.load(std::memory_order_acquire);
    while ((s & completed_bit) == 0)
      if (state_.compare_exchange_weak(s, static_cast<std::uint8_t>(s & ~armed_bit), std::memory_order_acq_rel))
        return true;
    return false;
  }

  bool done() const noexcept { return (state_.load(std::memory_order_acquire) & completed_bit) != 0; }

  /// The stored status; valid once `done()` is true.
  const status& result() const noexcept { return status_; }

  /// Returns to the initial state. Only when no completer or waiter is active.
  void reset() noexcept {
    claimed_.store(false, std::memory_order_relaxed);
    state_.store(0, std::memory_order_relaxed);
    status_ = status{};
    waiter_ = nullptr;
    context_ = nullptr;
  }

private:
  static constexpr std::uint8_t armed_bit = 1;
  static constexpr std::uint8_t completed_bit = 2;
  static constexpr std::uint8_t arming_bit = 4; // an arm() claimed the waiter fields

  std::atomic<bool> claimed_{false};
  std::atomic<std::uint8_t> state_{0};
  status status_{};
  waiter_fn waiter_ = nullptr;
  void* context_ = nullptr;
};

} // namespace flushkit::detail
