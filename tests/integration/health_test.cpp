// Health checks and drain, black-box: a real etcd-sidecar against a real etcd, pointed at real servers the
// test runs (an HTTP server it flips, a TCP listener it closes, scripts that fail or hang, a gRPC health
// server). Observed through etcd watches, the servers' own request logs, and the agent's log and exit.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/support/agent_fixture.hpp"
#include "tests/support/agent_process.hpp"
#include "tests/support/etcd_client.hpp"
#include "tests/support/etcd_process.hpp"
#include "tests/support/health_servers.hpp"
#include "tests/support/process.hpp"
#include "tests/support/wait.hpp"

namespace sidecar::test {
namespace {

using namespace std::chrono_literals;
using Events = std::vector<WatchEvent>;

constexpr auto kRegisterTimeout = 5s;

long long ms_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(to - from).count();
}

void report(const char* what, long long ms) {
  std::printf("[ measured ] %s: %lld ms\n", what, ms);
  std::fflush(stdout);
}

// "PDP" for put, delete, put: the sequence of event types on `key`.
std::string shape(const Events& events, const std::string& key) {
  std::string out;
  for (const auto& e : events) {
    if (e.key == key) out += e.type == WatchEvent::Type::kPut ? 'P' : 'D';
  }
  return out;
}

// The time of the `n`-th (0-based) event on `key`.
std::optional<Clock::time_point> event_time(const Events& events, const std::string& key, size_t n) {
  for (const auto& e : events) {
    if (e.key != key) continue;
    if (n == 0) return e.received_at;
    --n;
  }
  return std::nullopt;
}

size_t count_of(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// The answers served in [from, to) with `status`.
size_t served_between(const std::vector<FlipHttpServer::Served>& served, int status, Clock::time_point from,
                      Clock::time_point to) {
  return static_cast<size_t>(std::count_if(served.begin(), served.end(), [&](const FlipHttpServer::Served& s) {
    return s.status == status && s.at >= from && s.at < to;
  }));
}

bool process_gone(pid_t pid) {
  // Gone, or a zombie nobody can run any more (reaped by init shortly).
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return true;
  const auto paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z';
}

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// One service of a test manifest: its checks are YAML list items written by the test, indented 6 spaces.
struct Svc {
  Svc(std::string n, std::string i, std::string c = "", std::string initial = "")
      : name(std::move(n)), id(std::move(i)), checks(std::move(c)), initial_status(std::move(initial)) {}
  std::string name;
  std::string id;
  std::string checks;          // "      - http: ...\n        rise: 2\n"
  std::string initial_status;  // empty: default
  std::string key() const { return "/services/" + name + "/" + id; }
};

class HealthChecks : public EtcdAgentFixture {
 protected:
  std::string manifest(const std::vector<Svc>& services, const std::string& extra = "") const {
    std::string yaml = "etcd:\n  endpoints: [" + quoted(etcd_->client_url()) + "]\n";
    yaml += "lease:\n  ttl: 10s\n";
    yaml += "services:\n";
    for (const auto& s : services) {
      yaml += "  - name: " + s.name + "\n    id: " + s.id + "\n    address: 127.0.0.1\n    port: 8080\n";
      if (!s.initial_status.empty()) yaml += "    initial_status: " + s.initial_status + "\n";
      if (!s.checks.empty()) yaml += "    checks:\n" + s.checks;
    }
    return yaml + extra;
  }

  AgentProcess& start_agent(const std::vector<Svc>& services, const std::string& extra = "") {
    agent_ = AgentProcess::start(manifest(services, extra));
    if (!agent_) throw std::runtime_error(std::string("cannot start ") + SIDECAR_BINARY);
    return *agent_;
  }

  std::optional<Kv> wait_present(const std::string& key, std::chrono::milliseconds timeout = kRegisterTimeout) {
    std::optional<Kv> kv;
    if (wait_until([&] { return (kv = client_->get(key)).has_value() && kv->lease != 0; }, timeout)) return kv;
    return std::nullopt;
  }
  bool wait_absent(const std::string& key, std::chrono::milliseconds timeout = kRegisterTimeout) {
    return wait_until([&] { return !client_->get(key).has_value() && client_->last_error().empty(); }, timeout);
  }
};

// ------------------------------------------------------------------------------------------------ rise / fall

TEST_F(HealthChecks, HttpRiseAndFallCountsHold) {
  FlipHttpServer http;
  ASSERT_TRUE(http.ok());
  const Svc api{"api", "api-1",
                "      - http: " + http.url() + "\n        interval: 100ms\n        timeout: 80ms\n"
                "        rise: 2\n        fall: 3\n"};
  WatchRecorder watch(etcd_->endpoint(), api.key());
  ASSERT_TRUE(watch.created());
  const auto started = Clock::now();
  AgentProcess& agent = start_agent({api});

  // Critical at start: registered only after `rise` passes.
  ASSERT_TRUE(watch.wait_for([&](const Events& e) { return shape(e, api.key()) == "P"; }, kRegisterTimeout));
  const auto first_put = *event_time(watch.events(), api.key(), 0);
  EXPECT_GE(served_between(http.served(), 200, started, first_put), 2u) << "rise: 2";
  const auto kv = client_->get(api.key());
  ASSERT_TRUE(kv.has_value());

  // Two failures in a row are below `fall`: nothing moves.
  const size_t before_flap = http.served_count();
  http.fail_next(2);
  ASSERT_TRUE(http.wait_for_served(before_flap + 4, 3s));  // the 2 failures and 2 passes after them
  EXPECT_EQ(shape(watch.events(), api.key()), "P") << "2 failures with fall: 3 must not deregister";

  // Failing for good: deleted after exactly `fall` failures, on the same lease.
  const auto failing_from = Clock::now();
  http.set_answer(503, "down");
  ASSERT_TRUE(watch.wait_for([&](const Events& e) { return shape(e, api.key()) == "PD"; }, 3s));
  const auto deleted_at = *event_time(watch.events(), api.key(), 1);
  const size_t failures = served_between(http.served(), 503, failing_from, deleted_at);
  EXPECT_GE(failures, 3u);
  EXPECT_LE(failures, 6u) << "deleted after the third failure, not much later";
  report("failing -> key deleted", ms_between(failing_from, deleted_at));
  EXPECT_GT(client_->lease_ttl(kv->lease).ttl, 0) << "the shared lease stays";

  // Passing again: written back after exactly `rise` passes, on the same lease.
  const auto passing_from = Clock::now();
  http.set_answer(200, "UP");
  ASSERT_TRUE(watch.wait_for([&](const Events& e) { return shape(e, api.key()) == "PDP"; }, 3s));
  const auto back_at = *event_time(watch.events(), api.key(), 2);
  const size_t passes = served_between(http.served(), 200, passing_from, back_at);
  EXPECT_GE(passes, 2u);
  EXPECT_LE(passes, 5u);
  report("passing -> key back", ms_between(passing_from, back_at));
  const auto after = client_->get(api.key());
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->lease, kv->lease);
  EXPECT_EQ(after->value, kv->value);

  // Each transition logged once, with the last output.
  ASSERT_TRUE(agent.wait_for_output("is now passing after 2 pass(es): HTTP 200: UP", 2s));
  const std::string log = agent.output();
  EXPECT_EQ(count_of(log, "is now critical after 3 failure(s): HTTP 503: down"), 1u) << log;
  EXPECT_EQ(count_of(log, "is now passing"), 2u) << log;
  EXPECT_EQ(shape(watch.events(), api.key()), "PDP");
}

TEST_F(HealthChecks, HttpCheckSendsHeadersAndRequiresTheExpectedBody) {
  FlipHttpServer http;
  ASSERT_TRUE(http.ok());
  http.set_answer(200, "status: DOWN");
  const Svc api{"api", "api-1",
                "      - http: " + http.url("/health?deep=1") + "\n        expect_body: UP\n"
                "        headers: {X-Probe: sidecar}\n        interval: 100ms\n        timeout: 80ms\n"
                "        rise: 1\n        fall: 1\n"};
  AgentProcess& agent = start_agent({api});
  ASSERT_TRUE(http.wait_for_served(4, kRegisterTimeout));
  EXPECT_FALSE(client_->get(api.key()).has_value()) << "a 200 without the expected body must not pass";
  const auto served = http.served();
  EXPECT_NE(served.front().request.find("GET /health?deep=1 HTTP/1.1"), std::string::npos) << served.front().request;
  EXPECT_NE(served.front().request.find("X-Probe: sidecar"), std::string::npos) << served.front().request;

  http.set_answer(200, "status: UP");
  ASSERT_TRUE(wait_present(api.key()).has_value());
  EXPECT_TRUE(agent.wait_for_output("is now passing after 1 pass(es): HTTP 200: status: UP", 2s));
}

TEST_F(HealthChecks, HangingHttpServerCountsAsAFailureAtTheTimeout) {
  FlipHttpServer http;
  ASSERT_TRUE(http.ok());
  http.set_hang(true);
  const Svc api{"api", "api-1",
                "      - http: " + http.url() + "\n        interval: 500ms\n        timeout: 200ms\n"
                "        fall: 1\n",
                "passing"};
  AgentProcess& agent = start_agent({api});
  ASSERT_TRUE(agent.wait_for_output("is now critical after 1 failure(s): timed out after 200 ms", kRegisterTimeout));
  EXPECT_FALSE(client_->get(api.key()).has_value());
}

// ------------------------------------------------------------------------------------------------ exec

TEST_F(HealthChecks, HangingExecCheckIsKilledWithItsChildrenAtItsTimeout) {
  TempDir dir("sidecar-exec");
  const std::string child_file = (dir / "child").string();
  // The shell starts a grandchild and waits: killing only the shell would leave `sleep` behind.
  const Svc api{"api", "api-1",
                "      - exec: [\"/bin/sh\", \"-c\", \"sleep 30 & echo $! > " + child_file + "; wait\"]\n"
                "        interval: 5s\n        timeout: 300ms\n        fall: 1\n",
                "passing"};
  WatchRecorder watch(etcd_->endpoint(), api.key());
  ASSERT_TRUE(watch.created());
  AgentProcess& agent = start_agent({api});
  ASSERT_TRUE(watch.wait_for([&](const Events& e) { return shape(e, api.key()) == "P"; }, kRegisterTimeout))
      << "initial_status: passing registers before the first result";

  std::optional<std::string> pid_text;
  ASSERT_TRUE(wait_until([&] { return (pid_text = read_file(child_file)).has_value() && !pid_text->empty(); }, 5s));
  const auto seen_at = Clock::now();
  const pid_t grandchild = std::stoi(*pid_text);
  ASSERT_GT(grandchild, 0);

  ASSERT_TRUE(watch.wait_for([&](const Events& e) { return shape(e, api.key()) == "PD"; }, 3s));
  const long long took = ms_between(seen_at, *event_time(watch.events(), api.key(), 1));
  report("exec check started -> killed and key deleted", took);
  EXPECT_LT(took, 300 + 700) << "timeout is 300 ms";
  EXPECT_TRUE(wait_until([&] { return process_gone(grandchild); }, 1s)) << "the process group was not killed";
  EXPECT_TRUE(agent.wait_for_output("is now critical after 1 failure(s): timed out after", 2s));
  EXPECT_TRUE(agent.is_running());
}

TEST_F(HealthChecks, FailingExecCheckLogsItsOutputOnceAndRecovers) {
  TempDir dir("sidecar-exec");
  const std::string flag = (dir / "healthy").string();
  const Svc api{"api", "api-1",
                "      - exec: [\"/bin/sh\", \"-c\", \"test -e " + flag + " || { echo db unreachable; exit 3; }\"]\n"
                "        interval: 100ms\n        timeout: 90ms\n        rise: 1\n        fall: 1\n"};
  AgentProcess& agent = start_agent({api});
  ASSERT_TRUE(agent.wait_for_output("lease", kRegisterTimeout));
  ASSERT_TRUE(write_file(flag, ""));
  ASSERT_TRUE(wait_present(api.key()).has_value());
  std::filesystem::remove(flag);
  ASSERT_TRUE(wait_absent(api.key()));
  EXPECT_TRUE(agent.wait_for_output("is now critical after 1 failure(s): exit 3: db unreachable", 2s));
  EXPECT_EQ(count_of(agent.output(), "is now critical"), 1u);
}

// ------------------------------------------------------------------------------------------------ isolation

TEST_F(HealthChecks, FailingCheckRemovesOnlyItsOwnServiceKey) {
  TcpListener tcp;
  ASSERT_TRUE(tcp.is_open());
  const Svc db{"db", "db-1",
               "      - tcp: 127.0.0.1:" + std::to_string(tcp.port()) + "\n        interval: 100ms\n"
               "        timeout: 80ms\n        rise: 1\n        fall: 2\n"};
  const Svc web{"web", "web-1", ""};
  const Svc api{"api", "api-1", "      - exec: [\"/bin/true\"]\n        interval: 100ms\n        rise: 1\n"};
  start_agent({db, web, api});
  const auto db_kv = wait_present(db.key());
  const auto web_kv = wait_present(web.key());
  const auto api_kv = wait_present(api.key());
  ASSERT_TRUE(db_kv && web_kv && api_kv);
  EXPECT_EQ(db_kv->lease, web_kv->lease);

  WatchRecorder watch(etcd_->endpoint(), "/services/", WatchRecorder::Scope::kPrefix);
  ASSERT_TRUE(watch.created());
  const auto closed_at = Clock::now();
  tcp.close();
  ASSERT_TRUE(watch.wait_for([&](const Events& e) { return shape(e, db.key()) == "D"; }, 3s));
  report("tcp listener closed -> key deleted", ms_between(closed_at, *event_time(watch.events(), db.key(), 0)));
  ASSERT_TRUE(tcp.open());
  ASSERT_TRUE(watch.wait_for([&](const Events& e) { return shape(e, db.key()) == "DP"; }, 3s));

  // Nothing else moved: the other keys were never written, and the lease is the same.
  const Events events = watch.events();
  EXPECT_EQ(shape(events, web.key()), "");
  EXPECT_EQ(shape(events, api.key()), "");
  EXPECT_EQ(client_->get(web.key())->mod_revision, web_kv->mod_revision);
  EXPECT_EQ(client_->get(api.key())->mod_revision, api_kv->mod_revision);
  EXPECT_EQ(client_->get(db.key())->lease, db_kv->lease);
}

TEST_F(HealthChecks, WithdrawalThatCannotReachEtcdGoesThroughWhenItIsBack) {
  TcpListener tcp;
  ASSERT_TRUE(tcp.is_open());
  const Svc db{"db", "db-1",
               "      - tcp: 127.0.0.1:" + std::to_string(tcp.port()) + "\n        interval: 100ms\n"
               "        timeout: 80ms\n        rise: 1\n        fall: 1\n"};
  AgentProcess& agent = start_agent({db}, "");
  const auto kv = wait_present(db.key());
  ASSERT_TRUE(kv.has_value());

  ASSERT_TRUE(etcd_->sigstop());
  tcp.close();
  // The check falls while etcd cannot answer: the delete times out and is retried with backoff.
  const bool retried = agent.wait_for_output("cannot delete withdrawn " + db.key(), 5s);
  ASSERT_TRUE(etcd_->sigcont());
  ASSERT_TRUE(retried);
  const auto thawed_at = Clock::now();
  ASSERT_TRUE(wait_absent(db.key()));
  report("etcd back -> withdrawn key deleted", ms_between(thawed_at, Clock::now()));
  EXPECT_GT(client_->lease_ttl(kv->lease).ttl, 0) << "the lease survived the freeze";
}

TEST_F(HealthChecks, WithdrawnKeyWrittenByAnotherClientIsLeftAlone) {
  const Svc web{"web", "web-1", ""};
  const Svc sick{"sick", "sick-1", "      - exec: [\"/bin/false\"]\n        interval: 100ms\n"};
  AgentProcess& agent = start_agent({web, sick});
  const auto web_kv = wait_present(web.key());
  ASSERT_TRUE(web_kv.has_value());

  // Someone writes the withdrawn key by hand: neither restored (it is withdrawn) nor deleted (not ours).
  const std::int64_t manual_revision = client_->put(sick.key(), "manual");
  ASSERT_GT(manual_revision, 0);
  // The own-key watch delivers events in revision order: once the agent has put back web's key, deleted
  // after the manual write, it has seen the manual write too.
  ASSERT_EQ(client_->del(web.key()), 1);
  ASSERT_TRUE(wait_present(web.key()).has_value());
  const auto manual = client_->get(sick.key());
  ASSERT_TRUE(manual.has_value());
  EXPECT_EQ(manual->value, "manual");
  EXPECT_EQ(manual->lease, 0);
  EXPECT_EQ(manual->mod_revision, manual_revision);
  EXPECT_EQ(agent.output().find("withdrew " + sick.key()), std::string::npos);
}

TEST_F(HealthChecks, SuccessorThatAdoptsTheLeaseWithdrawsTheKeyOfAServiceStillCritical) {
  TempDir dir("sidecar-adopt");
  const std::string flag = (dir / "healthy").string();
  const Svc api{"api", "api-1",
                "      - exec: [\"/bin/test\", \"-e\", \"" + flag + "\"]\n        interval: 100ms\n"
                "        rise: 1\n        fall: 1\n"};
  const std::string yaml = manifest({api});
  ASSERT_TRUE(write_file(flag, ""));
  auto first = AgentProcess::start_in(dir.path(), yaml, {}, "agent");
  ASSERT_TRUE(first);
  const auto kv = wait_present(api.key());
  ASSERT_TRUE(kv.has_value());
  ASSERT_TRUE(wait_until([&] { return std::filesystem::exists(dir / "state"); }, 5s));
  // Handover: the lease and the key stay for the successor...
  ASSERT_TRUE(first->process().signal(SIGQUIT));
  ASSERT_TRUE(first->process().wait_exit(3s).has_value());
  ASSERT_TRUE(client_->get(api.key()).has_value());

  // ...which starts while the service is down: critical until it passes, so the adopted key goes.
  std::filesystem::remove(flag);
  auto second = AgentProcess::start_in(dir.path(), yaml, {}, "agent");
  ASSERT_TRUE(second);
  ASSERT_TRUE(wait_until([&] { return second->count_in_output("adopted from the previous process") == 1; }, 5s))
      << second->output();
  ASSERT_TRUE(wait_absent(api.key())) << second->output();
  EXPECT_GT(client_->lease_ttl(kv->lease).ttl, 0) << "the adopted lease is kept";

  ASSERT_TRUE(write_file(flag, ""));
  const auto back = wait_present(api.key());
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->lease, kv->lease);
  EXPECT_EQ(second->terminate(), 0);
}

