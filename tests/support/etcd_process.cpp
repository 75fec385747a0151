#include "tests/support/etcd_process.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <map>
#include <random>
#include <set>

#include "tests/support/etcd_client.hpp"
#include "tests/support/wait.hpp"

#ifndef ETCD_BINARY
#define ETCD_BINARY "etcd"
#endif

namespace sidecar::test {
namespace {

constexpr int kStartAttempts = 3;
constexpr std::chrono::milliseconds kStopTimeout{10000};

std::string loopback_url(std::uint16_t port) { return "http://127.0.0.1:" + std::to_string(port); }

std::string unique_token() {
  static std::atomic<unsigned> counter{0};
  std::random_device rd;
  return "sidecar-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" +
         std::to_string(rd());
}

// Single-letter process state from /proc/<pid>/stat ('T' = stopped), or '?' when unreadable.
char proc_state(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  std::getline(in, stat);
  // The command name is in parentheses and may contain spaces; the state follows the last ')'.
  const auto paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size()) return '?';
  return stat[paren + 2];
}

void dump_log(const EtcdProcess& etcd, const char* why) {
  std::fprintf(stderr, "etcd %s (%s) %s; log %s tail:\n%s\n", etcd.spec().name.c_str(), etcd.endpoint().c_str(),
               why, etcd.log_path().c_str(), etcd.log_tail().c_str());
}

}  // namespace

// ------------------------------------------------------------------------------------------------ EtcdProcess

EtcdProcess::EtcdProcess(EtcdMemberSpec spec)
    : spec_(std::move(spec)), dir_("etcd-fixture"), data_dir_(dir_ / "data"), log_path_(dir_ / "etcd.log") {
  if (spec_.initial_cluster.empty()) spec_.initial_cluster = spec_.name + "=" + peer_url();
  if (spec_.cluster_token.empty()) spec_.cluster_token = unique_token();
}

EtcdProcess::~EtcdProcess() {
  // ChildProcess SIGKILLs and reaps by PID; TempDir then removes data and log.
  child_.reset();
}

std::unique_ptr<EtcdProcess> EtcdProcess::start(std::vector<std::string> extra_args,
                                                std::chrono::milliseconds ready_timeout) {
  return start_spec(std::nullopt, std::move(extra_args), ready_timeout);
}

std::unique_ptr<EtcdProcess> EtcdProcess::start_tls(ServerTls tls, std::vector<std::string> extra_args,
                                                    std::chrono::milliseconds ready_timeout) {
  return start_spec(std::move(tls), std::move(extra_args), ready_timeout);
}

std::unique_ptr<EtcdProcess> EtcdProcess::start_spec(std::optional<ServerTls> tls, std::vector<std::string> extra_args,
                                                     std::chrono::milliseconds ready_timeout) {
  for (int attempt = 1; attempt <= kStartAttempts; ++attempt) {
    EtcdMemberSpec spec;
    spec.tls = tls;
    spec.client_port = free_port();
    spec.peer_port = free_port();
    spec.extra_args = extra_args;
    if (spec.client_port == 0 || spec.peer_port == 0) {
      std::fprintf(stderr, "EtcdProcess: no free loopback port\n");
      return nullptr;
    }
    auto etcd = std::make_unique<EtcdProcess>(std::move(spec));
    if (!etcd->launch()) return nullptr;
    if (etcd->wait_ready(ready_timeout)) return etcd;
    // Exited early: most likely a port was taken between free_port() and etcd's bind. Try new ports.
    if (!etcd->is_running()) {
      dump_log(*etcd, "exited during startup, retrying on new ports");
      continue;
    }
    dump_log(*etcd, "did not become ready");
    return nullptr;
  }
  return nullptr;
}

