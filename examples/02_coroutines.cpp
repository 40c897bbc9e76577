// examples/02_coroutines.cpp - the same durable write from a coroutine: co_await the flush.
//
// Teaches: `pmem_device::async_write` / `async_read` from a coroutine. With
// the default token `co_await` throws `boost::system::system_error` on
// failure; with `as_tuple` it returns the status as a value. The coroutine
// resumes on its own executor (the io_context), and the operation's state comes
// from the handler's recycling allocator, so steady-state writes do not touch
// the heap. The fdatasync runs on a disk thread (offload_provider): while it
// blocks there, the io_context keeps running other work. The coroutine takes
// its parameters by value and captures nothing, which keeps it safe on g++ 12.
#include "example_support.hpp"

#include <flushkit/core/region.hpp>
#include <flushkit/exec/offload_provider.hpp>
#include <flushkit/pmem/backing.hpp>
#include <flushkit/pmem/file_sync_provider.hpp>
#include <flushkit/pmem/pmem_device.hpp>

#include <boost/system/system_error.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cstring>
#include <string_view>

namespace asio = boost::asio;
namespace pm = flushkit::pmem;
using fdatasync_thread = flushkit::offload_provider<pm::file_sync_provider>;
using device = pm::pmem_device<flushkit::region<fdatasync_thread&>>;

namespace {

constexpr std::string_view record = "flushkit: durable when acknowledged";

asio::awaitable<void> write_then_read(device* dev, std::uint64_t offset, int* failures) {
  // FUA with the default token: resumes once the record is durable (the
  // provider's fdatasync returned); a failure would throw system_error.
  co_await dev->async_write(offset, asio::buffer(record), flushkit::req_flags::fua);
  *failures += example::check(true, "co_await async_write(FUA)");

  char back[record.size()] = {};
  co_await dev->async_read(offset, asio::buffer(back));
  *failures += example::check(std::string_view(back, sizeof back) == record, "co_await async_read");

  // A write past the end throws boost::system::system_error with the status...
  try {
    co_await dev->async_write(dev->medium().size(), asio::buffer(record), flushkit::req_flags::fua);
    *failures += example::check(false, "write past the end throws");
  } catch (const boost::system::system_error& e) {
    *failures += example::check(e.code() == flushkit::errc::invalid_request, "write past the end throws invalid_request");
  }
  // ... or, with as_tuple, hands it over as a value.
  const auto [bad] = co_await dev->async_write(dev->medium().size(), asio::buffer(record), flushkit::req_flags::fua,
                                               asio::as_tuple(asio::use_awaitable));
  *failures += example::check(bad == flushkit::errc::invalid_request, "as_tuple: invalid_request as a value");
}

} // namespace

int main() {
  example::temp_file file;
  auto medium = pm::backing::file(file.path(), {.size = 1 << 20});
  if (!medium) return example::fail("backing::file", medium.error());
  asio::io_context io;       // the event loop
  asio::thread_pool disk(1); // where fdatasync blocks
  fdatasync_thread flusher(disk.get_executor(), std::in_place, *medium);
  device dev(io, *medium, {}, flusher);

  int failures = 0;
  asio::co_spawn(io, write_then_read(&dev, 4096, &failures), asio::detached);
  io.run();

  failures += example::check(example::file_holds(file.path(), 4096, record), "the file holds the record");
  failures += example::check(flusher.flushes() == 1, "one fdatasync (the FUA)");
  dev.remove();
  flusher.shutdown_and_wait();
  return failures == 0 ? 0 : 1;
}
