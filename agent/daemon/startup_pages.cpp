#include "agent/daemon/startup_pages.hpp"

#include <malloc.h>
#include <sys/mman.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

namespace sidecar::daemon {

namespace {

struct Mapping {
  unsigned long begin = 0, end = 0;
  bool candidate = false;
  size_t rss_kb = 0;
  size_t anonymous_kb = 0;
};

}  // namespace

ReleasedPages release_clean_file_pages() {
  ReleasedPages released;
  std::ifstream smaps("/proc/self/smaps");
  if (!smaps) return released;
  // Collected first and advised after the file is read: madvise does not change the mappings, but reading
  // smaps while advising would touch the same page tables twice for nothing.
  std::vector<Mapping> mappings;
  for (std::string line; std::getline(smaps, line);) {
    unsigned long begin = 0, end = 0;
    char perms[5] = {};
    int path_at = 0;
    // A mapping's header: "begin-end perms offset dev inode   path"; field lines ("Rss:   12 kB") never
    // match "%lx-%lx %4s".
    if (std::sscanf(line.c_str(), "%lx-%lx %4s %*x %*x:%*x %*u %n", &begin, &end, perms, &path_at) == 3 &&
        path_at > 0) {
      Mapping m;
      m.begin = begin;
      m.end = end;
      // Readable, not writable, backed by a file (not [heap], [stack], [vdso] or anonymous memory).
      m.candidate = perms[0] == 'r' && perms[1] != 'w' && static_cast<size_t>(path_at) < line.size() &&
                    line[static_cast<size_t>(path_at)] == '/';
      mappings.push_back(m);
      continue;
    }
    if (mappings.empty()) continue;
    size_t kb = 0;
    if (std::sscanf(line.c_str(), "Rss: %zu kB", &kb) == 1) mappings.back().rss_kb = kb;
    if (std::sscanf(line.c_str(), "Anonymous: %zu kB", &kb) == 1) mappings.back().anonymous_kb = kb;
  }
  for (const auto& m : mappings) {
    if (!m.candidate || m.anonymous_kb != 0 || m.rss_kb == 0) continue;
    if (::madvise(reinterpret_cast<void*>(m.begin), m.end - m.begin, MADV_DONTNEED) == 0) {
      ++released.mappings;
      released.resident_kb += m.rss_kb;
    }
  }
  return released;
}

void set_large_allocations_unmapped_on_free() {
  constexpr int kThreshold = 1024 * 1024;
  ::mallopt(M_MMAP_THRESHOLD, kThreshold);  // also fixes the trim threshold: no dynamic adjustment at all
}

}  // namespace sidecar::daemon
