#include "tests/support/health_servers.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <grpcpp/grpcpp.h>

#include <cerrno>
#include <cstdio>

#include "grpc/health.grpc.pb.h"
#include "tests/support/process.hpp"
#include "tests/support/wait.hpp"

namespace sidecar::test {
namespace {

// A listening socket on 127.0.0.1:`port` (0: any free one); -1 on failure.
int listen_on(std::uint16_t port, std::uint16_t* bound) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 64) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::perror("health server listen");
    ::close(fd);
    return -1;
  }
  if (bound != nullptr) *bound = ntohs(addr.sin_port);
  return fd;
}

// Waits up to `ms` for `fd` to be readable; false on timeout or when `stopping` is set meanwhile.
bool readable(int fd, int ms, const std::atomic<bool>& stopping) {
  for (int waited = 0; waited < ms && !stopping.load(); waited += 20) {
    pollfd p{fd, POLLIN, 0};
    const int n = ::poll(&p, 1, 20);
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return false;
  }
  return false;
}

const char* reason_phrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 204: return "No Content";
    case 404: return "Not Found";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Status";
  }
}

}  // namespace

// ------------------------------------------------------------------------------------------------ HTTP

FlipHttpServer::FlipHttpServer() {
  listen_fd_ = listen_on(0, &port_);
  if (listen_fd_ >= 0) thread_ = std::thread([this] { run(); });
}

FlipHttpServer::~FlipHttpServer() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
}

std::string FlipHttpServer::url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + path;
}

void FlipHttpServer::set_answer(int status, std::string body) {
  std::lock_guard lock(mu_);
  status_ = status;
  body_ = std::move(body);
}

void FlipHttpServer::fail_next(int n) {
  std::lock_guard lock(mu_);
  fail_next_ = n;
}

void FlipHttpServer::set_hang(bool hang) {
  std::lock_guard lock(mu_);
  hang_ = hang;
}

std::vector<FlipHttpServer::Served> FlipHttpServer::served() const {
  std::lock_guard lock(mu_);
  return served_;
}

size_t FlipHttpServer::served_count() const {
  std::lock_guard lock(mu_);
  return served_.size();
}

bool FlipHttpServer::wait_for_served(size_t n, std::chrono::milliseconds timeout) const {
  return wait_until([&] { return served_count() >= n; }, timeout);
}

void FlipHttpServer::run() {
  while (!stopping_) {
    if (!readable(listen_fd_, 100, stopping_)) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    handle(fd);
    ::close(fd);
  }
}

void FlipHttpServer::handle(int fd) {
  std::string request;
  char buf[2048];
  while (request.find("\r\n\r\n") == std::string::npos && request.size() < 64 * 1024) {
    if (!readable(fd, 2000, stopping_)) return;
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return;
    request.append(buf, static_cast<size_t>(n));
  }
  int status = 0;
  std::string body;
  bool hang = false;
  {
    std::lock_guard lock(mu_);
    hang = hang_;
    if (fail_next_ > 0) {
      --fail_next_;
      status = 503;
      body = "flap";
    } else {
      status = status_;
      body = body_;
    }
  }
  if (hang) {
    // Hold the connection until the agent gives up on it (its timeout closes the socket).
    while (!stopping_) {
      if (!readable(fd, 100, stopping_)) continue;
      if (::recv(fd, buf, sizeof buf, 0) <= 0) break;
    }
    return;
  }
  const std::string response = "HTTP/1.1 " + std::to_string(status) + " " + reason_phrase(status) +
                               "\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) +
                               "\r\nConnection: close\r\n\r\n" + body;
  {
    // Recorded before the bytes leave, so a test that sees the agent react finds the answer counted.
    std::lock_guard lock(mu_);
    served_.push_back({status, Clock::now(), request.substr(0, request.find("\r\n\r\n"))});
  }
  size_t sent = 0;
  while (sent < response.size()) {
    const ssize_t n = ::send(fd, response.data() + sent, response.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
}

// ------------------------------------------------------------------------------------------------ TCP

TcpListener::TcpListener() {
  port_ = free_port();
  open();
}

TcpListener::~TcpListener() { close(); }

bool TcpListener::open() {
  std::lock_guard lock(mu_);
  if (listen_fd_ >= 0) return true;
  // The port was ours a moment ago; someone could take it in between, so retry briefly.
  int fd = -1;
  wait_until([&] { return (fd = listen_on(port_, nullptr)) >= 0; }, std::chrono::seconds(2), std::chrono::milliseconds(50));
  if (fd < 0) return false;
  listen_fd_ = fd;
  thread_ = std::thread([this, fd] { run(fd); });
  return true;
}

void TcpListener::close() {
  std::thread thread;
  {
    std::lock_guard lock(mu_);
    if (listen_fd_ < 0) return;
    // shutdown() wakes the accept() below; the fd is closed by the thread's owner after the join.
    ::shutdown(listen_fd_, SHUT_RDWR);
    thread = std::move(thread_);
  }
  if (thread.joinable()) thread.join();
  std::lock_guard lock(mu_);
  ::close(listen_fd_);
  listen_fd_ = -1;
}

bool TcpListener::is_open() const {
  std::lock_guard lock(mu_);
  return listen_fd_ >= 0;
}

void TcpListener::run(int fd) {
  while (true) {
    const int conn = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) {
      if (errno == EINTR) continue;
      return;  // shut down
    }
    ++accepted_;
    ::close(conn);
  }
}

// ------------------------------------------------------------------------------------------------ gRPC

class GrpcHealthServer::Service final : public grpc::health::v1::Health::Service {
 public:
  grpc::Status Check(grpc::ServerContext*, const grpc::health::v1::HealthCheckRequest* request,
                     grpc::health::v1::HealthCheckResponse* response) override {
    const auto now = Clock::now();
    std::lock_guard lock(mu_);
    if (checks_ == 0) first_at_ = now;
    ++checks_;
    const auto it = statuses_.find(request->service());
    if (it == statuses_.end()) return grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown service");
    response->set_status(it->second == Status::kServing ? grpc::health::v1::HealthCheckResponse::SERVING
                                                        : grpc::health::v1::HealthCheckResponse::NOT_SERVING);
    return grpc::Status::OK;
  }

  void set(const std::string& service, Status status) {
    std::lock_guard lock(mu_);
    statuses_[service] = status;
  }
  size_t checks() const {
    std::lock_guard lock(mu_);
    return checks_;
  }
  std::optional<Clock::time_point> first_at() const {
    std::lock_guard lock(mu_);
    return first_at_;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, Status> statuses_;
  size_t checks_ = 0;
  std::optional<Clock::time_point> first_at_;
};

GrpcHealthServer::GrpcHealthServer(const std::string& listen) : service_(std::make_unique<Service>()) {
  grpc::ServerBuilder builder;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port_);
  builder.RegisterService(service_.get());
  server_ = builder.BuildAndStart();
  if (!server_) port_ = 0;
}

GrpcHealthServer::~GrpcHealthServer() {
  if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
}

void GrpcHealthServer::set_status(const std::string& service, Status status) { service_->set(service, status); }

size_t GrpcHealthServer::checks() const { return service_->checks(); }

std::optional<Clock::time_point> GrpcHealthServer::first_check_at() const { return service_->first_at(); }

}  // namespace sidecar::test
