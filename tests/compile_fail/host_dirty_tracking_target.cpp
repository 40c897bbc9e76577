// EXPECT: flushkit: a pmem_host flush target must make the whole pmem range durable
// The guest writes into the pmem range without the host seeing it: a
// cache-line provider as the host's flush target would write back nothing.
#include <flushkit/pmem/cacheline_provider.hpp>
#include <flushkit/virtio/inproc_transport.hpp>
#include <flushkit/virtio/pmem_host.hpp>

#include <boost/asio/io_context.hpp>

int main() {
  using ex_t = boost::asio::io_context::executor_type;
  boost::asio::io_context io;
  flushkit::virtio::inproc_pair<ex_t> pair(io.get_executor(), io.get_executor(), 64 * 1024);
  flushkit::pmem::cacheline_provider<> lines;
  flushkit::virtio::pmem_host<ex_t, ex_t, flushkit::virtio::inproc_notifier<ex_t>> host(
      io.get_executor(), io.get_executor(), pair.control(), pair.memory(), lines, pair.interrupt(),
      flushkit::virtio::pmem_config{0x100000000, 4096});
  return host.busy() == 0 ? 0 : 1;
}
