// bench/models_overhead.cpp - framework overhead: no-op provider, anonymous
// memory, FUA 4 KiB writes through pmem_device.
//
//  flushkit      async provider; completion via the ordered_executor work
//                item embedded in the request (no allocation)
//  kernel-v7     the v7 kernel patch's shape: a heap-allocated work item per
//                FUA (`new`), handed to one ordered worker thread behind a
//                std::mutex + std::condition_variable, which completes it
//  kernel-child  the older design: an extra child request allocated per FUA
//                and chained to the parent (the parent completes when the
//                child does), run by the same kind of worker thread
//  direct        the synchronous no-op provider called inside submit
//
// Fairness: every asynchronous model is driven from one application event
// loop thread, which submits the writes and gets every completion delivered
// back (flushkit::async_wait) before it re-issues the slot, with the same
// number of requests in flight. The kernel designs need their worker thread
// (that is what a workqueue is); flushkit's ordered executor is a strand on
// the application's own event loop, because a no-op flush never blocks.
// `direct` has no worker: its one submitting thread does everything (one
// request in flight).
#include "model.hpp"
#include "stacks.hpp"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace flushkit::bench {

namespace {

/// One ordered worker thread fed through a mutex + condition variable: the
/// kernel's ordered workqueue as the kernel patches use it.
class kernel_worker {
public:
  kernel_worker() : thread_([this] { loop(); }) {}
  kernel_worker(const kernel_worker&) = delete;
  kernel_worker& operator=(const kernel_worker&) = delete;
  ~kernel_worker() { join(); }

  void push(work_item& item) {
    {
      std::lock_guard lk(mu_);
      queue_.push_back(item);
    }
    cv_.notify_one();
  }

  void join() {
    {
      std::lock_guard lk(mu_);
      stop_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
  }

private:
  using queue_type = boost::intrusive::list<
      work_item, boost::intrusive::member_hook<work_item, decltype(work_item::hook_), &work_item::hook_>,
      boost::intrusive::constant_time_size<false>>;

  void loop() {
    std::unique_lock lk(mu_);
    for (;;) {
      cv_.wait(lk, [this] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;
      work_item& item = queue_.front();
      queue_.pop_front();
      lk.unlock();
      item.run();
      lk.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  queue_type queue_;
  bool stop_ = false;
  std::thread thread_; // last: started after the queue exists
};

/// kernel-v7: `new` work item per FUA; the worker completes the request.
class v7_provider {
public:
  explicit v7_provider(kernel_worker& w) noexcept : worker_(&w) {}

  flush_result flush(request& req) {
    flushes_.fetch_add(1, std::memory_order_relaxed);
    auto* job = new v7_job{{}, &req};
    job->item.set(&v7_provider::run, job);
    worker_->push(job->item);
    return flush_result::async(req);
  }
  std::uint64_t flushes() const noexcept { return flushes_.load(std::memory_order_relaxed); }

private:
  struct v7_job {
    work_item item;
    request* req;
  };

  static void run(work_item&, void* context) {
    auto* job = static_cast<v7_job*>(context);
    request* req = job->req;
    delete job;
    req->complete({}); // the no-op flush succeeded
  }

  kernel_worker* worker_;
  std::atomic<std::uint64_t> flushes_{0};
};

/// kernel-child: a child flush request allocated per FUA and chained to the
/// parent; the worker completes the child, the chain completes the parent.
class child_provider {
public:
  explicit child_provider(kernel_worker& w) noexcept : worker_(&w) {}

  flush_result flush(request& parent) {
    flushes_.fetch_add(1, std::memory_order_relaxed);
    auto* child = new request(req_op::flush, 0, {}, req_flags::preflush);
    child->user_data = &parent;
    child->on_complete(&child_provider::chain_end, nullptr);
    child->work.set(&child_provider::run, nullptr);
    worker_->push(child->work);
    return flush_result::async(parent);
  }
  std::uint64_t flushes() const noexcept { return flushes_.load(std::memory_order_relaxed); }

private:
  static void run(work_item& item, void*) {
    request& child = request::from_work(item);
    child.complete({}); // the no-op flush succeeded
    delete &child;
  }

  static void chain_end(void*, request& child, const status& st) {
    static_cast<request*>(child.user_data)->complete(st);
  }

  kernel_worker* worker_;
  std::atomic<std::uint64_t> flushes_{0};
};

/// Stack for the kernel models: `Provider` fed to one kernel_worker.
template <class Provider> struct kernel_stack {
  using top_type = Provider;
  static constexpr bool completes_on_app = true;
  kernel_stack(const pm::backing&, app_thread&) {}
  top_type& top() noexcept { return provider; }
  std::uint64_t flushes() const noexcept { return provider.flushes(); }
  void quiesce() { worker.join(); }

  kernel_worker worker;
  Provider provider{worker};
};

} // namespace

void add_overhead_models(model_registry& r) {
  r.push_back({"overhead", "flushkit", &make_device_workload<async_stack<pm::volatile_provider, placement::app>>});
  r.push_back({"overhead", "kernel-v7", &make_device_workload<kernel_stack<v7_provider>>});
  r.push_back({"overhead", "kernel-child", &make_device_workload<kernel_stack<child_provider>>});
  r.push_back({"overhead", "direct", &make_device_workload<sync_stack<pm::volatile_provider>>, true, 1});
}

} // namespace flushkit::bench
