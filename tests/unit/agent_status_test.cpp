// Readiness, the /v1/status document and the exported metric families, derived from an agent snapshot.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <regex>

#include "agent/core/agent_status.hpp"

namespace sidecar::core {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

AgentSnapshot healthy() {
  AgentSnapshot s;
  s.version = "1.2.3";
  s.lease.id = 0x694d;
  s.lease.state = "alive";
  s.lease.ttl_seconds = 10;
  s.lease.remaining_seconds = 8.5;
  s.lease.grants = 2;
  s.lease.losses = 1;
  s.lease.keys_restored = 3;
  s.lease.keepalive_rtt = Histogram(latency_buckets_seconds()).sample();
  s.services.push_back({"user", "u1", "/services/user/u1", "registered", 0, true, nlohmann::json::array()});
  WatchSnapshot d;
  d.kind = "discover";
  d.name = "order";
  d.prefix = "/services/order/";
  d.output = "/run/order.json";
  d.synced = true;
  d.revision = 42;
  d.count = 3;
  s.watches.push_back(d);
  WatchSnapshot c;
  c.kind = "config";
  c.name = "/config/app.yaml";
  c.prefix = "/config/app.yaml";
  c.output = "/etc/app.yaml";
  s.watches.push_back(c);  // never synced: config mirrors do not gate readiness
  s.config = {"/etc/etcd-sidecar/manifest.yaml", content_hash("x"), 1700000000};
  return s;
}

TEST(Readiness, ReadyWhenEveryServiceIsRegisteredAndEveryDiscoverySynced) {
  const Readiness r = evaluate_readiness(healthy());
  EXPECT_TRUE(r.ready);
  EXPECT_EQ(r.body["missing"].size(), 0u);
}

TEST(Readiness, NamesAnUnregisteredServiceAndAnUnsyncedDiscovery) {
  AgentSnapshot s = healthy();
  s.services[0].state = "pending";
  s.watches[0].synced = false;
  const Readiness r = evaluate_readiness(s);
  EXPECT_FALSE(r.ready);
  ASSERT_EQ(r.body["missing"].size(), 2u);
  EXPECT_EQ(r.body["missing"][0]["kind"], "service");
  EXPECT_EQ(r.body["missing"][0]["key"], "/services/user/u1");
  EXPECT_EQ(r.body["missing"][1]["kind"], "discover");
  EXPECT_EQ(r.body["missing"][1]["name"], "order");
}

TEST(Readiness, ConflictNamesTheOtherLease) {
  AgentSnapshot s = healthy();
  s.services[0].state = "conflict";
  s.services[0].conflict_lease = 0xabc;
  const Readiness r = evaluate_readiness(s);
  EXPECT_FALSE(r.ready);
  EXPECT_THAT(r.body["missing"][0]["reason"].get<std::string>(), HasSubstr("abc"));
}

TEST(Readiness, UnwantedServiceDoesNotBlock) {
  AgentSnapshot s = healthy();
  s.services[0].state = "pending";
  s.services[0].wanted = false;  // e.g. a failing health check took it out on purpose
  EXPECT_TRUE(evaluate_readiness(s).ready);
}

TEST(Readiness, NotReadyWhileShuttingDown) {
  AgentSnapshot s = healthy();
  s.shutting_down = true;
  EXPECT_FALSE(evaluate_readiness(s).ready);
}

TEST(StatusJson, CarriesLeaseServicesWatchesAndConfigVersion) {
  const nlohmann::json j = status_json(healthy());
  EXPECT_EQ(j["lease"]["id"], 0x694d);
  EXPECT_EQ(j["lease"]["id_hex"], "694d");
  EXPECT_DOUBLE_EQ(j["lease"]["remaining_ttl_seconds"].get<double>(), 8.5);
  EXPECT_EQ(j["services"][0]["key"], "/services/user/u1");
  EXPECT_EQ(j["services"][0]["status"], "registered");
  EXPECT_TRUE(j["services"][0]["checks"].is_array());
  EXPECT_EQ(j["discover"][0]["service"], "order");
  EXPECT_EQ(j["discover"][0]["revision"], 42);
  EXPECT_EQ(j["discover"][0]["count"], 3);
  EXPECT_EQ(j["config"][0]["source"], "/config/app.yaml");
  EXPECT_EQ(j["config_version"]["hash"], content_hash("x"));
  EXPECT_EQ(j["config_version"]["mtime_unix"], 1700000000);
  EXPECT_EQ(j["ready"], true);
}

TEST(StatusJson, RemainingTtlIsNullWithoutALease) {
  AgentSnapshot s = healthy();
  s.lease.remaining_seconds.reset();
  EXPECT_TRUE(status_json(s)["lease"]["remaining_ttl_seconds"].is_null());
}

TEST(AgentMetrics, NamesFollowPrometheusConventions) {
  const auto families = agent_metrics(healthy());
  const std::regex name_re("etcd_sidecar_[a-z_]+");
  for (const MetricFamily& f : families) {
    EXPECT_TRUE(std::regex_match(f.name, name_re)) << f.name;
    EXPECT_FALSE(f.help.empty()) << f.name;
    const bool total = f.name.size() > 6 && f.name.ends_with("_total");
    EXPECT_EQ(total, f.type == MetricType::kCounter) << f.name;
  }
}

TEST(AgentMetrics, ExportsCountersAndPerServiceState) {
  const std::string text = render_prometheus(agent_metrics(healthy()));
  EXPECT_THAT(text, HasSubstr("etcd_sidecar_build_info{version=\"1.2.3\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("etcd_sidecar_lease_grants_total 2\n"));
  EXPECT_THAT(text, HasSubstr("etcd_sidecar_lease_losses_total 1\n"));
  EXPECT_THAT(text, HasSubstr("etcd_sidecar_key_restorations_total 3\n"));
  EXPECT_THAT(text, HasSubstr("etcd_sidecar_service_registered{service=\"user\",id=\"u1\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("etcd_sidecar_registration_state{service=\"user\",id=\"u1\",state=\"registered\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("etcd_sidecar_registration_state{service=\"user\",id=\"u1\",state=\"pending\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("etcd_sidecar_discovered_instances{service=\"order\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("etcd_sidecar_keepalive_rtt_seconds_bucket{le=\"+Inf\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("etcd_sidecar_watch_revision{kind=\"discover\",name=\"order\"} 42\n"));
  EXPECT_THAT(text, HasSubstr("etcd_sidecar_file_writes_total{kind=\"config\",output=\"/etc/app.yaml\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("etcd_sidecar_ready 1\n"));
  EXPECT_THAT(text, Not(HasSubstr("etcd_sidecar_config_keys{source=\"order\"")));
}

TEST(ContentHash, IsStableFnv1a64) {
  EXPECT_EQ(content_hash(""), "cbf29ce484222325");
  EXPECT_EQ(content_hash("a"), "af63dc4c8601ec8c");
  EXPECT_NE(content_hash("services: []"), content_hash("services: [] "));
}

}  // namespace
}  // namespace sidecar::core
