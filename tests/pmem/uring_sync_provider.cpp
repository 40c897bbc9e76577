#if __has_include(<liburing.h>)
#include <flushkit/pmem/uring_sync_provider.hpp>

#include <flushkit/coalesce/coalescer.hpp>
#include <flushkit/core/region.hpp>
#include <flushkit/core/request.hpp>
#include <flushkit/pmem/backing.hpp>
#include <flushkit/pmem/pmem_device.hpp>

#include "support/pmem_support.hpp"

#include <doctest/doctest.h>

#include <boost/asio/buffer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string_view>
#include <system_error>

#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace pm = flushkit::pmem;
using io_executor = boost::asio::io_context::executor_type;
using provider_t = pm::uring_sync_provider<io_executor>;

namespace {

/// Why io_uring cannot be tested here, or nullptr when it can.
const char* skip_reason() {
  static const flushkit::status st = provider_t::available();
  return st ? "skipped: io_uring_queue_init fails here" : nullptr;
}

#define FK_REQUIRE_URING()                                                                                             \
  if (const char* why = skip_reason()) {                                                                               \
    MESSAGE(why << " (" << provider_t::available().message() << ")");                                                 \
    return;                                                                                                            \
  }

/// A request whose completion records its status.
struct recorded {
  flushkit::request req{flushkit::req_op::flush, 0, {}};
  int completions = 0;
  flushkit::status result{};
  recorded() {
    req.on_complete(
        [](void* c, flushkit::request&, const flushkit::status& st) {
          auto* self = static_cast<recorded*>(c);
          ++self->completions;
          self->result = st;
        },
        this);
  }
};

/// Hands `r` to `p` the way a region does.
void submit(provider_t& p, recorded& r) {
  const flushkit::flush_result fr = p.flush(r.req);
  if (!fr.is_async()) r.req.complete(fr.sync_status());
}

constexpr std::string_view record = "durable through io_uring";

/// A 64 KiB file medium and the event loop a provider completes on.
struct file_rig {
  flushkit::test::temp_file file;
  pm::result<pm::backing> medium = pm::backing::file(file.path(), {.size = 1 << 16});
  boost::asio::io_context io;
  file_rig() { REQUIRE(medium); }
};

/// Installs a seccomp filter in this process (after which it cannot be lifted).
template <std::size_t N> bool install_filter(sock_filter (&filter)[N]) {
  sock_fprog prog{static_cast<unsigned short>(N), filter};
  return ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 && ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0;
}

/// Forbids io_uring_setup in this process (it fails with EPERM).
bool forbid_io_uring_setup() {
  sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  return install_filter(filter);
}

/// Makes io_uring_enter fail with EAGAIN whenever it would submit exactly one SQE.
bool refuse_single_submissions() {
  sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_enter, 0, 3),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, args[1])),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 1, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EAGAIN & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  return install_filter(filter);
}

/// Runs `body` in a child process and returns its exit status (`body`'s
/// value, or -1 when it did not exit normally). The child runs no doctest
/// code: `body` reports through its return value.
template <class Body> int in_child(Body body) {
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) ::_exit(body());
  int wstatus = 0;
  REQUIRE(::waitpid(child, &wstatus, 0) == child);
  return WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
}

} // namespace

