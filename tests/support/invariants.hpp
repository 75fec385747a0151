// Owns: a background sampler that checks an agent's output files and memory while a fault is injected,
//       and small helpers comparing those files with etcd.
// Thread: InvariantMonitor samples on its own thread (files and /proc only, never etcd, never signals);
//         start/stop/results on the test's main thread.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace sidecar::test {

class EtcdSyncClient;

// Resident set size of a process in KiB (VmRSS); nullopt when it is gone.
std::optional<long> rss_kib(pid_t pid);
// Open file descriptors of a process (entries of /proc/PID/fd); nullopt when it is gone.
std::optional<std::size_t> fd_count(pid_t pid);

// id -> "address:port", the part of a discovered instance a consumer acts on.
using Endpoints = std::map<std::string, std::string>;
// The instances listed in a json-format discovery file.
Endpoints endpoints_in_file(const nlohmann::json& doc);
// What a json-format discovery file for `service_prefix` ("/services/x/") must list: every value under it
// that is a sidecar-format JSON value.
Endpoints endpoints_in_etcd(EtcdSyncClient& client, const std::string& service_prefix);
// What a prefix config mirror (format json) must hold: key relative to `prefix` -> value.
nlohmann::json config_in_etcd(EtcdSyncClient& client, const std::string& prefix);

// Samples every `period`: each watched file, once it has appeared, must stay present and parse as a
// complete, non-empty JSON document (the agent replaces it atomically, so a reader never sees a torn,
// truncated or emptied file); and the agent's RSS is recorded. Any violation is kept with the time it was
// seen, so a test asserts the invariant held for the whole fault, not just at the end.
class InvariantMonitor {
 public:
  InvariantMonitor(pid_t agent_pid, std::vector<std::filesystem::path> json_files,
                   std::chrono::milliseconds period = std::chrono::milliseconds(5));
  ~InvariantMonitor();  // stops sampling
  InvariantMonitor(const InvariantMonitor&) = delete;
  InvariantMonitor& operator=(const InvariantMonitor&) = delete;

  // From now on, every sample of `file` (a json-format discovery file) must list each of `ids`: instances
  // that nobody deletes during the fault must never drop out of the file, even while etcd is unreachable.
  void require_instances(const std::filesystem::path& file, std::vector<std::string> ids);
  void stop();
  // Violations seen so far (first 20), e.g. "+1234 ms: out.json: not JSON (17 bytes)".
  std::vector<std::string> violations() const;
  std::size_t samples() const { return samples_.load(); }
  // RSS samples in KiB, one per ~100 ms.
  std::vector<long> rss_samples() const;
  long max_rss_kib() const;

 private:
  void run();
  void record(const std::string& what);

  pid_t pid_;
  std::vector<std::filesystem::path> files_;
  std::vector<bool> seen_;
  std::chrono::milliseconds period_;
  std::chrono::steady_clock::time_point started_;
  std::atomic<bool> stopping_{false};
  std::atomic<std::size_t> samples_{0};
  mutable std::mutex mu_;
  std::vector<std::string> violations_;
  std::vector<long> rss_;
  std::map<std::filesystem::path, std::vector<std::string>> required_;  // guarded by mu_
  std::thread thread_;
};

}  // namespace sidecar::test
