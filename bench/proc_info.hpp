// Owns: reading another process's memory and CPU accounting from /proc, and describing this machine.
// Thread: pure functions over /proc and uname; callable from any thread.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace sidecar::bench {

// /proc/PID/smaps_rollup, in kB. Rss counts every resident page the process maps, including pages of
// shared libraries that other processes map too; Anonymous is the heap/stack the process itself dirtied.
struct MemoryUsage {
  long rss_kb = 0;
  long pss_kb = 0;
  long shared_clean_kb = 0;
  long shared_dirty_kb = 0;
  long private_clean_kb = 0;
  long private_dirty_kb = 0;
  long anonymous_kb = 0;
};
std::optional<MemoryUsage> read_memory(pid_t pid);
// "Rss 9.1 MB, Pss 6.0 MB, Shared_Clean 3.2 MB, ..."
std::string describe(const MemoryUsage& m);

// The `count` mappings with the most resident memory, from /proc/PID/smaps, grouped by backing file
// ("[heap]", "[anon]" for unnamed anonymous memory): "etcd-sidecar 6.1 MB, libgrpc.so.29 1.2 MB, ...".
// Says where an Rss figure comes from (our heap, or code pages of shared libraries and the binary).
std::string top_mappings(pid_t pid, std::size_t count);

struct CpuTimes {
  std::uint64_t ticks = 0;     // utime + stime from /proc/PID/stat, in sysconf(_SC_CLK_TCK) units
  std::uint64_t run_ns = 0;    // sum over /proc/PID/task/*/schedstat of time on CPU (ns; finer than ticks)
};
std::optional<CpuTimes> read_cpu_times(pid_t pid);
long clock_ticks_per_second();

struct MachineInfo {
  std::string cpu_model;       // "model name" of the first processor in /proc/cpuinfo
  long cores = 0;              // online logical CPUs
  std::string kernel;          // uname -r
  std::string load_average;    // first three fields of /proc/loadavg, e.g. "0.41 0.52 0.60"
};
MachineInfo machine_info();

// Filesystem type of the mount holding `path` ("tmpfs", "ext4", ...), from /proc/self/mounts.
std::string filesystem_type(const std::string& path);

}  // namespace sidecar::bench