TEST_SUITE("pmem/uring_sync_provider") {

TEST_CASE("a FUA write through the provider is on the file when it completes, and the loop then runs dry") {
  FK_REQUIRE_URING();
  file_rig rig;
  auto& medium = rig.medium;
  auto& io = rig.io;
  provider_t p(io, *medium);
  REQUIRE_FALSE(p.usable());
  pm::pmem_device<flushkit::region<provider_t&>, io_executor> dev(io, *medium, {}, p);
  REQUIRE_FALSE(dev.error());
  flushkit::status result = make_error_code(flushkit::errc::timeout);
  dev.async_write(4096, boost::asio::buffer(record), flushkit::req_flags::fua,
                  [&](const flushkit::status& st) { result = st; });
  io.run(); // returns: the provider holds the loop only while a flush is in flight
  CHECK_FALSE(result);
  CHECK(p.flushes() == 1);
  CHECK(p.idle());
  std::array<char, record.size()> back{};
  const int fd = ::open(rig.file.path(), O_RDONLY);
  REQUIRE(fd >= 0);
  CHECK(::pread(fd, back.data(), back.size(), 4096) == static_cast<::ssize_t>(back.size()));
  ::close(fd);
  CHECK(std::string_view(back.data(), back.size()) == record);
  dev.remove();
}

TEST_CASE("the fsync's error reaches the request: a pipe cannot be synced (EINVAL)") {
  FK_REQUIRE_URING();
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  boost::asio::io_context io;
  {
    provider_t p(io, fds[1]);
    REQUIRE_FALSE(p.usable());
    recorded r;
    submit(p, r);
    CHECK(r.completions == 0); // never inside flush()
    io.run();
    CHECK(r.completions == 1);
    CHECK(r.result == std::errc::invalid_argument);
    CHECK(p.idle());
  }
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST_CASE("more flushes than ring entries wait in the provider and all complete") {
  FK_REQUIRE_URING();
  file_rig rig;
  auto& medium = rig.medium;
  auto& io = rig.io;
  provider_t p(io, *medium, {.entries = 1});
  recorded r[5];
  for (recorded& x : r) submit(p, x);
  io.run();
  for (const recorded& x : r) {
    CHECK(x.completions == 1);
    CHECK_FALSE(x.result);
  }
  CHECK(p.flushes() == 5);
  CHECK(p.idle());
}

TEST_CASE("bad options and shutdown are refused with a clear status") {
  FK_REQUIRE_URING();
  file_rig rig;
  auto& medium = rig.medium;
  auto& io = rig.io;
  provider_t zero(io, *medium, {.entries = 0});
  CHECK(zero.usable() == flushkit::errc::invalid_request);
  provider_t no_file(io, -1);
  CHECK(no_file.usable() == flushkit::errc::invalid_request);
  recorded a;
  submit(no_file, a);
  CHECK(a.result == flushkit::errc::invalid_request);

  provider_t p(io, *medium);
  p.shutdown();
  recorded b;
  submit(p, b);
  CHECK(b.completions == 1);
  CHECK(b.result == flushkit::errc::shutting_down);
  CHECK(p.flushes() == 0);
}

TEST_CASE("where io_uring_setup is forbidden, the provider says so and a device refuses it") {
  FK_REQUIRE_URING();
  flushkit::test::temp_file f;
  const int result = in_child([&] {
    if (!forbid_io_uring_setup()) return 10;
    if (provider_t::available() != std::errc::operation_not_permitted) return 11;
    auto medium = pm::backing::file(f.path(), {.size = 1 << 16});
    if (!medium) return 12;
    boost::asio::io_context io;
    provider_t p(io, *medium);
    if (p.usable() != std::errc::operation_not_permitted) return 13;
    pm::pmem_device<flushkit::region<provider_t&>, io_executor> dev(io, *medium, {}, p);
    if (dev.error() != std::errc::operation_not_permitted) return 14;
    return 0;
  });
  CHECK(result == 0);
}

TEST_CASE("a submission the kernel refuses fails its own request once, and the next flush is unaffected") {
  FK_REQUIRE_URING();
  flushkit::test::temp_file f;
  const int result = in_child([&] {
    auto medium = pm::backing::file(f.path(), {.size = 1 << 16});
    if (!medium) return 10;
    boost::asio::io_context io;
    provider_t p(io, *medium);
    if (p.usable()) return 11;
    if (!refuse_single_submissions()) return 12;
    recorded a, b;
    submit(p, a); // one SQE: io_uring_enter fails with EAGAIN
    if (a.completions != 1 || a.result != std::errc::resource_unavailable_try_again) return 13;
    submit(p, b); // the refused SQE (now a NOP) and b's go in together
    io.run();
    if (a.completions != 1) return 14; // never completed again by the refused SQE
    if (b.completions != 1 || b.result) return 15;
    if (!p.idle()) return 16;
    return 0;
  });
  CHECK(result == 0);
}

TEST_CASE("behind a coalescer, writes started in one turn share the second flush") {
  FK_REQUIRE_URING();
  file_rig rig;
  auto& medium = rig.medium;
  auto& io = rig.io;
  provider_t p(io, *medium);
  flushkit::coalescer<provider_t&, io_executor> group(io, p);
  pm::pmem_device<flushkit::region<flushkit::coalescer<provider_t&, io_executor>&>, io_executor> dev(io, *medium, {},
                                                                                                      group);
  int done = 0, failed = 0;
  for (int i = 0; i < 16; ++i)
    dev.async_write(static_cast<std::uint64_t>(i) * 4096, boost::asio::buffer(record), flushkit::req_flags::fua,
                    [&](const flushkit::status& st) {
                      ++done;
                      failed += st ? 1 : 0;
                    });
  io.run();
  CHECK(done == 16);
  CHECK(failed == 0);
  // The first write finds the coalescer idle and is flushed alone; the other 15 share the next fsync.
  CHECK(p.flushes() == 2);
  CHECK(group.stats().largest_batch == 15);
  dev.remove();
}

} // TEST_SUITE

#else // no liburing at build time: say so where the tests would have run

#include <doctest/doctest.h>

TEST_SUITE("pmem/uring_sync_provider") {
TEST_CASE("the io_uring provider's tests") {
  MESSAGE("skipped: built without liburing (Debian liburing-dev); pmem/uring_sync_provider.hpp needs it");
}
} // TEST_SUITE

#endif // __has_include(<liburing.h>)
