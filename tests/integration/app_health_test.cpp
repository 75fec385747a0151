// Health driven by the app, maintenance and the admin token, black-box: a real etcd-sidecar against a real
// etcd. The app's side is the test: it reports on the admin endpoint (PUT /v1/checks/..) or stays silent;
// the result is read from etcd (the key, its lease, its create revision and its value's "state").
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/core/health_state.hpp"
#include "tests/support/admin_client.hpp"
#include "tests/support/agent_fixture.hpp"
#include "tests/support/agent_process.hpp"
#include "tests/support/etcd_client.hpp"
#include "tests/support/process.hpp"
#include "tests/support/wait.hpp"

namespace sidecar::test {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

const std::string kKey = "/services/api/api-1";

// The "state" of a stored value: "passing" when the field is absent (how the agent writes passing).
std::string state_of(const std::string& value) {
  const auto doc = nlohmann::json::parse(value, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return "<not json: " + value + ">";
  return doc.value("state", "passing");
}

// "PDP" for put, delete, put.
std::string shape_of(const std::vector<WatchEvent>& events) {
  std::string out;
  for (const auto& e : events) out += e.type == WatchEvent::Type::kPut ? 'P' : 'D';
  return out;
}

HttpResponse send(std::uint16_t port, const std::string& method, const std::string& target, const std::string& body = "",
                  const std::string& token = "") {
  std::string raw = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  if (!token.empty()) raw += "Authorization: Bearer " + token + "\r\n";
  raw += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  return http_raw(port, raw);
}

class AppHealth : public EtcdAgentFixture {
 protected:
  // One service api/api-1 with `checks` (YAML list items, indented 6) and `extra` top-level sections.
  std::string manifest(const std::string& checks, const std::string& extra = "") const {
    std::string yaml = "etcd:\n  endpoints: [\"" + etcd_->client_url() + "\"]\nlease:\n  ttl: 10s\n";
    yaml += "services:\n  - name: api\n    id: api-1\n    address: 127.0.0.1\n    port: 8080\n";
    if (!checks.empty()) yaml += "    checks:\n" + checks;
    return yaml + extra;
  }

  void dump_logs() const override {
    for (const auto& a : previous_) dump_agent_log(*a, "earlier agent");
    EtcdAgentFixture::dump_logs();
  }

  // Starts the agent in dir_ (the same state directory for every start, so the same state files).
  void start_no_port(const std::string& yaml, std::vector<std::string> args = {"--log-level", "debug"}) {
    if (agent_) previous_.push_back(std::move(agent_));
    agent_ = AgentProcess::start_in(dir_.path(), yaml, std::move(args), "agent");
    if (!agent_) throw std::runtime_error("cannot start the agent");
  }
  // Same, and returns its admin port.
  std::uint16_t start(const std::string& yaml, std::vector<std::string> args = {"--log-level", "debug"}) {
    start_no_port(yaml, std::move(args));
    std::optional<std::uint16_t> port;
    // Should the log be appended to by every start in dir_, the port is the one in this start's last line.
    if (!wait_until([&] {
          const std::string log = agent_->output();
          const size_t at = log.rfind("admin endpoint listening on");
          return at != std::string::npos && (port = admin_port_from_log(log.substr(at))).has_value();
        }, 5s)) {
      throw std::runtime_error("the agent never logged its admin port");
    }
    return *port;
  }

  std::optional<Kv> wait_state(const std::string& state, std::chrono::milliseconds timeout = 5s) {
    std::optional<Kv> kv;
    if (wait_until([&] { return (kv = client_->get(kKey)).has_value() && kv->lease != 0 && state_of(kv->value) == state; },
                   timeout)) {
      return kv;
    }
    return std::nullopt;
  }
  bool wait_absent(std::chrono::milliseconds timeout = 5s) {
    return wait_until([&] { return !client_->get(kKey).has_value() && client_->last_error().empty(); }, timeout);
  }

  TempDir dir_{"app-health-it"};
  std::vector<std::unique_ptr<AgentProcess>> previous_;
};

TEST_F(AppHealth, TtlCheckExpiresWithoutReportsAndRecoversOnAPass) {
  const std::uint16_t port = start(manifest("      - ttl: 1s\n"));
  // Critical until the app's first report: nothing registered, though the lease is there.
  ASSERT_TRUE(wait_until([&] {
    const auto doc = nlohmann::json::parse(http_request(port, "GET", "/v1/status").body, nullptr, false);
    return !doc.is_discarded() && doc["lease"]["state"] == "alive";
  }, 5s));
  EXPECT_FALSE(client_->get(kKey).has_value());

  const HttpResponse first = send(port, "PUT", "/v1/checks/api-1/pass");
  ASSERT_EQ(first.status, 200) << first.body;
  const auto passing = wait_state("passing");
  ASSERT_TRUE(passing) << "a pass registers the key";

  // warn: the key stays (same lease, same create revision) and its value says warning, with the note shown.
  const HttpResponse warned = send(port, "PUT", "/v1/checks/api-1/warn", "disk 91%");
  ASSERT_EQ(warned.status, 200) << warned.body;
  EXPECT_EQ(nlohmann::json::parse(warned.body)["status"], "warning");
  const auto warning = wait_state("warning");
  ASSERT_TRUE(warning);
  EXPECT_EQ(warning->lease, passing->lease);
  EXPECT_EQ(warning->create_revision, passing->create_revision) << "rewritten in place, never deleted";
  const auto status = nlohmann::json::parse(http_request(port, "GET", "/v1/status").body);
  EXPECT_EQ(status["services"][0]["state"], "warning") << status.dump();
  EXPECT_EQ(status["services"][0]["checks"][0]["note"], "disk 91%") << status.dump();
  EXPECT_EQ(status["services"][0]["checks"][0]["last_report"], "warn") << status.dump();

  // Silence: critical after the TTL, the key withdrawn, the lease kept.
  const auto silent_from = std::chrono::steady_clock::now();
  ASSERT_TRUE(wait_absent(4s)) << "no report within the 1 s TTL must withdraw the key";
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - silent_from).count();
  std::printf("[ measured ] last report -> key withdrawn (ttl 1s): %lld ms\n", static_cast<long long>(took));
  EXPECT_GT(client_->lease_ttl(passing->lease).ttl, 0) << "the lease stays";
  EXPECT_TRUE(agent_->wait_for_output("is now critical: TTL 1s expired without a report (last note: disk 91%)", 2s));

  // A pass brings it back on the same lease, passing again.
  ASSERT_EQ(send(port, "PUT", "/v1/checks/api/api-1/pass").status, 200);
  const auto back = wait_state("passing");
  ASSERT_TRUE(back);
  EXPECT_EQ(back->lease, passing->lease);

  // fail withdraws at once.
  ASSERT_EQ(send(port, "PUT", "/v1/checks/api-1/fail", "db down").status, 200);
  EXPECT_TRUE(wait_absent(2s));

  // A report for an unknown id: 404 listing the known ones.
  const HttpResponse unknown = send(port, "PUT", "/v1/checks/api-2/pass");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(nlohmann::json::parse(unknown.body)["known_ids"], nlohmann::json({"api-1"})) << unknown.body;
}

TEST_F(AppHealth, MaintenanceAndTheLastReportSurviveARestart) {
  const std::string yaml = manifest("      - ttl: 30s\n");
  std::uint16_t port = start(yaml);
  ASSERT_EQ(send(port, "PUT", "/v1/checks/api-1/pass", "ready").status, 200);
  const auto passing = wait_state("passing");
  ASSERT_TRUE(passing);

  const HttpResponse on = send(port, "POST", "/v1/maintenance?service=api-1&reason=disk%20swap");
  ASSERT_EQ(on.status, 200) << on.body;
  const auto in_maintenance = wait_state("maintenance");
  ASSERT_TRUE(in_maintenance);
  EXPECT_EQ(in_maintenance->create_revision, passing->create_revision) << "rewritten in place";
  auto status = nlohmann::json::parse(http_request(port, "GET", "/v1/status").body);
  EXPECT_EQ(status["services"][0]["maintenance"]["reason"], "disk swap") << status.dump();

  // A clean stop deregisters; the next process starts with the maintenance and the app's last pass, so
  // its very first write is the key in maintenance (no passing value, no gap waiting for a report).
  ASSERT_EQ(agent_->terminate(), std::optional<int>(0));
  ASSERT_TRUE(wait_absent());
  WatchRecorder watch(etcd_->endpoint(), kKey);
  ASSERT_TRUE(watch.created());
  port = start(yaml);
  ASSERT_TRUE(watch.wait_for([](const std::vector<WatchEvent>& e) { return !e.empty(); }, 5s));
  const WatchEvent first = watch.events().front();
  EXPECT_EQ(first.type, WatchEvent::Type::kPut);
  EXPECT_EQ(state_of(first.value), "maintenance") << first.value;
  status = nlohmann::json::parse(http_request(port, "GET", "/v1/status").body);
  EXPECT_EQ(status["services"][0]["maintenance"]["reason"], "disk swap") << status.dump();
  EXPECT_EQ(status["services"][0]["health"], "passing") << "the last pass, 30 s TTL, restored: " << status.dump();

  // DELETE ends it: passing, rewritten in place.
  const auto restarted = client_->get(kKey);
  ASSERT_TRUE(restarted);
  ASSERT_EQ(send(port, "DELETE", "/v1/maintenance?service=api-1").status, 200);
  const auto after = wait_state("passing");
  ASSERT_TRUE(after) << "the restored pass keeps it published once out of maintenance";
  EXPECT_EQ(after->create_revision, restarted->create_revision);
  // Two writes in all since the restart, both in place: maintenance, then passing (the watch may lag the get).
  EXPECT_TRUE(watch.wait_for([](const std::vector<WatchEvent>& e) { return shape_of(e) == "PP"; }, 2s))
      << shape_of(watch.events());
  EXPECT_EQ(state_of(watch.events().back().value), "passing");
}

TEST_F(AppHealth, MaintenanceFlagStartsEveryServiceInMaintenanceUntilDelete) {
  // No checks: healthy, yet registered as maintenance from the first write.
  WatchRecorder watch(etcd_->endpoint(), kKey);
  ASSERT_TRUE(watch.created());
  const std::uint16_t port = start(manifest(""), {"--maintenance", "--maintenance-reason", "repairing node"});
  ASSERT_TRUE(watch.wait_for([](const std::vector<WatchEvent>& e) { return !e.empty(); }, 5s));
  EXPECT_EQ(state_of(watch.events().front().value), "maintenance");
  const auto status = nlohmann::json::parse(http_request(port, "GET", "/v1/status").body);
  EXPECT_EQ(status["services"][0]["maintenance"]["reason"], "repairing node") << status.dump();
  const auto metrics = parse_prometheus(http_request(port, "GET", "/metrics").body);
  EXPECT_THAT(metrics.errors, ::testing::IsEmpty());
  EXPECT_EQ(metrics.value("etcd_sidecar_maintenance", {{"service", "api"}, {"id", "api-1"}}), 1.0);

  ASSERT_EQ(send(port, "DELETE", "/v1/maintenance").status, 200);
  EXPECT_TRUE(wait_state("passing"));
  EXPECT_EQ(parse_prometheus(http_request(port, "GET", "/metrics").body)
                .value("etcd_sidecar_maintenance", {{"service", "api"}, {"id", "api-1"}}),
            0.0);
}

TEST_F(AppHealth, WithATokenFileWritesNeedTheBearerTokenAndReadsDoNot) {
  const auto token_file = dir_ / "admin-token";
  std::ofstream(token_file) << "t0ken-123\n";
  const std::uint16_t port =
      start(manifest("      - ttl: 5s\n", "admin:\n  listen: 127.0.0.1:0\n  token_file: " + token_file.string() + "\n"));
  const HttpResponse without = send(port, "PUT", "/v1/checks/api-1/pass");
  EXPECT_EQ(without.status, 401);
  EXPECT_EQ(without.header("www-authenticate"), "Bearer realm=\"etcd-sidecar\"");
  EXPECT_EQ(send(port, "PUT", "/v1/checks/api-1/pass", "", "wrong").status, 401);
  EXPECT_EQ(send(port, "POST", "/v1/drain").status, 401);
  EXPECT_EQ(http_request(port, "GET", "/v1/status").status, 200) << "reads stay open";
  EXPECT_FALSE(client_->get(kKey).has_value()) << "the refused report changed nothing";
  EXPECT_EQ(send(port, "PUT", "/v1/checks/api-1/pass", "", "t0ken-123").status, 200);
  EXPECT_TRUE(wait_state("passing"));
}

TEST_F(AppHealth, ACorruptStateFileIsAWarningNamingItAndTheAgentStartsAfresh) {
  // Where the agent of start_in(dir_, .., "agent") keeps it: $STATE_DIRECTORY/<from the manifest path>.
  const auto state_file =
      dir_ / "state" / core::health_state_file_name(std::filesystem::absolute(dir_ / "agent.yaml").lexically_normal().string());
  std::filesystem::create_directories(dir_ / "state");
  std::ofstream(state_file) << "{\"version\":1,\"services\":{\"api/api-1\":{\"maintenance\":";  // cut short
  const std::uint16_t port = start(manifest(""));
  ASSERT_TRUE(wait_state("passing")) << "registered as usual, not in maintenance";
  EXPECT_TRUE(agent_->wait_for_output(state_file.string() + ": ignoring the health state file", 2s));
  ASSERT_EQ(send(port, "POST", "/v1/maintenance").status, 200);
  EXPECT_TRUE(wait_state("maintenance"));
  // The corrupt file is replaced by a good one.
  EXPECT_TRUE(wait_until([&] {
    std::ifstream in(state_file);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::string error;
    const auto state = core::decode_health_state(text, &error);
    return state && state->services.count("api/api-1") == 1;
  }, 2s));
}

TEST_F(AppHealth, AnUnreadableTokenFileIsAConfigErrorNamingIt) {
  const auto missing = dir_ / "no-such-token";
  start_no_port(manifest("", "admin:\n  listen: 127.0.0.1:0\n  token_file: " + missing.string() + "\n"));
  EXPECT_EQ(agent_->wait_exit(5s), std::optional<int>(78));
  EXPECT_THAT(agent_->output(), HasSubstr("admin.token_file: cannot read " + missing.string()));
}

}  // namespace
}  // namespace sidecar::test
