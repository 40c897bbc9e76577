// bench/models_baselines.cpp - hand-written durable-write baselines (durable scenario).
//
//  group-commit-pwrite  N threads, each pwrite + leader/follower group commit:
//                       the shape storage engines write by hand (RocksDB's
//                       WAL write group, PostgreSQL's XLogFlush). One
//                       fdatasync covers every write whose pwrite returned
//                       before the flush started.
#include "model.hpp"

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <utility>

#include <unistd.h>

namespace flushkit::bench {

namespace {

/// A writer pwrites its block, then under the mutex takes a sequence number
/// (written_ + 1: its pwrite has returned, so any fdatasync started from now
/// on covers it) and waits until `flushed_` reaches it. If no flush is in
/// progress it leads one: it snapshots `written_`, fdatasyncs without the
/// mutex and publishes the snapshot as `flushed_`. Followers covered by the
/// leader's snapshot ack with its status; the others lead the next flush.
///
/// The sequence number is taken under the mutex (rather than from a separate
/// atomic counter) so a failing leader can find every covered writer: each
/// slot records the sequence number it waits for, and a failed fdatasync
/// marks the slots in (flushed_, target] with its error.
class group_commit_workload final : public workload {
public:
  explicit group_commit_workload(const bench_env& env)
      : fd_(env.file_path), slots_(std::make_unique<slot[]>(env.inflight)), inflight_(env.inflight) {}

  void submit(op& o) override {
    const ::ssize_t n = ::pwrite(fd_.get(), o.data.data(), o.data.size(), static_cast<::off_t>(o.offset));
    if (n != static_cast<::ssize_t>(o.data.size())) return o.done(make_error_code(errc::io_error));
    o.done(commit(slots_[o.index]));
  }
  std::uint64_t flushes() const override { return flushes_.load(std::memory_order_relaxed); }
  std::int64_t bytes_per_request() const override { return static_cast<std::int64_t>(sizeof(slot)); }

private:
  /// What a waiting writer shares with the leader that covers it.
  struct slot {
    std::uint64_t seq = 0; ///< the sequence number this slot waits for
    status st;             ///< the covering flush's error, set by a failed leader
  };

  // Waits until a flush covers this slot's write; returns that flush's status.
  status commit(slot& s) {
    std::unique_lock lk(mu_);
    s.seq = ++written_;
    while (flushed_ < s.seq) {
      if (flushing_)
        cv_.wait(lk);
      else
        lead(lk);
    }
    return std::exchange(s.st, status{});
  }

  // One fdatasync covering every sequence number taken so far; `lk` is held
  // on entry and on return, released during the flush.
  void lead(std::unique_lock<std::mutex>& lk) {
    flushing_ = true;
    const std::uint64_t from = flushed_;
    const std::uint64_t target = written_;
    lk.unlock();
    flushes_.fetch_add(1, std::memory_order_relaxed);
    const status st = ::fdatasync(fd_.get()) == 0 ? status{} : status(errno, boost::system::generic_category());
    lk.lock();
    if (st) fail_covered(from, target, st);
    flushed_ = target;
    flushing_ = false;
    cv_.notify_all();
  }

  // A failed flush: every slot waiting for a sequence number in (from, to]
  // acks with `st`. Only on the error path, so a scan of the slots is fine.
  void fail_covered(std::uint64_t from, std::uint64_t to, const status& st) {
    for (std::size_t i = 0; i < inflight_; ++i)
      if (slots_[i].seq > from && slots_[i].seq <= to) slots_[i].st = st;
  }

  file_fd fd_;
  std::unique_ptr<slot[]> slots_;
  std::size_t inflight_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::uint64_t written_ = 0; ///< sequence numbers taken (writes whose pwrite returned)
  std::uint64_t flushed_ = 0; ///< every sequence number up to this one is durable (or failed)
  bool flushing_ = false;     ///< a leader is in fdatasync
  std::atomic<std::uint64_t> flushes_{0};
};

std::unique_ptr<workload> make_group_commit(const bench_env& env) {
  return std::make_unique<group_commit_workload>(env);
}

} // namespace

void add_baseline_models(model_registry& r) {
  r.push_back({"durable", "group-commit-pwrite", &make_group_commit, true});
}

} // namespace flushkit::bench
