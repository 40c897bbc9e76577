// bench/system_info.cpp - uname, /proc/cpuinfo, statfs, /sys/dev/block, the bench file.
#include "system_info.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <system_error>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <unistd.h>

namespace flushkit::bench {

namespace {

std::string compiler_and_build() {
  std::string s;
#if defined(__clang__)
  s = "clang-" + std::to_string(__clang_major__);
#elif defined(__GNUC__)
  s = "gcc-" + std::to_string(__GNUC__);
#endif
#if defined(NDEBUG) && defined(__OPTIMIZE__)
  s += " release";
#elif defined(__OPTIMIZE__)
  s += " optimised+assertions";
#else
  s += " debug";
#endif
  return s;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) != 0) continue;
    const auto colon = line.find(':');
    return colon == std::string::npos ? line : line.substr(line.find_first_not_of(' ', colon + 1));
  }
  return "unknown";
}

struct fs_name {
  unsigned long magic;
  const char* name;
};

constexpr fs_name fs_names[] = {
    {EXT4_SUPER_MAGIC, "ext4"},   {TMPFS_MAGIC, "tmpfs"},         {XFS_SUPER_MAGIC, "xfs"},
    {BTRFS_SUPER_MAGIC, "btrfs"}, {OVERLAYFS_SUPER_MAGIC, "overlay"}, {NFS_SUPER_MAGIC, "nfs"},
    {F2FS_SUPER_MAGIC, "f2fs"},   {RAMFS_MAGIC, "ramfs"},          {0x2fc12fc1UL, "zfs"},
    {0x01021997UL, "9p"},         {0x65735546UL, "fuse"},
};

void write_all(int fd, std::uint64_t bytes) {
  std::vector<char> chunk(1 << 20, static_cast<char>(0xa5));
  for (std::uint64_t done = 0; done < bytes;) {
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk.size(), bytes - done));
    const ::ssize_t w = ::pwrite(fd, chunk.data(), n, static_cast<::off_t>(done));
    if (w <= 0) throw std::system_error(errno, std::generic_category(), "pre-writing the bench file");
    done += static_cast<std::uint64_t>(w);
  }
}

std::string temp_template() {
  if (::access(".", W_OK) == 0) return "./flushkit-bench.XXXXXX";
  const char* dir = std::getenv("TMPDIR");
  return std::string(dir != nullptr && *dir != '\0' ? dir : "/tmp") + "/flushkit-bench.XXXXXX";
}

} // namespace

machine_info describe_machine() {
  machine_info m;
  struct ::utsname u {};
  if (::uname(&u) == 0) m.kernel = u.release;
  m.cpu = cpu_model();
  m.nproc = std::thread::hardware_concurrency();
  m.build = compiler_and_build();
  return m;
}

std::string fs_type_of(const std::string& path) {
  struct ::statfs s {};
  if (::statfs(path.c_str(), &s) != 0) return "unknown";
  const auto magic = static_cast<unsigned long>(s.f_type) & 0xffffffffUL;
  for (const fs_name& f : fs_names)
    if (f.magic == magic) return f.name;
  char hex[32];
  std::snprintf(hex, sizeof hex, "0x%lx", magic);
  return hex;
}

device_flush_counter::device_flush_counter(const std::string& path) {
  struct ::stat st {};
  if (::stat(path.c_str(), &st) != 0 || major(st.st_dev) == 0) return; // anonymous device: tmpfs, overlay
  const std::string dev = "/sys/dev/block/" + std::to_string(major(st.st_dev)) + ":" + std::to_string(minor(st.st_dev));
  // A partition's flushes are accounted on its disk, one directory up.
  stat_path_ = ::access((dev + "/partition").c_str(), F_OK) == 0 ? dev + "/../stat" : dev + "/stat";
}

std::int64_t device_flush_counter::read() const noexcept {
  if (stat_path_.empty()) return -1;
  const int fd = ::open(stat_path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buf[512];
  const ::ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  const char* p = buf;
  unsigned long long v = 0;
  for (int field = 1; field <= 16; ++field) {
    char* end = nullptr;
    v = std::strtoull(p, &end, 10);
    if (end == p) return -1; // fewer than 16 fields: an old kernel
    p = end;
  }
  return static_cast<std::int64_t>(v);
}

bench_file::bench_file(const std::string& path, std::uint64_t bytes) : path_(path), size_(bytes) {
  int fd = -1;
  if (path_.empty()) {
    std::string tmpl = temp_template();
    fd = ::mkstemp(tmpl.data());
    path_ = tmpl;
    temporary_ = fd >= 0;
  } else {
    fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  }
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "creating the bench file " + path_);
  const int err = ::posix_fallocate(fd, 0, static_cast<::off_t>(bytes));
  try {
    if (err != 0) throw std::system_error(err, std::generic_category(), "posix_fallocate " + path_);
    write_all(fd, bytes);
    if (::fdatasync(fd) != 0) throw std::system_error(errno, std::generic_category(), "fdatasync " + path_);
    // Drop the (clean) page cache the 1 MiB writes filled: the kernel backs
    // it with large folios, and a 4 KiB store through a shared mapping then
    // dirties the whole folio, so the next fdatasync writes all of it back
    // (mmap store + fdatasync at QD1 on ext4, kernel 6.18: p50 331 us; 137 us
    // after this fadvise, as for a file written in 4 KiB writes). pwrite
    // tracks dirty blocks and is not affected. Advisory: where it fails, the
    // run measures as it did before.
    static_cast<void>(::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED));
  } catch (...) {
    ::close(fd);
    if (temporary_) ::unlink(path_.c_str());
    throw;
  }
  ::close(fd);
}

bench_file::~bench_file() {
  if (temporary_) ::unlink(path_.c_str());
}

} // namespace flushkit::bench
