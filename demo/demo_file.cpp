// demo/demo_file.cpp - where the demo's files live: a directory of its own (which file system), and its removal.
#include "demo_file.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <system_error>

#include <sys/stat.h>
#include <sys/vfs.h>

namespace flushkit::demo {

namespace {

std::string temp_root() {
  const char* t = std::getenv("TMPDIR");
  return t != nullptr && *t != '\0' ? t : "/var/tmp";
}

[[noreturn]] void fail(const std::string& what, int err) {
  throw std::runtime_error(what + ": " + std::strerror(err));
}

std::string make_temp() {
  std::string tmpl = temp_root() + "/flushkit-demo-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) fail("cannot create a directory in " + temp_root(), errno);
  return tmpl;
}

std::string make_requested(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) != 0)
    fail(path + (errno == EEXIST ? " (refusing to use an existing path)" : ""), errno);
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

demo_dir::demo_dir(const std::string& requested, bool keep)
    : path_(requested.empty() ? make_temp() : make_requested(requested)), keep_(keep) {}

demo_dir::~demo_dir() {
  if (keep_) return;
  std::error_code ec; // we created the directory: everything in it is the demo's
  std::filesystem::remove_all(path_, ec);
  if (ec) std::fprintf(stderr, "flushkit-demo: could not remove %s: %s\n", path_.c_str(), ec.message().c_str());
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
