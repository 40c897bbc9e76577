// flushkit/core/detail/handler_slab.hpp - fixed storage for the few handlers a component keeps posted.
#pragma once

#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/post.hpp>

#include <array>
#include <atomic>
#include <cstddef>
#include <memory>
#include <new>
#include <utility>

namespace flushkit::detail {

/// A handful of fixed-size blocks owned by a component, handed to Asio through
/// `slab_allocator` so that posting the component's own handlers never reaches
/// the heap. A request larger than a block, or one made while every block is
/// in use, falls back to `operator new` and is counted in `fallbacks()`.
template <std::size_t BlockSize = 256, std::size_t Blocks = 4> class handler_slab {
public:
  handler_slab() = default;
  handler_slab(const handler_slab&) = delete;
  handler_slab& operator=(const handler_slab&) = delete;

  void* allocate(std::size_t n) {
    if (n <= BlockSize)
      for (std::size_t i = 0; i < Blocks; ++i)
        if (!used_[i].exchange(true, std::memory_order_acquire)) return blocks_[i].bytes;
    fallbacks_.fetch_add(1, std::memory_order_relaxed);
    return ::operator new(n);
  }

  void deallocate(void* p) noexcept {
    for (std::size_t i = 0; i < Blocks; ++i)
      if (p == blocks_[i].bytes) {
        used_[i].store(false, std::memory_order_release);
        return;
      }
    ::operator delete(p);
  }

  std::size_t fallbacks() const noexcept { return fallbacks_.load(std::memory_order_relaxed); }

private:
  struct alignas(std::max_align_t) block {
    std::byte bytes[BlockSize];
  };
  std::array<block, Blocks> blocks_{};
  std::array<std::atomic<bool>, Blocks> used_{};
  std::atomic<std::size_t> fallbacks_{0};
};

/// Standard allocator over a `handler_slab`.
template <class T, class Slab> class slab_allocator {
public:
  using value_type = T;
  explicit slab_allocator(Slab& slab) noexcept : slab_(&slab) {}
  template <class U> slab_allocator(const slab_allocator<U, Slab>& other) noexcept : slab_(other.slab()) {}

  T* allocate(std::size_t n) { return static_cast<T*>(slab_->allocate(n * sizeof(T))); }
  void deallocate(T* p, std::size_t) noexcept { slab_->deallocate(p); }

  Slab* slab() const noexcept { return slab_; }
  template <class U> bool operator==(const slab_allocator<U, Slab>& o) const noexcept { return slab_ == o.slab(); }

private:
  Slab* slab_;
};

/// Posts `f` to `ex` with `f`'s memory taken from `slab`: the pattern every
/// component uses for the few handlers it keeps posted (a drain, a kick, a
/// device hop), so that posting them never reaches the heap.
template <class Executor, class Slab, class Function> void post_in_slab(const Executor& ex, Slab& slab, Function&& f) {
  boost::asio::post(ex, boost::asio::bind_allocator(slab_allocator<void, Slab>(slab), std::forward<Function>(f)));
}

/// `f` with its memory taken from `slab`, for an Asio initiating function
/// (`timer.async_wait(in_slab(slab, f))`).
template <class Slab, class Function> auto in_slab(Slab& slab, Function&& f) {
  return boost::asio::bind_allocator(slab_allocator<void, Slab>(slab), std::forward<Function>(f));
}

/// Standard allocator over a `handler_slab` it co-owns: for handlers that
/// may outlive the component that queued them (a deferred handler left on
/// an event loop when the component is destroyed), so the block they were
/// allocated from stays valid until Asio has freed it.
template <class T, class Slab> class shared_slab_allocator {
public:
  using value_type = T;
  explicit shared_slab_allocator(std::shared_ptr<Slab> slab) noexcept : slab_(std::move(slab)) {}
  template <class U>
  shared_slab_allocator(const shared_slab_allocator<U, Slab>& other) noexcept : slab_(other.slab()) {}

  T* allocate(std::size_t n) { return static_cast<T*>(slab_->allocate(n * sizeof(T))); }
  void deallocate(T* p, std::size_t) noexcept { slab_->deallocate(p); }

  const std::shared_ptr<Slab>& slab() const noexcept { return slab_; }
  template <class U> bool operator==(const shared_slab_allocator<U, Slab>& o) const noexcept {
    return slab_ == o.slab();
  }

private:
  std::shared_ptr<Slab> slab_;
};

} // namespace flushkit::detail
