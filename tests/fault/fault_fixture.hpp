// Owns: the shared set-up of the fault and soak suites: one etcd, one agent that registers itself and
//       discovers its own service and mirrors a config prefix, and the checks every scenario ends with.
// Thread: the test's main thread (InvariantMonitor samples on its own).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/agent_fixture.hpp"
#include "tests/support/agent_process.hpp"
#include "tests/support/etcd_client.hpp"
#include "tests/support/etcd_process.hpp"
#include "tests/support/invariants.hpp"
#include "tests/support/process.hpp"
#include "tests/support/wait.hpp"

namespace sidecar::test {

using namespace std::chrono_literals;

inline constexpr const char* kFaultService = "fault-svc";
inline constexpr const char* kFaultServicePrefix = "/services/fault-svc/";
inline constexpr const char* kFaultConfigPrefix = "/config/fault/";
inline constexpr const char* kSelfId = "agent-1";
inline constexpr int kSelfPort = 9001;

// A sidecar-format value for another instance of fault-svc, as other clients would write it.
inline std::string instance_value(const std::string& id, int port) {
  return nlohmann::json{{"name", kFaultService}, {"id", id}, {"address", "10.0.0.1"}, {"port", port},
                        {"metadata", nlohmann::json::object()}}
      .dump();
}

inline std::string describe(const Endpoints& e, std::size_t limit = 8) {
  std::ostringstream out;
  out << e.size() << " instance(s):";
  std::size_t n = 0;
  for (const auto& [id, ep] : e) {
    if (n++ == limit) {
      out << " ...";
      break;
    }
    out << " " << id << "=" << ep;
  }
  return out.str();
}

struct AgentConfig {
  std::string endpoint_url;         // empty: the fixture's etcd
  std::string ttl = "2s";           // short, so lease expiry scenarios stay fast
  std::string id = kSelfId;
  int port = kSelfPort;
  std::string discover_extra;       // more fields of the discover entry, each line "    key: value\n"
  std::string name = "agent";       // manifest/log file names in the test dir
};

inline AgentConfig with_ttl(std::string ttl) {
  AgentConfig c;
  c.ttl = std::move(ttl);
  return c;
}

class FaultTest : public EtcdAgentFixture {
 protected:
  FaultTest() { log_tail_bytes_ = 8 * 1024; }

  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(EtcdAgentFixture::SetUp());
    std::filesystem::create_directories(out_dir_);
  }

  void TearDown() override {
    if (monitor_) monitor_->stop();
    EtcdAgentFixture::TearDown();
  }

  std::string self_key(const std::string& id = kSelfId) const { return kFaultServicePrefix + id; }

  std::string manifest(const AgentConfig& c) const {
    const std::string url = c.endpoint_url.empty() ? etcd_->client_url() : c.endpoint_url;
    return etcd_manifest_section(url) + "  request_timeout: 500ms\n  dial_timeout: 500ms\nlease:\n  ttl: " + c.ttl +
           "\nservices:\n  - name: " + kFaultService + "\n    id: " + c.id + "\n    port: " + std::to_string(c.port) +
           "\ndiscover:\n  - service: " + kFaultService + "\n    output: " + discovery_file().string() +
           "\n    wait: {min: 0ms, max: 200ms}\n" + c.discover_extra + "config:\n  - prefix: " + kFaultConfigPrefix +
           "\n    output: " + config_file().string() + "\n";
  }

  std::unique_ptr<AgentProcess> launch_agent(const AgentConfig& c) {
    auto agent = AgentProcess::start_in(dir_.path(), manifest(c), {"--log-level", "debug"}, c.name);
    EXPECT_NE(agent, nullptr) << "cannot start " << SIDECAR_BINARY;
    return agent;
  }

  // Starts the agent, waits until it is registered and both files match etcd, then starts the monitor.
  void start_agent(const AgentConfig& c = {}) {
    agent_ = launch_agent(c);
    ASSERT_NE(agent_, nullptr);
    ASSERT_TRUE(registered(15s));
    ASSERT_TRUE(converged(15s));
    monitor_ = std::make_unique<InvariantMonitor>(agent_->pid(),
                                                  std::vector<std::filesystem::path>{discovery_file(), config_file()});
    baseline_rss_kib_ = rss_kib(agent_->pid()).value_or(0);
  }

  std::filesystem::path discovery_file() const { return out_dir_ / "fault-svc.json"; }
  std::filesystem::path config_file() const { return out_dir_ / "config.json"; }

