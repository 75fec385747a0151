// Owns: one etcd-sidecar agent process (by PID), its manifest and its log (in its own temp dir, or in a
//       directory the test owns).
// Thread: not thread-safe; create, signal and destroy on the test's main thread (see ChildProcess::spawn).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/process.hpp"

namespace sidecar::test {

// One `services:` entry of a manifest, as a test writes it.
struct ServiceDef {
  std::string name;
  std::string id;
  std::string address = "127.0.0.1";
  int port = 8080;
  std::vector<std::pair<std::string, std::string>> metadata;  // written in this order
};

// A manifest registering `services` with the etcd at `client_url` ("http://127.0.0.1:PORT").
// `ttl` is written as-is under `lease: {ttl: ...}` ("2s"); empty leaves the section out (agent default).
std::string registration_manifest(const std::string& client_url, const std::vector<ServiceDef>& services,
                                  std::string_view ttl = "");

// "/services/<name>/<id>" (the default etcd.prefix).
std::string service_key(const ServiceDef& service);

// A lease id as the agent prints it in its log: lower-case hex, no "0x".
std::string lease_hex(std::int64_t lease);

// The whitespace-delimited word that follows the first occurrence of `marker` in `text`, e.g. the lease
// hex after "lease " in "registered /services/a/b lease 694d7f...". nullopt when `marker` is absent.
std::optional<std::string> word_after(std::string_view text, std::string_view marker);

// The `etcd:` section pointing at one test etcd ("http://127.0.0.1:PORT"), registry prefix /services.
std::string etcd_manifest_section(const std::string& client_url);

// The file parsed as JSON; nullopt when it is missing, empty or not (complete) JSON.
std::optional<nlohmann::json> read_json_file(const std::filesystem::path& path);

class AgentProcess {
 public:
  // Writes `manifest_yaml` to <dir>/manifest.yaml and starts `SIDECAR_BINARY --manifest <it>` plus
  // `extra_args`, with <dir> as working directory and stdout+stderr in <dir>/agent.log. nullptr (reason on
  // stderr) when the binary cannot be executed. Does not wait for anything: the caller waits on etcd.
  static std::unique_ptr<AgentProcess> start(std::string_view manifest_yaml,
                                             std::vector<std::string> extra_args = {}, EnvVars extra_env = {});
  // Same, but in a directory the test owns (it outlives the agent): the manifest is <dir>/<name>.yaml and
  // the log <dir>/<name>.log. `extra_args` defaults to debug logging, so a failed test's log shows every write.
  static std::unique_ptr<AgentProcess> start_in(const std::filesystem::path& dir, std::string_view manifest_yaml,
                                                std::vector<std::string> extra_args = {"--log-level", "debug"},
                                                std::string_view name = "agent", EnvVars extra_env = {});

  ~AgentProcess();  // SIGKILL by PID if still running (also wakes a stopped agent), reap, remove its own dir
  AgentProcess(const AgentProcess&) = delete;
  AgentProcess& operator=(const AgentProcess&) = delete;

  pid_t pid() const { return child_->pid(); }
  bool is_running() { return child_->is_running(); }
  // False once the agent has been reaped.
  bool signal(int signo) { return child_->signal(signo); }
  // Freeze: returns once the kernel reports the agent as stopped (false if it did not stop within 2 s).
  bool sigstop();
  bool sigcont() { return child_->signal(SIGCONT); }
  // Exit code, or -N when killed by signal N; nullopt if still running after `timeout`.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout) { return child_->wait_exit(timeout); }
  // SIGTERM (+SIGCONT, a stopped agent would keep SIGTERM pending) and wait; the exit code, or nullopt if it
  // outlived `timeout` (then it is SIGKILLed).
  std::optional<int> terminate(std::chrono::milliseconds timeout = std::chrono::seconds(5));
  ChildProcess& process() { return *child_; }

  // Everything the agent printed so far (its log lines go to stderr).
  std::string output() const { return child_->output(); }
  bool output_contains(std::string_view needle) const;
  // Occurrences of `needle` in the agent's output so far.
  std::size_t count_in_output(std::string_view needle) const;
  // Polls the log until `needle` is in it; false after `timeout`.
  bool wait_for_output(std::string_view needle, std::chrono::milliseconds timeout) const;

  const std::filesystem::path& dir() const { return dir_; }
  const std::filesystem::path& manifest_path() const { return manifest_path_; }

 private:
  AgentProcess() = default;
  static std::unique_ptr<AgentProcess> spawn(std::unique_ptr<AgentProcess> agent, std::string_view manifest_yaml,
                                             std::string_view name, std::vector<std::string> extra_args,
                                             EnvVars extra_env);

  std::optional<TempDir> own_dir_;   // set by start(); start_in() writes into the caller's directory
  std::filesystem::path dir_;
  std::filesystem::path manifest_path_;
  std::optional<ChildProcess> child_;
};

}  // namespace sidecar::test
