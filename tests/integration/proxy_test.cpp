// The agent through `etcd grpc-proxy start`: as its single entry point, shared by several agents, and
// across a restart of the proxy.
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/agent_fixture.hpp"
#include "tests/support/agent_process.hpp"
#include "tests/support/etcd_client.hpp"
#include "tests/support/etcd_process.hpp"
#include "tests/support/process.hpp"
#include "tests/support/secure_etcd.hpp"
#include "tests/support/wait.hpp"

namespace sidecar::test {
namespace {

using namespace std::chrono_literals;

bool file_has(const std::filesystem::path& path, const std::string& text) {
  const auto content = read_file(path);
  return content && content->find(text) != std::string::npos;
}

class GrpcProxyTest : public EtcdAgentFixture {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(EtcdAgentFixture::SetUp());
    proxy_ = GrpcProxy::start({etcd_->endpoint()});
    ASSERT_TRUE(proxy_);
  }

  // Agent `id` registers app/<id> on port `port` and discovers every app instance.
  std::string manifest(const std::string& id, int port) {
    return "etcd:\n  endpoints: [\"" + proxy_->client_url() + "\"]\nlease:\n  ttl: 5s\nservices:\n  - {name: app, id: " +
           id + ", port: " + std::to_string(port) + "}\ndiscover:\n  - {service: app, output: \"" +
           (dir_ / (id + ".txt")).string() + "\", format: lines}\n";
  }

  TempDir dir_{"sidecar-proxy"};
  std::unique_ptr<GrpcProxy> proxy_;
};

TEST_F(GrpcProxyTest, AgentRegistersAndDiscoversThroughTheProxy) {
  auto agent = AgentProcess::start(manifest("one", 8001));
  ASSERT_TRUE(agent);
  ASSERT_TRUE(wait_until([&] { return client_->get("/services/app/one").has_value(); }, 10s)) << agent->output();
  ASSERT_GT(client_->put("/services/app/other", R"({"address":"10.0.0.7","port":7})"), 0);
  EXPECT_TRUE(wait_until([&] { return file_has(dir_ / "one.txt", "10.0.0.7:7"); }, 10s)) << agent->output();
  // Deregistration (LeaseRevoke) goes through the proxy too.
  ASSERT_TRUE(agent->signal(SIGTERM));
  ASSERT_TRUE(agent->wait_exit(5s).has_value());
  EXPECT_FALSE(client_->get("/services/app/one").has_value());
}

TEST_F(GrpcProxyTest, SeveralAgentsShareOneProxyAndSeeEachOther) {
  std::vector<std::unique_ptr<AgentProcess>> agents;
  for (int i = 0; i < 4; ++i) {
    agents.push_back(AgentProcess::start(manifest("a" + std::to_string(i), 9000 + i)));
    ASSERT_TRUE(agents.back());
  }
  for (int i = 0; i < 4; ++i) {
    const auto file = dir_ / ("a" + std::to_string(i) + ".txt");
    EXPECT_TRUE(wait_until(
        [&] {
          for (int j = 0; j < 4; ++j) {
            if (!file_has(file, ":" + std::to_string(9000 + j))) return false;
          }
          return true;
        },
        15s))
        << "agent " << i << " file: " << read_file(file).value_or("<none>") << "\n" << agents[i]->output();
  }
  EXPECT_EQ(client_->get_prefix("/services/app/").size(), 4u);
}

TEST_F(GrpcProxyTest, RegistrationAndDiscoveryRecoverWhenTheProxyRestarts) {
  auto agent = AgentProcess::start(manifest("one", 8001));
  ASSERT_TRUE(agent);
  ASSERT_TRUE(wait_until([&] { return client_->get("/services/app/one").has_value(); }, 10s)) << agent->output();
  const auto lease = client_->get("/services/app/one")->lease;

  proxy_->kill9();
  // While the proxy is down, the world moves on: a new instance appears and the agent's key is deleted.
  ASSERT_GT(client_->put("/services/app/during", R"({"address":"10.0.0.8","port":8})"), 0);
  ASSERT_EQ(client_->del("/services/app/one"), 1);
  ASSERT_TRUE(proxy_->restart());

  // Both are repaired once the proxy is back: the key rewritten (on the same lease, kept alive through the
  // outage), and the file updated with what happened while it was down.
  EXPECT_TRUE(wait_until([&] { return client_->get("/services/app/one").has_value(); }, 10s)) << agent->output();
  EXPECT_TRUE(wait_until([&] { return file_has(dir_ / "one.txt", "10.0.0.8:8"); }, 10s)) << agent->output();
  const auto kv = client_->get("/services/app/one");
  ASSERT_TRUE(kv.has_value());
  EXPECT_EQ(kv->lease, lease);
  // And later changes keep flowing through the new proxy process.
  ASSERT_GT(client_->put("/services/app/after", R"({"address":"10.0.0.9","port":9})"), 0);
  EXPECT_TRUE(wait_until([&] { return file_has(dir_ / "one.txt", "10.0.0.9:9"); }, 10s)) << agent->output();
}

}  // namespace
}  // namespace sidecar::test
