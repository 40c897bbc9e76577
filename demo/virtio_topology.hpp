// demo/virtio_topology.hpp - virtio-pmem host device + guest driver wiring, shared by flushkit-demo and flushkit-bench.
//
// Two topologies with the same surface:
//  - `inproc_topology`: `pmem_host` and `pmem_guest` in this process over an
//    `inproc_pair` (one event-loop thread each, fdatasync on a 2-thread pool);
//  - `two_process_topology`: the host in a forked child over `shm_transport`
//    (memfd) + eventfds, the guest in this process.
// Both expose `guest()` (a probed `pmem_guest`, to put under a region or a
// coalescer), `host_flushes()` (fdatasync calls so far, any thread),
// `shutdown()` (guest.remove(), then the host side stops; idempotent; call
// after `pmem_device::remove()` and once no request is in flight) and
// `totals()` (host counters, final after `shutdown()`). Construction throws
// std::runtime_error when the wiring fails. The medium (a file backing) must
// outlive the topology.
#pragma once

#include "loop_thread.hpp"

#include <flushkit/pmem/backing.hpp>
#include <flushkit/pmem/file_sync_provider.hpp>
#include <flushkit/virtio/eventfd_listener.hpp>
#include <flushkit/virtio/eventfd_notifier.hpp>
#include <flushkit/virtio/inproc_transport.hpp>
#include <flushkit/virtio/pmem_guest.hpp>
#include <flushkit/virtio/pmem_host.hpp>
#include <flushkit/virtio/shm_transport.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

#include <csignal>
#include <poll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace flushkit::demo {

namespace asio = boost::asio;
namespace fv = flushkit::virtio;
namespace pm = flushkit::pmem;
using pool_ex = asio::thread_pool::executor_type;

inline constexpr std::uint64_t pmem_guest_address = 0x1'0000'0000; // the range in guest physical memory
inline constexpr std::uint64_t guest_ram_bytes = 1 << 20;          // rings + request/response slots
inline constexpr std::size_t host_pool_threads = 2;                // fdatasync runs here

/// Host counters the topologies report.
struct host_totals {
  std::uint64_t requests = 0, flushes = 0, failures = 0, malformed = 0;
};

/// Waits until every handler queued on `io` before the call has run.
inline void settle(asio::io_context& io) { asio::post(io, asio::use_future).get(); }

[[noreturn]] inline void wiring_failed(const char* what, const status& st) {
  throw std::runtime_error(std::string("virtio wiring: ") + what + ": " + st.message());
}

// ---- in-process ------------------------------------------------------------------

/// Host and guest in this process, each on its own event-loop thread.
class inproc_topology {
public:
  using guest_t = fv::pmem_guest<io_ex, fv::inproc_notifier<io_ex>>;
  using host_t = fv::pmem_host<io_ex, pool_ex, fv::inproc_notifier<io_ex>>;

  explicit inproc_topology(const pm::backing& medium)
      : target_(medium, pm::file_sync_mode::fdatasync),
        pair_(host_loop_.executor(), guest_loop_.executor(), guest_ram_bytes),
        host_(host_loop_.executor(), pool_.get_executor(), pair_.control(), pair_.memory(), target_,
              pair_.interrupt(), fv::pmem_config{pmem_guest_address, medium.size()}),
        guest_(guest_loop_.executor(), pair_.control(), pair_.memory(),
               fv::driver_area{pair_.guest_base(), pair_.ram(), pair_.ram_size()}, pair_.kick()) {
    if (!pair_.ok()) wiring_failed("inproc_pair", pair_.error());
    host_.set_config_notifier(pair_.config_change());
    pair_.connect_device(&host_t::kick_entry, &host_);
    pair_.connect_driver(&on_interrupt, &guest_);
    pair_.connect_config(&on_config, &guest_);
    host_loop_.start();
    guest_loop_.start();
    if (const status st = guest_.probe()) wiring_failed("probe", st);
  }
  inproc_topology(const inproc_topology&) = delete;
  inproc_topology& operator=(const inproc_topology&) = delete;
  ~inproc_topology() { shutdown(); }

  guest_t& guest() noexcept { return guest_; }
  std::uint64_t host_flushes() const noexcept { return host_.counters().flushes_issued; }
  host_totals totals() const noexcept {
    const fv::pmem_host_counters c = host_.counters();
    return {c.requests, c.flushes_issued, c.failures, c.malformed};
  }

