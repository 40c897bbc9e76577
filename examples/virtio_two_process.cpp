// examples/virtio_two_process.cpp - virtio-pmem host device and guest driver as two processes (memfd + eventfds).
//
// The parent creates the transport (a memfd holding the control registers and
// guest RAM), two eventfds (kick, interrupt) and the backing file, then forks.
//  - child = guest: re-maps the memfd and the backing file itself, probes
//    `pmem_guest` and writes records with FUA from two coroutines through
//    `pmem_device<region<pmem_guest&>>`; each FUA becomes a virtio-pmem flush
//    request on the shared ring.
//  - parent = host: `pmem_host` answers the requests, running fdatasync of
//    the backing file on a thread pool.
// After the child exits, the parent reads the file back and checks every
// record. Exits 0 on success, non-zero on any error or after 4 s.
#include <flushkit/virtio/eventfd_listener.hpp>
#include <flushkit/virtio/eventfd_notifier.hpp>
#include <flushkit/virtio/pmem_guest.hpp>
#include <flushkit/virtio/pmem_host.hpp>
#include <flushkit/virtio/shm_transport.hpp>

#include <flushkit/core/region.hpp>
#include <flushkit/pmem/backing.hpp>
#include <flushkit/pmem/file_sync_provider.hpp>
#include <flushkit/pmem/pmem_device.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include <csignal>
#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

namespace asio = boost::asio;
namespace fv = flushkit::virtio;
namespace pm = flushkit::pmem;
using io_ex = asio::io_context::executor_type;

