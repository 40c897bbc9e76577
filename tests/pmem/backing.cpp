#include <flushkit/pmem/backing.hpp>

#include "support/pmem_support.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <vector>

#include <csignal>

#include <fcntl.h>
#include <unistd.h>

#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <system_error>

namespace pm = flushkit::pmem;

namespace {

/// What FIEMAP says about the extents of a file: how many there are and how
/// many are unwritten (allocated by fallocate, never written). Empty when the
/// file system does not answer FIEMAP (tmpfs, ...).
struct extent_census {
  std::uint32_t extents = 0;
  std::uint32_t unwritten = 0;
};

std::optional<extent_census> census_of(int fd) {
  constexpr std::uint32_t max_extents = 256;
  std::vector<std::byte> buf(sizeof(::fiemap) + max_extents * sizeof(::fiemap_extent));
  auto* fm = reinterpret_cast<::fiemap*>(buf.data());
  fm->fm_start = 0;
  fm->fm_length = FIEMAP_MAX_OFFSET;
  fm->fm_flags = FIEMAP_FLAG_SYNC;
  fm->fm_extent_count = max_extents;
  if (::ioctl(fd, FS_IOC_FIEMAP, fm) != 0) return std::nullopt;
  extent_census c;
  c.extents = fm->fm_mapped_extents;
  for (std::uint32_t i = 0; i < fm->fm_mapped_extents && i < max_extents; ++i)
    if (fm->fm_extents[i].fe_flags & FIEMAP_EXTENT_UNWRITTEN) ++c.unwritten;
  return c;
}

/// Pages of [p, p + len) resident in the page cache (mincore).
std::size_t resident_pages(const void* p, std::size_t len) {
  const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> vec((len + page - 1) / page);
  REQUIRE(::mincore(const_cast<void*>(p), len, vec.data()) == 0);
  return static_cast<std::size_t>(std::count_if(vec.begin(), vec.end(), [](unsigned char v) { return (v & 1) != 0; }));
}

/// Pages of the file's first `len` bytes resident in the page cache, seen through a mapping of its own.
std::size_t resident_file_pages(int fd, std::size_t len) {
  void* p = ::mmap(nullptr, len, PROT_READ, MAP_SHARED, fd, 0);
  REQUIRE(p != MAP_FAILED);
  const std::size_t n = resident_pages(p, len);
  ::munmap(p, len);
  return n;
}

} // namespace

