// The admin endpoint of a real agent against a real etcd: every endpoint with its content, Prometheus text
// that parses, counters that move when a lease is lost and a key restored, readiness that follows etcd,
// and the endpoint's own limits (404/405/501, oversized requests, connection cap, bind failure).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "agent/core/agent_status.hpp"
#include "tests/support/admin_client.hpp"
#include "tests/support/agent_fixture.hpp"
#include "tests/support/agent_process.hpp"
#include "tests/support/etcd_client.hpp"
#include "tests/support/wait.hpp"

namespace sidecar::test {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

constexpr int kExitAdminBind = 71;

const ServiceDef kApi{.name = "api", .id = "api-1", .address = "10.0.0.1", .port = 8080};

// A loopback socket to hold connections open (or a port taken).
class RawSocket {
 public:
  RawSocket() : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {}
  ~RawSocket() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawSocket(const RawSocket&) = delete;
  RawSocket& operator=(const RawSocket&) = delete;
  bool connect_to(std::uint16_t port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  // Binds and listens on an ephemeral loopback port; 0 on failure.
  std::uint16_t listen_any() {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd_, 4) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      return 0;
    }
    return ntohs(addr.sin_port);
  }
  // True when the peer closed (recv returned 0 or reset) within `timeout`.
  bool closed_by_peer_within(std::chrono::milliseconds timeout) {
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[256];
    while (true) {
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n == 0) return true;
      if (n < 0) return errno == ECONNRESET;
    }
  }
  // Sends all of `bytes`, stopping early (without failing) when the peer has closed: a server that refuses a
  // request may answer and close before reading the rest of it. The number of bytes the kernel took.
  std::size_t send_until_refused(std::string_view bytes) {
    std::size_t sent = 0;
    while (sent < bytes.size()) {
      const ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) break;
      sent += static_cast<std::size_t>(n);
    }
    return sent;
  }
  // Everything the peer sends until it closes, and how the connection ended.
  struct Received {
    std::string bytes;
    bool closed = false;    // EOF or reset by the peer; false: still open when `timeout` ran out
    int last_errno = 0;     // ECONNRESET when the close was a reset
  };
  Received read_until_closed(std::chrono::milliseconds timeout) {
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    Received r;
    char buf[4096];
    while (true) {
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n > 0) {
        r.bytes.append(buf, static_cast<std::size_t>(n));
        continue;
      }
      r.last_errno = n < 0 ? errno : 0;
      r.closed = n == 0 || errno == ECONNRESET;
      return r;
    }
  }
  int fd() const { return fd_; }

 private:
  int fd_;
};

class AdminEndpoint : public EtcdAgentFixture {
 protected:
  std::string manifest(std::string_view ttl = "2s") const {
    return registration_manifest(etcd_->client_url(), {kApi}, ttl) +
           "discover:\n  - service: api\n    output: api.json\n";
  }

  // Starts the agent and returns its admin port (from its log).
  std::uint16_t start_agent(const std::string& yaml, std::vector<std::string> args = {}, EnvVars env = {}) {
    agent_ = AgentProcess::start(yaml, std::move(args), std::move(env));
    if (!agent_) throw std::runtime_error("cannot start the agent");
    std::optional<std::uint16_t> port;
    if (!wait_until([&] { return (port = admin_port_from_log(agent_->output())).has_value(); }, 5s)) {
      throw std::runtime_error("the agent never logged its admin port:\n" + agent_->output());
    }
    return *port;
  }

  PromParse metrics(std::uint16_t port) {
    const HttpResponse r = http_request(port, "GET", "/metrics");
    EXPECT_EQ(r.status, 200) << r.error;
    EXPECT_EQ(r.header("content-type"), "text/plain; version=0.0.4; charset=utf-8");
    PromParse parsed = parse_prometheus(r.body);
    EXPECT_THAT(parsed.errors, ::testing::IsEmpty()) << r.body;
    return parsed;
  }

  // Polls /metrics until `name` (without labels) is at least `at_least`.
  bool wait_metric_at_least(std::uint16_t port, const std::string& name, double at_least,
                            std::chrono::milliseconds timeout = 10s) {
    return wait_until(
        [&] {
          const HttpResponse r = http_request(port, "GET", "/metrics");
          const auto v = parse_prometheus(r.body).value(name);
          return v && *v >= at_least;
        },
        timeout, 50ms);
  }

