// Live reload (SIGHUP) against a real etcd and the real agent binary: the manifest file is rewritten and
// the agent applies the difference. WatchRecorders on every key prove what moved and what did not.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <fstream>
#include <mutex>
#include <regex>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/support/admin_client.hpp"
#include "tests/support/agent_fixture.hpp"
#include "tests/support/agent_process.hpp"
#include "tests/support/etcd_client.hpp"
#include "tests/support/etcd_process.hpp"
#include "tests/support/wait.hpp"

namespace sidecar::test {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using Type = WatchEvent::Type;

const ServiceDef kKeep{.name = "web", .id = "w1", .port = 80};
const ServiceDef kGone{.name = "db", .id = "d1", .port = 5432};
const ServiceDef kChange{.name = "api", .id = "a1", .port = 81};
const ServiceDef kChanged{.name = "api", .id = "a1", .port = 82};
const ServiceDef kAdded{.name = "cache", .id = "c1", .port = 6379};

// Receives the agent's sd_notify datagrams on a socket this test owns (NOTIFY_SOCKET).
class NotifyCapture {
 public:
  explicit NotifyCapture(std::filesystem::path path) : path_(std::move(path)) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path_.c_str());
    ok_ = fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    timeval tv{0, 100 * 1000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    reader_ = std::thread([this] {
      char buf[4096];
      while (!done_) {
        const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
        if (n <= 0) continue;
        std::lock_guard lock(mu_);
        messages_.emplace_back(buf, static_cast<size_t>(n));
      }
    });
  }
  ~NotifyCapture() {
    done_ = true;
    reader_.join();
    ::close(fd_);
    std::filesystem::remove(path_);
  }
  bool ok() const { return ok_; }
  std::vector<std::string> messages() const {
    std::lock_guard lock(mu_);
    return messages_;
  }

 private:
  std::filesystem::path path_;
  int fd_ = -1;
  bool ok_ = false;
  std::atomic<bool> done_{false};
  mutable std::mutex mu_;
  std::vector<std::string> messages_;
  std::thread reader_;
};

