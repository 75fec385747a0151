// The xDS server against gRPC's own xDS client (grpc++ 1.51's xds resolver, `xds:///order-service`), with
// real gRPC backends (grpc.health.v1 servers counting their calls) whose instances are in etcd, put there
// by the test or registered by their own agents.
// One test per process: the bootstrap is read once, when the first xds channel is made.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "grpc/health.grpc.pb.h"
#include "tests/support/agent_fixture.hpp"
#include "tests/support/agent_process.hpp"
#include "tests/support/health_servers.hpp"
#include "tests/support/process.hpp"
#include "tests/support/wait.hpp"

namespace sidecar::test {
namespace {

using namespace std::chrono_literals;

std::string instance(uint16_t port, const std::string& state = "passing") {
  return R"({"address":"127.0.0.1","port":)" + std::to_string(port) + R"(,"state":")" + state + R"("})";
}

class Xds : public EtcdAgentFixture {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(start_etcd());
    xds_port_ = free_port();
    const std::string yaml = "etcd:\n  endpoints: [\"" + etcd_->client_url() +
                             "\"]\n  prefix: /services\nxds:\n  listen: \"127.0.0.1:" + std::to_string(xds_port_) +
                             "\"\nadmin:\n  enabled: false\n";
    agent_ = AgentProcess::start(yaml, {"--log-level", "debug"});
    ASSERT_TRUE(agent_);
    ASSERT_TRUE(agent_->wait_for_output("xds: serving ADS", 5s)) << agent_->output();
    const std::string bootstrap = R"({"xds_servers":[{"server_uri":"127.0.0.1:)" + std::to_string(xds_port_) +
                                  R"(","channel_creds":[{"type":"insecure"}],"server_features":["xds_v3"]}],)"
                                  R"("node":{"id":"xds-test","locality":{"zone":"z1"}}})";
    ::setenv("GRPC_XDS_BOOTSTRAP_CONFIG", bootstrap.c_str(), 1);
  }

  // One Check through the xds channel; true when it reached a backend.
  bool call(grpc::health::v1::Health::Stub& stub) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 2s);
    grpc::health::v1::HealthCheckRequest req;
    grpc::health::v1::HealthCheckResponse resp;
    return stub.Check(&ctx, req, &resp).ok();
  }
  size_t calls(const std::vector<std::unique_ptr<GrpcHealthServer>>& b, size_t i) { return b[i]->checks(); }

  uint16_t xds_port_ = 0;
};

TEST_F(Xds, GrpcClientSpreadsFollowsRemovalDrainAdditionAndSurvivesEtcdLoss) {
  std::vector<std::unique_ptr<GrpcHealthServer>> backends;
  for (int i = 0; i < 4; ++i) {
    backends.push_back(std::make_unique<GrpcHealthServer>());
    ASSERT_TRUE(backends.back()->ok());
    backends.back()->set_status("", GrpcHealthServer::Status::kServing);
  }
  for (int i = 0; i < 3; ++i) client_->put("/services/order-service/b" + std::to_string(i), instance(backends[i]->port()));

  auto channel = grpc::CreateChannel("xds:///order-service", grpc::InsecureChannelCredentials());
  auto stub = grpc::health::v1::Health::NewStub(channel);
  ASSERT_TRUE(wait_until([&] { return call(*stub); }, 10s)) << agent_->output();

  // Spread: every one of the three gets calls.
  for (int i = 0; i < 60; ++i) ASSERT_TRUE(call(*stub));
  for (size_t i = 0; i < 3; ++i) EXPECT_GT(calls(backends, i), 5u) << "backend " << i;

  // Removed: no new call within 1 s of the delete.
  client_->del("/services/order-service/b0");
  std::this_thread::sleep_for(1s);  // the bound under test: the update must have arrived within it
  size_t before = calls(backends, 0);
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(call(*stub));
  EXPECT_EQ(calls(backends, 0), before);
  EXPECT_GT(calls(backends, 1) + calls(backends, 2), 60u);  // the calls went somewhere: positive marker

  // Draining: health_status DRAINING, no new calls.
  client_->put("/services/order-service/b1", instance(backends[1]->port(), "draining"));
  std::this_thread::sleep_for(1s);
  before = calls(backends, 1);
  const size_t b2_before = calls(backends, 2);
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(call(*stub));
  EXPECT_EQ(calls(backends, 1), before);
  EXPECT_EQ(calls(backends, 2), b2_before + 30);

  // Added: calls within 1 s.
  client_->put("/services/order-service/b3", instance(backends[3]->port()));
  std::this_thread::sleep_for(1s);
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(call(*stub));
  EXPECT_GT(calls(backends, 3), 0u);

  // etcd gone (kill -9): the client keeps its last update and keeps working.
  etcd_->kill9();
  const size_t b3_before = calls(backends, 3);
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(call(*stub));
  EXPECT_GT(calls(backends, 3), b3_before);
}