  bool wait_ready(std::uint16_t port, std::chrono::milliseconds timeout = 10s) {
    return wait_until([&] { return http_request(port, "GET", "/readyz").status == 200; }, timeout, 20ms);
  }
};

TEST_F(AdminEndpoint, LivezReadyzStatusAndMetricsDescribeTheRegisteredAgent) {
  const std::uint16_t port = start_agent(manifest());
  ASSERT_TRUE(wait_ready(port));

  const HttpResponse live = http_request(port, "GET", "/livez");
  EXPECT_EQ(live.status, 200);
  EXPECT_EQ(live.body, "ok\n");
  const HttpResponse ready = http_request(port, "GET", "/readyz");
  EXPECT_EQ(nlohmann::json::parse(ready.body), nlohmann::json({{"ready", true}, {"missing", nlohmann::json::array()}}));

  const auto kv = client_->get(service_key(kApi));
  ASSERT_TRUE(kv.has_value());
  // Readiness needs the first sync, which may be from before our own put: wait for the instance to arrive.
  HttpResponse status_reply;
  ASSERT_TRUE(wait_until(
      [&] {
        status_reply = http_request(port, "GET", "/v1/status");
        return status_reply.status == 200 && nlohmann::json::parse(status_reply.body)["discover"][0]["count"] == 1;
      },
      5s))
      << status_reply.body;
  EXPECT_EQ(status_reply.header("content-type"), "application/json");
  const auto status = nlohmann::json::parse(status_reply.body);
  EXPECT_EQ(status["lease"]["id"].get<int64_t>(), kv->lease);
  EXPECT_EQ(status["lease"]["state"], "alive");
  EXPECT_EQ(status["lease"]["ttl_seconds"], 2);
  const double remaining = status["lease"]["remaining_ttl_seconds"].get<double>();
  EXPECT_GT(remaining, 0.0);
  EXPECT_LE(remaining, 2.0);
  ASSERT_EQ(status["services"].size(), 1u);
  EXPECT_EQ(status["services"][0]["key"], service_key(kApi));
  EXPECT_EQ(status["services"][0]["status"], "registered");
  ASSERT_EQ(status["discover"].size(), 1u);
  EXPECT_EQ(status["discover"][0]["service"], "api");
  EXPECT_EQ(status["discover"][0]["count"], 1);  // include_self: the agent discovers its own instance
  EXPECT_GE(status["discover"][0]["revision"].get<int64_t>(), kv->mod_revision);
  const auto manifest_bytes = read_file(agent_->manifest_path());
  ASSERT_TRUE(manifest_bytes.has_value());
  EXPECT_EQ(status["config_version"]["hash"], core::content_hash(*manifest_bytes));
  EXPECT_EQ(status["config_version"]["path"], agent_->manifest_path().string());
  EXPECT_GT(status["config_version"]["mtime_unix"].get<int64_t>(), 0);

  // Keepalives go out every TTL/3; wait for a couple of round trips to be measured.
  ASSERT_TRUE(wait_metric_at_least(port, "etcd_sidecar_keepalive_rtt_seconds_count", 2, 5s));
  const PromParse m = metrics(port);
  EXPECT_EQ(m.families.at("etcd_sidecar_build_info").type, "gauge");
  ASSERT_EQ(m.families.at("etcd_sidecar_build_info").samples.size(), 1u);
  EXPECT_FALSE(m.families.at("etcd_sidecar_build_info").samples[0].labels.at("version").empty());
  EXPECT_EQ(m.value("etcd_sidecar_service_registered", {{"service", "api"}, {"id", "api-1"}}), 1.0);
  EXPECT_EQ(m.value("etcd_sidecar_registration_state", {{"service", "api"}, {"id", "api-1"}, {"state", "registered"}}),
            1.0);
  EXPECT_EQ(m.value("etcd_sidecar_lease_grants_total"), 1.0);
  EXPECT_EQ(m.value("etcd_sidecar_lease_losses_total"), 0.0);
  EXPECT_EQ(m.value("etcd_sidecar_key_restorations_total"), 0.0);
  EXPECT_EQ(m.value("etcd_sidecar_discovered_instances", {{"service", "api"}}), 1.0);
  EXPECT_EQ(m.value("etcd_sidecar_watch_starts_total", {{"kind", "discover"}, {"name", "api"}}), 1.0);
  EXPECT_EQ(m.value("etcd_sidecar_watch_resyncs_total", {{"kind", "discover"}, {"name", "api"}}), 0.0);
  EXPECT_GE(m.value("etcd_sidecar_file_writes_total", {{"kind", "discover"}, {"output", "api.json"}}).value_or(0), 1.0);
  EXPECT_EQ(m.value("etcd_sidecar_file_write_failures_total", {{"kind", "discover"}, {"output", "api.json"}}), 0.0);
  EXPECT_EQ(m.value("etcd_sidecar_on_change_runs_total", {{"kind", "discover"}, {"output", "api.json"}}), 0.0);
  EXPECT_EQ(m.value("etcd_sidecar_invalid_values_total", {{"service", "api"}}), 0.0);
  EXPECT_EQ(m.families.at("etcd_sidecar_keepalive_rtt_seconds").type, "histogram");
  EXPECT_EQ(m.value("etcd_sidecar_ready"), 1.0);
}