// ------------------------------------------------------------------------------------------------ initial_status

TEST_F(HealthChecks, InitialStatusCriticalWaitsForChecksAndPassingRegistersAtOnce) {
  FlipHttpServer http;
  ASSERT_TRUE(http.ok());
  http.set_answer(503, "starting");
  const std::string check = "      - http: " + http.url() +
                            "\n        interval: 100ms\n        timeout: 80ms\n        rise: 1\n        fall: 2\n";
  const Svc optimistic{"opt", "opt-1", check, "passing"};
  const Svc cautious{"cau", "cau-1", check, "critical"};
  WatchRecorder watch(etcd_->endpoint(), "/services/", WatchRecorder::Scope::kPrefix);
  ASSERT_TRUE(watch.created());
  start_agent({optimistic, cautious});

  // passing: registered before any result, withdrawn after `fall` failures.
  ASSERT_TRUE(watch.wait_for([&](const Events& e) { return shape(e, optimistic.key()) == "PD"; }, kRegisterTimeout));
  // critical: never registered while failing.
  const size_t served = http.served_count();
  ASSERT_TRUE(http.wait_for_served(served + 6, 3s));
  EXPECT_EQ(shape(watch.events(), cautious.key()), "");

  http.set_answer(200, "ready");
  ASSERT_TRUE(watch.wait_for(
      [&](const Events& e) { return shape(e, cautious.key()) == "P" && shape(e, optimistic.key()) == "PDP"; }, 3s));
}

