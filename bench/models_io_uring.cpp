// bench/models_io_uring.cpp - io_uring at queue depth N (durable scenario).
//
//  io_uring        one write -> IOSQE_IO_LINK -> fsync(DATASYNC) chain per
//                  in-flight slot; the fsync's CQE acknowledges the slot (a
//                  failed or short write cancels the linked fsync, so its CQE
//                  carries the error)
//  io_uring-batch  group commit the way an io_uring user writes it: every
//                  submit queues its write at once; when no fsync is in
//                  flight, an fsync(DATASYNC) with IOSQE_IO_DRAIN follows it
//                  and covers every write submitted before it (the drain
//                  starts it only once they completed). Writes submitted while
//                  an fsync is in flight wait for the next one, submitted
//                  after the current one's CQE has acknowledged its batch (a
//                  failed write acks its slot with the write's error).
//
// Both share `uring_file`: the bench file, a ring with room for every slot,
// one reaper thread that waits for completions, and submissions serialised
// by a mutex (the first ones come from the main thread, later ones from the
// reaper's completion callback). Without liburing at build time, or where
// io_uring_queue_init fails at run time, the models are skipped with a
// message.
#include "model.hpp"

#if FLUSHKIT_BENCH_HAVE_URING

#include <liburing.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

namespace flushkit::bench {

namespace {

constexpr std::uint64_t stop_tag = 0;  // user_data of the NOP that stops the reaper
constexpr std::uint64_t write_tag = 1; // low bit of a write SQE's user_data (a pointer otherwise)

// SQ entries for `inflight` slots: two SQEs per slot (a chain, or a write and
// its share of an fsync) and the stop NOP.
unsigned ring_entries(std::size_t inflight) {
  unsigned n = 8;
  while (n < 2 * inflight + 2) n *= 2;
  return n;
}

status from_res(int res) noexcept {
  return res < 0 ? status(-res, boost::system::generic_category()) : status{};
}

/// The bench file, its ring and the reaper thread. `Owner::on_cqe(user_data,
/// res)` runs on the reaper for every CQE but the stop NOP's. Declare it as
/// the owner's last member: the reaper starts after, and stops before, the
/// rest of the owner.
template <class Owner> class uring_file {
public:
  uring_file(const bench_env& env, Owner& owner) : fd_(env.file_path), owner_(owner) {
    if (const int rc = ::io_uring_queue_init(ring_entries(env.inflight), &ring_, 0); rc < 0)
      throw std::system_error(-rc, std::generic_category(), "io_uring_queue_init");
    reaper_ = std::thread([this] { reap(); });
  }
  uring_file(const uring_file&) = delete;
  uring_file& operator=(const uring_file&) = delete;

  ~uring_file() {
    submit([](auto next_sqe) {
      io_uring_sqe* sqe = next_sqe();
      ::io_uring_prep_nop(sqe);
      ::io_uring_sqe_set_data64(sqe, stop_tag);
    });
    reaper_.join();
    ::io_uring_queue_exit(&ring_);
  }

  int fd() const noexcept { return fd_.get(); }

  /// With the submission queue locked, runs `prep(next_sqe)` (`next_sqe()`
  /// returns a free SQE; the ring has room for every slot's SQEs), then
  /// submits whatever it prepared (io_uring_submit makes no system call when
  /// that is nothing).
  template <class Prep> void submit(Prep&& prep) {
    std::lock_guard lk(mu_);
    prep([this] { return ::io_uring_get_sqe(&ring_); });
    // Release: pairs with the reaper's acquire, so what the submitter wrote
    // happens before the completion also for tools that cannot see through
    // the ring.
    submits_.fetch_add(1, std::memory_order_release);
    ::io_uring_submit(&ring_);
  }

private:
  void reap() {
    for (;;) {
      io_uring_cqe* cqe = nullptr;
      if (::io_uring_wait_cqe(&ring_, &cqe) < 0) continue; // EINTR
      const std::uint64_t data = ::io_uring_cqe_get_data64(cqe);
      const int res = cqe->res;
      ::io_uring_cqe_seen(&ring_, cqe);
      if (data == stop_tag) return;
      static_cast<void>(submits_.load(std::memory_order_acquire));
      owner_.on_cqe(data, res);
    }
  }

  file_fd fd_;
  io_uring ring_{};
  std::mutex mu_;
  std::atomic<std::uint64_t> submits_{0};
  Owner& owner_;
  std::thread reaper_;
};

/// io_uring: one linked write + fsync chain per submit.
class uring_link_workload final : public workload {
public:
  explicit uring_link_workload(const bench_env& env) : ring_(env, *this) {}

  void submit(op& o) override {
    flushes_.fetch_add(1, std::memory_order_relaxed);
    const auto tag = reinterpret_cast<std::uintptr_t>(&o);
    ring_.submit([&](auto next_sqe) {
      io_uring_sqe* write = next_sqe();
      ::io_uring_prep_write(write, ring_.fd(), o.data.data(), static_cast<unsigned>(o.data.size()), o.offset);
      write->flags |= IOSQE_IO_LINK;
      ::io_uring_sqe_set_data64(write, tag | write_tag);
      io_uring_sqe* fsync = next_sqe();
      ::io_uring_prep_fsync(fsync, ring_.fd(), IORING_FSYNC_DATASYNC);
      ::io_uring_sqe_set_data64(fsync, tag);
    });
  }
  std::uint64_t flushes() const override { return flushes_.load(std::memory_order_relaxed); }
  /// The ring entries a request occupies: two SQEs and their CQEs.
  std::int64_t bytes_per_request() const override {
    return static_cast<std::int64_t>(2 * (sizeof(io_uring_sqe) + sizeof(io_uring_cqe)));
  }

