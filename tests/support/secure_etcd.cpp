#include "tests/support/secure_etcd.hpp"

#include <cstdio>

#include "tests/support/wait.hpp"

#ifndef ETCD_BINARY
#define ETCD_BINARY "etcd"
#endif
#ifndef ETCDCTL_BINARY
#define ETCDCTL_BINARY "etcdctl"
#endif

namespace sidecar::test {
namespace {

bool openssl(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"openssl"};
  argv.insert(argv.end(), args.begin(), args.end());
  const CaptureResult r = run_and_capture(argv, std::chrono::seconds(30));
  if (r.exit_code != 0) {
    std::fprintf(stderr, "openssl %s failed (%d):\n%s\n", args.empty() ? "" : args[0].c_str(), r.exit_code,
                 r.output.c_str());
    return false;
  }
  return true;
}

// A key and a certificate signed by the CA, with the given extensions.
bool issue(const CertSet& set, const std::string& cn, const std::filesystem::path& cert,
           const std::filesystem::path& key, const std::string& extensions) {
  const auto csr = set.dir / (cert.filename().string() + ".csr");
  const auto ext = set.dir / (cert.filename().string() + ".ext");
  if (!write_file(ext, extensions)) return false;
  return openssl({"req", "-newkey", "rsa:2048", "-nodes", "-keyout", key.string(), "-out", csr.string(), "-subj",
                  "/CN=" + cn}) &&
         openssl({"x509", "-req", "-in", csr.string(), "-CA", set.ca.string(), "-CAkey", set.ca_key.string(),
                  "-CAcreateserial", "-out", cert.string(), "-days", "2", "-extfile", ext.string()});
}

}  // namespace

ServerTls CertSet::server_tls(bool client_cert_auth) const {
  return ServerTls{ca, server, server_key, client_cert_auth, client, client_key};
}

ClientTls CertSet::client_tls(bool with_client_cert) const {
  ClientTls tls{read_file(ca).value_or(""), {}, {}};
  if (with_client_cert) {
    tls.cert_pem = read_file(client).value_or("");
    tls.key_pem = read_file(client_key).value_or("");
  }
  return tls;
}

std::optional<CertSet> make_certs(const std::filesystem::path& dir, const std::string& name,
                                  const std::string& client_cn) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  CertSet set;
  set.dir = dir;
  set.ca = dir / (name + "-ca.pem");
  set.ca_key = dir / (name + "-ca-key.pem");
  set.server = dir / (name + "-server.pem");
  set.server_key = dir / (name + "-server-key.pem");
  set.client = dir / (name + "-client.pem");
  set.client_key = dir / (name + "-client-key.pem");
  if (!openssl({"req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", set.ca_key.string(), "-out",
                set.ca.string(), "-days", "2", "-subj", "/CN=" + name + "-ca"})) {
    return std::nullopt;
  }
  if (!issue(set, "etcd-server", set.server, set.server_key,
             "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n")) {
    return std::nullopt;
  }
  if (!issue(set, client_cn, set.client, set.client_key, "extendedKeyUsage=clientAuth\n")) return std::nullopt;
  return set;
}

std::vector<std::string> etcdctl_tls_args(const CertSet& certs, bool with_client_cert) {
  std::vector<std::string> args = {"--cacert=" + certs.ca.string()};
  if (with_client_cert) {
    args.push_back("--cert=" + certs.client.string());
    args.push_back("--key=" + certs.client_key.string());
  }
  return args;
}

std::optional<std::string> etcdctl_as_root(const std::string& client_url, const std::vector<std::string>& args,
                                           std::string* error, const std::vector<std::string>& tls_args) {
  // The root password goes through the environment, not argv, like the agent's own password would.
  std::vector<std::string> argv = {ETCDCTL_BINARY, "--endpoints=" + client_url, "--dial-timeout=3s"};
  argv.insert(argv.end(), tls_args.begin(), tls_args.end());
  argv.insert(argv.end(), args.begin(), args.end());
  const CaptureResult r = run_and_capture(argv, std::chrono::seconds(20),
                                          {{"ETCDCTL_API", "3"}, {"ETCDCTL_USER", std::string("root:") + kRootPassword}});
  if (r.exit_code != 0) {
    if (error) *error = "etcdctl " + (args.empty() ? std::string() : args[0]) + " failed: " + r.output;
    return std::nullopt;
  }
  return r.output;
}