  /// guest.remove(); every kick already queued runs; the pool finishes its
  /// flushes, whose answers run on the host loop; then both loops stop.
  void shutdown() {
    if (std::exchange(down_, true)) return;
    guest_.remove();
    settle(host_loop_.io);
    pool_.join();
    host_loop_.join();
    guest_loop_.join();
  }

private:
  static void on_interrupt(void* g) { static_cast<guest_t*>(g)->on_interrupt(); }
  static void on_config(void* g) { static_cast<guest_t*>(g)->on_config_change(); }

  loop_thread host_loop_, guest_loop_;
  asio::thread_pool pool_{host_pool_threads};
  pm::file_sync_provider target_;
  fv::inproc_pair<io_ex> pair_;
  host_t host_;
  guest_t guest_;
  bool down_ = false;
};

// ---- two processes ---------------------------------------------------------------

/// An owned file descriptor.
struct owned_fd {
  int fd = -1;
  owned_fd() = default;
  explicit owned_fd(int f) noexcept : fd(f) {}
  owned_fd(const owned_fd&) = delete;
  owned_fd& operator=(const owned_fd&) = delete;
  ~owned_fd() {
    if (fd >= 0) ::close(fd);
  }
};

/// Counters the host process publishes in a MAP_SHARED page.
struct shared_host_counters {
  std::atomic<std::uint64_t> flushes{0}; // live: incremented after each fdatasync
  std::atomic<std::uint64_t> requests{0}, failures{0}, malformed{0}; // final, written at exit
};

/// The host's flush target in the child: fdatasync, counted in shared memory.
struct counting_target {
  pm::file_sync_provider* inner;
  std::atomic<std::uint64_t>* count;
  status flush() {
    const status st = inner->flush();
    count->fetch_add(1, std::memory_order_relaxed);
    return st;
  }
};

/// Host in a forked child (memfd + eventfds), guest in this process.
class two_process_topology {
public:
  using guest_t = fv::pmem_guest<io_ex, fv::eventfd_notifier>;
  using host_t = fv::pmem_host<io_ex, pool_ex, fv::eventfd_notifier>;

  explicit two_process_topology(const pm::backing& medium)
      : shared_(map_shared()), kick_(new_eventfd()), irq_(new_eventfd()), ready_(new_eventfd()),
        stop_(new_eventfd()), kick_notifier_(kick_.fd) {
    if (const status st = shm_.create(guest_ram_bytes)) wiring_failed("shm_transport", st);
    std::fflush(nullptr);
    const pid_t parent = ::getpid();
    child_ = ::fork(); // before this process starts any thread of its own
    if (child_ < 0) wiring_failed("fork", status(errno, boost::system::generic_category()));
    if (child_ == 0) ::_exit(host_main(medium, parent));
    guest_.emplace(guest_loop_.executor(), shm_.control(), shm_.memory(),
                   fv::driver_area{shm_.guest_base(), shm_.ram(), shm_.ram_size()}, kick_notifier_);
    try {
      start_guest();
    } catch (...) {
      abandon();
      throw;
    }
  }
  two_process_topology(const two_process_topology&) = delete;
  two_process_topology& operator=(const two_process_topology&) = delete;
  ~two_process_topology() {
    shutdown();
    ::munmap(shared_, sizeof(shared_host_counters));
  }

  guest_t& guest() noexcept { return *guest_; }
  std::uint64_t host_flushes() const noexcept { return shared_->flushes.load(std::memory_order_relaxed); }
  host_totals totals() const noexcept {
    return {shared_->requests.load(), shared_->flushes.load(), shared_->failures.load(), shared_->malformed.load()};
  }
  /// Exit status of the host process (-1 until `shutdown()` reaped it).
  int host_exit_status() const noexcept { return host_rc_; }

