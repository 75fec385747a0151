// The DNS view of a real agent on a real etcd, asked by real clients: dig (A, AAAA, SRV, NXDOMAIN, REFUSED,
// TC then TCP), Node's dns.Resolver (SRV), and raw malformed packets (dropped and counted).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <optional>
#include <algorithm>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include "grpc/health.grpc.pb.h"

#include "tests/support/admin_client.hpp"
#include "tests/support/agent_fixture.hpp"
#include "tests/support/agent_process.hpp"
#include "tests/support/dns_client.hpp"
#include "tests/support/health_servers.hpp"
#include "tests/support/process.hpp"
#include "tests/support/wait.hpp"

namespace sidecar::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

class Dns : public EtcdAgentFixture {
 protected:
  void start_agent(const std::string& extra = "") {
    const std::string manifest = etcd_manifest_section(etcd_->client_url()) +
                                 "dns:\n  listen: \"127.0.0.1:0\"\n  ttl: 1s\n" + extra;
    agent_ = AgentProcess::start(manifest, {"--admin-listen", "127.0.0.1:0"});
    ASSERT_NE(agent_, nullptr);
    ASSERT_TRUE(wait_until([&] { return (dns_port_ = dns_port_from_log(agent_->output())).has_value(); }, 10s));
    ASSERT_TRUE(wait_until([&] { return (admin_port_ = admin_port_from_log(agent_->output())).has_value(); }, 10s));
  }

  void put(const std::string& service, const std::string& id, const json& value) {
    ASSERT_GT(client_->put("/services/" + service + "/" + id, value.dump()), 0);
  }

  CaptureResult dig(const std::vector<std::string>& args) const { return test::dig(*dns_port_, args); }
  std::vector<std::string> short_answer(const std::string& name, const std::string& type) const {
    return dig_short(*dns_port_, name, type);
  }

  std::string metrics() const { return http_request(*admin_port_, "GET", "/metrics").body; }

  std::optional<std::uint16_t> dns_port_;
  std::optional<std::uint16_t> admin_port_;
};

TEST_F(Dns, DigGetsAAaaaAndSrvOfPublishedSelectedInstancesOnly) {
  put("order-service", "a", {{"address", "10.0.0.1"}, {"port", 8080}, {"tags", {"v2"}}, {"zone", "a"},
                             {"ports", {{"grpc", 9090}}}});
  put("order-service", "b", {{"address", "10.0.0.2"}, {"port", 8080}, {"zone", "b"}, {"state", "warning"}});
  put("order-service", "c", {{"address", "::1"}, {"port", 8081}});
  put("order-service", "d", {{"address", "10.0.0.4"}, {"port", 8080}, {"state", "draining"}});
  ASSERT_NO_FATAL_FAILURE(start_agent());

  EXPECT_THAT(short_answer("order-service.service.sidecar.", "A"), ::testing::ElementsAre("10.0.0.1", "10.0.0.2"));
  EXPECT_THAT(short_answer("order-service.service.sidecar.", "AAAA"), ::testing::ElementsAre("::1"));
  EXPECT_THAT(short_answer("v2.order-service.service.sidecar.", "A"), ::testing::ElementsAre("10.0.0.1"));
  EXPECT_THAT(short_answer("order-service.service.b.zone.sidecar.", "A"), ::testing::ElementsAre("10.0.0.2"));
  EXPECT_THAT(short_answer("order-service.service.sidecar.", "SRV"),
              ::testing::ElementsAre("1 1 8080 a.order-service.instance.sidecar.",
                                     "1 1 8080 b.order-service.instance.sidecar.",
                                     "1 1 8081 c.order-service.instance.sidecar."));
  const CaptureResult grpc = dig({"_grpc._tcp.order-service.service.sidecar.", "SRV"});
  EXPECT_THAT(grpc.output, HasSubstr("status: NOERROR"));
  EXPECT_THAT(grpc.output, ::testing::ContainsRegex(R"(IN\s+SRV\s+1 1 9090 a\.order-service\.instance\.sidecar\.)"));
  // The target's address in the additional section.
  EXPECT_THAT(grpc.output, ::testing::ContainsRegex(R"(a\.order-service\.instance\.sidecar\.\s+1\s+IN\s+A\s+10\.0\.0\.1)"));
}

