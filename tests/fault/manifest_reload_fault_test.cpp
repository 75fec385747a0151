// Local fault: the manifest is replaced with garbage, or deleted, before a SIGHUP. The reload is rejected
// with the error's file:line:col in the log, and the running configuration goes on untouched: our key sees
// no event at all, the discovered file stays complete and keeps following etcd, and the agent stays up.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <memory>
#include <regex>
#include <string>
#include <thread>

#include "tests/support/admin_client.hpp"
#include "tests/support/agent_fixture.hpp"
#include "tests/support/agent_process.hpp"
#include "tests/support/etcd_client.hpp"
#include "tests/support/etcd_process.hpp"
#include "tests/support/process.hpp"
#include "tests/support/wait.hpp"

namespace sidecar::test {
namespace {

using namespace std::chrono_literals;

const ServiceDef kWeb{.name = "web", .id = "w1", .port = 80};
const ServiceDef kApi{.name = "api", .id = "a1", .port = 81};

class ManifestReloadFault : public EtcdAgentFixture {
 protected:
  size_t occurrences(const std::string& needle) const {
    const std::string out = agent_->output();
    size_t n = 0;
    for (size_t at = out.find(needle); at != std::string::npos; at = out.find(needle, at + 1)) ++n;
    return n;
  }

  // SIGHUP and wait until the agent logged `needle` once more.
  bool hup_and_wait(const std::string& needle) {
    const size_t before = occurrences(needle);
    if (!agent_->signal(SIGHUP)) return false;
    return wait_until([&] { return occurrences(needle) > before; }, 5s);
  }

  std::optional<double> metric(const std::string& name) {
    const HttpResponse r = http_request(*port_, "GET", "/metrics");
    return parse_prometheus(r.body).value(name);
  }

  std::optional<std::uint16_t> port_;
};

TEST_F(ManifestReloadFault, GarbageOrDeletedManifestIsRejectedAndTheOldOneKeepsRunning) {
  client_->put("/services/api/x1", R"({"address":"10.0.0.1","port":1})");
  const std::string good = registration_manifest(etcd_->client_url(), {kWeb}, "2s") +
                           "discover:\n  - {service: api, output: api.json}\n";
  agent_ = AgentProcess::start(good, {"--log-level", "debug"});
  ASSERT_NE(agent_, nullptr);
  ASSERT_TRUE(wait_until([&] { return (port_ = admin_port_from_log(agent_->output())).has_value(); }, 5s));
  const auto out = agent_->dir() / "api.json";
  ASSERT_TRUE(wait_until([&] { return client_->get(service_key(kWeb)).has_value(); }, 10s));
  ASSERT_TRUE(wait_until([&] { return read_json_file(out).has_value(); }, 5s));
  const auto before = client_->get(service_key(kWeb));

  // The invariants, checked continuously while the faults last: the key is there, the file is complete.
  WatchRecorder key_watch(etcd_->endpoint(), service_key(kWeb));
  ASSERT_TRUE(key_watch.created());
  std::atomic<bool> done{false};
  std::atomic<int> key_missing{0};
  std::atomic<int> file_broken{0};
  std::thread observer([&] {
    EtcdSyncClient c(etcd_->endpoint());
    while (!done) {
      if (!c.get(service_key(kWeb))) ++key_missing;
      if (!read_json_file(out)) ++file_broken;
      std::this_thread::sleep_for(20ms);
    }
  });

  // 1. Syntax garbage.
  ASSERT_TRUE(write_file(agent_->manifest_path(), "services: [ {name: web, id: w1\n  port: [[[\n\x01\x02 garbage"));
  ASSERT_TRUE(hup_and_wait("reload rejected"));
  EXPECT_TRUE(std::regex_search(agent_->output(), std::regex("manifest\\.yaml:[0-9]+:[0-9]+: ")));
  // 2. Valid YAML, invalid manifest: the field's line and column are named.
  ASSERT_TRUE(write_file(agent_->manifest_path(),
                         registration_manifest(etcd_->client_url(), {kWeb}, "2s") + "    prot: 81\n"));
  ASSERT_TRUE(hup_and_wait("reload rejected"));
  EXPECT_TRUE(std::regex_search(agent_->output(), std::regex("manifest\\.yaml:[0-9]+:5: services\\[0\\]")))
      << agent_->output();
  // 3. The file is gone.
  std::filesystem::remove(agent_->manifest_path());
  ASSERT_TRUE(hup_and_wait("reload rejected"));
  EXPECT_TRUE(agent_->output_contains("manifest.yaml"));

  // Still following etcd with the old configuration.
  client_->put("/services/api/x2", R"({"address":"10.0.0.2","port":2})");
  EXPECT_TRUE(wait_until([&] {
    const auto j = read_json_file(out);
    return j && j->dump().find("10.0.0.2") != std::string::npos;
  }, 5s));
  EXPECT_TRUE(agent_->is_running());
  EXPECT_EQ(metric("etcd_sidecar_reload_failures_total"), 3.0);
  EXPECT_EQ(metric("etcd_sidecar_reloads_total"), 0.0);

  // 4. A good manifest again: the same agent applies it.
  ASSERT_TRUE(write_file(agent_->manifest_path(), registration_manifest(etcd_->client_url(), {kWeb, kApi}, "2s") +
                                                      "discover:\n  - {service: api, output: api.json}\n"));
  ASSERT_TRUE(hup_and_wait("reload applied"));
  EXPECT_TRUE(wait_until([&] { return client_->get(service_key(kApi)).has_value(); }, 5s));
  EXPECT_EQ(metric("etcd_sidecar_reloads_total"), 1.0);

  done = true;
  observer.join();
  EXPECT_EQ(key_missing.load(), 0);
  EXPECT_EQ(file_broken.load(), 0);
  EXPECT_THAT(key_watch.events(), ::testing::IsEmpty());
  const auto after = client_->get(service_key(kWeb));
  ASSERT_TRUE(after);
  EXPECT_EQ(after->mod_revision, before->mod_revision);
}

}  // namespace
}  // namespace sidecar::test
