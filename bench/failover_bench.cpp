// Cluster failover: the agent on a real 3-member etcd cluster with the default 10 s lease. Two faults, each
// repeated: the member the agent talks to is frozen (SIGSTOP, a hung machine), and the leader it talks to
// is killed (kill -9). Measured: how long until the agent's keepalive stream is back on another member,
// and the lowest lease TTL left meanwhile (seen from a healthy member); the key must never change.
#include <algorithm>
#include <string>
#include <thread>

#include "bench/scenario.hpp"
#include "bench/stats.hpp"
#include "tests/support/etcd_client.hpp"
#include "tests/support/etcd_process.hpp"
#include "tests/support/wait.hpp"

namespace sidecar::bench {
namespace {

constexpr const char* kKey = "/services/failover/agent-1";
constexpr const char* kBackMarker = "lease keepalive stream to ";

std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// "lease keepalive stream to X is back" lines so far.
std::size_t back_lines(Agent& agent) {
  const std::string log = agent.process().output();
  std::size_t n = 0;
  for (auto at = log.find(kBackMarker); at != std::string::npos; at = log.find(kBackMarker, at + 1)) {
    const auto eol = log.find('\n', at);
    if (log.substr(at, eol - at).find(" is back") != std::string::npos) ++n;
  }
  return n;
}

std::string manifest(test::EtcdCluster& cluster, std::size_t first) {
  std::string endpoints = "\"" + cluster.member(first).client_url() + "\"";
  for (std::size_t i = 0; i < cluster.size(); ++i) {
    if (i != first) endpoints += ", \"" + cluster.member(i).client_url() + "\"";
  }
  return "etcd:\n  endpoints: [" + endpoints + "]\nservices:\n  - {name: failover, id: agent-1, port: 8080}\n";
}

struct Run {
  double moved_ms = 0;
  long min_ttl = 0;
  bool key_untouched = true;
};

// One fault on member `victim`, which is also the agent's first endpoint. `fault` applies it, `heal` undoes it.
Run run_once(BenchContext& ctx, test::EtcdCluster& cluster, std::size_t victim, const std::string& name,
             const std::function<void()>& fault, const std::function<void()>& heal) {
  const std::size_t witness = (victim + 1) % cluster.size();
  Agent agent = Agent::start(ctx, name, manifest(cluster, victim));
  test::EtcdSyncClient check(cluster.member(witness).endpoint(), 2s);
  if (!test::wait_until([&] { return check.get(kKey).has_value(); }, 10s)) {
    throw SectionFailed("the agent did not register on the cluster; log:\n" + agent.log_tail());
  }
  const auto lease = check.get(kKey)->lease;
  test::WatchRecorder own_key(cluster.member(witness).endpoint(), kKey);
  // Wait for a keepalive answered after the stream settled, so every run starts from a fresh TTL.
  std::this_thread::sleep_for(500ms);
  const std::size_t before = back_lines(agent);
  const auto t0 = Clock::now();
  fault();
  Run run;
  run.min_ttl = 10;
  const bool moved = test::wait_until(
      [&] {
        const auto t = check.lease_ttl(lease).ttl;
        if (t >= 0) run.min_ttl = std::min<long>(run.min_ttl, t);
        if (back_lines(agent) > before) {
          run.moved_ms = to_ms(Clock::now() - t0);
          return true;
        }
        return false;
      },
      12s, 10ms);
  heal();
  if (!moved) throw SectionFailed(name + ": the keepalive stream never moved; log:\n" + agent.log_tail());
  run.key_untouched = own_key.events().empty() && check.get(kKey) && check.get(kKey)->lease == lease &&
                      count_of(agent.process().output(), " granted, ttl") == 1;
  agent.stop();
  if (!cluster.wait_for_leader(20s)) throw SectionFailed("the cluster did not recover a leader");
  return run;
}

void report(BenchContext& ctx, const std::string& what, const std::vector<Run>& runs) {
  std::vector<double> moved;
  long min_ttl = 10;
  bool untouched = true;
  for (const auto& r : runs) {
    moved.push_back(r.moved_ms);
    min_ttl = std::min(min_ttl, r.min_ttl);
    untouched = untouched && r.key_untouched;
  }
  const Summary s = summarize(moved);
  ctx.report.add_check("failover", what + ": keepalive back on another member",
                       "median " + format_ms(s.p50) + ", max " + format_ms(s.max) + " (n=" + std::to_string(runs.size()) +
                           ")",
                       "< 10 s lease TTL", s.max < 10000);
  ctx.report.add_check("failover", what + ": lowest lease TTL left, key untouched",
                       std::to_string(min_ttl) + " s of 10; key " + (untouched ? "never changed" : "CHANGED"),
                       ">= 1 s; no event", min_ttl >= 1 && untouched);
}

}  // namespace

void run_failover(BenchContext& ctx) {
  auto cluster = test::EtcdCluster::start(3);
  if (!cluster) throw SectionFailed("the 3-member cluster did not start");
  const int repeats = ctx.options.quick ? 1 : 3;

  std::vector<Run> stops;
  for (int i = 0; i < repeats; ++i) {
    const std::size_t leader = cluster->wait_for_leader(20s).value_or(0);
    const std::size_t follower = (leader + 1) % cluster->size();
    stops.push_back(run_once(
        ctx, *cluster, follower, "failover-stop-" + std::to_string(i),
        [&] { cluster->member(follower).sigstop(); }, [&] { cluster->member(follower).sigcont(); }));
  }
  report(ctx, "member the agent uses SIGSTOPped", stops);

  std::vector<Run> kills;
  for (int i = 0; i < repeats; ++i) {
    const std::size_t leader = cluster->wait_for_leader(20s).value_or(0);
    kills.push_back(run_once(
        ctx, *cluster, leader, "failover-kill-" + std::to_string(i), [&] { cluster->kill_member(leader); },
        [&] {
          if (!cluster->restart_member(leader)) throw SectionFailed("the killed leader did not restart");
        }));
  }
  report(ctx, "leader the agent uses killed", kills);
  ctx.report.note("failover: keepalive every TTL/3 = 3.3 s; an unanswered keepalive is given max(request_timeout, "
                  "1.5 s) before the agent moves, so the worst case is about 4.8 s of the 10 s lease");
}

}  // namespace sidecar::bench