TEST_F(Dns, NxdomainWithSoaForNoInstanceNodataForAMissingTypeRefusedOutsideTheDomain) {
  put("web", "h", {{"address", "10.1.0.1"}, {"port", 80}, {"state", "maintenance"}});
  put("web4", "h", {{"address", "10.1.0.2"}, {"port", 80}});
  ASSERT_NO_FATAL_FAILURE(start_agent());
  const CaptureResult nx = dig({"web.service.sidecar.", "A"});
  EXPECT_THAT(nx.output, HasSubstr("status: NXDOMAIN"));
  EXPECT_THAT(nx.output, ::testing::ContainsRegex(R"(sidecar\.\s+1\s+IN\s+SOA\s+ns\.sidecar\. hostmaster\.sidecar\.)"));
  const CaptureResult unknown = dig({"never-registered.service.sidecar.", "A"});
  EXPECT_THAT(unknown.output, HasSubstr("status: NXDOMAIN"));
  const CaptureResult nodata = dig({"web4.service.sidecar.", "AAAA"});
  EXPECT_THAT(nodata.output, HasSubstr("status: NOERROR"));
  EXPECT_THAT(nodata.output, HasSubstr("ANSWER: 0, AUTHORITY: 1"));
  const CaptureResult outside = dig({"example.com.", "A"});
  EXPECT_THAT(outside.output, HasSubstr("status: REFUSED"));
  EXPECT_THAT(outside.output, Not(HasSubstr("flags: qr aa rd ra")));
  const std::string m = metrics();
  EXPECT_THAT(m, HasSubstr("etcd_sidecar_dns_queries_total{type=\"A\",rcode=\"NXDOMAIN\"} 2"));
  EXPECT_THAT(m, HasSubstr("etcd_sidecar_dns_queries_total{type=\"A\",rcode=\"REFUSED\"} 1"));
  EXPECT_THAT(m, HasSubstr("etcd_sidecar_dns_queries_total{type=\"AAAA\",rcode=\"NOERROR\"} 1"));
}

TEST_F(Dns, TruncatesLargeUdpAnswersAndTcpGetsAll) {
  for (int i = 1; i <= 100; ++i) put("big", "i" + std::to_string(i), {{"address", "10.2.0." + std::to_string(i)}, {"port", 80}});
  ASSERT_NO_FATAL_FAILURE(start_agent());
  const CaptureResult udp = dig({"big.service.sidecar.", "A", "+ignore", "+noedns"});
  EXPECT_THAT(udp.output, HasSubstr("flags: qr aa tc;"));
  EXPECT_THAT(udp.output, HasSubstr("ANSWER: 29,"));  // (512 - 12 - 25) / 16 records of 16 bytes
  const CaptureResult edns = dig({"big.service.sidecar.", "A", "+ignore", "+bufsize=1232"});
  EXPECT_THAT(edns.output, HasSubstr("flags: qr aa tc;"));
  EXPECT_THAT(edns.output, HasSubstr("MSG SIZE  rcvd: 1232"));  // 74 records fill the 1232 bytes
  // dig retries over TCP on TC by itself, as resolvers do.
  const CaptureResult retried = dig({"big.service.sidecar.", "A"});
  EXPECT_THAT(retried.output, HasSubstr("ANSWER: 100,"));
  EXPECT_THAT(retried.output, HasSubstr("(TCP)"));
  EXPECT_THAT(metrics(), ::testing::ContainsRegex("etcd_sidecar_dns_truncated_total [3-9]"));
}

TEST_F(Dns, AnswersFollowPutsAndRotate) {
  put("svc", "a", {{"address", "10.3.0.1"}, {"port", 80}});
  ASSERT_NO_FATAL_FAILURE(start_agent());
  EXPECT_THAT(short_answer("svc.service.sidecar.", "A"), ::testing::ElementsAre("10.3.0.1"));
  put("svc", "b", {{"address", "10.3.0.2"}, {"port", 80}});
  EXPECT_TRUE(wait_until([&] { return short_answer("svc.service.sidecar.", "A").size() == 2; }, 5s));
  // Unsorted: the first record differs between queries.
  std::set<std::string> firsts;
  for (int i = 0; i < 6; ++i) {
    const CaptureResult r = dig({"svc.service.sidecar.", "A", "+short"});
    firsts.insert(r.output.substr(0, r.output.find('\n')));
  }
  EXPECT_EQ(firsts.size(), 2u);
  ASSERT_GT(client_->del("/services/svc/a"), 0);
  EXPECT_TRUE(wait_until([&] { return short_answer("svc.service.sidecar.", "A") == std::vector<std::string>{"10.3.0.2"}; }, 5s));
}

TEST_F(Dns, NodeResolverResolvesSrv) {
  put("order-service", "a", {{"address", "10.4.0.1"}, {"port", 8080}, {"weight", 5}});
  put("order-service", "b", {{"address", "10.4.0.2"}, {"port", 8081}});
  ASSERT_NO_FATAL_FAILURE(start_agent());
  const std::string script = std::string(SIDECAR_SOURCE_DIR) + "/tests/integration/dns/resolve_srv.js";
  const CaptureResult r =
      run_and_capture({"node", script, std::to_string(*dns_port_), "order-service.service.sidecar"}, 20s);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const json records = json::parse(r.output);
  ASSERT_EQ(records.size(), 2u) << r.output;
  EXPECT_EQ(records[0]["name"], "a.order-service.instance.sidecar");
  EXPECT_EQ(records[0]["port"], 8080);
  EXPECT_EQ(records[0]["weight"], 5);
  EXPECT_EQ(records[1]["name"], "b.order-service.instance.sidecar");
  EXPECT_EQ(records[1]["port"], 8081);
}

