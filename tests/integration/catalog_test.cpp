// The catalog against a real etcd: consumers of one service share one etcd watcher, as etcd itself counts
// them, and a large prefix read at start comes in pages yet lists everything.
#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "tests/support/admin_client.hpp"
#include "tests/support/agent_fixture.hpp"
#include "tests/support/agent_process.hpp"
#include "tests/support/bulk_writer.hpp"
#include "tests/support/etcd_client.hpp"
#include "tests/support/etcd_process.hpp"
#include "tests/support/process.hpp"
#include "tests/support/wait.hpp"

namespace sidecar::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

class Catalog : public EtcdAgentFixture {
 protected:
  // etcd's own count of open watchers (all streams, all clients), from its /metrics.
  std::optional<double> etcd_watchers() const {
    const auto r = http_request(etcd_->spec().client_port, "GET", "/metrics");
    if (r.status != 200) return std::nullopt;
    std::istringstream lines(r.body);
    for (std::string line; std::getline(lines, line);) {
      constexpr std::string_view kName = "etcd_debugging_mvcc_watcher_total ";
      if (line.rfind(kName, 0) == 0) return std::stod(line.substr(kName.size()));
    }
    return std::nullopt;
  }

  std::string value(const std::string& id, int port) const {
    return json{{"name", "order-service"}, {"id", id}, {"address", "10.0.0.1"}, {"port", port}}.dump();
  }

  TempDir dir_;
};

TEST_F(Catalog, TwoDiscoverEntriesOfOneServiceShareOneEtcdWatcher) {
  ASSERT_EQ(etcd_watchers(), 0.0) << "the test's own client must not watch";
  const auto json_out = dir_.path() / "order.json";
  const auto lines_out = dir_.path() / "order.lines";
  const auto pay_out = dir_.path() / "pay.json";
  const std::string manifest = etcd_manifest_section(etcd_->client_url()) +
                               "discover:\n"
                               "  - service: order-service\n    output: " + json_out.string() + "\n" +
                               "  - service: order-service\n    output: " + lines_out.string() +
                               "\n    format: lines\n" +
                               "  - service: pay-service\n    output: " + pay_out.string() + "\n";
  agent_ = AgentProcess::start_in(dir_.path(), manifest);
  ASSERT_NE(agent_, nullptr);
  ASSERT_GT(client_->put("/services/order-service/a", value("a", 8080)), 0);
  ASSERT_TRUE(wait_until([&] { return read_file(lines_out) == "10.0.0.1:8080\n"; }, 10s));
  ASSERT_TRUE(wait_until([&] { return read_json_file(pay_out).has_value(); }, 10s));
  const auto doc = read_json_file(json_out);
  ASSERT_TRUE(doc);
  EXPECT_EQ((*doc)["instances"].size(), 1u);
  // Three entries, two services: two watchers in etcd (one per service), not three.
  ASSERT_TRUE(wait_until([&] { return etcd_watchers() == 2.0; }, 5s)) << "etcd counts " << etcd_watchers().value_or(-1);
  EXPECT_EQ(agent_->count_in_output("catalog order-service: synced "), 1u);

  // The admin endpoint shows the sharing: one catalog entry with two consumers, its index the put's.
  const auto port = admin_port_from_log(agent_->output());
  ASSERT_TRUE(port);
  const auto status = http_request(*port, "GET", "/v1/status");
  ASSERT_EQ(status.status, 200);
  const json catalog = json::parse(status.body)["catalog"];
  ASSERT_EQ(catalog["services"].size(), 2u) << catalog.dump();
  EXPECT_EQ(catalog["services"][0]["name"], "order-service");
  EXPECT_EQ(catalog["services"][0]["consumers"], 2);
  EXPECT_EQ(catalog["services"][0]["instances"], 1);
  EXPECT_EQ(catalog["services"][0]["index"], (*doc)["revision"]);
  const auto metrics = parse_prometheus(http_request(*port, "GET", "/metrics").body);
  EXPECT_TRUE(metrics.errors.empty());
  EXPECT_EQ(metrics.value("etcd_sidecar_catalog_services", {{"origin", "subscribed"}}), 2.0);
  EXPECT_EQ(metrics.value("etcd_sidecar_catalog_instances", {{"service", "order-service"}}), 1.0);
}

TEST_F(Catalog, AFreshAgentReadsTwelveThousandInstancesInPagesAndListsThemAll) {
  constexpr int kInstances = 12000;  // three pages of 5,000
  std::vector<BulkOp> ops;
  for (int i = 0; i < kInstances; ++i) {
    const std::string id = "i-" + std::to_string(i);
    ops.push_back({"/services/order-service/" + id, value(id, 1000 + i % 50000)});
  }
  BulkWriter writer(etcd_->endpoint());
  ASSERT_GT(writer.apply(ops), 0) << writer.last_error();
  const auto out = dir_.path() / "order.json";
  const std::string manifest = etcd_manifest_section(etcd_->client_url()) + "discover:\n  - service: order-service\n"
                               "    output: " + out.string() + "\n";
  agent_ = AgentProcess::start_in(dir_.path(), manifest);
  ASSERT_NE(agent_, nullptr);
  ASSERT_TRUE(wait_until([&] {
    const auto doc = read_json_file(out);
    return doc && (*doc)["instances"].size() == static_cast<size_t>(kInstances);
  }, 30s));
  EXPECT_EQ(agent_->count_in_output("catalog order-service: synced 12000 instance(s)"), 1u);
  EXPECT_EQ(agent_->terminate(), 0);
}

}  // namespace
}  // namespace sidecar::test
