// --watch-manifest: the agent reloads when its manifest file is replaced (an editor's rename, or the
// Kubernetes ConfigMap `..data` swap, which runtime::FileWatch tests cover on their own), with no SIGHUP.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "tests/support/agent_process.hpp"
#include "tests/support/etcd_client.hpp"
#include "tests/support/etcd_process.hpp"
#include "tests/support/process.hpp"
#include "tests/support/wait.hpp"

namespace sidecar::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

const ServiceDef kWeb{.name = "web", .id = "w1", .port = 80, .metadata = {}};
const ServiceDef kApi{.name = "api", .id = "a1", .port = 81, .metadata = {}};

TEST(WatchManifest, ReplacedManifestIsAppliedWithoutASignalAndGarbageIsRejected) {
  auto etcd = EtcdProcess::start();
  ASSERT_NE(etcd, nullptr);
  EtcdSyncClient client(etcd->endpoint());
  TempDir dir("watch-manifest");
  auto agent = AgentProcess::start_in(dir.path(), registration_manifest(etcd->client_url(), {kWeb}), {"--watch-manifest"});
  ASSERT_NE(agent, nullptr);
  ASSERT_TRUE(wait_until([&] { return client.get(service_key(kWeb)).has_value(); }, 10s)) << agent->output();
  const auto web_revision = client.get(service_key(kWeb))->mod_revision;

  // An editor's save: write a temp file, rename it over the manifest.
  const fs::path tmp = dir.path() / ".agent.yaml.tmp";
  ASSERT_TRUE(write_file(tmp, registration_manifest(etcd->client_url(), {kWeb, kApi})));
  fs::rename(tmp, agent->manifest_path());
  EXPECT_TRUE(wait_until([&] { return client.get(service_key(kApi)).has_value(); }, 10s)) << agent->output();
  EXPECT_EQ(agent->count_in_output("manifest file changed: reload applied"), 1u) << agent->output();
  EXPECT_EQ(client.get(service_key(kWeb))->mod_revision, web_revision) << "the kept service was rewritten";

  // A broken save is rejected like a broken SIGHUP reload: logged, nothing changes.
  ASSERT_TRUE(write_file(agent->manifest_path(), "services: [ {name: web\n"));
  EXPECT_TRUE(wait_until([&] { return agent->count_in_output("manifest file changed: reload rejected") == 1; }, 10s))
      << agent->output();
  EXPECT_TRUE(client.get(service_key(kWeb)).has_value());
  EXPECT_TRUE(client.get(service_key(kApi)).has_value());
  EXPECT_EQ(agent->terminate(), 0);
}

}  // namespace
}  // namespace sidecar::test
