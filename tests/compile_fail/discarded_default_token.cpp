// EXPECT: ignoring return value|nodiscard
// Without a token the write is a deferred operation: discarded, it never runs.
// The token-less overload is [[nodiscard]], so that mistake is a diagnostic.
#pragma GCC diagnostic error "-Wunused-result"
#include <flushkit/core/region.hpp>
#include <flushkit/pmem/pmem_device.hpp>
#include <flushkit/pmem/volatile_provider.hpp>

#include <boost/asio/buffer.hpp>
#include <boost/asio/io_context.hpp>

#include <vector>

int main() {
  boost::asio::io_context io;
  std::vector<std::byte> medium(4096);
  flushkit::pmem::pmem_device<flushkit::region<flushkit::pmem::volatile_provider>> dev(io, std::span(medium),
                                                                                       flushkit::pmem::device_options{});
  char record[] = "lost";
  dev.async_write(0, boost::asio::buffer(record), flushkit::req_flags::fua);
}
