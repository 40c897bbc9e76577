// examples/03_futures_and_deferred.cpp - the same durable write with std::future and asio::deferred.
//
// Teaches: every flushkit asynchronous operation accepts any Asio completion
// token. `use_future` gives a std::future<void> for code without an event
// loop: get() returns once the write is durable and throws
// boost::system::system_error carrying the status when it failed. `deferred`
// packages the operation without starting it: nothing is written until it is
// launched, later, with any other token. The fdatasync runs on a disk thread
// (offload_provider), so get() blocks this thread until that fdatasync
// returned; a write refused before any flush (past the end) is ready when the
// call returns.
#include "example_support.hpp"

#include <flushkit/core/region.hpp>
#include <flushkit/exec/offload_provider.hpp>
#include <flushkit/pmem/backing.hpp>
#include <flushkit/pmem/file_sync_provider.hpp>
#include <flushkit/pmem/pmem_device.hpp>

#include <boost/system/system_error.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>

#include <future>
#include <string_view>

namespace asio = boost::asio;
namespace pm = flushkit::pmem;
using fdatasync_thread = flushkit::offload_provider<pm::file_sync_provider>;
using device = pm::pmem_device<flushkit::region<fdatasync_thread&>>;

int main() {
  example::temp_file file;
  auto medium = pm::backing::file(file.path(), {.size = 1 << 20});
  if (!medium) return example::fail("backing::file", medium.error());
  asio::thread_pool disk(1); // where fdatasync blocks
  fdatasync_thread flusher(disk.get_executor(), std::in_place, *medium);
  asio::io_context io; // the device's executor: use_future's handlers bring their own, so it is not run
  device dev(io, *medium, {}, flusher);
  constexpr std::string_view record = "flushkit: durable when acknowledged";
  int failures = 0;

  // std::future<void>: get() returns once the FUA write is durable.
  std::future<void> done = dev.async_write(4096, asio::buffer(record), flushkit::req_flags::fua, asio::use_future);
  done.get();
  failures += example::check(example::file_holds(file.path(), 4096, record), "use_future: the file holds it");

  // A failure is thrown from get() as boost::system::system_error carrying the status.
  std::future<void> past_end =
      dev.async_write(medium->size(), asio::buffer(record), flushkit::req_flags::fua, asio::use_future);
  try {
    past_end.get();
    failures += example::check(false, "use_future: past the end throws");
  } catch (const boost::system::system_error& e) {
    failures += example::check(e.code() == flushkit::errc::invalid_request, "use_future: past the end");
  }

  // deferred: a packaged operation; nothing happens until it is launched.
  auto later = dev.async_write(8192, asio::buffer(record), flushkit::req_flags::fua, asio::deferred);
  const auto flushes_before = flusher.flushes();
  failures += example::check(!example::file_holds(file.path(), 8192, record), "deferred: not started yet");
  std::move(later)(asio::use_future).get(); // launch with another token
  failures += example::check(example::file_holds(file.path(), 8192, record), "deferred: written once launched");
  failures += example::check(flusher.flushes() == flushes_before + 1, "deferred: flushed once launched");
  dev.remove();
  flusher.shutdown_and_wait();
  return failures == 0 ? 0 : 1;
}