namespace {

constexpr std::size_t pmem_bytes = 64 * 1024;
constexpr std::uint64_t pmem_guest_address = 0x1'0000'0000; // where the range sits in guest physical memory
constexpr std::size_t record_size = 1024;
constexpr unsigned writers = 2;
constexpr unsigned records_per_writer = 8;

struct channels {
  int kick = -1;  // guest -> host
  int irq = -1;   // host -> guest
  int ready = -1; // host -> guest, once: the device is realized (registers published)
};

bool wait_ready(int fd) {
  pollfd p{fd, POLLIN, 0};
  std::uint64_t v = 0;
  return ::poll(&p, 1, 3000) == 1 && ::read(fd, &v, sizeof v) == static_cast<ssize_t>(sizeof v);
}

void fill_record(std::array<char, record_size>& rec, unsigned writer, unsigned i) {
  std::memset(rec.data(), 'a' + static_cast<int>((writer * 5 + i) % 26), rec.size());
  std::snprintf(rec.data(), rec.size(), "writer %u record %u", writer, i);
}
std::uint64_t record_offset(unsigned writer, unsigned i) { return (writer * records_per_writer + i) * record_size; }

// ---- guest (child process) ---------------------------------------------------

using guest_t = fv::pmem_guest<io_ex, fv::eventfd_notifier>;
using guest_device = pm::pmem_device<flushkit::region<guest_t&>>;

void guest_interrupt(void* g) { static_cast<guest_t*>(g)->on_interrupt(); }

asio::awaitable<flushkit::status> write_records(guest_device* dev, unsigned writer) {
  std::array<char, record_size> rec{};
  for (unsigned i = 0; i < records_per_writer; ++i) {
    fill_record(rec, writer, i);
    const auto [st] = co_await dev->async_write(record_offset(writer, i), asio::buffer(rec), flushkit::req_flags::fua,
                                                asio::as_tuple(asio::use_awaitable));
    if (st) co_return st;
  }
  co_return flushkit::status{};
}

int run_guest(int transport_fd, const std::string& path, channels ch) {
  fv::shm_transport shm; // a mapping of its own, at its own host address
  if (shm.attach(transport_fd)) return 10;
  auto backing = pm::backing::file(path.c_str(), {.size = pmem_bytes, .create = false});
  if (!backing) return 11;

  asio::io_context io;
  fv::eventfd_notifier kick(ch.kick);
  guest_t guest(io.get_executor(), shm.control(), shm.memory(),
                fv::driver_area{shm.guest_base(), shm.ram(), shm.ram_size()}, kick);
  if (!wait_ready(ch.ready)) return 12;
  if (guest.probe()) return 13;
  if (guest.range().size != pmem_bytes || guest.range().start != pmem_guest_address) return 14;
  fv::eventfd_listener<> interrupts(io.get_executor(), &guest_interrupt, &guest);
  if (interrupts.open(ch.irq)) return 15;
  interrupts.start(); // from here on, stopped before every return

  auto guard = asio::make_work_guard(io);
  std::thread loop([&io] { io.run(); });
  int rc = 0;
  {
    guest_device dev(io, backing->bytes(), {}, guest);
    std::array<std::future<flushkit::status>, writers> done;
    for (unsigned w = 0; w < writers; ++w) done[w] = asio::co_spawn(io, write_records(&dev, w), asio::use_future);
    for (auto& f : done)
      if (f.get()) rc = 16;
    dev.remove(); // not on the loop thread: remove waits for the driver's executor
  }
  guest.remove();
  asio::post(io, [&interrupts] { interrupts.stop(); });
  guard.reset();
  loop.join();
  return rc;
}

// ---- host (parent process) ---------------------------------------------------

using host_t = fv::pmem_host<io_ex, asio::thread_pool::executor_type, fv::eventfd_notifier>;

int run_host(const fv::shm_transport& shm, const pm::backing& backing, channels ch, pid_t child) {
  asio::io_context io;
  asio::thread_pool pool(2);
  pm::file_sync_provider target(backing, pm::file_sync_mode::fdatasync);
  fv::eventfd_notifier irq(ch.irq);
  host_t host(io.get_executor(), pool.get_executor(), shm.control(), shm.memory(), target, irq,
              fv::pmem_config{pmem_guest_address, pmem_bytes});
  fv::eventfd_listener<> kicks(io.get_executor(), &host_t::kick_entry, &host);
  if (kicks.open(ch.kick)) return 20;
  kicks.start();
  fv::eventfd_notifier(ch.ready).notify(); // the guest may probe now

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(4);
  int wstatus = 0;
  pid_t done = 0;
  while (done == 0 && std::chrono::steady_clock::now() < deadline) {
    io.run_for(std::chrono::milliseconds(5));
    done = ::waitpid(child, &wstatus, WNOHANG);
  }
  if (done == 0) {
    std::fprintf(stderr, "guest did not finish in time\n");
    ::kill(child, SIGKILL);
    ::waitpid(child, &wstatus, 0);
  }
  kicks.stop();
  io.restart();
  while (kicks.armed() || host.busy() > 0) io.run_one();
  pool.join();

  const fv::pmem_host_counters c = host.counters();
  std::printf("host: %llu requests, %llu fdatasyncs, %llu failures, %llu malformed\n",
              static_cast<unsigned long long>(c.requests), static_cast<unsigned long long>(c.flushes_issued),
              static_cast<unsigned long long>(c.failures), static_cast<unsigned long long>(c.malformed));
  if (done == 0 || !WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
    std::fprintf(stderr, "guest failed (status %d)\n", WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1);
    return 21;
  }
  if (c.requests < writers * records_per_writer || c.failures != 0 || c.malformed != 0) return 22;
  return 0;
}

// Reads the file (not the mapping) and compares every record.
int verify_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 30;
  std::array<char, record_size> want{}, got{};
  int rc = 0;
  for (unsigned w = 0; w < writers && rc == 0; ++w)
    for (unsigned i = 0; i < records_per_writer && rc == 0; ++i) {
      fill_record(want, w, i);
      const auto off = static_cast<off_t>(record_offset(w, i));
      if (::pread(fd, got.data(), got.size(), off) != static_cast<ssize_t>(got.size()) || got != want) rc = 31;
    }
  ::close(fd);
  return rc;
}

int run() {
  const std::string path = "/tmp/flushkit-virtio-two-process-" + std::to_string(::getpid());
  auto backing = pm::backing::file(path.c_str(), {.size = pmem_bytes});
  if (!backing) return 1;
  fv::shm_transport shm;
  if (shm.create(1 << 20)) return 2;
  flushkit::status st;
  const channels ch{fv::make_eventfd(st), fv::make_eventfd(st), fv::make_eventfd(st)};
  if (ch.kick < 0 || ch.irq < 0 || ch.ready < 0) return 3;

  std::fflush(nullptr);
  const pid_t child = ::fork();
  if (child < 0) return 4;
  if (child == 0) ::_exit(run_guest(shm.fd(), path, ch));

  int rc = run_host(shm, *backing, ch, child);
  if (rc == 0) rc = verify_file(path);
  ::close(ch.kick);
  ::close(ch.irq);
  ::close(ch.ready);
  ::unlink(path.c_str());
  if (rc == 0) std::printf("%u FUA records written by the guest process are in the file\n", writers * records_per_writer);
  return rc;
}

} // namespace

int main() {
  const int rc = run();
  if (rc != 0) std::fprintf(stderr, "virtio_two_process failed: %d\n", rc);
  return rc;
}