TEST_F(AdminEndpoint, CountersMoveWhenTheKeyIsRestoredAndTheLeaseIsLost) {
  const std::uint16_t port = start_agent(manifest());
  ASSERT_TRUE(wait_ready(port));
  ASSERT_EQ(metrics(port).value("etcd_sidecar_key_restorations_total"), 0.0);

  // Another client deletes our key: the agent writes it back and counts it.
  ASSERT_GE(client_->del(service_key(kApi)), 0) << client_->last_error();
  ASSERT_TRUE(wait_metric_at_least(port, "etcd_sidecar_key_restorations_total", 1));
  ASSERT_TRUE(wait_until([&] { return client_->get(service_key(kApi)).has_value(); }, 5s));
  // The rewritten value is the agent's own, so discovery sees a valid instance, not a bad value.
  EXPECT_EQ(metrics(port).value("etcd_sidecar_invalid_values_total", {{"service", "api"}}), 0.0);

  // Revoke the agent's lease from outside: lost, replaced by a new grant, key rewritten.
  const auto kv = client_->get(service_key(kApi));
  ASSERT_TRUE(kv.has_value());
  ASSERT_TRUE(client_->lease_revoke(kv->lease)) << client_->last_error();
  ASSERT_TRUE(wait_metric_at_least(port, "etcd_sidecar_lease_losses_total", 1));
  ASSERT_TRUE(wait_metric_at_least(port, "etcd_sidecar_lease_grants_total", 2));
  ASSERT_TRUE(wait_ready(port));
  const auto status = nlohmann::json::parse(http_request(port, "GET", "/v1/status").body);
  const auto now_kv = client_->get(service_key(kApi));
  ASSERT_TRUE(now_kv.has_value());
  EXPECT_NE(now_kv->lease, kv->lease);
  EXPECT_EQ(status["lease"]["id"].get<int64_t>(), now_kv->lease);
  EXPECT_EQ(status["lease"]["losses"], 1);
}

TEST_F(AdminEndpoint, ReadyzIs503WhileEtcdIsUnreachableAnd200AfterLivezAlways200) {
  ASSERT_TRUE(etcd_->stop());
  const std::uint16_t port = start_agent(manifest());

  const HttpResponse live = http_request(port, "GET", "/livez");
  EXPECT_EQ(live.status, 200);
  const HttpResponse not_ready = http_request(port, "GET", "/readyz");
  ASSERT_EQ(not_ready.status, 503);
  const auto body = nlohmann::json::parse(not_ready.body);
  EXPECT_EQ(body["ready"], false);
  ASSERT_EQ(body["missing"].size(), 2u) << not_ready.body;
  EXPECT_EQ(body["missing"][0]["kind"], "service");
  EXPECT_EQ(body["missing"][0]["key"], service_key(kApi));
  EXPECT_EQ(body["missing"][1]["kind"], "discover");
  EXPECT_EQ(body["missing"][1]["name"], "api");
  EXPECT_EQ(metrics(port).value("etcd_sidecar_ready"), 0.0);

  ASSERT_TRUE(etcd_->restart());
  EXPECT_TRUE(wait_ready(port, 15s));
  EXPECT_EQ(http_request(port, "GET", "/livez").status, 200);
}

TEST_F(AdminEndpoint, UnknownPathAndWrongMethodAreAnswered) {
  const std::uint16_t port = start_agent(manifest());
  const HttpResponse missing = http_request(port, "GET", "/nope");
  EXPECT_EQ(missing.status, 404);
  const HttpResponse wrong = http_request(port, "POST", "/metrics");
  EXPECT_EQ(wrong.status, 405);
  EXPECT_EQ(wrong.header("allow"), "GET");
  const HttpResponse get_drain = http_request(port, "GET", "/v1/drain");
  EXPECT_EQ(get_drain.status, 405);
  EXPECT_EQ(get_drain.header("allow"), "POST");
}

