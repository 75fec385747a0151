// Owns: one etcd-sidecar agent process started from a manifest written into a test's directory, and its log.
// Thread: not thread-safe; create, signal and destroy on the test's main thread (see ChildProcess::spawn).
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/process.hpp"

namespace sidecar::test {

// The `etcd:` section pointing at one test etcd ("http://127.0.0.1:PORT"), registry prefix /services.
std::string etcd_manifest_section(const std::string& client_url);

class AgentRunner {
 public:
  // Writes `manifest_yaml` to <dir>/<name>.yaml and starts SIDECAR_BINARY on it; everything the agent
  // prints goes to <dir>/<name>.log (kept with SIDECAR_TEST_KEEP_DIRS=1). nullopt if it cannot be spawned.
  // `extra_args` defaults to debug logging, so a failed test's log shows every write.
  static std::optional<AgentRunner> start(const std::filesystem::path& dir, const std::string& manifest_yaml,
                                          std::vector<std::string> extra_args = {"--log-level", "debug"},
                                          std::string_view name = "agent");

  bool is_running() { return process_.is_running(); }
  std::string output() const { return process_.output(); }
  // Occurrences of `needle` in the agent's output so far.
  std::size_t count_in_output(std::string_view needle) const;
  const std::filesystem::path& manifest_path() const { return manifest_path_; }
  ChildProcess& process() { return process_; }

  // Freeze/thaw the agent; sigstop returns once the kernel reports it stopped.
  bool sigstop();
  bool sigcont();
  // SIGTERM and wait; the exit code, or nullopt if it outlived `timeout` (then it is SIGKILLed).
  std::optional<int> terminate(std::chrono::milliseconds timeout = std::chrono::seconds(5));

 private:
  AgentRunner(ChildProcess process, std::filesystem::path manifest_path)
      : process_(std::move(process)), manifest_path_(std::move(manifest_path)) {}

  ChildProcess process_;
  std::filesystem::path manifest_path_;
};

// The file parsed as JSON; nullopt when it is missing, empty or not (complete) JSON.
std::optional<nlohmann::json> read_json_file(const std::filesystem::path& path);

}  // namespace sidecar::test