bool EtcdProcess::launch() {
  if (child_ && child_->is_running()) return true;
  std::vector<std::string> argv = {
      ETCD_BINARY,
      "--name=" + spec_.name,
      "--data-dir=" + data_dir_.string(),
      "--listen-client-urls=" + client_url(),
      "--advertise-client-urls=" + client_url(),
      "--listen-peer-urls=" + peer_url(),
      "--initial-advertise-peer-urls=" + peer_url(),
      "--initial-cluster=" + spec_.initial_cluster,
      "--initial-cluster-state=new",
      "--initial-cluster-token=" + spec_.cluster_token,
      "--logger=zap",
      "--log-outputs=stderr",
  };
  if (spec_.tls) {
    argv.push_back("--cert-file=" + spec_.tls->cert.string());
    argv.push_back("--key-file=" + spec_.tls->key.string());
    // The trusted CA verifies client certificates; given without --client-cert-auth, etcd 3.4 still asks
    // for one, so a CA-only setup leaves it out.
    if (spec_.tls->client_cert_auth) {
      argv.push_back("--trusted-ca-file=" + spec_.tls->ca.string());
      argv.push_back("--client-cert-auth");
    }
  }
  argv.insert(argv.end(), spec_.extra_args.begin(), spec_.extra_args.end());

  ChildProcess::Options options;
  options.output_path = log_path_;
  options.append_output = true;  // one log across restarts tells the whole story of a failed test
#if defined(__aarch64__)
  options.extra_env.emplace_back("ETCD_UNSUPPORTED_ARCH", "arm64");  // etcd 3.4 refuses arm64 without it
#endif
  child_ = ChildProcess::spawn(argv, options);
  return child_.has_value();
}

bool EtcdProcess::wait_ready(std::chrono::milliseconds timeout) {
  // A fresh channel per probe: a long-lived one would sit in reconnect backoff after early refusals.
  return wait_until(
      [this] {
        if (!is_running()) return true;  // stop waiting; reported below
        if (spec_.tls) {
          // Read at every probe: a test may have replaced the files before a restart.
          ClientTls tls{read_file(spec_.tls->ca).value_or(""), {}, {}};
          if (!spec_.tls->probe_cert.empty()) {
            tls.cert_pem = read_file(spec_.tls->probe_cert).value_or("");
            tls.key_pem = read_file(spec_.tls->probe_key).value_or("");
          }
          EtcdSyncClient probe(endpoint(), tls, std::chrono::milliseconds(1000));
          return probe.healthy();
        }
        EtcdSyncClient probe(endpoint(), std::chrono::milliseconds(1000));
        // With auth on, an anonymous read is refused, which still proves the member serves requests.
        return probe.healthy() || probe.last_error().find("user name is empty") != std::string::npos;
      },
      timeout, std::chrono::milliseconds(25)) &&
         is_running();
}

std::string EtcdProcess::client_url() const {
  return spec_.tls ? "https://127.0.0.1:" + std::to_string(spec_.client_port) : loopback_url(spec_.client_port);
}
std::string EtcdProcess::endpoint() const { return "127.0.0.1:" + std::to_string(spec_.client_port); }
std::string EtcdProcess::peer_url() const { return loopback_url(spec_.peer_port); }

pid_t EtcdProcess::pid() const { return child_ ? child_->pid() : -1; }

bool EtcdProcess::is_running() { return child_ && child_->is_running(); }

std::string EtcdProcess::log_tail(std::size_t max_bytes) const {
  const std::string log = read_file(log_path_).value_or("<no log>");
  return log.size() <= max_bytes ? log : log.substr(log.size() - max_bytes);
}

void EtcdProcess::kill9() {
  if (child_) child_->kill_and_reap();
}

bool EtcdProcess::stop() {
  if (!child_ || !child_->is_running()) return true;
  child_->signal(SIGTERM);
  child_->signal(SIGCONT);  // a SIGSTOPped process would keep SIGTERM pending forever
  if (child_->wait_exit(kStopTimeout)) return true;
  child_->kill_and_reap();
  return false;
}

bool EtcdProcess::sigstop() {
  if (!child_ || !child_->signal(SIGSTOP)) return false;
  const pid_t p = child_->pid();
  return wait_until([p] { return proc_state(p) == 'T'; }, std::chrono::milliseconds(2000));
}

bool EtcdProcess::sigcont() { return child_ && child_->signal(SIGCONT); }

