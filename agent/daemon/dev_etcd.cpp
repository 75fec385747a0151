#include "agent/daemon/dev_etcd.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <grpcpp/grpcpp.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <thread>

#include "agent/etcd/client.hpp"
#include "etcd/rpc.grpc.pb.h"

extern char** environ;

namespace sidecar::daemon {
namespace {

// Binds port 0 (or `port`) on 127.0.0.1 and returns what the kernel gave; 0 when `port` is taken.
int probe_port(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  int result = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    socklen_t len = sizeof addr;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) result = ntohs(addr.sin_port);
  }
  ::close(fd);
  return result;
}

bool answers(const std::string& target, std::chrono::milliseconds timeout) {
  auto channel = grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
  auto stub = etcdserverpb::Maintenance::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + timeout);
  ctx.set_wait_for_ready(true);  // ride out the connect itself; the deadline bounds it
  etcdserverpb::StatusResponse resp;
  return stub->Status(&ctx, etcdserverpb::StatusRequest{}, &resp).ok();
}

}  // namespace

std::optional<int> loopback_port(const std::string& endpoint) {
  std::string target = endpoint;
  if (auto pos = target.find("://"); pos != std::string::npos) target = target.substr(pos + 3);
  const auto colon = target.rfind(':');
  if (colon == std::string::npos) return std::nullopt;
  const std::string host = target.substr(0, colon);
  if (host != "127.0.0.1" && host != "localhost") return std::nullopt;
  try {
    return std::stoi(target.substr(colon + 1));
  } catch (...) {
    return std::nullopt;
  }
}

bool any_endpoint_answers(const std::vector<std::string>& endpoints, std::chrono::milliseconds timeout) {
  for (const auto& ep : endpoints) {
    auto target = etcd::grpc_target(ep, nullptr);
    if (target && answers(*target, timeout)) return true;
  }
  return false;
}

std::unique_ptr<DevEtcd> DevEtcd::start(int preferred_port, std::string* error) {
  std::unique_ptr<DevEtcd> dev(new DevEtcd());
  char dir_template[] = "/tmp/etcd-sidecar-dev.XXXXXX";
  if (::mkdtemp(dir_template) == nullptr) {
    *error = std::string("cannot create a scratch directory: ") + std::strerror(errno);
    return nullptr;
  }
  dev->data_dir_ = dir_template;
  int client_port = preferred_port > 0 ? probe_port(preferred_port) : 0;
  if (client_port == 0) client_port = probe_port(0);
  const int peer_port = probe_port(0);
  dev->client_url_ = "http://127.0.0.1:" + std::to_string(client_port);
  const std::string peer_url = "http://127.0.0.1:" + std::to_string(peer_port);
  const std::string log_path = dev->data_dir_ + "/etcd.log";

  std::vector<std::string> args = {"etcd",
                                   "--name=dev",
                                   "--data-dir=" + dev->data_dir_ + "/data",
                                   "--listen-client-urls=" + dev->client_url_,
                                   "--advertise-client-urls=" + dev->client_url_,
                                   "--listen-peer-urls=" + peer_url,
                                   "--initial-advertise-peer-urls=" + peer_url,
                                   "--initial-cluster=dev=" + peer_url,
                                   "--initial-cluster-state=new",
                                   "--logger=zap",
                                   "--log-outputs=stderr"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  // Its own process group: a Ctrl-C in the terminal reaches the agent, which then stops etcd in order.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, "etcd", &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    *error = std::string("cannot start etcd (is etcd-server installed?): ") + std::strerror(rc);
    return nullptr;
  }
  dev->pid_ = pid;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  const std::string target = "127.0.0.1:" + std::to_string(client_port);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      dev->pid_ = -1;
      *error = "etcd exited during start-up; see " + log_path;
      return nullptr;
    }
    if (answers(target, std::chrono::milliseconds(500))) return dev;
  }
  *error = "etcd did not answer within 15 s; see " + log_path;
  return nullptr;
}

DevEtcd::~DevEtcd() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 100 && ::waitpid(pid_, &status, WNOHANG) == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));  // bounded: 5 s, then SIGKILL
    }
    if (::waitpid(pid_, &status, WNOHANG) == 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
    }
  }
  if (!data_dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(data_dir_, ec);
  }
}

void DevEtcd::kill_now() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  if (!data_dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(data_dir_, ec);
    data_dir_.clear();
  }
}

}  // namespace sidecar::daemon
