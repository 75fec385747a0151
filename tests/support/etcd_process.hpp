// Owns: real etcd server processes (by PID) on free loopback ports, each with its own temp data dir and log.
// Thread: not thread-safe; use from the test's main thread (children die with it, see ChildProcess::spawn).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/process.hpp"

namespace sidecar::test {

// TLS on the client port (peers stay plain http on loopback). Paths are read by etcd at every launch, so a
// test replaces the files and restarts the member to rotate its certificates.
struct ServerTls {
  std::filesystem::path ca;          // --trusted-ca-file
  std::filesystem::path cert;        // --cert-file
  std::filesystem::path key;         // --key-file
  bool client_cert_auth = false;     // --client-cert-auth: mTLS
  std::filesystem::path probe_cert;  // client certificate for the readiness probe (needed with mTLS)
  std::filesystem::path probe_key;
};

// Everything that identifies one member; fixed for its lifetime so a restart comes back on the same ports.
struct EtcdMemberSpec {
  std::string name = "fixture";
  std::uint16_t client_port = 0;
  std::uint16_t peer_port = 0;
  std::string initial_cluster;   // "a=http://127.0.0.1:P,b=..."; empty: this member alone
  std::string cluster_token;     // unique per cluster, so members of different tests never join each other
  std::vector<std::string> extra_args;
  std::optional<ServerTls> tls;  // https:// client URL when set
};

class EtcdProcess {
 public:
  static constexpr std::chrono::milliseconds kReadyTimeout{10000};

  // A single-member etcd on fresh free ports that already answers requests. A port taken between picking
  // and binding is retried with new ports; nullptr when etcd still does not come up (its log goes to stderr).
  static std::unique_ptr<EtcdProcess> start(std::vector<std::string> extra_args = {},
                                            std::chrono::milliseconds ready_timeout = kReadyTimeout);

  // Same, serving clients over TLS.
  static std::unique_ptr<EtcdProcess> start_tls(ServerTls tls, std::vector<std::string> extra_args = {},
                                                std::chrono::milliseconds ready_timeout = kReadyTimeout);

  // A configured member, not yet launched (EtcdCluster launches every member before waiting on any).
  explicit EtcdProcess(EtcdMemberSpec spec);
  ~EtcdProcess();  // SIGKILL by PID if running, reap, remove the data dir
  EtcdProcess(const EtcdProcess&) = delete;
  EtcdProcess& operator=(const EtcdProcess&) = delete;

  // Spawns etcd and returns without waiting; false if it could not be executed.
  bool launch();
  // True once a linearizable read succeeds; false if etcd exited or `timeout` passed first.
  bool wait_ready(std::chrono::milliseconds timeout = kReadyTimeout);

  std::string client_url() const;   // "http://127.0.0.1:PORT" ("https://" with TLS)
  std::string endpoint() const;     // "127.0.0.1:PORT", for gRPC
  std::string peer_url() const;
  const EtcdMemberSpec& spec() const { return spec_; }
  pid_t pid() const;                // -1 when not running
  bool is_running();
  const std::filesystem::path& log_path() const { return log_path_; }
  const std::filesystem::path& data_dir() const { return data_dir_; }
  std::string log_tail(std::size_t max_bytes = 4096) const;

  // Crash: SIGKILL and reap. Data written before stays on disk (etcd fsyncs before acknowledging).
  void kill9();
  // Graceful: SIGTERM (and SIGCONT, in case it is stopped), wait up to 10 s, SIGKILL after that.
  // True when it exited on SIGTERM alone.
  bool stop();
  // Freeze/thaw: the process keeps its sockets but answers nothing, like a hung server.
  // sigstop returns once the kernel reports the process as stopped.
  bool sigstop();
  bool sigcont();
  // Stop if running, then start again on the same ports with the same data dir, and wait until ready.
  bool restart(std::chrono::milliseconds ready_timeout = kReadyTimeout);
  // Same, but with an empty data dir: a brand-new store, revision back to 1. Single-member only: a wiped
  // member of a multi-member cluster cannot rejoin under its old identity.
  bool restart_wiped(std::chrono::milliseconds ready_timeout = kReadyTimeout);

 private:
  static std::unique_ptr<EtcdProcess> start_spec(std::optional<ServerTls> tls, std::vector<std::string> extra_args,
                                                 std::chrono::milliseconds ready_timeout);

  EtcdMemberSpec spec_;
  TempDir dir_;
  std::filesystem::path data_dir_;
  std::filesystem::path log_path_;
  std::optional<ChildProcess> child_;
};

// N members on free loopback ports sharing one --initial-cluster string.
class EtcdCluster {
 public:
  static constexpr std::chrono::milliseconds kReadyTimeout{20000};

  // All members up and a leader elected; nullptr on failure (member logs go to stderr).
  static std::unique_ptr<EtcdCluster> start(std::size_t size = 3,
                                            std::chrono::milliseconds ready_timeout = kReadyTimeout);

  std::size_t size() const { return members_.size(); }
  EtcdProcess& member(std::size_t index) { return *members_.at(index); }
  std::vector<std::string> endpoints() const;    // "127.0.0.1:PORT" of every member, in index order
  std::string client_urls() const;               // comma-separated client URLs, in index order

  // The member every reachable member agrees is leader; nullopt when there is none (yet) or they disagree.
  std::optional<std::size_t> leader_index();
  std::optional<std::size_t> wait_for_leader(std::chrono::milliseconds timeout);

  void kill_member(std::size_t index) { member(index).kill9(); }
  bool restart_member(std::size_t index) { return member(index).restart(); }

 private:
  EtcdCluster() = default;
  std::vector<std::unique_ptr<EtcdProcess>> members_;
};

}  // namespace sidecar::test