bool EtcdProcess::restart(std::chrono::milliseconds ready_timeout) {
  stop();
  if (!launch()) return false;
  if (wait_ready(ready_timeout)) return true;
  dump_log(*this, "did not come back after restart");
  return false;
}

bool EtcdProcess::restart_wiped(std::chrono::milliseconds ready_timeout) {
  stop();
  std::error_code ec;
  std::filesystem::remove_all(data_dir_, ec);
  if (ec) {
    std::fprintf(stderr, "EtcdProcess: cannot wipe %s: %s\n", data_dir_.c_str(), ec.message().c_str());
    return false;
  }
  return restart(ready_timeout);
}

// ------------------------------------------------------------------------------------------------ EtcdCluster

std::unique_ptr<EtcdCluster> EtcdCluster::start(std::size_t size, std::chrono::milliseconds ready_timeout) {
  for (int attempt = 1; attempt <= kStartAttempts; ++attempt) {
    std::unique_ptr<EtcdCluster> cluster(new EtcdCluster());
    std::vector<EtcdMemberSpec> specs(size);
    std::string initial_cluster;
    const std::string token = unique_token();
    for (std::size_t i = 0; i < size; ++i) {
      specs[i].name = "member" + std::to_string(i);
      specs[i].client_port = free_port();
      specs[i].peer_port = free_port();
      specs[i].cluster_token = token;
      if (specs[i].client_port == 0 || specs[i].peer_port == 0) {
        std::fprintf(stderr, "EtcdCluster: no free loopback port\n");
        return nullptr;
      }
      if (!initial_cluster.empty()) initial_cluster += ",";
      initial_cluster += specs[i].name + "=" + loopback_url(specs[i].peer_port);
    }
    // Every member must be running before any can be ready: etcd serves clients only once it has a quorum.
    for (auto& spec : specs) {
      spec.initial_cluster = initial_cluster;
      cluster->members_.push_back(std::make_unique<EtcdProcess>(std::move(spec)));
      if (!cluster->members_.back()->launch()) return nullptr;
    }
    const auto deadline = std::chrono::steady_clock::now() + ready_timeout;
    bool all_ready = true;
    bool any_exited = false;
    for (auto& member : cluster->members_) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (!member->wait_ready(std::max(left, std::chrono::milliseconds(0)))) {
        all_ready = false;
        any_exited = !member->is_running();
        break;
      }
    }
    if (all_ready && cluster->wait_for_leader(ready_timeout)) return cluster;
    for (auto& member : cluster->members_) dump_log(*member, "cluster startup failed");
    if (!any_exited) return nullptr;  // not a port race; retrying would only hide the cause
  }
  return nullptr;
}

std::vector<std::string> EtcdCluster::endpoints() const {
  std::vector<std::string> out;
  for (const auto& member : members_) out.push_back(member->endpoint());
  return out;
}

std::string EtcdCluster::client_urls() const {
  std::string out;
  for (const auto& member : members_) out += (out.empty() ? "" : ",") + member->client_url();
  return out;
}

std::optional<std::size_t> EtcdCluster::leader_index() {
  std::map<std::uint64_t, std::size_t> index_of_id;
  std::set<std::uint64_t> leaders;
  for (std::size_t i = 0; i < members_.size(); ++i) {
    if (!members_[i]->is_running() || proc_state(members_[i]->pid()) == 'T') continue;
    EtcdSyncClient client(members_[i]->endpoint(), std::chrono::milliseconds(1000));
    const auto status = client.status();
    if (!status) continue;
    index_of_id[status->member_id] = i;
    leaders.insert(status->leader);
  }
  if (leaders.size() != 1 || *leaders.begin() == 0) return std::nullopt;
  const auto found = index_of_id.find(*leaders.begin());
  if (found == index_of_id.end()) return std::nullopt;  // the agreed leader is not reachable (stale view)
  return found->second;
}

std::optional<std::size_t> EtcdCluster::wait_for_leader(std::chrono::milliseconds timeout) {
  std::optional<std::size_t> leader;
  wait_until([&] { return (leader = leader_index()).has_value(); }, timeout, std::chrono::milliseconds(50));
  return leader;
}

}  // namespace sidecar::test