// As in production: each backend registered by its own agent. SIGTERM of one agent deregisters its backend,
// SIGUSR1 drains another (its key goes, its lease stays), and a backend whose agent starts later gets calls.
TEST_F(Xds, BackendsRegisteredByTheirOwnAgentsFollowSigtermDrainAndANewAgent) {
  std::vector<std::unique_ptr<GrpcHealthServer>> backends;
  std::vector<std::unique_ptr<AgentProcess>> agents;
  std::vector<ServiceDef> defs;
  for (int i = 0; i < 4; ++i) {
    backends.push_back(std::make_unique<GrpcHealthServer>());
    ASSERT_TRUE(backends.back()->ok());
    backends.back()->set_status("", GrpcHealthServer::Status::kServing);
    defs.push_back(ServiceDef{.name = "order-service", .id = "b" + std::to_string(i), .address = "127.0.0.1",
                              .port = backends.back()->port(), .metadata = {}});
  }
  const auto start_agent_for = [&](size_t i) {
    agents.push_back(AgentProcess::start(registration_manifest(etcd_->client_url(), {defs[i]}, "2s")));
    return agents.back() != nullptr &&
           wait_until([&] { return client_->get(service_key(defs[i])).has_value(); }, 10s);
  };
  const auto key_gone = [&](size_t i) {
    return wait_until([&] { return !client_->get(service_key(defs[i])).has_value(); }, 5s);
  };
  for (size_t i = 0; i < 3; ++i) ASSERT_TRUE(start_agent_for(i)) << "backend " << i;

  auto channel = grpc::CreateChannel("xds:///order-service", grpc::InsecureChannelCredentials());
  auto stub = grpc::health::v1::Health::NewStub(channel);
  ASSERT_TRUE(wait_until([&] { return call(*stub); }, 10s)) << agent_->output();
  ASSERT_TRUE(wait_until(
      [&] {
        for (int i = 0; i < 10; ++i) call(*stub);
        return calls(backends, 0) > 0 && calls(backends, 1) > 0 && calls(backends, 2) > 0;
      },
      10s));

  // SIGTERM: the agent deletes its key on the way out; within 1 s of that no new call reaches its backend.
  ASSERT_TRUE(agents[0]->signal(SIGTERM));
  ASSERT_TRUE(key_gone(0));
  std::this_thread::sleep_for(1s);  // the bound under test
  size_t before = calls(backends, 0);
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(call(*stub));
  EXPECT_EQ(calls(backends, 0), before);
  EXPECT_EQ(agents[0]->wait_exit(5s), 0);

  // SIGUSR1: drained (key deleted, lease kept); no new call.
  ASSERT_TRUE(agents[1]->signal(SIGUSR1));
  ASSERT_TRUE(key_gone(1));
  std::this_thread::sleep_for(1s);
  before = calls(backends, 1);
  const size_t b2_before = calls(backends, 2);
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(call(*stub));
  EXPECT_EQ(calls(backends, 1), before);
  EXPECT_EQ(calls(backends, 2), b2_before + 30);  // the positive marker: every call went to the one left

  // A new agent: its backend gets calls within 1 s of its registration.
  ASSERT_TRUE(start_agent_for(3));
  std::this_thread::sleep_for(1s);
  const size_t b3_before = calls(backends, 3);
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(call(*stub));
  EXPECT_GT(calls(backends, 3), b3_before);
}

TEST_F(Xds, UnknownServiceFailsTheCallAsNotFound) {
  auto channel = grpc::CreateChannel("xds:///no-such-service", grpc::InsecureChannelCredentials());
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext ctx;
  // gRPC 1.51 reports a never-seen resource as missing only when its 15 s does-not-exist timer fires (an
  // empty LDS response cannot delete what it never had), so the call waits for that.
  ctx.set_deadline(std::chrono::system_clock::now() + 25s);
  grpc::health::v1::HealthCheckRequest req;
  grpc::health::v1::HealthCheckResponse resp;
  const grpc::Status status = stub->Check(&ctx, req, &resp);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(status.error_message().find("does not exist"), std::string::npos) << status.error_message();
}

}  // namespace
}  // namespace sidecar::test
