// tests/support/held_flush_provider.hpp - flush providers a test can hold and release.
//
// Fakes: a real flush cannot be held in flight on demand, nor fail on demand.
#pragma once

#include <flushkit/core/flush_result.hpp>
#include <flushkit/core/request.hpp>
#include <flushkit/core/status.hpp>

#include <condition_variable>
#include <mutex>

namespace flushkit::test {

/// Asynchronous provider: keeps each flush request until `release(st)`
/// completes it (on the releasing thread). With `hold == false` it answers
/// synchronously with `next` instead.
class held_async_provider {
public:
  bool hold = true;
  status next{};

  flush_result flush(request& r) {
    std::lock_guard lock(mutex_);
    ++calls_;
    if (!hold) return flush_result::done(next);
    held_ = &r;
    return flush_result::async(r);
  }

  /// Completes the held flush with `st`; false when none is held.
  bool release(status st = {}) {
    request* r = nullptr;
    {
      std::lock_guard lock(mutex_);
      r = held_;
      held_ = nullptr;
    }
    if (r == nullptr) return false;
    r->complete(st);
    return true;
  }

  bool holding() const {
    std::lock_guard lock(mutex_);
    return held_ != nullptr;
  }
  int calls() const {
    std::lock_guard lock(mutex_);
    return calls_;
  }

private:
  mutable std::mutex mutex_;
  request* held_ = nullptr;
  int calls_ = 0;
};

/// Synchronous provider whose first flush blocks inside `flush()` until
/// `open()`; later flushes return immediately. `wait_entered()` blocks until
/// a flush is inside the provider. Results come from `next`.
class gated_sync_provider {
public:
  status flush() {
    std::unique_lock lock(mutex_);
    ++calls_;
    entered_ = true;
    cv_.notify_all();
    cv_.wait(lock, [this] { return open_; });
    return next_;
  }

  void wait_entered() {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [this] { return entered_; });
  }
  void open(status next = {}) {
    std::lock_guard lock(mutex_);
    next_ = next;
    open_ = true;
    cv_.notify_all();
  }
  int calls() const {
    std::lock_guard lock(mutex_);
    return calls_;
  }

private:
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  bool entered_ = false;
  bool open_ = false;
  status next_{};
  int calls_ = 0;
};

} // namespace flushkit::test