// The Kubernetes preStop path: POST /v1/drain takes the key out while the agent keeps its lease and keeps
// serving; /readyz stays 200 (a drained service is withdrawn on purpose); /v1/undrain puts it back.
TEST_F(AdminEndpoint, DrainAndUndrainRemoveAndRestoreTheKeyOnTheSameLease) {
  const std::uint16_t port = start_agent(manifest());
  ASSERT_TRUE(wait_until([&] { return client_->get(service_key(kApi)).has_value(); }, 10s));
  const std::int64_t lease = client_->get(service_key(kApi))->lease;

  EXPECT_EQ(http_request(port, "POST", "/v1/drain").status, 200);
  ASSERT_TRUE(wait_until([&] { return !client_->get(service_key(kApi)).has_value(); }, 5s));
  EXPECT_GT(client_->lease_ttl(lease).ttl, 0) << "draining must keep the lease";
  const nlohmann::json status = nlohmann::json::parse(http_request(port, "GET", "/v1/status").body);
  EXPECT_EQ(status["drained"], true) << status.dump();
  EXPECT_EQ(http_request(port, "GET", "/readyz").status, 200);
  const auto metrics = parse_prometheus(http_request(port, "GET", "/metrics").body);
  ASSERT_TRUE(metrics.errors.empty()) << metrics.errors.front();
  EXPECT_EQ(metrics.value("etcd_sidecar_drained"), 1.0);

  EXPECT_EQ(http_request(port, "POST", "/v1/undrain").status, 200);
  ASSERT_TRUE(wait_until([&] { return client_->get(service_key(kApi)).has_value(); }, 5s));
  EXPECT_EQ(client_->get(service_key(kApi))->lease, lease);
  EXPECT_EQ(nlohmann::json::parse(http_request(port, "GET", "/v1/status").body)["drained"], false);
}

TEST_F(AdminEndpoint, OversizedHeadersAndBodiesAreRefused) {
  const std::uint16_t port = start_agent(manifest());
  const std::string big_header =
      "GET /livez HTTP/1.1\r\nHost: x\r\nX-Pad: " + std::string(20000, 'a') + "\r\nConnection: close\r\n\r\n";
  EXPECT_EQ(http_raw(port, big_header).status, 431);
  const std::string big_body =
      "POST /v1/drain HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n" +
      std::string(100000, 'b');
  EXPECT_EQ(http_raw(port, big_body).status, 413);
  EXPECT_EQ(http_request(port, "GET", "/livez").status, 200);  // and it still serves
}

