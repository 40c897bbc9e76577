// examples/readme.cpp - the example quoted in README.md (kept compiled and run).
//
// Maps a file as the medium of a pmem device whose region flushes with
// fdatasync on a thread of its own (offload_provider: the event loop never
// waits for the disk), then writes one record with FUA from a coroutine: the
// co_await returns only once the record is durable, and throws if it is not.
#include <flushkit/core/region.hpp>
#include <flushkit/exec/offload_provider.hpp>
#include <flushkit/pmem/backing.hpp>
#include <flushkit/pmem/file_sync_provider.hpp>
#include <flushkit/pmem/pmem_device.hpp>

#include <boost/asio/buffer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/system/system_error.hpp>

#include <cstdio>
#include <cstdlib>
#include <future>
#include <string_view>

#include <unistd.h>

namespace asio = boost::asio;
namespace pm = flushkit::pmem;
using fdatasync_thread = flushkit::offload_provider<pm::file_sync_provider>;
using device = pm::pmem_device<flushkit::region<fdatasync_thread&>>;

asio::awaitable<void> save(device& dev, std::string_view record) {
  // FUA: resumes once the record is durable; a failure throws system_error.
  co_await dev.async_write(0, asio::buffer(record), flushkit::req_flags::fua);
}

int run(const char* path) {
  auto medium = pm::backing::file(path, {.size = 1 << 20}); // zero-filled: fast fdatasync
  if (!medium) return std::fprintf(stderr, "%s\n", medium.error().message().c_str()), 1;
  asio::io_context io;    // the event loop
  asio::thread_pool disk(1); // where fdatasync blocks
  fdatasync_thread flusher(disk.get_executor(), std::in_place, *medium, pm::file_sync_mode::fdatasync);
  device dev(io, *medium, {}, flusher);

  std::future<void> saved = asio::co_spawn(io, save(dev, "hello, durable world"), asio::use_future);
  io.run();
  flusher.shutdown_and_wait();
  try {
    saved.get(); // rethrows what the coroutine threw
  } catch (const boost::system::system_error& e) {
    return std::fprintf(stderr, "write failed: %s\n", e.what()), 1;
  }
  std::printf("write: durable, fdatasync calls: %llu\n", static_cast<unsigned long long>(flusher.flushes()));
  return 0;
}

int main() {
  char path[] = "/tmp/flushkit-readme-XXXXXX";
  const int fd = ::mkstemp(path);
  if (fd < 0) return EXIT_FAILURE;
  ::close(fd);
  const int rc = run(path);
  ::unlink(path);
  return rc == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
