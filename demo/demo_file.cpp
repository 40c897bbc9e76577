// demo/demo_file.cpp - the file behind the demo's pmem range.
#include "demo_file.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include <fcntl.h>
#include <sys/vfs.h>
#include <unistd.h>

namespace flushkit::demo {

namespace {

std::string temp_dir() {
  const char* t = std::getenv("TMPDIR");
  return t != nullptr && *t != '\0' ? t : "/var/tmp";
}

[[noreturn]] void fail(const std::string& what, int err) {
  throw std::runtime_error(what + ": " + std::strerror(err));
}

std::string make_temp() {
  std::string tmpl = temp_dir() + "/flushkit-demo-XXXXXX";
  const int fd = ::mkstemp(tmpl.data());
  if (fd < 0) fail("cannot create a file in " + temp_dir(), errno);
  ::close(fd);
  return tmpl;
}

std::string make_requested(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) fail(path + (errno == EEXIST ? " (refusing to overwrite an existing file)" : ""), errno);
  ::close(fd);
  return path;
}

struct fs_name {
  unsigned long magic;
  const char* name;
};

constexpr fs_name known_fs[] = {
    {0xEF53, "ext4"},        {0x01021994, "tmpfs"}, {0x58465342, "xfs"},   {0x9123683E, "btrfs"},
    {0x794C7630, "overlayfs"}, {0x6969, "nfs"},      {0xF2F52010, "f2fs"}, {0x858458F6, "ramfs"},
};

} // namespace

demo_file::demo_file(const std::string& requested, bool keep)
    : path_(requested.empty() ? make_temp() : make_requested(requested)), keep_(keep) {}

demo_file::~demo_file() {
  if (!keep_) ::unlink(path_.c_str());
}

std::string fs_type_name(const std::string& path) {
  struct ::statfs sf {};
  if (::statfs(path.c_str(), &sf) != 0) return "unknown";
  const auto magic = static_cast<unsigned long>(sf.f_type);
  for (const fs_name& f : known_fs)
    if (f.magic == magic) return f.name;
  char buf[32];
  std::snprintf(buf, sizeof buf, "magic 0x%lx", magic);
  return buf;
}

} // namespace flushkit::demo
