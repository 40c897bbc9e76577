// flushkit/pmem/detail/mapping_probe.hpp - what kind of mapping an address lies in (/proc/self/smaps).
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>

namespace flushkit::pmem::detail {

/// What /proc/self/smaps says about the mapping that holds an address.
struct mapping_facts {
  bool file = false;     ///< backed by a file (inode != 0), not anonymous memory
  bool memfd = false;    ///< the file is a memfd ("/memfd:" path)
  bool shared = false;   ///< VmFlags "sh": stores reach the file
  bool map_sync = false; ///< VmFlags "sf": MAP_SYNC (synchronous page faults, DAX)
};

/// Looks up the mapping that contains `addr` in /proc/self/smaps. Returns
/// nullopt when the file cannot be read or no mapping contains `addr`.
/// Reads a file: for construction paths only.
inline std::optional<mapping_facts> probe_mapping(const void* addr) noexcept {
  std::FILE* f = std::fopen("/proc/self/smaps", "re");
  if (f == nullptr) return std::nullopt;
  const auto a = reinterpret_cast<std::uintptr_t>(addr);
  std::optional<mapping_facts> found;
  bool inside = false;
  char line[1024];
  while (std::fgets(line, sizeof line, f) != nullptr) {
    unsigned long lo = 0, hi = 0, inode = 0;
    int path_at = 0;
    if (std::sscanf(line, "%lx-%lx %*s %*s %*s %lu %n", &lo, &hi, &inode, &path_at) >= 3) {
      if (inside) break; // the next mapping's header: the one we wanted had no VmFlags
      inside = lo <= a && a < hi;
      if (inside) found = mapping_facts{inode != 0, std::strncmp(line + path_at, "/memfd:", 7) == 0, false, false};
    } else if (inside && std::strncmp(line, "VmFlags:", 8) == 0) {
      found->shared = std::strstr(line, " sh") != nullptr;
      found->map_sync = std::strstr(line, " sf") != nullptr;
      break;
    }
  }
  std::fclose(f);
  return found;
}

} // namespace flushkit::pmem::detail
