// examples/01_callbacks.cpp - a durable (FUA) write completed through a plain callback.
//
// Teaches: the three pieces every flushkit user touches - a backing (real
// memory: here a file mapped MAP_SHARED), a provider (how that memory becomes
// durable: fdatasync) and a pmem_device (the kernel's pmem submit path) - and a
// caller-owned `request` whose completion is a function pointer + context
// (`request::on_complete`): no Asio, no coroutine, no allocation. With a
// synchronous provider the callback runs inside `submit`, on this thread.
// Errors arrive through the same callback as a `flushkit::status`.
#include "example_support.hpp"

#include <flushkit/core/region.hpp>
#include <flushkit/core/request.hpp>
#include <flushkit/pmem/backing.hpp>
#include <flushkit/pmem/file_sync_provider.hpp>
#include <flushkit/pmem/pmem_device.hpp>

#include <boost/asio/io_context.hpp>

#include <cstring>
#include <string_view>

namespace pm = flushkit::pmem;
using device = pm::pmem_device<flushkit::region<pm::file_sync_provider&>>;

namespace {

struct outcome {
  int calls = 0;
  flushkit::status st;
};

// The completion callback: runs exactly once per submission.
void on_done(void* context, flushkit::request&, const flushkit::status& st) {
  auto* out = static_cast<outcome*>(context);
  ++out->calls;
  out->st = st;
}

} // namespace

int main() {
  example::temp_file file;
  auto medium = pm::backing::file(file.path(), {.size = 1 << 20});
  if (!medium) return example::fail("backing::file", medium.error());
  pm::file_sync_provider provider(*medium); // flush = fdatasync(2) of the file
  boost::asio::io_context io; // the device's executor; raw submit() never uses it
  device dev(io, *medium, {}, provider);

  char record[] = "flushkit: durable when acknowledged";
  const std::string_view text(record, std::strlen(record));
  const flushkit::segment seg{record, text.size()};
  flushkit::request req(flushkit::req_op::write, 4096, {&seg, 1}, flushkit::req_flags::fua);
  outcome out;
  req.on_complete(&on_done, &out); // arm the waiter first, then submit
  dev.submit(req);                 // copy, then fdatasync (FUA); the callback has run

  int failures = example::check(out.calls == 1 && !out.st, "FUA write completed with success");
  failures += example::check(provider.flushes() == 1, "one fdatasync for the FUA");
  failures += example::check(example::file_holds(file.path(), 4096, text), "the file holds the record");

  // The same request, reused for a write past the end of the medium.
  req.prepare(flushkit::req_op::write, medium->size(), {&seg, 1}, flushkit::req_flags::fua);
  outcome bad;
  req.on_complete(&on_done, &bad);
  dev.submit(req);
  failures += example::check(bad.calls == 1 && bad.st == flushkit::errc::invalid_request,
                             "out-of-bounds write: invalid_request");
  failures += example::check(provider.flushes() == 1, "a failed write is never flushed");

  dev.remove(); // later submissions fail with shutting_down
  return failures == 0 ? 0 : 1;
}