  /// guest.remove(); the host process is told to stop and reaped (killed
  /// after 10 s); the interrupt listener stops; the guest loop stops.
  void shutdown() {
    if (std::exchange(down_, true)) return;
    if (guest_) guest_->remove();
    fv::eventfd_notifier(stop_.fd).notify();
    host_rc_ = reap_child(child_, 10'000);
    asio::post(guest_loop_.io, [this] { interrupts_.stop(); });
    guest_loop_.join();
  }

private:
  static shared_host_counters* map_shared() {
    void* p = ::mmap(nullptr, sizeof(shared_host_counters), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) wiring_failed("mmap", status(errno, boost::system::generic_category()));
    return new (p) shared_host_counters;
  }
  static int new_eventfd() {
    status st;
    const int fd = fv::make_eventfd(st);
    if (fd < 0) wiring_failed("eventfd", st);
    return fd;
  }
  static bool wait_readable(int fd, int timeout_ms) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, timeout_ms) == 1;
  }
  // Waits (bounded) for the child to exit; SIGKILL after the timeout.
  static int reap_child(pid_t pid, int timeout_ms) {
    const owned_fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    if (pidfd.fd >= 0 && !wait_readable(pidfd.fd, timeout_ms)) ::kill(pid, SIGKILL);
    int ws = 0;
    if (::waitpid(pid, &ws, 0) != pid) return -1;
    return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + (WIFSIGNALED(ws) ? WTERMSIG(ws) : 0);
  }

  void start_guest() {
    if (const status st = interrupts_.open(irq_.fd)) wiring_failed("interrupt listener", st);
    guest_loop_.start();
    asio::post(guest_loop_.io, [this] { interrupts_.start(); });
    if (!wait_readable(ready_.fd, 5000)) wiring_failed("host process", make_error_code(errc::timeout));
    if (const status st = guest_->probe()) wiring_failed("probe", st);
  }

  // Set-up failed after the fork: the child dies, the guest loop stops.
  void abandon() noexcept {
    down_ = true;
    ::kill(child_, SIGKILL);
    host_rc_ = reap_child(child_, 0);
    asio::post(guest_loop_.io, [this] { interrupts_.stop(); });
    guest_loop_.join();
  }

  static void on_interrupt(void* t) { static_cast<two_process_topology*>(t)->guest_->on_interrupt(); }

  // ---- the host process ----
  struct host_stop {
    fv::eventfd_listener<>* kicks;
    fv::eventfd_listener<>* self;
    static void fire(void* c) {
      auto* s = static_cast<host_stop*>(c);
      s->kicks->stop();
      s->self->stop();
    }
  };

  // The host process: serves the ring until the stop eventfd fires, then
  // lets its in-flight flushes finish and publishes its counters.
  int host_main(const pm::backing& medium, pid_t parent) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) return 90;
    asio::io_context io;
    asio::thread_pool pool(host_pool_threads);
    pm::file_sync_provider fsync(medium, pm::file_sync_mode::fdatasync);
    counting_target target{&fsync, &shared_->flushes};
    fv::eventfd_notifier irq(irq_.fd);
    host_t host(io.get_executor(), pool.get_executor(), shm_.control(), shm_.memory(), target, irq,
                fv::pmem_config{pmem_guest_address, medium.size()});
    host_stop stop{};
    fv::eventfd_listener<> kicks(io.get_executor(), &host_t::kick_entry, &host);
    fv::eventfd_listener<> stopper(io.get_executor(), &host_stop::fire, &stop);
    stop = {&kicks, &stopper};
    if (kicks.open(kick_.fd) || stopper.open(stop_.fd)) return 91;
    kicks.start();
    stopper.start();
    fv::eventfd_notifier(ready_.fd).notify(); // registers published: the guest may probe
    io.run();                                 // until both listeners stopped
    pool.join();                              // flushes still running finish...
    io.restart();
    io.run();                                 // ...and their answers are pushed
    publish(host.counters());
    return host.busy() == 0 ? 0 : 92;
  }

  void publish(const fv::pmem_host_counters& c) noexcept {
    shared_->requests.store(c.requests);
    shared_->failures.store(c.failures);
    shared_->malformed.store(c.malformed);
  }

  loop_thread guest_loop_;
  shared_host_counters* shared_;
  fv::shm_transport shm_;
  owned_fd kick_, irq_, ready_, stop_;
  fv::eventfd_notifier kick_notifier_;
  pid_t child_ = -1;
  std::optional<guest_t> guest_;
  fv::eventfd_listener<> interrupts_{guest_loop_.executor(), &on_interrupt, this};
  int host_rc_ = -1;
  bool down_ = false;
};

} // namespace flushkit::demo
