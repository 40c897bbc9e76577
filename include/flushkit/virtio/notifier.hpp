// flushkit/virtio/notifier.hpp - how one side of a virtqueue signals the other (kick / interrupt).
#pragma once

#include <flushkit/core/detail/handler_slab.hpp>

#include <boost/asio/post.hpp>

#include <atomic>
#include <concepts>
#include <cstdint>

namespace flushkit::virtio {

/// Something that signals the other side of a queue: the driver's kick
/// (available buffers) or the device's interrupt (used buffers). `notify()`
/// never blocks and never allocates; several notifications may be merged
/// into one (both sides must tolerate spurious and merged notifications, as
/// VIRTIO requires).
template <class N>
concept notifier = requires(N& n) {
  { n.notify() } -> std::same_as<void>;
};

/// In-process notifier: `notify()` posts `fn(context)` to `Executor` unless a
/// call is already pending (merging), from any thread. The handler is
/// allocated from blocks embedded in the notifier: no heap allocation.
///
/// The target runs on `Executor`; a notification that arrives while the
/// target runs posts it again, so none is lost.
template <class Executor> class inproc_notifier {
public:
  /// The notification target, run on the executor.
  using target_fn = void (*)(void* context);

  /// A notifier that runs `fn(context)` on `ex`.
  inproc_notifier(const Executor& ex, target_fn fn, void* context) noexcept : ex_(ex), fn_(fn), context_(context) {}
  inproc_notifier(const inproc_notifier&) = delete;
  inproc_notifier& operator=(const inproc_notifier&) = delete;

  /// Effects: posts the target unless a notification is already pending (merged). Any thread; never allocates.
  void notify() {
    if (pending_.exchange(true, std::memory_order_acq_rel)) return;
    flushkit::detail::post_in_slab(ex_, slab_, handler{this});
  }

  /// Notifications delivered so far (merged ones count once).
  std::uint64_t delivered() const noexcept { return delivered_.load(std::memory_order_relaxed); }

private:
  using slab_type = flushkit::detail::handler_slab<128, 2>;
  struct handler {
    inproc_notifier* self;
    void operator()() const {
      self->pending_.store(false, std::memory_order_release);
      self->delivered_.fetch_add(1, std::memory_order_relaxed);
      self->fn_(self->context_);
    }
  };

  Executor ex_;
  target_fn fn_;
  void* context_;
  std::atomic<bool> pending_{false};
  std::atomic<std::uint64_t> delivered_{0};
  slab_type slab_;
};

} // namespace flushkit::virtio
