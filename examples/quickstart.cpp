// examples/quickstart.cpp - the smallest complete use of flushkit.
//
// A provider of your own (fdatasync of a real file, run on a thread pool so
// the caller never blocks), a region that applies the flush error policy,
// and coroutines that write and then co_await durability.
#include <flushkit/flushkit.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <string>
#include <tuple>
#include <unistd.h>

namespace asio = boost::asio;

// An asynchronous provider: it takes ownership of the request, runs
// fdatasync on the ordered executor's thread pool, and completes the request
// with the result. Everything written to the file before flush() was called
// is durable when the request completes successfully.
class fdatasync_provider {
public:
  fdatasync_provider(int fd, flushkit::ordered_executor<asio::thread_pool::executor_type>& ex)
      : fd_(fd), ex_(&ex) {}

  flushkit::flush_result flush(flushkit::request& req) {
    req.work.set(&fdatasync_provider::run, this);
    if (flushkit::status st = ex_->submit(req.work)) return flushkit::flush_result::done(st);
    return flushkit::flush_result::async(req);
  }

private:
  static void run(flushkit::work_item& item, void* ctx) {
    auto* self = static_cast<fdatasync_provider*>(ctx);
    const flushkit::status st = flushkit::status_from_errno(::fdatasync(self->fd_) == 0 ? 0 : errno);
    self->ex_->finish(item);
    flushkit::request::from_work(item).complete(st);
  }

  int fd_;
  flushkit::ordered_executor<asio::thread_pool::executor_type>* ex_;
};

using region_type = flushkit::region<fdatasync_provider&>;

// One writer: pwrite a record, then wait until it is durable.
asio::awaitable<void> writer(int fd, region_type* region, int id, int records, int* failures) {
  flushkit::request req;
  for (int i = 0; i < records; ++i) {
    const std::string line = "writer " + std::to_string(id) + " record " + std::to_string(i) + "\n";
    const off_t at = static_cast<off_t>((id * records + i) * 64);
    if (::pwrite(fd, line.data(), line.size(), at) != static_cast<ssize_t>(line.size())) ++*failures;
    req.prepare(flushkit::req_op::flush, 0, {}, flushkit::req_flags::preflush);
    const flushkit::flush_result r = region->flush(req);
    flushkit::status st = r.sync_status();
    if (r.is_async()) std::tie(st) = co_await flushkit::async_wait(req, asio::as_tuple(asio::use_awaitable));
    if (st) ++*failures;
  }
}

int main() {
  char path[] = "/tmp/flushkit-quickstart-XXXXXX";
  const int fd = ::mkstemp(path);
  if (fd < 0) return std::perror("mkstemp"), 1;

  asio::io_context io;
  asio::thread_pool blocking(1);
  flushkit::ordered_executor<asio::thread_pool::executor_type> flusher(blocking.get_executor());
  fdatasync_provider provider(fd, flusher);
  region_type region(provider);

  constexpr int writers = 4, records = 25;
  int failures = 0;
  for (int w = 0; w < writers; ++w) asio::co_spawn(io, writer(fd, &region, w, records, &failures), asio::detached);
  io.run();
  flusher.shutdown();
  blocking.join();

  std::printf("%d durable records from %d coroutines, %d failures (file %s)\n", writers * records, writers,
              failures, path);
  ::close(fd);
  ::unlink(path);
  return failures == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