// gRPC's own resolver (c-ares, the default in 1.51) asks the agent for A/AAAA of the name and takes the port
// from the target, so the backends share one port on two loopback addresses. round_robin reaches both.
TEST_F(Dns, GrpcClientReachesBackendsThroughItsDnsResolver) {
  const std::uint16_t port = free_port();
  ASSERT_NE(port, 0);
  GrpcHealthServer b2("127.0.0.2:" + std::to_string(port));
  GrpcHealthServer b3("127.0.0.3:" + std::to_string(port));
  ASSERT_TRUE(b2.ok() && b3.ok());
  b2.set_status("", GrpcHealthServer::Status::kServing);
  b3.set_status("", GrpcHealthServer::Status::kServing);
  put("grpc-svc", "b2", {{"address", "127.0.0.2"}, {"port", port}});
  put("grpc-svc", "b3", {{"address", "127.0.0.3"}, {"port", port}});
  ASSERT_NO_FATAL_FAILURE(start_agent());

  grpc::ChannelArguments args;
  args.SetLoadBalancingPolicyName("round_robin");
  const std::string target =
      "dns://127.0.0.1:" + std::to_string(*dns_port_) + "/grpc-svc.service.sidecar:" + std::to_string(port);
  auto channel = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
  auto stub = grpc::health::v1::Health::NewStub(channel);
  int ok = 0;
  for (int i = 0; i < 20; ++i) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 5s);
    ctx.set_wait_for_ready(true);
    grpc::health::v1::HealthCheckRequest request;
    grpc::health::v1::HealthCheckResponse response;
    const grpc::Status status = stub->Check(&ctx, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    if (status.ok() && response.status() == grpc::health::v1::HealthCheckResponse::SERVING) ++ok;
  }
  EXPECT_EQ(ok, 20);
  EXPECT_GT(b2.checks(), 0u);
  EXPECT_GT(b3.checks(), 0u);
  EXPECT_EQ(b2.checks() + b3.checks(), 20u);
  EXPECT_THAT(metrics(), HasSubstr("etcd_sidecar_dns_queries_total{type=\"A\",rcode=\"NOERROR\"}"));
}

TEST_F(Dns, MalformedPacketsAreDroppedAndCountedNeverAnswered) {
  ASSERT_NO_FATAL_FAILURE(start_agent());
  const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(*dns_port_);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const unsigned char garbage[][16] = {{0x12, 0x34, 0x01}, {0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1}};
  const size_t sizes[] = {3, 16};
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(::sendto(fd, garbage[i], sizes[i], 0, reinterpret_cast<const sockaddr*>(&to), sizeof to),
              static_cast<ssize_t>(sizes[i]));
  }
  // The positive marker first: both were seen and counted...
  EXPECT_TRUE(wait_until([&] { return metrics().find("etcd_sidecar_dns_dropped_total 2") != std::string::npos; }, 5s))
      << metrics();
  // ...and the agent still answers, while nothing came back for them.
  EXPECT_THAT(dig({"x.service.sidecar.", "A"}).output, HasSubstr("status: NXDOMAIN"));
  pollfd p{fd, POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 200), 0);
  ::close(fd);
}

TEST_F(Dns, AReloadThatChangesTheDnsSectionRestartsTheServer) {
  put("svc", "a", {{"address", "10.5.0.1"}, {"port", 80}});
  ASSERT_NO_FATAL_FAILURE(start_agent());
  EXPECT_THAT(short_answer("svc.service.sidecar.", "A"), ::testing::ElementsAre("10.5.0.1"));
  ASSERT_TRUE(write_file(agent_->manifest_path(), etcd_manifest_section(etcd_->client_url()) +
                                                       "dns:\n  listen: \"127.0.0.1:0\"\n  domain: mesh.\n"));
  ASSERT_TRUE(agent_->signal(SIGHUP));
  ASSERT_TRUE(agent_->wait_for_output("dns: answering for mesh.", 10s)) << agent_->output();
  EXPECT_TRUE(agent_->output_contains("reload: dns section changed; restarting the DNS server"));
  const std::string log = agent_->output();
  dns_port_ = dns_port_from_log(std::string_view(log).substr(log.find("dns: answering for mesh.")));
  ASSERT_TRUE(dns_port_.has_value());
  EXPECT_THAT(short_answer("svc.service.mesh.", "A"), ::testing::ElementsAre("10.5.0.1"));
  EXPECT_THAT(dig({"svc.service.sidecar.", "A"}).output, HasSubstr("status: REFUSED"));
}

TEST_F(Dns, ATakenPortIsAStartUpErrorNamingTheField) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in at{};
  at.sin_family = AF_INET;
  at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&at), sizeof at), 0);
  socklen_t len = sizeof at;
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&at), &len), 0);
  const int port = ntohs(at.sin_port);
  agent_ = AgentProcess::start(etcd_manifest_section(etcd_->client_url()) + "discover:\n  - {service: a, output: a.json}\n" +
                               "dns:\n  listen: \"127.0.0.1:" + std::to_string(port) + "\"\n");
  ASSERT_NE(agent_, nullptr);
  EXPECT_EQ(agent_->wait_exit(10s), 78);
  EXPECT_THAT(agent_->output(), HasSubstr("dns.listen: cannot listen on 127.0.0.1:" + std::to_string(port)));
  ::close(fd);
}

}  // namespace
}  // namespace sidecar::test
