// bench/models_io_uring.cpp - io_uring: write -> IOSQE_IO_LINK -> fsync(DATASYNC)
// chains at queue depth N (durable scenario).
//
// One chain per in-flight slot. A reaper thread waits for completions; the
// fsync's CQE acknowledges the slot (a failed or short write cancels the
// linked fsync, so its CQE carries the error). Submissions are serialised by
// a mutex (the first ones come from the main thread, later ones from the
// reaper's completion callback). Without liburing at build time, or where
// io_uring_queue_init fails at run time, the model is skipped with a message.
#include "model.hpp"

#if FLUSHKIT_BENCH_HAVE_URING

#include <liburing.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <thread>

#include <fcntl.h>
#include <unistd.h>

namespace flushkit::bench {

namespace {

constexpr std::uint64_t write_tag = 1; // low bit of a write SQE's user_data
constexpr std::uint64_t stop_tag = 0;  // user_data of the NOP that stops the reaper

unsigned ring_entries(std::size_t inflight) {
  unsigned n = 8;
  while (n < 2 * inflight + 2) n *= 2;
  return n;
}

class uring_workload final : public workload {
public:
  explicit uring_workload(const bench_env& env) : fd_(::open(env.file_path.c_str(), O_RDWR | O_CLOEXEC)) {
    if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "open " + env.file_path);
    if (const int rc = ::io_uring_queue_init(ring_entries(env.inflight), &ring_, 0); rc < 0) {
      ::close(fd_);
      throw std::system_error(-rc, std::generic_category(), "io_uring_queue_init");
    }
    reaper_ = std::thread([this] { reap(); });
  }

  ~uring_workload() override {
    submit_locked([](io_uring_sqe* sqe) {
      ::io_uring_prep_nop(sqe);
      ::io_uring_sqe_set_data64(sqe, stop_tag);
    });
    reaper_.join();
    ::io_uring_queue_exit(&ring_);
    ::close(fd_);
  }

  void submit(op& o) override {
    // Release: pairs with the reaper's acquire, so the slot's writes happen
    // before its completion also for tools that cannot see through the ring.
    flushes_.fetch_add(1, std::memory_order_release);
    const auto tag = reinterpret_cast<std::uintptr_t>(&o);
    submit_locked([&](io_uring_sqe* sqe) {
      ::io_uring_prep_write(sqe, fd_, o.data.data(), static_cast<unsigned>(o.data.size()), o.offset);
      sqe->flags |= IOSQE_IO_LINK;
      ::io_uring_sqe_set_data64(sqe, tag | write_tag);
    }, [&](io_uring_sqe* sqe) {
      ::io_uring_prep_fsync(sqe, fd_, IORING_FSYNC_DATASYNC);
      ::io_uring_sqe_set_data64(sqe, tag);
    });
  }

  std::uint64_t flushes() const override { return flushes_.load(std::memory_order_relaxed); }

private:
  // Prepares one SQE per `prep` (in order) and submits them together.
  template <class... Prep> void submit_locked(Prep&&... prep) {
    std::lock_guard lk(sq_mu_);
    (prep(::io_uring_get_sqe(&ring_)), ...); // the ring has room for every slot's chain
    ::io_uring_submit(&ring_);
  }

  void reap() {
    for (;;) {
      io_uring_cqe* cqe = nullptr;
      if (::io_uring_wait_cqe(&ring_, &cqe) < 0) continue; // EINTR
      const std::uint64_t data = ::io_uring_cqe_get_data64(cqe);
      const int res = cqe->res;
      ::io_uring_cqe_seen(&ring_, cqe);
      if (data == stop_tag) return;
      if ((data & write_tag) != 0) continue; // the linked fsync reports the chain
      static_cast<void>(flushes_.load(std::memory_order_acquire));
      op& o = *reinterpret_cast<op*>(static_cast<std::uintptr_t>(data));
      o.done(res < 0 ? status(-res, boost::system::generic_category()) : status{});
    }
  }

  int fd_;
  io_uring ring_{};
  std::mutex sq_mu_;
  std::atomic<std::uint64_t> flushes_{0};
  std::thread reaper_;
};

std::unique_ptr<workload> make_uring(const bench_env& env) { return std::make_unique<uring_workload>(env); }

const char* uring_unavailable() {
  static char reason[128];
  io_uring ring{};
  const int rc = ::io_uring_queue_init(8, &ring, 0);
  if (rc == 0) {
    ::io_uring_queue_exit(&ring);
    return nullptr;
  }
  std::snprintf(reason, sizeof reason, "io_uring_queue_init failed: %s", std::strerror(-rc));
  return reason;
}

} // namespace

void add_io_uring_models(model_registry& r) {
  r.push_back({"durable", "io_uring", &make_uring, false, 0, &uring_unavailable});
}

} // namespace flushkit::bench

#else // no liburing at build time

namespace flushkit::bench {

namespace {
std::unique_ptr<workload> make_nothing(const bench_env&) { return nullptr; }
const char* not_built() { return "flushkit-bench was built without liburing (install liburing-dev and reconfigure)"; }
} // namespace

void add_io_uring_models(model_registry& r) {
  r.push_back({"durable", "io_uring", &make_nothing, false, 0, &not_built});
}

} // namespace flushkit::bench

#endif
