// The agent and a NestJS-style app using the `etcd3` npm library see each other: the app registers with a
// lease and a plain JSON value, as such apps do, and discovers by prefix watch; the agent does the same
// through its manifest. Real node, real etcd3 library (tests/interop/etcd3-node, installed by
// scripts/install-deps.sh), real etcd.
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

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

const fs::path kAppDir = fs::path(SIDECAR_SOURCE_DIR) / "tests/interop/etcd3-node";

// The app's stdout, one JSON object per line.
std::vector<json> app_events(const ChildProcess& app) {
  std::vector<json> out;
  const std::string text = app.output();
  size_t begin = 0;
  while (begin < text.size()) {
    size_t end = text.find('\n', begin);
    if (end == std::string::npos) break;  // a line still being written
    auto line = json::parse(text.substr(begin, end - begin), nullptr, false);
    if (!line.is_discarded()) out.push_back(std::move(line));
    begin = end + 1;
  }
  return out;
}

// The "instances" array of the agent's output file; empty while the file is missing or not yet valid.
json instances_in(const fs::path& path) {
  auto doc = read_json_file(path);
  if (!doc || !doc->is_object() || !(*doc)["instances"].is_array()) return json::array();
  return (*doc)["instances"];
}

bool app_saw(const ChildProcess& app, const std::string& event, const std::string& key) {
  for (const auto& e : app_events(app)) {
    if (e.value("event", "") == event && e.value("key", "") == key) return true;
  }
  return false;
}

class Etcd3Interop : public EtcdAgentFixture {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(kAppDir / "node_modules/etcd3"))
        << kAppDir / "node_modules/etcd3" << " is missing: run scripts/install-deps.sh (it runs npm ci there)";
    EtcdAgentFixture::SetUp();
  }

  void dump_logs() const override {
    if (app_) std::cerr << "---- app output ----\n" << app_->output() << "---- end ----\n";
    EtcdAgentFixture::dump_logs();
  }

  void start_app(const std::string& id, int port) {
    ChildProcess::Options options;
    options.working_dir = kAppDir;
    app_ = ChildProcess::spawn({"node", "app.js", etcd_->endpoint(), "nest-service", id, std::to_string(port),
                                "order-service"},
                               options);
    ASSERT_TRUE(app_.has_value()) << "cannot run node";
  }

  TempDir dir_{"etcd3-interop"};
  std::optional<ChildProcess> app_;
};

TEST_F(Etcd3Interop, AgentAndEtcd3AppDiscoverEachOther) {
  const fs::path out = dir_ / "nest-service.json";
  agent_ = AgentProcess::start_in(dir_.path(), etcd_manifest_section(etcd_->client_url()) +
                                               "services:\n"
                                               "  - name: order-service\n"
                                               "    id: order-1\n"
                                               "    address: 10.0.0.7\n"
                                               "    port: 9090\n"
                                               "    metadata: {zone: a}\n"
                                               "discover:\n"
                                               "  - service: nest-service\n"
                                               "    output: " + out.string() + "\n");
  ASSERT_NE(agent_, nullptr);
  ASSERT_TRUE(wait_until([&] { return client_->get("/services/order-service/order-1").has_value(); }, 10s));

  start_app("nest-1", 3000);
  // The app finds the agent's registration in its initial read, with the agent's value intact.
  ASSERT_TRUE(wait_until([&] {
    for (const auto& e : app_events(*app_)) {
      if (e.value("event", "") == "snapshot") return true;
    }
    return false;
  }, 20s)) << "the app did not start";
  json snapshot;
  for (const auto& e : app_events(*app_)) {
    if (e.value("event", "") == "snapshot") snapshot = e["keys"];
  }
  ASSERT_TRUE(snapshot.contains("/services/order-service/order-1")) << snapshot.dump();
  const json value = json::parse(snapshot["/services/order-service/order-1"].get<std::string>());
  EXPECT_EQ(value["address"], "10.0.0.7");
  EXPECT_EQ(value["port"], 9090);
  EXPECT_EQ(value["metadata"]["zone"], "a");

  // The agent lists the app, from the etcd3 library's plain {"address","port"} value.
  ASSERT_TRUE(wait_until([&] {
    const json list = instances_in(out);
    return list.size() == 1 && list[0]["id"] == "nest-1";
  }, 10s)) << read_file(out).value_or("<missing>");
  const json list = instances_in(out);
  EXPECT_EQ(list[0]["address"], "127.0.0.1");
  EXPECT_EQ(list[0]["port"], 3000);

  // A second app instance shows up, and the first one's graceful stop (lease revoke) removes it.
  std::optional<ChildProcess> first = std::move(app_);
  start_app("nest-2", 3001);
  ASSERT_TRUE(wait_until([&] { return instances_in(out).size() == 2; }, 20s));
  ASSERT_TRUE(first->signal(SIGTERM));
  EXPECT_EQ(first->wait_exit(10s), 0) << first->output();
  ASSERT_TRUE(wait_until([&] {
    const json now = instances_in(out);
    return now.size() == 1 && now[0]["id"] == "nest-2";
  }, 10s)) << read_file(out).value_or("<missing>");

  // The agent's own deregistration reaches the app's watch as a delete.
  EXPECT_EQ(agent_->terminate(), 0);
  EXPECT_TRUE(wait_until([&] { return app_saw(*app_, "delete", "/services/order-service/order-1"); }, 10s));
  app_->signal(SIGTERM);
  EXPECT_EQ(app_->wait_exit(10s), 0);
}

}  // namespace
}  // namespace sidecar::test
