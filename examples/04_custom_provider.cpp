// examples/04_custom_provider.cpp - write your own asynchronous flush provider.
//
// Teaches: the provider contract (docs/write-a-provider.md). This provider makes
// a file mapping durable with msync(MS_SYNC) of only the bytes the device wrote
// (the optional `note_dirty` hook) and runs it on a thread pool: it takes
// ownership of the request (`flush_result::async`), queues the request's own
// work item on an `ordered_executor` (FIFO, no allocation) and completes the
// request exactly once, on the pool. The submitter never blocks.
#include "example_support.hpp"

#include <flushkit/flushkit.hpp>
#include <flushkit/pmem/backing.hpp>
#include <flushkit/pmem/pmem_device.hpp>

#include <boost/asio/buffer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>

#include <algorithm>
#include <mutex>
#include <string_view>
#include <utility>

namespace asio = boost::asio;
namespace pm = flushkit::pmem;
using pool_executor = flushkit::ordered_executor<asio::thread_pool::executor_type>;

class dirty_msync_provider {
public:
  dirty_msync_provider(const pm::backing& medium, pool_executor& ex) : medium_(&medium), ex_(&ex) {}

  // Optional hook: the device reports every byte range its data step wrote.
  void note_dirty(const void* addr, std::size_t len) {
    const auto lo = static_cast<std::size_t>(static_cast<const std::byte*>(addr) - medium_->data());
    std::lock_guard lk(mu_);
    lo_ = std::min(lo_, lo);
    hi_ = std::max(hi_, lo + len);
  }

  // The provider entry point: take ownership of `req`, complete it later.
  flushkit::flush_result flush(flushkit::request& req) {
    req.work.set(&dirty_msync_provider::run, this);
    if (flushkit::status st = ex_->submit(req.work)) return flushkit::flush_result::done(st);
    return flushkit::flush_result::async(req);
  }

  int msyncs = 0; // only touched by run(), one at a time

private:
  // On the pool, one at a time: msync what is dirty now (it covers everything
  // written before flush() was called), then complete the request.
  static void run(flushkit::work_item& item, void* context) {
    auto* self = static_cast<dirty_msync_provider*>(context);
    std::unique_lock lk(self->mu_);
    const std::size_t lo = std::exchange(self->lo_, no_dirty), hi = std::exchange(self->hi_, 0);
    lk.unlock();
    const flushkit::status st = lo < hi ? self->medium_->msync(lo, hi - lo) : flushkit::status{};
    self->msyncs += lo < hi ? 1 : 0;
    self->ex_->finish(item);                         // the next flush may start
    flushkit::request::from_work(item).complete(st); // exactly once
  }

  static constexpr std::size_t no_dirty = ~std::size_t{0};
  const pm::backing* medium_;
  pool_executor* ex_;
  std::mutex mu_;
  std::size_t lo_ = no_dirty, hi_ = 0; // dirty byte range, under mu_
};
static_assert(flushkit::async_flush_provider<dirty_msync_provider>);
static_assert(flushkit::dirty_tracking<dirty_msync_provider>);

int main() {
  example::temp_file file;
  auto medium = pm::backing::file(file.path(), {.size = 1 << 20});
  if (!medium) return example::fail("backing::file", medium.error());
  asio::thread_pool pool(1);
  pool_executor flusher(pool.get_executor());
  dirty_msync_provider provider(*medium, flusher);
  pm::pmem_device<flushkit::region<dirty_msync_provider&>> dev(pool, *medium, {}, provider);

  constexpr std::string_view record = "flushkit: durable when acknowledged";
  int failures = 0;
  for (std::uint64_t offset : {4096u, 65536u}) // completes on the pool thread; get() waits
    dev.async_write(offset, asio::buffer(record), flushkit::req_flags::fua, asio::use_future).get();
  failures += example::check(example::file_holds(file.path(), 65536, record), "the file holds the record");
  flusher.shutdown(); // waits for queued flushes; later ones fail with shutting_down
  failures += example::check(provider.msyncs == 2, "one msync per FUA write");
  pool.join();
  return failures == 0 ? 0 : 1;
}