// ------------------------------------------------------------------------------------------------ gRPC

TEST_F(HealthChecks, GrpcHealthServiceGatesTheKey) {
  GrpcHealthServer grpc;
  ASSERT_TRUE(grpc.ok());
  grpc.set_status("", GrpcHealthServer::Status::kServing);
  grpc.set_status("api.v1.Api", GrpcHealthServer::Status::kNotServing);
  const Svc api{"api", "api-1",
                "      - grpc: 127.0.0.1:" + std::to_string(grpc.port()) + "\n        service: api.v1.Api\n"
                "        interval: 100ms\n        timeout: 90ms\n        rise: 1\n        fall: 1\n"};
  const Svc whole{"srv", "srv-1",
                  "      - grpc: 127.0.0.1:" + std::to_string(grpc.port()) + "\n        interval: 100ms\n"
                  "        timeout: 90ms\n        rise: 1\n        fall: 1\n"};
  AgentProcess& agent = start_agent({api, whole});
  ASSERT_TRUE(wait_present(whole.key()).has_value()) << "the server as a whole is SERVING";
  ASSERT_TRUE(wait_until([&] { return grpc.checks() >= 6; }, 3s));
  EXPECT_FALSE(client_->get(api.key()).has_value()) << "api.v1.Api is NOT_SERVING";

  grpc.set_status("api.v1.Api", GrpcHealthServer::Status::kServing);
  ASSERT_TRUE(wait_present(api.key()).has_value());
  grpc.set_status("api.v1.Api", GrpcHealthServer::Status::kNotServing);
  ASSERT_TRUE(wait_absent(api.key(), 3s));
  EXPECT_TRUE(agent.wait_for_output("is now critical after 1 failure(s): api.v1.Api: NOT_SERVING", 2s));
  EXPECT_TRUE(client_->get(whole.key()).has_value());
}

