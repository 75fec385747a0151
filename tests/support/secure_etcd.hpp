// Owns: test certificates made with the `openssl` command, etcd auth set up with `etcdctl`, and
// `etcd grpc-proxy` processes (by PID) on free loopback ports.
// Thread: not thread-safe; use from the test's main thread (children die with it, see ChildProcess::spawn).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/etcd_client.hpp"
#include "tests/support/etcd_process.hpp"
#include "tests/support/process.hpp"

namespace sidecar::test {

// A CA and the certificates it signed, as PEM files in one directory. The server certificate is valid for
// 127.0.0.1 and localhost; the client certificate has CN `client_cn` (etcd maps a CN to a user with
// --client-cert-auth and auth on; here it only proves possession).
struct CertSet {
  std::filesystem::path dir;
  std::filesystem::path ca, ca_key;
  std::filesystem::path server, server_key;
  std::filesystem::path client, client_key;

  ServerTls server_tls(bool client_cert_auth) const;
  ClientTls client_tls(bool with_client_cert) const;
};

// Generates a fresh CA ("<name>-ca") with a server and a client certificate in `dir` (created if needed),
// with file names prefixed by `name`. nullopt (openssl's output on stderr) on failure.
std::optional<CertSet> make_certs(const std::filesystem::path& dir, const std::string& name = "test",
                                  const std::string& client_cn = "sidecar");

inline constexpr const char* kRootPassword = "root-pw-7d1e";
inline constexpr const char* kSidecarUser = "sidecar";

// Turns auth on in a plain-http etcd, the way an operator would with etcdctl: a `root` user with the root
// role, and a `sidecar` user whose `sidecar` role may read and write /services/ and /config/ only.
// False with `error` (etcdctl's output) on failure.
// `tls_args`: etcdctl's --cacert/--cert/--key for an https:// etcd (see etcdctl_tls_args).
bool enable_auth(const std::string& client_url, const std::string& sidecar_password, std::string* error,
                 const std::vector<std::string>& tls_args = {});

// Runs etcdctl (API v3) as root against `client_url`; the output, or nullopt with `error`.
std::optional<std::string> etcdctl_as_root(const std::string& client_url, const std::vector<std::string>& args,
                                           std::string* error = nullptr, const std::vector<std::string>& tls_args = {});

// --cacert, and --cert/--key with a client certificate, for etcdctl against a TLS etcd made from `certs`.
std::vector<std::string> etcdctl_tls_args(const CertSet& certs, bool with_client_cert);

// `etcd grpc-proxy start` in front of `endpoints` ("127.0.0.1:PORT" each), on a free loopback port.
class GrpcProxy {
 public:
  static std::unique_ptr<GrpcProxy> start(std::vector<std::string> endpoints,
                                          std::chrono::milliseconds ready_timeout = std::chrono::seconds(10));
  ~GrpcProxy();  // SIGKILL by PID if running, reap, remove the dir
  GrpcProxy(const GrpcProxy&) = delete;
  GrpcProxy& operator=(const GrpcProxy&) = delete;

  std::string endpoint() const;    // "127.0.0.1:PORT"
  std::string client_url() const;  // "http://127.0.0.1:PORT"
  pid_t pid() const { return child_ ? child_->pid() : -1; }
  bool is_running() { return child_ && child_->is_running(); }
  const std::filesystem::path& log_path() const { return log_path_; }

  void kill9();
  // Kill and start again on the same port; true once it answers.
  bool restart(std::chrono::milliseconds ready_timeout = std::chrono::seconds(10));

 private:
  GrpcProxy() : dir_("grpc-proxy") {}
  bool launch();
  bool wait_ready(std::chrono::milliseconds timeout);

  TempDir dir_;
  std::vector<std::string> endpoints_;
  std::uint16_t port_ = 0;
  std::filesystem::path log_path_;
  std::optional<ChildProcess> child_;
};

}  // namespace sidecar::test
