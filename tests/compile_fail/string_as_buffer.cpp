// EXPECT: const_buffers
// A std::string is not a buffer sequence: async_write refuses it at the call,
// naming the concept, instead of failing deep inside the operation.
#include <flushkit/core/region.hpp>
#include <flushkit/pmem/pmem_device.hpp>
#include <flushkit/pmem/volatile_provider.hpp>

#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <string>
#include <vector>

int main() {
  boost::asio::io_context io;
  std::vector<std::byte> medium(4096);
  flushkit::pmem::pmem_device<flushkit::region<flushkit::pmem::volatile_provider>> dev(io, std::span(medium),
                                                                                       flushkit::pmem::device_options{});
  const std::string record = "not a buffer";
  dev.async_write(0, record, flushkit::req_flags::fua, boost::asio::detached);
}