bool enable_auth(const std::string& client_url, const std::string& sidecar_password, std::string* error,
                 const std::vector<std::string>& tls_args) {
  // Before `auth enable` the --user flag is ignored, so every step can run as root.
  const std::vector<std::vector<std::string>> steps = {
      {"user", "add", "root", std::string("--new-user-password=") + kRootPassword},
      {"user", "grant-role", "root", "root"},
      {"role", "add", "sidecar"},
      {"role", "grant-permission", "sidecar", "readwrite", "/services/", "--prefix=true"},
      {"role", "grant-permission", "sidecar", "readwrite", "/config/", "--prefix=true"},
      {"user", "add", kSidecarUser, "--new-user-password=" + sidecar_password},
      {"user", "grant-role", kSidecarUser, "sidecar"},
      {"auth", "enable"},
  };
  for (const auto& step : steps) {
    if (!etcdctl_as_root(client_url, step, error, tls_args)) return false;
  }
  return true;
}

// ------------------------------------------------------------------------------------------------ GrpcProxy

std::unique_ptr<GrpcProxy> GrpcProxy::start(std::vector<std::string> endpoints, std::chrono::milliseconds ready_timeout) {
  for (int attempt = 1; attempt <= 3; ++attempt) {
    std::unique_ptr<GrpcProxy> proxy(new GrpcProxy());
    proxy->endpoints_ = endpoints;
    proxy->port_ = free_port();
    proxy->log_path_ = proxy->dir_ / "proxy.log";
    if (proxy->port_ == 0 || !proxy->launch()) return nullptr;
    if (proxy->wait_ready(ready_timeout)) return proxy;
    if (proxy->is_running()) {
      std::fprintf(stderr, "grpc-proxy did not become ready; log:\n%s\n", read_file(proxy->log_path_).value_or("").c_str());
      return nullptr;
    }
  }
  return nullptr;
}

GrpcProxy::~GrpcProxy() { child_.reset(); }

std::string GrpcProxy::endpoint() const { return "127.0.0.1:" + std::to_string(port_); }
std::string GrpcProxy::client_url() const { return "http://" + endpoint(); }

bool GrpcProxy::launch() {
  std::string joined;
  for (const auto& ep : endpoints_) joined += (joined.empty() ? "" : ",") + ep;
  // The proxy's data dir holds nothing the tests need; keep it in our temp dir, not the working dir.
  std::vector<std::string> argv = {ETCD_BINARY,
                                   "grpc-proxy",
                                   "start",
                                   "--endpoints=" + joined,
                                   "--listen-addr=" + endpoint(),
                                   "--data-dir=" + (dir_ / "data").string()};
  ChildProcess::Options options;
  options.output_path = log_path_;
  options.append_output = true;
#if defined(__aarch64__)
  options.extra_env.emplace_back("ETCD_UNSUPPORTED_ARCH", "arm64");
#endif
  child_ = ChildProcess::spawn(argv, options);
  return child_.has_value();
}

bool GrpcProxy::wait_ready(std::chrono::milliseconds timeout) {
  return wait_until(
             [this] {
               if (!is_running()) return true;
               EtcdSyncClient probe(endpoint(), std::chrono::milliseconds(1000));
               return probe.healthy();
             },
             timeout, std::chrono::milliseconds(25)) &&
         is_running();
}

void GrpcProxy::kill9() {
  if (child_) child_->kill_and_reap();
}

bool GrpcProxy::restart(std::chrono::milliseconds ready_timeout) {
  kill9();
  if (!launch()) return false;
  return wait_ready(ready_timeout);
}

}  // namespace sidecar::test