size_t count_of(const std::vector<WatchEvent>& events, Type type) {
  size_t n = 0;
  for (const auto& e : events) n += e.type == type ? 1 : 0;
  return n;
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

class Reload : public EtcdAgentFixture {
 protected:
  std::string manifest(const std::vector<ServiceDef>& services, const std::string& extra = "") const {
    return registration_manifest(etcd_->client_url(), services, "2s") + extra;
  }

  // Starts the agent and waits for its admin port.
  void start(const std::string& yaml, EnvVars env = {}) {
    agent_ = AgentProcess::start(yaml, {"--log-level", "debug"}, std::move(env));
    ASSERT_NE(agent_, nullptr);
    ASSERT_TRUE(wait_until([&] { return (port_ = admin_port_from_log(agent_->output())).has_value(); }, 5s))
        << agent_->output();
  }

  // Rewrites the manifest, sends SIGHUP, and waits for the agent to say how the reload went.
  void reload(const std::string& yaml, const std::string& expect_in_log = "reload applied") {
    if (!yaml.empty()) {
      ASSERT_TRUE(write_file(agent_->manifest_path(), yaml));
    }
    const size_t before = occurrences(expect_in_log);
    ASSERT_TRUE(agent_->signal(SIGHUP));
    ASSERT_TRUE(wait_until([&] { return occurrences(expect_in_log) > before; }, 5s)) << agent_->output();
  }

  size_t occurrences(const std::string& needle) const {
    const std::string out = agent_->output();
    size_t n = 0;
    for (size_t at = out.find(needle); at != std::string::npos; at = out.find(needle, at + 1)) ++n;
    return n;
  }

  PromParse metrics() {
    const HttpResponse r = http_request(*port_, "GET", "/metrics");
    EXPECT_EQ(r.status, 200) << r.error;
    PromParse parsed = parse_prometheus(r.body);
    EXPECT_THAT(parsed.errors, ::testing::IsEmpty()) << r.body;
    return parsed;
  }

  nlohmann::json status() {
    const HttpResponse r = http_request(*port_, "GET", "/v1/status");
    EXPECT_EQ(r.status, 200) << r.error;
    return nlohmann::json::parse(r.body, nullptr, false);
  }

  bool registered(const ServiceDef& s) { return client_->get(service_key(s)).has_value(); }

  std::optional<std::uint16_t> port_;
};

TEST_F(Reload, AddsRemovesAndRewritesServicesWhileTheKeptKeySeesNoEvent) {
  const auto dir = TempDir("sidecar-notify");
  NotifyCapture notify(dir / "notify.sock");
  ASSERT_TRUE(notify.ok());
  start(manifest({kKeep, kGone, kChange}), {{"NOTIFY_SOCKET", (dir / "notify.sock").string()}});
  ASSERT_TRUE(wait_until([&] { return registered(kKeep) && registered(kGone) && registered(kChange); }, 10s));
  const auto keep_before = client_->get(service_key(kKeep));
  const int64_t lease = keep_before->lease;
  const std::string hash_before = status()["config_version"]["hash"];
  EXPECT_EQ(metrics().value("etcd_sidecar_reloads_total"), 0.0);

  WatchRecorder keep_watch(etcd_->endpoint(), service_key(kKeep));
  WatchRecorder gone_watch(etcd_->endpoint(), service_key(kGone));
  WatchRecorder change_watch(etcd_->endpoint(), service_key(kChange));
  WatchRecorder added_watch(etcd_->endpoint(), service_key(kAdded));
  ASSERT_TRUE(keep_watch.created() && gone_watch.created() && change_watch.created() && added_watch.created());

  // The kept service moves to another position in the file: still the same key, still untouched.
  reload(manifest({kChanged, kAdded, kKeep}));
  ASSERT_TRUE(gone_watch.wait_for_count(1, 5s));
  ASSERT_TRUE(change_watch.wait_for_count(1, 5s));
  ASSERT_TRUE(added_watch.wait_for_count(1, 5s));
  ASSERT_TRUE(wait_until([&] { return status()["ready"] == true; }, 5s));
  // The own-key watch the reload restarted is live and has caught up: it sees the added key deleted by
  // someone else and writes it back. A flap of the kept key from that restart would have come before.
  ASSERT_EQ(client_->del(service_key(kAdded)), 1);
  ASSERT_TRUE(added_watch.wait_for_count(3, 5s)) << "the deleted key was not restored after the reload";

  EXPECT_THAT(keep_watch.events(), ::testing::IsEmpty());
  const auto keep_after = client_->get(service_key(kKeep));
  ASSERT_TRUE(keep_after);
  EXPECT_EQ(keep_after->mod_revision, keep_before->mod_revision);

  const auto gone = gone_watch.events();
  ASSERT_EQ(gone.size(), 1u);
  EXPECT_EQ(gone[0].type, Type::kDelete);

  const auto change = change_watch.events();
  ASSERT_EQ(change.size(), 1u);
  EXPECT_EQ(change[0].type, Type::kPut);
  const auto changed = client_->get(service_key(kChanged));
  ASSERT_TRUE(changed);
  EXPECT_EQ(nlohmann::json::parse(changed->value)["port"], 82);
  EXPECT_EQ(changed->lease, lease);  // rewritten in place, same lease

  const auto added = added_watch.events();
  ASSERT_EQ(added.size(), 3u);
  EXPECT_EQ(added[0].type, Type::kPut);
  EXPECT_EQ(added[1].type, Type::kDelete);
  EXPECT_EQ(added[2].type, Type::kPut);
  EXPECT_EQ(client_->get(service_key(kAdded))->lease, lease);
  EXPECT_GT(client_->lease_ttl(lease).ttl, 0);

  // systemd: RELOADING=1 (with MONOTONIC_USEC) and then READY=1.
  ASSERT_TRUE(wait_until([&] { return notify.messages().size() >= 3; }, 2s));
  const auto msgs = notify.messages();
  size_t reloading = msgs.size();
  for (size_t i = 0; i < msgs.size(); ++i) {
    if (msgs[i].find("RELOADING=1") != std::string::npos) reloading = i;
  }
  ASSERT_LT(reloading, msgs.size()) << "no RELOADING=1";
  EXPECT_TRUE(std::regex_search(msgs[reloading], std::regex("MONOTONIC_USEC=[0-9]+")));
  ASSERT_LT(reloading + 1, msgs.size());
  EXPECT_THAT(msgs[reloading + 1], HasSubstr("READY=1"));
  EXPECT_THAT(msgs.front(), HasSubstr("READY=1"));  // the start-up one came before

  const auto m = metrics();
  EXPECT_EQ(m.value("etcd_sidecar_reloads_total"), 1.0);
  EXPECT_EQ(m.value("etcd_sidecar_reload_failures_total"), 0.0);
  const auto st = status();
  EXPECT_NE(st["config_version"]["hash"], hash_before);
  ASSERT_EQ(st["services"].size(), 3u);
  EXPECT_EQ(st["services"][0]["key"], service_key(kChanged));
  EXPECT_EQ(st["services"][2]["key"], service_key(kKeep));
  EXPECT_EQ(m.value("etcd_sidecar_config_info",
                    {{"path", st["config_version"]["path"]}, {"hash", st["config_version"]["hash"]}}),
            1.0);

  // SIGTERM still deregisters everything, the added key included.
  EXPECT_EQ(agent_->signal(SIGTERM), true);
  ASSERT_EQ(agent_->wait_exit(5s), 0);
  EXPECT_TRUE(client_->get_prefix("/services/").empty());
}

TEST_F(Reload, RemovedAndReAddedServiceComesBackOnTheSameLease) {
  start(manifest({kKeep, kGone}));
  ASSERT_TRUE(wait_until([&] { return registered(kKeep) && registered(kGone); }, 10s));
  const int64_t lease = client_->get(service_key(kKeep))->lease;
  reload(manifest({kKeep}));
  ASSERT_TRUE(wait_until([&] { return !registered(kGone); }, 5s));
  reload(manifest({kKeep, kGone}));
  ASSERT_TRUE(wait_until([&] { return registered(kGone); }, 5s));
  EXPECT_EQ(client_->get(service_key(kGone))->lease, lease);
  // Still watched after the re-add: another client's delete is restored.
  ASSERT_GE(client_->del(service_key(kGone)), 0);
  EXPECT_TRUE(wait_until([&] { return registered(kGone); }, 5s));
}

TEST_F(Reload, DiscoveriesAndConfigMirrorsAreAddedRemovedOrLeftRunning) {
  client_->put("/services/api/x1", R"({"address":"10.0.0.1","port":1})");
  client_->put("/services/db/y1", R"({"address":"10.0.0.2","port":2})");
  client_->put("/config/a", "A1");
  client_->put("/config/b", "B1");
  const std::string discover_web = "  - {service: web, output: web.json}\n";
  const std::string discover_api = "  - {service: api, output: api.json}\n";
  const std::string discover_db = "  - {service: db, output: db.json}\n";
  const std::string config_a = "  - {key: /config/a, output: a.txt}\n";
  const std::string config_b = "  - {key: /config/b, output: b.txt}\n";
  start(manifest({kKeep}, "discover:\n" + discover_web + discover_api + "config:\n" + config_a));
  const auto d = agent_->dir();
  ASSERT_TRUE(wait_until([&] { return read_json_file(d / "api.json") && read_text(d / "a.txt") == "A1"; }, 10s));
  ASSERT_TRUE(wait_until([&] { return read_json_file(d / "web.json").has_value(); }, 5s));
  auto web_status = [&] {
    const nlohmann::json st = status();
    for (const auto& w : st["discover"]) {
      if (w["service"] == "web") return w;
    }
    return nlohmann::json();
  };
  ASSERT_TRUE(wait_until([&] { return web_status()["synced"] == true; }, 5s));
  const nlohmann::json web_before = web_status();
  const auto starts_before = metrics().value("etcd_sidecar_watch_starts_total", {{"kind", "discover"}, {"name", "web"}});
  ASSERT_TRUE(starts_before.has_value());

  // web kept (moved in the file), api removed, db added; config a removed, b added.
  reload(manifest({kKeep}, "discover:\n" + discover_db + discover_web + "config:\n" + config_b));
  EXPECT_TRUE(wait_until([&] { return read_json_file(d / "db.json").has_value(); }, 5s));
  EXPECT_TRUE(wait_until([&] { return read_text(d / "b.txt") == "B1"; }, 5s));

  // The removed ones stop updating and keep their files as they were.
  const std::string api_file = read_text(d / "api.json");
  client_->put("/services/api/x2", R"({"address":"10.0.0.3","port":3})");
  client_->put("/config/a", "A2");
  // The kept discovery still follows etcd, so waiting on it bounds the wait for the others.
  client_->put("/services/web/w2", R"({"address":"10.0.0.4","port":4})");
  ASSERT_TRUE(wait_until([&] { return read_text(d / "web.json").find("10.0.0.4") != std::string::npos; }, 5s));
  client_->put("/config/b", "B2");
  ASSERT_TRUE(wait_until([&] { return read_text(d / "b.txt") == "B2"; }, 5s));
  EXPECT_EQ(read_text(d / "api.json"), api_file);
  EXPECT_EQ(read_text(d / "a.txt"), "A1");

  // The kept discovery was not restarted: no new watch, no resync.
  const nlohmann::json web_after = web_status();
  EXPECT_EQ(web_after["resyncs"], web_before["resyncs"]);
  ASSERT_EQ(status()["discover"].size(), 2u);
  ASSERT_EQ(status()["config"].size(), 1u);
  EXPECT_EQ(metrics().value("etcd_sidecar_watch_starts_total", {{"kind", "discover"}, {"name", "web"}}),
            starts_before);
}

// A service with one exec check, in manifest YAML.
std::string checked_service(const std::string& name, const std::string& command) {
  return "  - name: " + name + "\n    id: " + name + "-1\n    port: 80\n    initial_status: passing\n"
         "    checks:\n      - exec: [\"" + command + "\"]\n        interval: 100ms\n        rise: 1\n        fall: 1\n";
}

TEST_F(Reload, ChangedChecksRestartOnlyThatServicesChecks) {
  const std::string head = "etcd:\n  endpoints: [\"" + etcd_->client_url() + "\"]\nlease:\n  ttl: 2s\nservices:\n";
  start(head + checked_service("steady", "/bin/true") + checked_service("moody", "/bin/true"));
  ASSERT_TRUE(wait_until([&] {
    return client_->get("/services/steady/steady-1").has_value() && client_->get("/services/moody/moody-1").has_value();
  }, 10s));
  auto runs_of = [&](const std::string& name) -> int64_t {
    const nlohmann::json st = status();
    for (const auto& s : st["services"]) {
      if (s["name"] == name && !s["checks"].empty()) return s["checks"][0]["runs"].get<int64_t>();
    }
    return -1;
  };
  ASSERT_TRUE(wait_until([&] { return runs_of("steady") >= 3; }, 5s));
  WatchRecorder steady_watch(etcd_->endpoint(), "/services/steady/steady-1");
  WatchRecorder moody_watch(etcd_->endpoint(), "/services/moody/moody-1");

  reload(head + checked_service("steady", "/bin/true") + checked_service("moody", "/bin/false"));
  const int64_t steady_runs = runs_of("steady");
  // moody's new check fails: its key alone is withdrawn, on the running lease.
  ASSERT_TRUE(moody_watch.wait_for([](const auto& ev) { return count_of(ev, Type::kDelete) == 1; }, 5s));
  EXPECT_TRUE(agent_->output_contains("moody/moody-1: checks changed; restarting its checks"));
  // steady's checks were not restarted: its run count goes on from where it was, and its key never moved.
  ASSERT_TRUE(wait_until([&] { return runs_of("steady") >= steady_runs + 3; }, 5s));
  EXPECT_GE(steady_runs, 3);
  EXPECT_THAT(steady_watch.events(), ::testing::IsEmpty());
  EXPECT_FALSE(agent_->output_contains("steady/steady-1: checks changed"));
  const nlohmann::json st = status();
  ASSERT_EQ(st["services"].size(), 2u);
  EXPECT_EQ(st["services"][1]["checks"][0]["status"], "critical");
  EXPECT_EQ(st["services"][1]["wanted"], false);
}

TEST_F(Reload, EtcdSettingsNeedARestartAndTheRestIsApplied) {
  start(manifest({kKeep}));
  ASSERT_TRUE(wait_until([&] { return registered(kKeep); }, 10s));
  std::string yaml = manifest({kKeep, kAdded});
  yaml.replace(yaml.find("ttl: 2s"), 7, "ttl: 5s");
  reload(yaml);
  EXPECT_TRUE(agent_->output_contains("lease.ttl changed; these need a restart"));
  EXPECT_TRUE(wait_until([&] { return registered(kAdded); }, 5s));
  EXPECT_EQ(client_->lease_ttl(client_->get(service_key(kKeep))->lease).granted_ttl, 2);
}

}  // namespace
}  // namespace sidecar::test
