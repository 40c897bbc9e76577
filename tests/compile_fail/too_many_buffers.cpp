// EXPECT: const_buffers
// Nine buffers in a sequence whose type fixes its length: more than
// max_io_buffers (8) is refused when the program is compiled.
#include <flushkit/core/region.hpp>
#include <flushkit/pmem/pmem_device.hpp>
#include <flushkit/pmem/volatile_provider.hpp>

#include <boost/asio/buffer.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <array>
#include <vector>

int main() {
  boost::asio::io_context io;
  std::vector<std::byte> medium(4096);
  flushkit::pmem::pmem_device<flushkit::region<flushkit::pmem::volatile_provider>> dev(io, std::span(medium),
                                                                                       flushkit::pmem::device_options{});
  std::array<boost::asio::const_buffer, flushkit::max_io_buffers + 1> nine{};
  dev.async_write(0, nine, flushkit::req_flags::fua, boost::asio::detached);
}