// A raw socket, so the test sees exactly what comes back: the status line and the close, not a client's
// interpretation of a reset. The limits are the agent's defaults: 8 KiB of header, 4 KiB of body.
TEST_F(AdminEndpoint, A64KiBHeaderIsAnswered431AndAnOversizedBody413BeforeTheClose) {
  const std::uint16_t port = start_agent(manifest());
  ASSERT_EQ(http_request(port, "GET", "/livez").status, 200);

  auto refused = [&](const std::string& request) {
    RawSocket socket;
    EXPECT_TRUE(socket.connect_to(port));
    socket.send_until_refused(request);
    return socket.read_until_closed(5s);
  };
  // Keep-alive requests: the close must be the server's decision, not an echo of "Connection: close".
  const std::string big_header =
      "GET /livez HTTP/1.1\r\nHost: x\r\nX-Pad: " + std::string(64 * 1024, 'a') + "\r\n\r\n";
  const auto header_reply = refused(big_header);
  EXPECT_THAT(header_reply.bytes, ::testing::StartsWith("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
  EXPECT_THAT(header_reply.bytes, HasSubstr("\r\nConnection: close\r\n"));
  EXPECT_THAT(header_reply.bytes, HasSubstr(R"({"error":"request header too large"})"));
  EXPECT_TRUE(header_reply.closed) << "the connection is still open after the 431 (errno " << header_reply.last_errno
                                   << ")";

  // One byte over the body limit, announced by Content-Length: refused before the body is read.
  const std::string over_body =
      "POST /v1/drain HTTP/1.1\r\nHost: x\r\nContent-Length: 4097\r\n\r\n" + std::string(4097, 'b');
  const auto body_reply = refused(over_body);
  EXPECT_THAT(body_reply.bytes, ::testing::StartsWith("HTTP/1.1 413 "));
  EXPECT_THAT(body_reply.bytes, HasSubstr("\r\nConnection: close\r\n"));
  EXPECT_THAT(body_reply.bytes, HasSubstr(R"({"error":"request body too large"})"));
  EXPECT_TRUE(body_reply.closed) << "the connection is still open after the 413 (errno " << body_reply.last_errno
                                 << ")";
  // Chunked, so no Content-Length gives the size away: refused once the chunks pass the limit.
  const std::string chunked = "POST /v1/drain HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1800\r\n" +
                              std::string(0x1800, 'c') + "\r\n0\r\n\r\n";
  const auto chunked_reply = refused(chunked);
  EXPECT_THAT(chunked_reply.bytes, ::testing::StartsWith("HTTP/1.1 413 "));
  EXPECT_TRUE(chunked_reply.closed);

  // Neither refused request was acted on, and the endpoint still serves.
  EXPECT_EQ(nlohmann::json::parse(http_request(port, "GET", "/v1/status").body)["drained"], false);
  EXPECT_EQ(http_request(port, "GET", "/livez").status, 200);
}

TEST_F(AdminEndpoint, IdleConnectionsAreCappedAndTimedOut) {
  const std::uint16_t port = start_agent(manifest());
  ASSERT_EQ(http_request(port, "GET", "/livez").status, 200);
  // 16 connections that never send a byte fill the cap...
  std::vector<std::unique_ptr<RawSocket>> idle;
  for (int i = 0; i < 16; ++i) {
    idle.push_back(std::make_unique<RawSocket>());
    ASSERT_TRUE(idle.back()->connect_to(port));
  }
  // ...so the next one is closed without an answer (after the agent accepted the 16: poll until it is).
  EXPECT_TRUE(wait_until([&] { return http_request(port, "GET", "/livez", 1s).status == 0; }, 3s));
  // The idle ones are dropped after the 5 s I/O timeout, and the endpoint answers again.
  EXPECT_TRUE(idle.front()->closed_by_peer_within(8s));
  EXPECT_TRUE(wait_until([&] { return http_request(port, "GET", "/livez", 1s).status == 200; }, 3s));
}

TEST_F(AdminEndpoint, PortInUseExits71WithAClearMessage) {
  RawSocket holder;
  const std::uint16_t taken = holder.listen_any();
  ASSERT_NE(taken, 0);
  const std::string listen = "127.0.0.1:" + std::to_string(taken);
  agent_ = AgentProcess::start(manifest(), {"--admin-listen", listen});
  ASSERT_NE(agent_, nullptr);
  EXPECT_EQ(agent_->wait_exit(5s), kExitAdminBind);
  EXPECT_THAT(agent_->output(), HasSubstr("admin endpoint: cannot listen on " + listen));
  EXPECT_THAT(agent_->output(), HasSubstr("in use"));
  EXPECT_FALSE(client_->get(service_key(kApi)).has_value()) << "nothing may be registered";
}

TEST_F(AdminEndpoint, CanBeSwitchedOffInTheManifest) {
  agent_ = AgentProcess::start(manifest() + "admin:\n  enabled: false\n");
  ASSERT_NE(agent_, nullptr);
  ASSERT_TRUE(wait_until([&] { return client_->get(service_key(kApi)).has_value(); }, 10s));
  EXPECT_FALSE(agent_->output_contains("admin endpoint listening"));
}

TEST_F(AdminEndpoint, EmptyAdminListenOnTheCommandLineSwitchesItOff) {
  agent_ = AgentProcess::start(manifest(), {"--admin-listen", ""});
  ASSERT_NE(agent_, nullptr);
  ASSERT_TRUE(wait_until([&] { return client_->get(service_key(kApi)).has_value(); }, 10s));
  EXPECT_FALSE(agent_->output_contains("admin endpoint listening"));
}

TEST_F(AdminEndpoint, BadAdminListenInTheManifestIsAConfigError) {
  agent_ = AgentProcess::start(manifest() + "admin:\n  listen: \"localhost:9464\"\n");
  ASSERT_NE(agent_, nullptr);
  EXPECT_EQ(agent_->wait_exit(5s), 78);
  EXPECT_THAT(agent_->output(), HasSubstr(":14:11: admin.listen: invalid listen address 'localhost:9464'"));
}

}  // namespace
}  // namespace sidecar::test
