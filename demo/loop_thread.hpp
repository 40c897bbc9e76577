// demo/loop_thread.hpp - an io_context run by one thread of its own (the demo's event loops).
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <optional>
#include <thread>

namespace flushkit::demo {

/// The executor of a `loop_thread`'s io_context.
using io_ex = boost::asio::io_context::executor_type;

/// An io_context run by one thread between `start()` and `join()`.
/// Thread-safety: `start()` and `join()` from the owning thread; `io` and
/// `executor()` from any thread.
class loop_thread {
public:
  loop_thread() = default;
  loop_thread(const loop_thread&) = delete;
  loop_thread& operator=(const loop_thread&) = delete;
  /// Effects: `join()`.
  ~loop_thread() { join(); }
  /// Effects: starts the thread, which runs `io` until `join()` (kept alive
  /// by a work guard while there is nothing to do). Allocation: the thread.
  void start() {
    guard_.emplace(io.get_executor());
    thread_ = std::thread([this] { io.run(); });
  }
  /// Effects: lets the loop finish its queued handlers, then joins it. Idempotent.
  void join() {
    guard_.reset();
    if (thread_.joinable()) thread_.join();
  }
  /// Returns: the loop's executor.
  io_ex executor() noexcept { return io.get_executor(); }

  /// The event loop.
  boost::asio::io_context io;

private:
  std::optional<boost::asio::executor_work_guard<io_ex>> guard_;
  std::thread thread_;
};

} // namespace flushkit::demo
