#include "bench/proc_info.hpp"

#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <vector>
#include <fstream>
#include <sstream>

#include "bench/stats.hpp"

namespace sidecar::bench {

std::optional<MemoryUsage> read_memory(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/smaps_rollup");
  if (!in) return std::nullopt;
  MemoryUsage m;
  bool seen_rss = false;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string name;
    long kb = 0;
    if (!(fields >> name >> kb)) continue;  // the header line names the address range
    if (name == "Rss:") {
      m.rss_kb = kb;
      seen_rss = true;
    } else if (name == "Pss:") {
      m.pss_kb = kb;
    } else if (name == "Shared_Clean:") {
      m.shared_clean_kb = kb;
    } else if (name == "Shared_Dirty:") {
      m.shared_dirty_kb = kb;
    } else if (name == "Private_Clean:") {
      m.private_clean_kb = kb;
    } else if (name == "Private_Dirty:") {
      m.private_dirty_kb = kb;
    } else if (name == "Anonymous:") {
      m.anonymous_kb = kb;
    }
  }
  if (!seen_rss) return std::nullopt;
  return m;
}

std::string describe(const MemoryUsage& m) {
  return "Rss " + format_mb(m.rss_kb) + ", Pss " + format_mb(m.pss_kb) + ", Shared_Clean " +
         format_mb(m.shared_clean_kb) + ", Shared_Dirty " + format_mb(m.shared_dirty_kb) + ", Private_Clean " +
         format_mb(m.private_clean_kb) + ", Private_Dirty " + format_mb(m.private_dirty_kb) + ", Anonymous " +
         format_mb(m.anonymous_kb);
}

std::string top_mappings(pid_t pid, std::size_t count) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/smaps");
  std::map<std::string, long> rss_by_name;
  std::string current = "[anon]";
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string first;
    fields >> first;
    if (first.find('-') != std::string::npos && first.back() != ':') {
      // A mapping header: "start-end perms offset dev inode [path]".
      std::string perms, offset, dev, inode, path;
      fields >> perms >> offset >> dev >> inode;
      std::getline(fields >> std::ws, path);
      const auto slash = path.rfind('/');
      current = path.empty() ? "[anon]" : slash == std::string::npos ? path : path.substr(slash + 1);
    } else if (first == "Rss:") {
      long kb = 0;
      fields >> kb;
      rss_by_name[current] += kb;
    }
  }
  std::vector<std::pair<long, std::string>> sorted;
  for (const auto& [name, kb] : rss_by_name) sorted.emplace_back(kb, name);
  std::sort(sorted.rbegin(), sorted.rend());
  std::string out;
  for (std::size_t i = 0; i < std::min(count, sorted.size()); ++i) {
    out += (out.empty() ? "" : ", ") + sorted[i].second + " " + format_mb(sorted[i].first);
  }
  return out;
}

std::optional<CpuTimes> read_cpu_times(pid_t pid) {
  const std::string base = "/proc/" + std::to_string(pid);
  std::ifstream stat_in(base + "/stat");
  std::string stat;
  if (!std::getline(stat_in, stat)) return std::nullopt;
  // The command name is parenthesised and may contain spaces; fields are counted after the last ')'.
  const auto paren = stat.rfind(')');
  if (paren == std::string::npos) return std::nullopt;
  std::istringstream rest(stat.substr(paren + 2));
  std::string field;
  CpuTimes t;
  // After ')' come state (field 3) ... utime (field 14) and stime (field 15).
  for (int index = 3; index <= 15 && (rest >> field); ++index) {
    if (index == 14 || index == 15) t.ticks += std::stoull(field);
  }
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator(base + "/task", ec)) {
    std::ifstream sched(task.path() / "schedstat");
    std::uint64_t run_ns = 0;
    if (sched >> run_ns) t.run_ns += run_ns;
  }
  if (ec) return std::nullopt;
  return t;
}

long clock_ticks_per_second() { return ::sysconf(_SC_CLK_TCK); }

MachineInfo machine_info() {
  MachineInfo info;
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) info.cpu_model = line.substr(line.find_first_not_of(" \t", colon + 1));
      break;
    }
  }
  if (info.cpu_model.empty()) info.cpu_model = "unknown CPU";
  info.cores = ::sysconf(_SC_NPROCESSORS_ONLN);
  struct utsname uts {};
  info.kernel = ::uname(&uts) == 0 ? uts.release : "unknown";
  std::ifstream loadavg("/proc/loadavg");
  std::string a, b, c;
  if (loadavg >> a >> b >> c) info.load_average = a + " " + b + " " + c;
  return info;
}

std::string filesystem_type(const std::string& path) {
  std::error_code ec;
  const std::string target = std::filesystem::weakly_canonical(path, ec).string();
  std::ifstream mounts("/proc/self/mounts");
  std::string device, mount_point, type, rest;
  std::string best_type = "unknown";
  std::size_t best_length = 0;
  while (mounts >> device >> mount_point >> type && std::getline(mounts, rest)) {
    const bool covers = target == mount_point || mount_point == "/" ||
                        target.rfind(mount_point + "/", 0) == 0;
    if (covers && mount_point.size() >= best_length) {
      best_length = mount_point.size();
      best_type = type;
    }
  }
  return best_type;
}

}  // namespace sidecar::bench
