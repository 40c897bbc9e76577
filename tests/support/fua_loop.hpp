// tests/support/fua_loop.hpp - a chain of FUA writes: each completion submits the next one.
//
// Used by the allocation tests (tests/alloc/) to drive a device's FUA path
// without any allocation of its own: one embedded request, one data block.
#pragma once

#include <flushkit/core/request.hpp>
#include <flushkit/core/status.hpp>

#include <array>
#include <condition_variable>
#include <cstddef>
#include <mutex>

namespace flushkit::test {

/// Each completion submits the next FUA write of `Block` bytes to `Device`
/// (anything with `submit(request&)`), at offset `(n % 64) * Block`, with the
/// write's number `n` (mod 256) in its first byte, until `remaining` runs out.
///
/// Single thread: set `remaining`, call `submit()`, run the device's
/// executor until it runs out of work. Device completing on other threads:
/// `start(count)` then `wait()`; `wait()` returns once the last write of the
/// chain completed, and makes `failures` and `n` safe to read.
template <class Device, std::size_t Block> struct fua_loop {
  explicit fua_loop(Device& d) : dev(&d) {}
  fua_loop(const fua_loop&) = delete;
  fua_loop& operator=(const fua_loop&) = delete;

  Device* dev;
  std::array<std::byte, Block> data{};
  flushkit::segment seg{data.data(), data.size()};
  request req;
  int remaining = 0;
  int failures = 0;
  unsigned n = 0;

  /// Submits the next write of the chain.
  void submit() {
    data[0] = static_cast<std::byte>(++n);
    req.prepare(flushkit::req_op::write, (n % 64) * Block, {&seg, 1}, flushkit::req_flags::fua);
    req.on_complete(&fua_loop::done, this);
    dev->submit(req);
  }

  /// Starts a chain of `count` (> 0) writes.
  void start(int count) {
    {
      std::lock_guard lk(mu_);
      finished_ = false;
    }
    remaining = count;
    submit();
  }

  /// Blocks until the chain started by `start` finished.
  void wait() {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [this] { return finished_; });
  }

private:
  static void done(void* ctx, request&, const status& st) {
    auto* self = static_cast<fua_loop*>(ctx);
    if (st) ++self->failures;
    if (--self->remaining > 0) return self->submit();
    std::lock_guard lk(self->mu_); // notify under the lock: the waiter may destroy the loop once it returns
    self->finished_ = true;
    self->cv_.notify_all();
  }

  std::mutex mu_;
  std::condition_variable cv_;
  bool finished_ = false;
};

} // namespace flushkit::test
