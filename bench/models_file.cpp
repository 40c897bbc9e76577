// bench/models_file.cpp - models over the real, pre-written bench file.
//
// submit scenario (how long the submit call blocks):
//  flushkit          FUA through pmem_device; file_sync_provider (fdatasync)
//                    runs on a blocking executor, submit returns after queueing
//  kernel-v6-sync    the v6 design: fdatasync inside submit
// durable scenario (acks/s at N in flight):
//  flushkit          as above: one fdatasync per FUA, in order
//  flushkit-coalesce the same through a coalescer (group commit, default batching:
//                    end_of_turn)
//  flushkit-coalesce-immediate  the same with batching::immediate (the old policy)
//  pwrite-fdatasync  N threads, each pwrite + fdatasync
//  group-commit-pwrite  see models_baselines.cpp
//  io_uring, io_uring-batch  see models_io_uring.cpp
#include "model.hpp"
#include "stacks.hpp"

#include <atomic>
#include <cerrno>

#include <unistd.h>

namespace flushkit::bench {

namespace {

/// N threads, each: pwrite 4 KiB, then fdatasync (the kernel's own flush
/// merging is the baseline the coalescer has to beat).
class pwrite_fdatasync_workload final : public workload {
public:
  explicit pwrite_fdatasync_workload(const bench_env& env) : fd_(env.file_path) {}

  void submit(op& o) override {
    const ::ssize_t n = ::pwrite(fd_.get(), o.data.data(), o.data.size(), static_cast<::off_t>(o.offset));
    if (n != static_cast<::ssize_t>(o.data.size())) return o.done(make_error_code(errc::io_error));
    flushes_.fetch_add(1, std::memory_order_relaxed);
    if (::fdatasync(fd_.get()) != 0) return o.done(status(errno, boost::system::generic_category()));
    o.done({});
  }
  std::uint64_t flushes() const override { return flushes_.load(std::memory_order_relaxed); }
  std::int64_t bytes_per_request() const override { return 0; } // the submitting thread is all it needs

private:
  file_fd fd_;
  std::atomic<std::uint64_t> flushes_{0};
};

using fsync_async = async_stack<pm::file_sync_provider>;
using fsync_coalesced = coalesced_stack<pm::file_sync_provider>;
using fsync_coalesced_immediate = coalesced_stack<pm::file_sync_provider, flushkit::batching::immediate>;
using fsync_sync = sync_stack<pm::file_sync_provider>;

} // namespace

std::unique_ptr<workload> make_pwrite_fdatasync(const bench_env& env) {
  return std::make_unique<pwrite_fdatasync_workload>(env);
}

void add_file_models(model_registry& r) {
  r.push_back({"submit", "flushkit", &make_device_workload<fsync_async>});
  r.push_back({"submit", "kernel-v6-sync", &make_device_workload<fsync_sync>, true});
  r.push_back({"durable", "flushkit", &make_device_workload<fsync_async>});
  r.push_back({"durable", "flushkit-coalesce", &make_device_workload<fsync_coalesced>});
  r.push_back({"durable", "flushkit-coalesce-immediate", &make_device_workload<fsync_coalesced_immediate>});
  r.push_back({"durable", "pwrite-fdatasync", &make_pwrite_fdatasync, true});
}

} // namespace flushkit::bench
