// examples/01_callbacks.cpp - a durable (FUA) write completed through a plain callback.
//
// Teaches: the three pieces every flushkit user touches - a backing (real
// memory: here a file mapped MAP_SHARED), a provider (how that memory becomes
// durable: fdatasync, run on a disk thread of its own by offload_provider so
// that the submitter never waits for the disk) and a pmem_device (the
// kernel's pmem submit path) - and a caller-owned `request` whose completion
// is a function pointer + context (`request::on_complete`): no coroutine, no
// future, no allocation per write. The callback runs on the thread that completes the
// request: the disk thread once the fdatasync returned, or inside `submit`
// for a request refused before any flush. Errors arrive through the same
// callback as a `flushkit::status`.
#include "example_support.hpp"

#include <flushkit/core/region.hpp>
#include <flushkit/core/request.hpp>
#include <flushkit/exec/offload_provider.hpp>
#include <flushkit/pmem/backing.hpp>
#include <flushkit/pmem/file_sync_provider.hpp>
#include <flushkit/pmem/pmem_device.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <cstring>
#include <string_view>

namespace pm = flushkit::pmem;
using fdatasync_thread = flushkit::offload_provider<pm::file_sync_provider>;
using device = pm::pmem_device<flushkit::region<fdatasync_thread&>>;

namespace {

struct outcome {
  std::atomic<int> calls{0};
  flushkit::status st;

  // Blocks until the callback ran (this thread is not an event loop).
  void wait() const { calls.wait(0, std::memory_order_acquire); }
};

// The completion callback: runs exactly once per submission, on the thread
// that completes the request. It copies the status before it signals.
void on_done(void* context, flushkit::request&, const flushkit::status& st) {
  auto* out = static_cast<outcome*>(context);
  out->st = st;
  out->calls.fetch_add(1, std::memory_order_release);
  out->calls.notify_one();
}

} // namespace

int main() {
  example::temp_file file;
  auto medium = pm::backing::file(file.path(), {.size = 1 << 20});
  if (!medium) return example::fail("backing::file", medium.error());
  boost::asio::thread_pool disk(1); // where fdatasync blocks
  fdatasync_thread flusher(disk.get_executor(), std::in_place, *medium); // flush = fdatasync(2) of the file
  boost::asio::io_context io; // the device's executor; raw submit() never uses it
  device dev(io, *medium, {}, flusher);

  char record[] = "flushkit: durable when acknowledged";
  const std::string_view text(record, std::strlen(record));
  const flushkit::segment seg{record, text.size()};
  flushkit::request req(flushkit::req_op::write, 4096, {&seg, 1}, flushkit::req_flags::fua);
  outcome out;
  req.on_complete(&on_done, &out); // arm the waiter first, then submit
  dev.submit(req);                 // copy, then queue the FUA's fdatasync on the disk thread; returns at once
  out.wait();                      // the callback ran: the record is durable

  int failures = example::check(out.calls == 1 && !out.st, "FUA write completed with success");
  failures += example::check(flusher.flushes() == 1, "one fdatasync for the FUA");
  failures += example::check(example::file_holds(file.path(), 4096, text), "the file holds the record");

  // The same request, reused for a write past the end of the medium.
  req.prepare(flushkit::req_op::write, medium->size(), {&seg, 1}, flushkit::req_flags::fua);
  outcome bad;
  req.on_complete(&on_done, &bad);
  dev.submit(req); // refused before any flush: the callback runs inside submit
  failures += example::check(bad.calls == 1 && bad.st == flushkit::errc::invalid_request,
                             "out-of-bounds write: invalid_request");
  failures += example::check(flusher.flushes() == 1, "a failed write is never flushed");

  dev.remove();                // later submissions fail with shutting_down
  flusher.shutdown_and_wait(); // nothing queued is left on the disk thread
  return failures == 0 ? 0 : 1;
}
