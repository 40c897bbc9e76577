// flushkit/pmem/detail/mapping_probe.hpp - what kind of mapping an address lies in (/proc/self/maps).
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>

namespace flushkit::pmem::detail {

/// What the kernel says about the mapping that holds an address.
struct mapping_facts {
  bool file = false;     ///< backed by a file (inode != 0), not anonymous memory
  bool memfd = false;    ///< the file is a memfd ("/memfd:" path)
  bool shared = false;   ///< MAP_SHARED: stores reach the file
  bool map_sync = false; ///< MAP_SYNC (smaps VmFlags "sf": synchronous page faults, DAX)
};

/// Scans `proc_file` (/proc/self/maps or smaps) for the mapping that contains
/// `addr`: `on_header(line, path_at)` sees its header line, then, until the
/// next header, `on_field(line)` each field line (smaps only) until it
/// returns true. Returns whether the mapping was found.
template <class Header, class Field>
bool scan_mappings(const char* proc_file, std::uintptr_t addr, Header on_header, Field on_field) noexcept {
  std::FILE* f = std::fopen(proc_file, "re");
  if (f == nullptr) return false;
  bool inside = false, found = false;
  char line[1024];
  while (std::fgets(line, sizeof line, f) != nullptr) {
    unsigned long lo = 0, hi = 0;
    int path_at = 0;
    if (std::sscanf(line, "%lx-%lx %*s %*s %*s %*s %n", &lo, &hi, &path_at) >= 2 && path_at > 0) {
      if (inside) break;
      inside = lo <= addr && addr < hi;
      if (inside) {
        found = true;
        on_header(line, path_at);
      }
    } else if (inside && on_field(line)) {
      break;
    }
  }
  std::fclose(f);
  return found;
}

/// Looks up the mapping that contains `addr`: /proc/self/maps for its kind,
/// and /proc/self/smaps only for a shared file mapping (to see MAP_SYNC).
/// Returns nullopt when the files cannot be read or no mapping contains it.
/// Reads files: for construction paths only.
inline std::optional<mapping_facts> probe_mapping(const void* addr) noexcept {
  const auto a = reinterpret_cast<std::uintptr_t>(addr);
  mapping_facts m;
  const auto header = [&m](const char* line, int path_at) {
    char perms[8] = {};
    unsigned long inode = 0;
    if (std::sscanf(line, "%*s %7s %*s %*s %lu", perms, &inode) == 2) {
      m.shared = perms[3] == 's';
      m.file = inode != 0;
    }
    m.memfd = std::strncmp(line + path_at, "/memfd:", 7) == 0;
  };
  if (!scan_mappings("/proc/self/maps", a, header, [](const char*) { return true; })) return std::nullopt;
  if (!m.file || m.memfd || !m.shared) return m;
  scan_mappings("/proc/self/smaps", a, [](const char*, int) {}, [&m](const char* line) {
    if (std::strncmp(line, "VmFlags:", 8) != 0) return false;
    m.map_sync = std::strstr(line, " sf") != nullptr;
    return true;
  });
  return m;
}

} // namespace flushkit::pmem::detail
