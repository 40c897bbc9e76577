// examples/readme.cpp - the example quoted in README.md (kept compiled and run).
//
// Maps a file as the medium of a pmem device whose region flushes with
// fdatasync, then writes one record with FUA from a coroutine: the co_await
// returns only once the record is durable.
#include <flushkit/core/region.hpp>
#include <flushkit/pmem/backing.hpp>
#include <flushkit/pmem/file_sync_provider.hpp>
#include <flushkit/pmem/pmem_device.hpp>

#include <boost/asio/buffer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cstdio>
#include <cstdlib>
#include <string_view>

#include <unistd.h>

namespace asio = boost::asio;
namespace pm = flushkit::pmem;
using device = pm::pmem_device<flushkit::region<pm::file_sync_provider&>>;

asio::awaitable<void> save(device* dev, std::string_view record, flushkit::status* result) {
  // FUA: the write completes only once the record is durable.
  *result = co_await dev->async_write(0, asio::buffer(record), flushkit::req_flags::fua, asio::use_awaitable);
}

int run(const char* path) {
  auto medium = pm::backing::file(path, {.size = 1 << 20});
  if (!medium) return std::fprintf(stderr, "%s\n", medium.error().message().c_str()), 1;
  pm::file_sync_provider provider(*medium, pm::file_sync_mode::fdatasync);
  device dev(*medium, {}, provider);

  asio::io_context io;
  flushkit::status result = flushkit::errc::cancelled;
  asio::co_spawn(io, save(&dev, "hello, durable world", &result), asio::detached);
  io.run();
  std::printf("write: %s, fdatasync calls: %llu\n", result ? result.message().c_str() : "durable",
              static_cast<unsigned long long>(provider.flushes()));
  return result ? 1 : 0;
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