TEST_F(HealthChecks, GrpcCheckAgainstNoServerFails) {
  const std::uint16_t port = free_port();
  const Svc api{"api", "api-1",
                "      - grpc: 127.0.0.1:" + std::to_string(port) + "\n        interval: 200ms\n"
                "        timeout: 150ms\n        fall: 1\n",
                "passing"};
  AgentProcess& agent = start_agent({api});
  ASSERT_TRUE(agent.wait_for_output("is now critical after 1 failure(s): ", kRegisterTimeout));
  EXPECT_TRUE(wait_absent(api.key()));
}

// ------------------------------------------------------------------------------------------------ drain

TEST_F(HealthChecks, Sigusr1DrainsAndSigusr2UndrainsOnlyTheHealthyKeys) {
  FlipHttpServer http;
  ASSERT_TRUE(http.ok());
  const Svc web{"web", "web-1", ""};
  const Svc api{"api", "api-1",
                "      - http: " + http.url() + "\n        interval: 100ms\n        timeout: 80ms\n        rise: 1\n"};
  const Svc sick{"sick", "sick-1", "      - exec: [\"/bin/false\"]\n        interval: 100ms\n        rise: 1\n"};
  AgentProcess& agent = start_agent({web, api, sick});
  const auto web_kv = wait_present(web.key());
  ASSERT_TRUE(web_kv && wait_present(api.key()));

  WatchRecorder watch(etcd_->endpoint(), "/services/", WatchRecorder::Scope::kPrefix);
  ASSERT_TRUE(watch.created());
  const auto drained_at = Clock::now();
  ASSERT_TRUE(agent.signal(SIGUSR1));
  ASSERT_TRUE(watch.wait_for([&](const Events& e) { return shape(e, web.key()) == "D" && shape(e, api.key()) == "D"; },
                             3s));
  report("SIGUSR1 -> keys deleted", ms_between(drained_at, watch.events().back().received_at));
  EXPECT_TRUE(agent.wait_for_output("SIGUSR1: draining", 2s));
  EXPECT_GT(client_->lease_ttl(web_kv->lease).ttl, 0) << "drain keeps the lease";
  EXPECT_TRUE(agent.is_running());

  // Checks keep running while drained, but a passing one does not bring its key back.
  const size_t served = http.served_count();
  ASSERT_TRUE(http.wait_for_served(served + 3, 2s));
  EXPECT_EQ(shape(watch.events(), api.key()), "D");
  EXPECT_EQ(client_->get_prefix("/services/").size(), 0u);

  ASSERT_TRUE(agent.signal(SIGUSR2));
  ASSERT_TRUE(watch.wait_for(
      [&](const Events& e) { return shape(e, web.key()) == "DP" && shape(e, api.key()) == "DP"; }, 3s));
  EXPECT_TRUE(agent.wait_for_output("SIGUSR2: undraining", 2s));
  EXPECT_EQ(client_->get(web.key())->lease, web_kv->lease);
  EXPECT_FALSE(client_->get(sick.key()).has_value()) << "undrain publishes healthy services only";
}