  void on_cqe(std::uint64_t data, int res) {
    if ((data & write_tag) != 0) return; // the linked fsync reports the chain
    reinterpret_cast<op*>(static_cast<std::uintptr_t>(data))->done(from_res(res));
  }

private:
  std::atomic<std::uint64_t> flushes_{0};
  uring_file<uring_link_workload> ring_; // last: see uring_file
};

/// io_uring-batch: writes at once, one drained fsync per batch.
class uring_batch_workload final : public workload {
public:
  explicit uring_batch_workload(const bench_env& env)
      : slots_(std::make_unique<slot[]>(env.inflight)), ring_(env, *this) {}

  void submit(op& o) override {
    slot& s = slots_[o.index];
    s.o = &o;
    s.write_res = 0;
    ring_.submit([&](auto next_sqe) {
      io_uring_sqe* write = next_sqe();
      ::io_uring_prep_write(write, ring_.fd(), o.data.data(), static_cast<unsigned>(o.data.size()), o.offset);
      ::io_uring_sqe_set_data64(write, reinterpret_cast<std::uintptr_t>(&s) | write_tag);
      waiting_.push(s);
      if (!fsync_in_flight_) start_fsync(next_sqe());
    });
  }
  std::uint64_t flushes() const override { return flushes_.load(std::memory_order_relaxed); }
  /// The slot's bookkeeping and the ring entries it occupies: one SQE and
  /// its CQE (the batch's fsync SQE is shared).
  std::int64_t bytes_per_request() const override {
    return static_cast<std::int64_t>(sizeof(slot) + sizeof(io_uring_sqe) + sizeof(io_uring_cqe));
  }

  void on_cqe(std::uint64_t data, int res) {
    if ((data & write_tag) != 0) {
      reinterpret_cast<slot*>(static_cast<std::uintptr_t>(data & ~write_tag))->write_res = res;
      return; // acknowledged with the fsync that covers it
    }
    // The fsync's CQE: the drain made every covered write's CQE come first.
    slot_list batch;
    ring_.submit([&](auto) { batch = std::exchange(covered_, {}); }); // prepares nothing: no system call
    ack(batch, from_res(res));
    // The acks re-issued their slots into `waiting_`: one fsync covers them all.
    ring_.submit([&](auto next_sqe) {
      fsync_in_flight_ = false;
      if (!waiting_.empty()) start_fsync(next_sqe());
    });
  }

private:
  struct slot {
    op* o = nullptr;
    slot* next = nullptr; ///< in `waiting_` or `covered_`
    int write_res = 0;    ///< the write's CQE result
  };

  /// FIFO of slots, linked through `slot::next`.
  struct slot_list {
    slot* head = nullptr;
    slot* tail = nullptr;
    bool empty() const noexcept { return head == nullptr; }
    void push(slot& s) noexcept {
      s.next = nullptr;
      (tail != nullptr ? tail->next : head) = &s;
      tail = &s;
    }
  };

  // Submission queue locked: an fsync ordered after every write submitted so
  // far, which it covers.
  void start_fsync(io_uring_sqe* sqe) {
    ::io_uring_prep_fsync(sqe, ring_.fd(), IORING_FSYNC_DATASYNC);
    sqe->flags |= IOSQE_IO_DRAIN;
    ::io_uring_sqe_set_data64(sqe, fsync_tag);
    covered_ = std::exchange(waiting_, {});
    fsync_in_flight_ = true;
    flushes_.fetch_add(1, std::memory_order_relaxed);
  }

  // Acks every slot of `batch`: with its write's error, else the fsync's status.
  static void ack(slot_list batch, const status& fsync_status) {
    for (slot* s = batch.head; s != nullptr;) {
      slot* next = s->next; // done() re-issues the slot, which relinks it
      const int w = s->write_res;
      const status st = w < 0                                      ? from_res(w)
                        : w != static_cast<int>(s->o->data.size()) ? make_error_code(errc::io_error)
                                                                   : fsync_status;
      s->o->done(st);
      s = next;
    }
  }

  static constexpr std::uint64_t fsync_tag = 2; // not a slot pointer, no write_tag bit

  std::unique_ptr<slot[]> slots_;
  slot_list waiting_;            ///< written, not yet covered by an fsync
  slot_list covered_;            ///< covered by the fsync in flight
  bool fsync_in_flight_ = false; ///< waiting_, covered_ and this: under the submission queue's mutex
  std::atomic<std::uint64_t> flushes_{0};
  uring_file<uring_batch_workload> ring_; // last: see uring_file
};

template <class W> std::unique_ptr<workload> make(const bench_env& env) { return std::make_unique<W>(env); }

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
  r.push_back({"durable", "io_uring", &make<uring_link_workload>, false, 0, &uring_unavailable});
  r.push_back({"durable", "io_uring-batch", &make<uring_batch_workload>, false, 0, &uring_unavailable});
}

} // namespace flushkit::bench

#else // no liburing at build time

namespace flushkit::bench {

namespace {
std::unique_ptr<workload> make_nothing(const bench_env&) { return nullptr; }
const char* not_built() { return "flushkit-bench was built without liburing (install liburing-dev and reconfigure)"; }
} // namespace

void add_io_uring_models(model_registry& r) {
  for (const char* name : {"io_uring", "io_uring-batch"})
    r.push_back({"durable", name, &make_nothing, false, 0, &not_built});
}

} // namespace flushkit::bench

#endif
