// Owns: the throwaway local etcd that `--dev` starts when no configured endpoint answers: its process,
// its scratch data directory, and their removal.
// Thread: main thread, before and after the io_context runs (blocking is fine there).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace sidecar::daemon {

// True when some endpoint answers a Status call within `timeout`.
bool any_endpoint_answers(const std::vector<std::string>& endpoints, std::chrono::milliseconds timeout);

class DevEtcd {
 public:
  // Starts etcd on loopback. Uses `preferred_port` for clients when it is free, so the printed etcdctl
  // command matches the manifest; any free port otherwise. nullptr and `error` when etcd cannot start.
  static std::unique_ptr<DevEtcd> start(int preferred_port, std::string* error);
  ~DevEtcd();  // SIGTERM, wait, then remove the data directory
  // SIGKILL, reap and remove the data directory now: for an agent that exits at once (a second Ctrl-C).
  void kill_now();

  const std::string& client_url() const { return client_url_; }
  const std::string& data_dir() const { return data_dir_; }
  pid_t pid() const { return pid_; }

 private:
  DevEtcd() = default;
  pid_t pid_ = -1;
  std::string client_url_;
  std::string data_dir_;
};

// "http://127.0.0.1:2379" -> 2379 when the host is loopback; nullopt otherwise.
std::optional<int> loopback_port(const std::string& endpoint);

}  // namespace sidecar::daemon