TEST_SUITE("pmem/backing") {

TEST_CASE("a file mapping starts with the range's clean pages dropped from the page cache (no large folios)") {
  flushkit::test::temp_file f;
  constexpr std::size_t len = 1 << 20;
  {
    const int fd = ::open(f.path(), O_RDWR);
    REQUIRE(fd >= 0);
    const std::vector<std::byte> ones(len, std::byte{1});
    REQUIRE(::pwrite(fd, ones.data(), len, 0) == static_cast<::ssize_t>(len)); // one large write: large folios
    REQUIRE(::fdatasync(fd) == 0);
    const std::size_t cached = resident_file_pages(fd, len);
    ::close(fd);
    if (cached == 0) {
      MESSAGE("skipped: the file system of /tmp keeps no written pages cached");
      return;
    }
  }
  auto b = pm::backing::file(f.path(), {.size = len});
  REQUIRE(b);
  if (b->map_sync()) {
    MESSAGE("skipped: a MAP_SYNC mapping has no page cache");
    return;
  }
  CHECK(resident_pages(b->data(), len) == 0);
  CHECK(b->data()[len - 1] == std::byte{1}); // read back from the file
}

TEST_CASE_TEMPLATE("every backing maps zeroed writable memory of the requested size", K, flushkit::test::anonymous_kind,
                   flushkit::test::memfd_kind, flushkit::test::file_kind) {
  flushkit::test::test_medium<K::value> m(3 * 4096 + 100);
  REQUIRE(m.ok());
  CHECK(m.backing().size() == 3 * 4096 + 100);
  CHECK(m.backing().kind() == K::value);
  for (std::byte b : m.bytes()) REQUIRE(b == std::byte{0});
  std::memset(m.bytes().data() + 5000, 0x42, 10);
  CHECK(m.medium_now()[5004] == std::byte{0x42});
  CHECK((m.backing().fd() >= 0) == (K::value != pm::backing_kind::anonymous));
  const pm::persistence expected =
      K::value == pm::backing_kind::file ? pm::persistence::page_cache : pm::persistence::none;
  if (!m.backing().map_sync()) CHECK(m.backing().persistence_mode() == expected);
}

TEST_CASE("bad sizes and offsets are invalid_request") {
  CHECK(pm::backing::anonymous(0).error() == flushkit::errc::invalid_request);
  CHECK(pm::backing::memfd(0).error() == flushkit::errc::invalid_request);
  flushkit::test::temp_file f; // exists, empty
  CHECK(pm::backing::file(f.path()).error() == flushkit::errc::invalid_request); // size 0 of an empty file
  CHECK(pm::backing::file(f.path(), {.size = 4096, .offset = 100}).error() == flushkit::errc::invalid_request);
  CHECK(pm::backing::file(f.path(), {.size = ~std::size_t{0}}).error() == flushkit::errc::invalid_request);
}

TEST_CASE("missing files and permissions give the system error") {
  CHECK(pm::backing::file("/nonexistent-dir/x", {.size = 4096}).error() == std::errc::no_such_file_or_directory);
  CHECK(pm::backing::file("/tmp/flushkit-surely-missing-file", {.size = 4096, .create = false}).error() ==
        std::errc::no_such_file_or_directory);
  if (::geteuid() != 0) { // root bypasses file permissions
    flushkit::test::temp_file f;
    ::chmod(f.path(), 0400);
    CHECK(pm::backing::file(f.path(), {.size = 4096}).error() == std::errc::permission_denied);
  }
  CHECK(pm::backing::file("/proc/version", {.size = 4096, .create = false}).error());
}

TEST_CASE("a file backing survives reopening; size 0 maps the existing file") {
  flushkit::test::temp_file f;
  {
    auto b = pm::backing::file(f.path(), {.size = 8192});
    REQUIRE(b);
    std::memset(b->data() + 4096, 0x7e, 4096);
    CHECK_FALSE(b->msync(4100, 10));
    CHECK_FALSE(b->fdatasync());
    CHECK(b->msync(8000, 500) == flushkit::errc::invalid_request);
  }
  auto again = pm::backing::file(f.path(), {.create = false});
  REQUIRE(again);
  REQUIRE(again->size() == 8192);
  CHECK(again->data()[4096] == std::byte{0x7e});
  CHECK(again->data()[8191] == std::byte{0x7e});
  CHECK(again->data()[0] == std::byte{0});
  auto tail = pm::backing::file(f.path(), {.offset = 4096, .create = false});
  REQUIRE(tail);
  CHECK(tail->size() == 4096);
  CHECK(tail->data()[0] == std::byte{0x7e});
}

TEST_CASE("MAP_SYNC is reported truthfully and can be required") {
  flushkit::test::temp_file f;
  auto b = pm::backing::file(f.path(), {.size = 4096});
  REQUIRE(b);
  auto strict = pm::backing::file(f.path(), {.size = 4096, .require_map_sync = true});
  if (b->map_sync()) {
    CHECK(strict);
  } else { // /tmp is not DAX on ordinary machines
    CHECK(b->persistence_mode() == pm::persistence::page_cache);
    CHECK(strict.error() == flushkit::errc::not_supported);
  }
  auto plain = pm::backing::file(f.path(), {.size = 4096, .try_map_sync = false});
  REQUIRE(plain);
  CHECK_FALSE(plain->map_sync());
}

TEST_CASE("backings move and release their mapping") {
  auto a = pm::backing::memfd(4096);
  REQUIRE(a);
  pm::backing x = std::move(a).value();
  const int fd = x.fd();
  pm::backing y;
  CHECK_FALSE(y.valid());
  y = std::move(x);
  CHECK(y.valid());
  CHECK(y.fd() == fd);
  CHECK_FALSE(x.valid());
  y.reset();
  CHECK_FALSE(y.valid());
  CHECK(::fcntl(fd, F_GETFD) == -1); // closed
  auto anon = pm::backing::anonymous(4096);
  REQUIRE(anon);
  CHECK(anon->fdatasync()); // no file behind it
}

TEST_CASE("a grown file is zero-filled and synced by default, so no block is left unwritten") {
  flushkit::test::temp_file f;
  auto b = pm::backing::file(f.path(), {.size = 1 << 20});
  REQUIRE(b);
  const std::optional<extent_census> c = census_of(b->fd());
  if (!c) {
    MESSAGE("skipped: the file system of /tmp does not answer FIEMAP");
    return;
  }
  CHECK(c->extents >= 1);
  CHECK(c->unwritten == 0);
  CHECK(std::all_of(b->data(), b->data() + b->size(), [](std::byte x) { return x == std::byte{0}; }));
}

TEST_CASE("preallocation::fallocate only allocates (unwritten extents where the file system has them)") {
  flushkit::test::temp_file f;
  auto b = pm::backing::file(f.path(), {.size = 1 << 20, .preallocate = pm::preallocation::fallocate});
  REQUIRE(b);
  const std::optional<extent_census> c = census_of(b->fd());
  if (!c || c->unwritten == 0) {
    MESSAGE("skipped: the file system of /tmp reports no unwritten extents");
    return;
  }
  CHECK(c->unwritten >= 1);
  CHECK(std::all_of(b->data(), b->data() + b->size(), [](std::byte x) { return x == std::byte{0}; }));
}

TEST_CASE("zero-fill grows only the missing part and keeps what the file already holds") {
  flushkit::test::temp_file f;
  {
    auto first = pm::backing::file(f.path(), {.size = 4096});
    REQUIRE(first);
    std::memcpy(first->data(), "kept", 4);
    REQUIRE_FALSE(first->msync(0, 4096));
  }
  auto grown = pm::backing::file(f.path(), {.size = 3 * 4096});
  REQUIRE(grown);
  CHECK(std::memcmp(grown->data(), "kept", 4) == 0);
  CHECK(grown->data()[4096] == std::byte{0});
}

TEST_CASE("a grow that fails leaves the file at its old size") {
  flushkit::test::temp_file f; // empty
  ::rlimit old{};
  REQUIRE(::getrlimit(RLIMIT_FSIZE, &old) == 0);
  const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  ::rlimit small = old;
  small.rlim_cur = 64 * 1024; // the file may not grow past 64 KiB: the 1 MiB grow fails with EFBIG
  REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
  auto b = pm::backing::file(f.path(), {.size = 1 << 20});
  ::setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, old_handler);
  REQUIRE_FALSE(b);
  CHECK(b.error() == std::errc::file_too_large);
  struct ::stat sb {};
  REQUIRE(::stat(f.path(), &sb) == 0);
  CHECK(sb.st_size == 0);
}

} // TEST_SUITE