TEST_F(HealthChecks, SigtermWithDrainDelayDeletesKeysBeforeTheDelayThenRevokes) {
  const Svc web{"web", "web-1", ""};
  const Svc api{"api", "api-1", ""};
  AgentProcess& agent = start_agent({web, api}, "shutdown:\n  drain_delay: 1500ms\n");
  const auto kv = wait_present(web.key());
  ASSERT_TRUE(kv && wait_present(api.key()));

  const auto signalled_at = Clock::now();
  ASSERT_TRUE(agent.signal(SIGTERM));
  ASSERT_TRUE(wait_absent(web.key(), 2s) && wait_absent(api.key(), 2s));
  const auto gone_at = Clock::now();
  EXPECT_TRUE(agent.is_running()) << "the keys go first; the agent waits out the delay";
  EXPECT_GT(client_->lease_ttl(kv->lease).ttl, 0) << "the lease lives through the delay";
  report("SIGTERM -> keys deleted", ms_between(signalled_at, gone_at));

  const auto code = agent.wait_exit(4s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0);
  const long long exit_ms = ms_between(signalled_at, Clock::now());
  report("SIGTERM with drain_delay 1500ms -> exit", exit_ms);
  EXPECT_GE(exit_ms, 1500);
  EXPECT_LT(exit_ms, 1500 + 1500);
  EXPECT_EQ(client_->lease_ttl(kv->lease).ttl, -1) << "revoked after the delay";
  EXPECT_NE(agent.output().find("waiting drain_delay 1500 ms"), std::string::npos);
}

TEST_F(HealthChecks, SecondSigtermDuringTheDrainDelayExitsAtOnce) {
  const Svc web{"web", "web-1", ""};
  AgentProcess& agent = start_agent({web}, "shutdown:\n  drain_delay: 30s\n");
  ASSERT_TRUE(wait_present(web.key()).has_value());
  ASSERT_TRUE(agent.signal(SIGTERM));
  ASSERT_TRUE(agent.wait_for_output("waiting drain_delay", 3s));
  EXPECT_FALSE(client_->get(web.key()).has_value());
  const auto second_at = Clock::now();
  ASSERT_TRUE(agent.signal(SIGTERM));
  const auto code = agent.wait_exit(2s);
  ASSERT_TRUE(code.has_value()) << "still waiting out the 30 s delay";
  report("second SIGTERM during drain_delay -> exit", ms_between(second_at, Clock::now()));
}

}  // namespace
}  // namespace sidecar::test
