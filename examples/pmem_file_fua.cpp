// examples/pmem_file_fua.cpp - durable FUA writes to a file-backed pmem device from coroutines.
//
// Creates a temporary file, maps it as the medium of a pmem_device whose
// region flushes with fdatasync, writes records with FUA from four coroutines
// on one event loop, closes everything, reopens the file and checks every
// record. Exits non-zero on any error or mismatch. The fdatasync runs on a
// disk thread (offload_provider), so the event loop never waits for the disk;
// a coalescer in front of it lets one fdatasync acknowledge every FUA write
// whose data was copied before that fdatasync started.
#include <flushkit/coalesce/coalescer.hpp>
#include <flushkit/core/region.hpp>
#include <flushkit/exec/offload_provider.hpp>
#include <flushkit/pmem/backing.hpp>
#include <flushkit/pmem/file_sync_provider.hpp>
#include <flushkit/pmem/pmem_device.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <unistd.h>

namespace asio = boost::asio;
namespace pm = flushkit::pmem;
using fdatasync_thread = flushkit::offload_provider<pm::file_sync_provider>; // fdatasync on a disk thread
using group_commit = flushkit::coalescer<fdatasync_thread&>;                 // one fdatasync per batch
using device = pm::pmem_device<flushkit::region<group_commit&>>;

namespace {

constexpr std::size_t record_size = 4096;
constexpr unsigned records_per_writer = 16;
constexpr unsigned writers = 4;

void fill_record(std::array<char, record_size>& rec, unsigned writer, unsigned i) {
  std::memset(rec.data(), 'a' + static_cast<int>((writer * 7 + i) % 26), rec.size());
  std::snprintf(rec.data(), rec.size(), "writer %u record %u", writer, i);
}

std::uint64_t record_offset(unsigned writer, unsigned i) {
  return static_cast<std::uint64_t>(writer * records_per_writer + i) * record_size;
}

// A coroutine taking its parameters by value: no captures to dangle.
asio::awaitable<void> writer_task(device* dev, unsigned writer, int* failures) {
  std::array<char, record_size> rec{};
  for (unsigned i = 0; i < records_per_writer; ++i) {
    fill_record(rec, writer, i);
    // FUA: completes once this record is durable (fdatasync of the file).
    const auto [st] = co_await dev->async_write(record_offset(writer, i), asio::buffer(rec),
                                                flushkit::req_flags::fua, asio::as_tuple(asio::use_awaitable));
    if (st) {
      std::fprintf(stderr, "write failed: %s\n", st.message().c_str());
      ++*failures;
    }
  }
}

int write_phase(const char* path) {
  auto medium = pm::backing::file(path, {.size = writers * records_per_writer * record_size});
  if (!medium) {
    std::fprintf(stderr, "cannot map %s: %s\n", path, medium.error().message().c_str());
    return 1;
  }
  std::printf("mapped %zu bytes, %s\n", medium->size(),
              medium->map_sync() ? "MAP_SYNC (DAX)" : "page cache (fdatasync makes it durable)");
  // provider -> offload (disk thread) -> coalescer -> region -> device.
  asio::io_context io;       // the event loop: every writer runs on it
  asio::thread_pool disk(1); // where fdatasync blocks
  fdatasync_thread flusher(disk.get_executor(), std::in_place, *medium, pm::file_sync_mode::fdatasync);
  group_commit group(io, flusher);
  device dev(io, *medium, {}, group);
  int failures = 0;
  for (unsigned w = 0; w < writers; ++w) asio::co_spawn(io, writer_task(&dev, w, &failures), asio::detached);
  io.run();
  dev.remove();
  flusher.shutdown_and_wait(); // the last batch has left the disk thread: everything is idle
  std::printf("%u FUA writes, %llu fdatasync calls\n", writers * records_per_writer,
              static_cast<unsigned long long>(flusher.flushes()));
  return failures;
}

int verify_phase(const char* path) {
  auto medium = pm::backing::file(path, {.create = false});
  if (!medium) return 1;
  std::array<char, record_size> expect{};
  for (unsigned w = 0; w < writers; ++w)
    for (unsigned i = 0; i < records_per_writer; ++i) {
      fill_record(expect, w, i);
      if (std::memcmp(medium->data() + record_offset(w, i), expect.data(), record_size) != 0) {
        std::fprintf(stderr, "mismatch in writer %u record %u\n", w, i);
        return 1;
      }
    }
  std::printf("reopened: all records match\n");
  return 0;
}

} // namespace

int main() {
  char path[] = "/tmp/flushkit-pmem-example-XXXXXX";
  const int fd = ::mkstemp(path);
  if (fd < 0) return 1;
  ::close(fd);
  int rc = write_phase(path);
  if (rc == 0) rc = verify_phase(path);
  ::unlink(path);
  return rc == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
