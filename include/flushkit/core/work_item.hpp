// flushkit/core/work_item.hpp - the intrusive work node an ordered executor queues.
#pragma once

#include <boost/intrusive/list_hook.hpp>

namespace flushkit {

/// A unit of work for `ordered_executor`, embedded in the object it works on
/// (a request, a driver context), so queueing it never allocates.
///
/// The executor calls `run(item, context)` on its strand. The item has
/// finished when `ordered_executor::finish(item)` is called, from `run` or
/// later from any thread; the next item starts only then.
class work_item {
public:
  /// What an item does when the executor starts it; `context` is the pointer given to `set` or the constructor.
  using run_fn = void (*)(work_item& self, void* context);

  work_item() = default;
  /// An item that runs `fn(*this, context)`.
  work_item(run_fn fn, void* context) noexcept : run_(fn), context_(context) {}
  work_item(const work_item&) = delete;
  work_item& operator=(const work_item&) = delete;

  /// Sets what the item does. Only while it is not queued.
  void set(run_fn fn, void* context) noexcept {
    run_ = fn;
    context_ = context;
  }

  /// The context pointer passed to `run_fn`.
  void* context() const noexcept { return context_; }

  /// The object this item is embedded in, if it was constructed with one
  /// (a request sets itself; see `request::from_work`).
  void* owner() const noexcept { return owner_; }
  /// An item embedded in `owner` (see `owner()`); set its function with `set` before submitting it.
  explicit work_item(void* owner) noexcept : owner_(owner) {}

  /// True while the item sits in an executor's queue (not yet started).
  bool is_queued() const noexcept { return hook_.is_linked(); }

  /// Runs the item; called by the executor.
  void run() { run_(*this, context_); }

  /// Safe-mode hook: destroying a queued item is caught in debug builds.
  boost::intrusive::list_member_hook<boost::intrusive::link_mode<boost::intrusive::safe_link>> hook_;

private:
  run_fn run_ = nullptr;
  void* context_ = nullptr;
  void* owner_ = nullptr;
};

} // namespace flushkit
