// examples/03_futures_and_deferred.cpp - the same durable write with std::future and asio::deferred.
//
// Teaches: every flushkit asynchronous operation accepts any Asio completion
// token. `use_future` gives a std::future<flushkit::status> for code without
// an event loop (get() returns the status; it does not throw, because Asio
// only throws boost::system::error_code failures and a flushkit::status is a
// std::error_code). `deferred` packages the operation
// without starting it: nothing is written until it is launched, later, with
// any other token. The provider here is synchronous, so a future is ready
// when the call returns; with an asynchronous provider get() would block.
#include "example_support.hpp"

#include <flushkit/core/region.hpp>
#include <flushkit/pmem/backing.hpp>
#include <flushkit/pmem/file_sync_provider.hpp>
#include <flushkit/pmem/pmem_device.hpp>

#include <boost/system/system_error.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/use_future.hpp>

#include <future>
#include <string_view>

namespace asio = boost::asio;
namespace pm = flushkit::pmem;
using device = pm::pmem_device<flushkit::region<pm::file_sync_provider&>>;

int main() {
  example::temp_file file;
  auto medium = pm::backing::file(file.path(), {.size = 1 << 20});
  if (!medium) return example::fail("backing::file", medium.error());
  pm::file_sync_provider provider(*medium);
  asio::io_context io; // the device's executor: use_future's handlers bring their own, so it is not run
  device dev(io, *medium, {}, provider);
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
  const auto flushes_before = provider.flushes();
  failures += example::check(!example::file_holds(file.path(), 8192, record), "deferred: not started yet");
  std::move(later)(asio::use_future).get(); // launch with another token
  failures += example::check(example::file_holds(file.path(), 8192, record), "deferred: written once launched");
  failures += example::check(provider.flushes() == flushes_before + 1, "deferred: flushed once launched");
  dev.remove();
  return failures == 0 ? 0 : 1;
}