  // Other instances and config keys written by other clients, so the files have something to lose.
  void seed(int instances = 3, int config_keys = 2) {
    for (int i = 0; i < instances; ++i) {
      ASSERT_GT(client_->put(self_key("other-" + std::to_string(i)), instance_value("other-" + std::to_string(i), 7000 + i)), 0);
    }
    for (int i = 0; i < config_keys; ++i) {
      ASSERT_GT(client_->put(kFaultConfigPrefix + std::string("flag-") + std::to_string(i), "v" + std::to_string(i)), 0);
    }
  }

  // Both files equal what etcd holds now (checked against a fresh read of etcd on every poll).
  ::testing::AssertionResult converged(std::chrono::milliseconds timeout = 15s) {
    Endpoints want, have;
    nlohmann::json want_config, have_config;
    const bool ok = wait_until(
        [&] {
          want = endpoints_in_etcd(*client_, kFaultServicePrefix);
          want_config = config_in_etcd(*client_, kFaultConfigPrefix);
          const auto doc = read_json_file(discovery_file());
          const auto cfg = read_json_file(config_file());
          have = doc ? endpoints_in_file(*doc) : Endpoints{};
          have_config = cfg ? *cfg : nlohmann::json();
          return client_->last_error().empty() && doc && cfg && want == have && want_config == have_config;
        },
        timeout, 50ms);
    if (ok) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "after " << timeout.count() << " ms: etcd has " << describe(want)
                                         << " and config " << want_config.dump() << "; the files have "
                                         << describe(have) << " and " << have_config.dump()
                                         << (client_->last_error().empty() ? "" : "; etcd: " + client_->last_error());
  }

  // Our key holds our value on a lease etcd knows and keeps alive.
  ::testing::AssertionResult registered(std::chrono::milliseconds timeout = 15s, const AgentConfig& c = {}) {
    std::optional<Kv> kv;
    std::int64_t ttl = -3;
    const bool ok = wait_until(
        [&] {
          kv = client_->get(self_key(c.id));
          if (!kv || kv->lease == 0) return false;
          const auto v = nlohmann::json::parse(kv->value, nullptr, false);
          if (v.is_discarded() || v.value("id", "") != c.id || v.value("port", 0) != c.port) return false;
          ttl = client_->lease_ttl(kv->lease).ttl;
          return ttl > 0;
        },
        timeout, 50ms);
    if (ok) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "after " << timeout.count() << " ms " << self_key(c.id) << " is "
                                         << (kv ? kv->value + " lease " + lease_hex(kv->lease) + " ttl " +
                                                      std::to_string(ttl)
                                                : std::string("absent"));
  }

  // The seeded instances nobody deletes in this scenario: they must be in every sample of the file.
  void require_seeds_listed(int instances = 3) {
    std::vector<std::string> ids;
    for (int i = 0; i < instances; ++i) ids.push_back("other-" + std::to_string(i));
    monitor_->require_instances(discovery_file(), std::move(ids));
  }

  std::int64_t self_lease() {
    const auto kv = client_->get(self_key());
    return kv ? kv->lease : 0;
  }

  // Every sample taken during the fault saw complete, parseable, non-empty files.
  void expect_files_never_broken() {
    ASSERT_NE(monitor_, nullptr);
    monitor_->stop();
    const auto v = monitor_->violations();
    std::string all;
    for (const auto& s : v) all += "\n  " + s;
    EXPECT_TRUE(v.empty()) << "file invariant violated:" << all;
    EXPECT_GE(monitor_->samples(), 5u) << "the monitor barely ran, so it proves nothing";
  }

  // The agent's memory after the fault is within `slack_kib` of where it was before.
  void expect_rss_flat(long slack_kib = 6 * 1024) {
#ifdef SIDECAR_TESTS_SANITIZED
    std::cerr << "RSS check not applicable under ASan (quarantine); see the non-sanitized run\n";
    return;
#endif
    const auto now = rss_kib(agent_->pid());
    ASSERT_TRUE(now.has_value());
    EXPECT_LE(*now, baseline_rss_kib_ + slack_kib)
        << "RSS grew from " << baseline_rss_kib_ << " KiB to " << *now << " KiB";
  }

  // SIGTERM: exit 0, and the key is gone at once (lease revoked, not left to expire).
  void expect_clean_shutdown() {
    ASSERT_NE(agent_, nullptr);
    if (monitor_) monitor_->stop();
    EXPECT_EQ(agent_->terminate(5s), 0);
    EXPECT_TRUE(wait_until([&] { return !client_->get(self_key()).has_value() && client_->last_error().empty(); }, 1s))
        << "the key outlived the agent";
  }

  TempDir dir_{"fault"};
  std::filesystem::path out_dir_ = dir_ / "out";
  std::unique_ptr<InvariantMonitor> monitor_;
  long baseline_rss_kib_ = 0;
};

}  // namespace sidecar::test
