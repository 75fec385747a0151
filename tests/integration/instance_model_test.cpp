// Black-box tests of the richer instance model against a real etcd: values other writers store (seed-style
// NestJS JSON, plain host:port) reach the discover file, `select: {zone: local, min_local}` falls back to
// every zone below min_local, and weights registered by the agent reach an nginx template.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "tests/support/agent_fixture.hpp"
#include "tests/support/agent_process.hpp"
#include "tests/support/etcd_client.hpp"
#include "tests/support/etcd_process.hpp"
#include "tests/support/process.hpp"
#include "tests/support/wait.hpp"

namespace sidecar::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
namespace fs = std::filesystem;

constexpr const char* kPrefix = "/services/order-service/";

std::string key_of(const std::string& id) { return kPrefix + id; }

// id -> "address:port" of the file's instances.
std::map<std::string, std::string> listed(const json& doc) {
  std::map<std::string, std::string> out;
  for (const auto& inst : doc.value("instances", json::array())) {
    out[inst.value("id", "")] = inst.value("address", "") + ":" + std::to_string(inst.value("port", 0));
  }
  return out;
}

class InstanceModel : public EtcdAgentFixture {
 protected:
  void start_agent(const std::string& body) {
    agent_ = AgentProcess::start_in(dir_.path(), etcd_manifest_section(etcd_->client_url()) + body);
    ASSERT_NE(agent_, nullptr) << "cannot start " << SIDECAR_BINARY;
  }

  ::testing::AssertionResult wait_for_listed(const std::map<std::string, std::string>& expected) {
    std::optional<json> last;
    if (wait_until(
            [&] {
              last = read_json_file(output_);
              return last && listed(*last) == expected;
            },
            10s, 10ms)) {
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure() << output_ << " is " << (last ? last->dump() : std::string("<missing>"));
  }

  TempDir dir_{"instance-model-it"};
  fs::path output_ = dir_ / "order-service.json";
};

TEST_F(InstanceModel, SeedStyleAndPlainHostPortValuesAppearInTheFile) {
  start_agent("discover:\n  - service: order-service\n    output: " + output_.string() + "\n");
  ASSERT_TRUE(wait_for_listed({}));
  // What the seed-style NestJS app stores (JSON.stringify of its metadata), and plain text.
  ASSERT_GT(client_->put(key_of("nest-1"), R"({"address":"10.0.0.9","port":3000})"), 0);
  ASSERT_GT(client_->put(key_of("nest-2"), R"({"address":"10.0.0.10","port":3001,"version":"1.2.0"})"), 0);
  ASSERT_GT(client_->put(key_of("plain-1"), "10.0.0.11:3002"), 0);
  ASSERT_TRUE(wait_for_listed(
      {{"nest-1", "10.0.0.9:3000"}, {"nest-2", "10.0.0.10:3001"}, {"plain-1", "10.0.0.11:3002"}}));
  const auto doc = read_json_file(output_);
  ASSERT_TRUE(doc);
  EXPECT_EQ((*doc)["instances"][1]["metadata"], (json{{"version", "1.2.0"}})) << doc->dump();
}

TEST_F(InstanceModel, ZoneLocalFallsBackToAllZonesBelowMinLocal) {
  start_agent("agent: {zone: z1}\ndiscover:\n  - service: order-service\n    output: " + output_.string() +
              "\n    select: {zone: local, min_local: 2}\n");
  ASSERT_TRUE(wait_for_listed({}));
  ASSERT_GT(client_->put(key_of("a"), R"({"address":"10.0.0.1","port":80,"zone":"z1"})"), 0);
  ASSERT_GT(client_->put(key_of("b"), R"({"address":"10.0.0.2","port":80,"zone":"z2"})"), 0);
  ASSERT_GT(client_->put(key_of("c"), R"({"address":"10.0.0.3","port":80,"zone":"z2"})"), 0);
  // One instance in z1, below min_local 2: every zone is listed.
  ASSERT_TRUE(wait_for_listed({{"a", "10.0.0.1:80"}, {"b", "10.0.0.2:80"}, {"c", "10.0.0.3:80"}}));
  // A second one in z1: only the local zone.
  ASSERT_GT(client_->put(key_of("d"), R"({"address":"10.0.0.4","port":80,"zone":"z1"})"), 0);
  ASSERT_TRUE(wait_for_listed({{"a", "10.0.0.1:80"}, {"d", "10.0.0.4:80"}}));
  // And back when one of them goes into maintenance (not shown by default, so not counted either).
  ASSERT_GT(client_->put(key_of("d"), R"({"address":"10.0.0.4","port":80,"zone":"z1","state":"maintenance"})"), 0);
  ASSERT_TRUE(wait_for_listed({{"a", "10.0.0.1:80"}, {"b", "10.0.0.2:80"}, {"c", "10.0.0.3:80"}}));
}

TEST_F(InstanceModel, NginxTemplateGetsTheRegisteredWeights) {
  const std::string templ = std::string(SIDECAR_SOURCE_DIR) + "/config/templates/nginx-upstream-weighted.mustache";
  const fs::path conf = dir_ / "order-service.conf";
  start_agent(
      "services:\n"
      "  - {name: order-service, id: heavy, address: 10.1.0.1, port: 3000, weight: 5, zone: z1}\n"
      "  - {name: order-service, id: light, address: 10.1.0.2, port: 3000}\n"
      "discover:\n  - service: order-service\n    output: " + conf.string() +
      "\n    format: template\n    template: " + templ + "\n    sort: weight\n");
  const auto both = [&] {
    const std::string text = read_file(conf).value_or("");
    return text.find("10.1.0.1:3000") != std::string::npos && text.find("10.1.0.2:3000") != std::string::npos;
  };
  ASSERT_TRUE(wait_until(both, 10s)) << read_file(conf).value_or("<missing>");
  const std::string text = *read_file(conf);
  EXPECT_NE(text.find("    server 10.1.0.1:3000 weight=5; # zone z1\n    server 10.1.0.2:3000 weight=1;\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("total weight 6"), std::string::npos) << text;
  // The stored value carries the weight for other readers too.
  const auto kv = client_->get(key_of("heavy"));
  ASSERT_TRUE(kv);
  EXPECT_EQ(json::parse(kv->value).value("weight", 0), 5) << kv->value;
}

}  // namespace
}  // namespace sidecar::test
