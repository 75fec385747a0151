// Black-box tests of the agent's registration half: a real etcd-sidecar process against a real etcd,
// observed only through etcd (reads, watches, lease queries), the agent's exit code and its log.
// Timings are asserted with CI slack and printed as "[ measured ]" lines so regressions show in logs.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/support/agent_fixture.hpp"
#include "tests/support/agent_process.hpp"
#include "tests/support/etcd_client.hpp"
#include "tests/support/etcd_process.hpp"
#include "tests/support/process.hpp"
#include "tests/support/wait.hpp"

namespace sidecar::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Events = std::vector<WatchEvent>;

constexpr auto kRegisterTimeout = 5s;  // agent start + first lease + first Txn, on a loaded CI machine

long long ms_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(to - from).count();
}

void report(const char* what, long long ms) {
  std::printf("[ measured ] %s: %lld ms\n", what, ms);
  std::fflush(stdout);
}

// The value the agent stores with the default value_format: compact JSON in this member order, metadata
// sorted by key. Built independently of the agent's encoder so a change there is caught.
std::string sidecar_json(const ServiceDef& s) {
  nlohmann::json metadata = nlohmann::json::object();  // std::map-backed: sorted by key
  for (const auto& [key, value] : s.metadata) metadata[key] = value;
  nlohmann::ordered_json out;
  out["name"] = s.name;
  out["id"] = s.id;
  out["address"] = s.address;
  out["port"] = s.port;
  out["metadata"] = metadata;
  return out.dump();
}

bool is_delete(const WatchEvent& e) { return e.type == WatchEvent::Type::kDelete; }
bool is_put(const WatchEvent& e) { return e.type == WatchEvent::Type::kPut; }

// Index of the first event of `key` at or after `from` matching `pred`; nullopt if none.
std::optional<std::size_t> find_event(const Events& events, const std::string& key, std::size_t from,
                                      bool (*pred)(const WatchEvent&)) {
  for (std::size_t i = from; i < events.size(); ++i) {
    if (events[i].key == key && pred(events[i])) return i;
  }
  return std::nullopt;
}

// The PUT that follows the first DELETE of `key`: the agent putting the key back.
std::optional<std::size_t> put_after_delete(const Events& events, const std::string& key) {
  const auto del = find_event(events, key, 0, is_delete);
  if (!del) return std::nullopt;
  return find_event(events, key, *del + 1, is_put);
}

class Registration : public EtcdAgentFixture {
 protected:
  void dump_logs() const override {
    for (std::size_t i = 0; i < agents_.size(); ++i) dump_agent_log(*agents_[i], "agent " + std::to_string(i));
    dump_etcd_log_tail();
  }

  // Starts an agent registering `services`; its log is printed if the test fails.
  AgentProcess& start_agent(const std::vector<ServiceDef>& services, std::string_view ttl = "") {
    auto agent = AgentProcess::start(registration_manifest(etcd_->client_url(), services, ttl));
    // Thrown, not asserted: gtest fails just this test with the message, and nothing below can run anyway.
    if (!agent) throw std::runtime_error(std::string("cannot start ") + SIDECAR_BINARY);
    agents_.push_back(std::move(agent));
    return *agents_.back();
  }

  // Polls etcd until `key` exists and satisfies `pred`; the last value read, or nullopt on timeout.
  std::optional<Kv> wait_for_key(const std::string& key, const std::function<bool(const Kv&)>& pred,
                                 std::chrono::milliseconds timeout = kRegisterTimeout) {
    std::optional<Kv> kv;
    if (wait_until([&] { return (kv = client_->get(key)).has_value() && pred(*kv); }, timeout)) return kv;
    return std::nullopt;
  }
  // The key as the agent first registers it: present, on a lease.
  std::optional<Kv> wait_registered(const std::string& key) {
    return wait_for_key(key, [](const Kv& kv) { return kv.lease != 0; });
  }

  std::vector<std::unique_ptr<AgentProcess>> agents_;
};

const ServiceDef kUser{.name = "user-service",
                       .id = "host-a-8080",
                       .address = "10.0.0.7",
                       .port = 8080,
                       .metadata = {{"zone", "a"}, {"version", "1.2.0"}}};
const ServiceDef kOrder{.name = "order-service", .id = "host-a-9090", .address = "10.0.0.7", .port = 9090};

// ------------------------------------------------------------------------------------------------ steady state

TEST_F(Registration, KeyAppearsWithLeaseGrantedTtl10AndExactJsonValue) {
  AgentProcess& agent = start_agent({kUser});  // no lease section: the default TTL applies
  const auto kv = wait_registered("/services/user-service/host-a-8080");
  ASSERT_TRUE(kv.has_value()) << client_->last_error();

  EXPECT_EQ(kv->value,
            R"({"name":"user-service","id":"host-a-8080","address":"10.0.0.7","port":8080,)"
            R"("metadata":{"version":"1.2.0","zone":"a"}})");
  const LeaseTtl ttl = client_->lease_ttl(kv->lease);
  EXPECT_EQ(ttl.granted_ttl, 10);
  EXPECT_GT(ttl.ttl, 0);
  EXPECT_LE(ttl.ttl, 10);
  EXPECT_TRUE(agent.wait_for_output("registered /services/user-service/host-a-8080 lease " + lease_hex(kv->lease),
                                    2s));
  EXPECT_TRUE(agent.is_running());
}

TEST_F(Registration, TwoServicesShareOneLease) {
  start_agent({kUser, kOrder});
  const auto user = wait_registered(service_key(kUser));
  const auto order = wait_registered(service_key(kOrder));
  ASSERT_TRUE(user.has_value());
  ASSERT_TRUE(order.has_value());

  EXPECT_EQ(user->lease, order->lease) << "one lease per agent, shared by all its services";
  EXPECT_EQ(user->value, sidecar_json(kUser));
  EXPECT_EQ(order->value, sidecar_json(kOrder));
  EXPECT_EQ(client_->get_prefix("/services/").size(), 2u);
  EXPECT_EQ(client_->lease_ttl(user->lease).granted_ttl, 10);
}

TEST_F(Registration, KeepaliveHoldsShortLeaseAcrossSeveralTtls) {
  start_agent({kUser}, "2s");
  const auto kv = wait_registered(service_key(kUser));
  ASSERT_TRUE(kv.has_value());
  ASSERT_EQ(client_->lease_ttl(kv->lease).granted_ttl, 2);

  // 2.5 TTLs without keepalives would have expired the lease and deleted the key: nothing may happen.
  WatchRecorder watch(etcd_->endpoint(), service_key(kUser));
  ASSERT_TRUE(watch.created());
  EXPECT_FALSE(watch.wait_for([](const Events& e) { return !e.empty(); }, 5s))
      << "the key changed while the agent was healthy";
  const auto after = client_->get(service_key(kUser));
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->lease, kv->lease);
  EXPECT_EQ(after->mod_revision, kv->mod_revision);
  EXPECT_GT(client_->lease_ttl(kv->lease).ttl, 0);
}

// ------------------------------------------------------------------------------------------------ interference

TEST_F(Registration, LeaseRevokedByAnotherClientIsReplacedAndKeysComeBackWithinOneSecond) {
  AgentProcess& agent = start_agent({kUser, kOrder});
  const auto user = wait_registered(service_key(kUser));
  ASSERT_TRUE(user.has_value());
  ASSERT_TRUE(wait_registered(service_key(kOrder)).has_value());
  const std::int64_t old_lease = user->lease;

  WatchRecorder watch(etcd_->endpoint(), "/services/", WatchRecorder::Scope::kPrefix);
  ASSERT_TRUE(watch.created());
  const auto revoked_at = Clock::now();
  ASSERT_TRUE(client_->lease_revoke(old_lease)) << client_->last_error();

  const std::vector<std::string> keys = {service_key(kUser), service_key(kOrder)};
  ASSERT_TRUE(watch.wait_for(
      [&](const Events& e) {
        for (const auto& key : keys) {
          if (!put_after_delete(e, key)) return false;
        }
        return true;
      },
      5s))
      << "both keys must be deleted by the revoke and put back by the agent";
  const Events events = watch.events();
  Clock::time_point back_at = revoked_at;
  for (const auto& key : keys) back_at = std::max(back_at, events[*put_after_delete(events, key)].received_at);
  const long long took = ms_between(revoked_at, back_at);
  report("lease revoked -> both keys back", took);
  EXPECT_LT(took, 1000) << "target is ~100 ms";

  const auto user_after = client_->get(service_key(kUser));
  const auto order_after = client_->get(service_key(kOrder));
  ASSERT_TRUE(user_after.has_value());
  ASSERT_TRUE(order_after.has_value());
  EXPECT_NE(user_after->lease, old_lease);
  EXPECT_NE(user_after->lease, 0);
  EXPECT_EQ(order_after->lease, user_after->lease) << "the new lease is shared again";
  EXPECT_EQ(user_after->value, sidecar_json(kUser));
  EXPECT_EQ(client_->lease_ttl(user_after->lease).granted_ttl, 10);
  EXPECT_TRUE(agent.wait_for_output("lease " + lease_hex(old_lease) + " lost", 2s));
}

TEST_F(Registration, KeyDeletedByAnotherClientComesBackOnTheSameLease) {
  AgentProcess& agent = start_agent({kUser});
  const auto kv = wait_registered(service_key(kUser));
  ASSERT_TRUE(kv.has_value());

  WatchRecorder watch(etcd_->endpoint(), service_key(kUser));
  ASSERT_TRUE(watch.created());
  ASSERT_EQ(client_->del(service_key(kUser)), 1) << client_->last_error();
  ASSERT_TRUE(watch.wait_for([&](const Events& e) { return put_after_delete(e, service_key(kUser)).has_value(); },
                             5s));
  const Events events = watch.events();
  const auto del = find_event(events, service_key(kUser), 0, is_delete);
  const auto put = put_after_delete(events, service_key(kUser));
  const long long gap = ms_between(events[*del].received_at, events[*put].received_at);
  report("key deleted -> key back", gap);
  EXPECT_LT(gap, 1000) << "target is ~100 ms";
  EXPECT_EQ(events[*put].value, kv->value);

  const auto after = client_->get(service_key(kUser));
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->lease, kv->lease) << "a deleted key needs no new lease";
  EXPECT_TRUE(agent.wait_for_output("restored " + service_key(kUser) + " lease " + lease_hex(kv->lease) +
                                        " (deleted by another client)",
                                    2s));
}

TEST_F(Registration, KeyOverwrittenWithoutLeaseIsRestoredWithAgentLeaseAndValue) {
  AgentProcess& agent = start_agent({kUser});
  const auto kv = wait_registered(service_key(kUser));
  ASSERT_TRUE(kv.has_value());

  const auto overwritten_at = Clock::now();
  ASSERT_GT(client_->put(service_key(kUser), "hijacked"), 0) << client_->last_error();
  const auto restored = wait_for_key(service_key(kUser), [&](const Kv& now) {
    return now.lease == kv->lease && now.value == kv->value;
  });
  ASSERT_TRUE(restored.has_value()) << "still " << (client_->get(service_key(kUser)) ? "overwritten" : "absent");
  report("key overwritten without lease -> restored", ms_between(overwritten_at, Clock::now()));
  EXPECT_GT(restored->mod_revision, kv->mod_revision);
  EXPECT_TRUE(agent.wait_for_output("(overwritten without a lease by another client)", 2s));
}

TEST_F(Registration, KeyOverwrittenOnAgentLeaseWithForeignValueIsRestored) {
  start_agent({kUser});
  const auto kv = wait_registered(service_key(kUser));
  ASSERT_TRUE(kv.has_value());

  ASSERT_GT(client_->put(service_key(kUser), R"({"name":"user-service","id":"spoofed"})", kv->lease), 0);
  const auto restored = wait_for_key(service_key(kUser), [&](const Kv& now) {
    return now.lease == kv->lease && now.value == kv->value;
  });
  EXPECT_TRUE(restored.has_value()) << "the agent's own lease does not make a foreign value right";
}

// ------------------------------------------------------------------------------------------------ etcd restarts

TEST_F(Registration, EtcdKill9AndRestartWithSameDataKeepsLeaseAndKeyUntouched) {
  AgentProcess& agent = start_agent({kUser});
  const auto kv = wait_registered(service_key(kUser));
  ASSERT_TRUE(kv.has_value());
  // The watch sees nothing before the kill; after the restart a second one resumes from the last revision
  // seen, so every change in between (including while etcd was down) would show up.
  WatchRecorder before(etcd_->endpoint(), service_key(kUser));
  ASSERT_TRUE(before.created());
  const std::int64_t last_revision = client_->revision();
  ASSERT_GT(last_revision, 0);

  etcd_->kill9();
  ASSERT_TRUE(wait_until([&] { return before.ended(); }, 5s));
  ASSERT_TRUE(etcd_->restart());
  const auto answering_at = Clock::now();
  const auto right_after = client_->get(service_key(kUser));
  ASSERT_TRUE(right_after.has_value()) << "key missing right after restart: " << client_->last_error();
  EXPECT_EQ(right_after->lease, kv->lease);

  WatchRecorder resumed(etcd_->endpoint(), service_key(kUser), WatchRecorder::Scope::kKey, last_revision + 1);
  ASSERT_TRUE(resumed.created());
  // Proof the agent kept the SAME lease alive on the restarted etcd: a keepalive answered on a new stream.
  const std::string stream = "lease keepalive stream to " + etcd_->endpoint();
  ASSERT_TRUE(agent.wait_for_output(stream + " ended", 3s)) << "the agent never noticed the kill";
  ASSERT_TRUE(agent.wait_for_output(stream + " is back", 5s));
  report("etcd answering -> agent keepalive stream back", ms_between(answering_at, Clock::now()));
  // A wrongly lost lease would show up here as a DELETE or a rewrite; give it time to happen.
  EXPECT_FALSE(resumed.wait_for([](const Events& e) { return !e.empty(); }, 1500ms))
      << "the key changed across the restart: " << resumed.events().size() << " event(s)";
  EXPECT_TRUE(before.events().empty());

  const auto after = client_->get(service_key(kUser));
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->lease, kv->lease) << "registration must continue on the same lease";
  EXPECT_EQ(after->mod_revision, kv->mod_revision) << "the key must not have been rewritten";
  EXPECT_GT(client_->lease_ttl(kv->lease).ttl, 0);
  EXPECT_FALSE(agent.output_contains(" lost:")) << "no lease may be lost";
  EXPECT_TRUE(agent.is_running());
}

TEST_F(Registration, EtcdRestartedWithWipedDataGetsKeysBackWithinThreeSeconds) {
  AgentProcess& agent = start_agent({kUser, kOrder});
  const auto kv = wait_registered(service_key(kUser));
  ASSERT_TRUE(kv.has_value());
  ASSERT_TRUE(wait_registered(service_key(kOrder)).has_value());

  ASSERT_TRUE(etcd_->restart_wiped());
  const auto answering_at = Clock::now();
  const auto user = wait_for_key(service_key(kUser), [](const Kv& k) { return k.lease != 0; }, 10s);
  ASSERT_TRUE(user.has_value()) << "key not back 10 s after etcd answered";
  const long long took = ms_between(answering_at, Clock::now());
  report("wiped etcd answering -> key back", took);
  EXPECT_LT(took, 3000) << "target is about a second";

  EXPECT_EQ(user->value, kv->value);
  EXPECT_EQ(client_->lease_ttl(user->lease).granted_ttl, 10);
  const auto order = wait_for_key(service_key(kOrder), [](const Kv& k) { return k.lease != 0; }, 2s);
  ASSERT_TRUE(order.has_value());
  EXPECT_EQ(order->lease, user->lease);
  EXPECT_TRUE(agent.is_running());
}

// ------------------------------------------------------------------------------------------------ shutdown

TEST_F(Registration, SigtermRevokesLeaseDeletesKeysAndExitsZero) {
  AgentProcess& agent = start_agent({kUser, kOrder});
  const auto kv = wait_registered(service_key(kUser));
  ASSERT_TRUE(kv.has_value());
  ASSERT_TRUE(wait_registered(service_key(kOrder)).has_value());

  WatchRecorder watch(etcd_->endpoint(), "/services/", WatchRecorder::Scope::kPrefix);
  ASSERT_TRUE(watch.created());
  const auto signalled_at = Clock::now();
  ASSERT_TRUE(agent.signal(SIGTERM));
  ASSERT_TRUE(watch.wait_for(
      [](const Events& e) { return std::count_if(e.begin(), e.end(), is_delete) == 2; }, 2s));
  report("SIGTERM -> keys gone", ms_between(signalled_at, watch.events().back().received_at));
  EXPECT_LT(ms_between(signalled_at, watch.events().back().received_at), 1000);

  EXPECT_EQ(agent.wait_exit(2s), 0);
  EXPECT_TRUE(client_->get_prefix("/services/").empty());
  EXPECT_EQ(client_->lease_ttl(kv->lease).ttl, -1) << "the lease itself must be revoked, not just the keys";
  EXPECT_TRUE(agent.output_contains("deregistered 2 key(s): revoked lease " + lease_hex(kv->lease)));
}

TEST_F(Registration, SigintDeregistersLikeSigterm) {
  AgentProcess& agent = start_agent({kUser});
  const auto kv = wait_registered(service_key(kUser));
  ASSERT_TRUE(kv.has_value());

  ASSERT_TRUE(agent.signal(SIGINT));
  EXPECT_EQ(agent.wait_exit(2s), 0);
  EXPECT_FALSE(client_->get(service_key(kUser)).has_value());
  EXPECT_EQ(client_->lease_ttl(kv->lease).ttl, -1);
}

TEST_F(Registration, SigtermWithEtcdStoppedExitsZeroWithinOneSecond) {
  AgentProcess& agent = start_agent({kUser});
  ASSERT_TRUE(wait_registered(service_key(kUser)).has_value());

  // SIGSTOP: connections stay open and every request hangs until its deadline, the hardest case.
  ASSERT_TRUE(etcd_->sigstop());
  const auto signalled_at = Clock::now();
  ASSERT_TRUE(agent.signal(SIGTERM));
  const auto code = agent.wait_exit(5s);
  const long long took = ms_between(signalled_at, Clock::now());
  report("SIGTERM with etcd SIGSTOPped -> exit", took);
  ASSERT_TRUE(code.has_value()) << "the agent hangs on a stopped etcd";
  EXPECT_EQ(*code, 0);
  EXPECT_LT(took, 1500) << "the promise is 1 s";
}

TEST_F(Registration, SigtermWithEtcdKilledExitsZeroWithinOneSecond) {
  AgentProcess& agent = start_agent({kUser});
  ASSERT_TRUE(wait_registered(service_key(kUser)).has_value());

  etcd_->kill9();
  const auto signalled_at = Clock::now();
  ASSERT_TRUE(agent.signal(SIGTERM));
  const auto code = agent.wait_exit(5s);
  const long long took = ms_between(signalled_at, Clock::now());
  report("SIGTERM with etcd killed -> exit", took);
  ASSERT_TRUE(code.has_value()) << "the agent hangs on a dead etcd";
  EXPECT_EQ(*code, 0);
  EXPECT_LT(took, 1500) << "the promise is 1 s";
}

TEST_F(Registration, SecondSignalExitsAtOnce) {
  AgentProcess& agent = start_agent({kUser});
  ASSERT_TRUE(wait_registered(service_key(kUser)).has_value());
  ASSERT_TRUE(etcd_->sigstop());  // so the first signal's revoke hangs for its whole budget

  ASSERT_TRUE(agent.signal(SIGTERM));
  // Two SIGTERMs sent back to back can merge in the kernel: wait until the first one was handled.
  ASSERT_TRUE(agent.wait_for_output("received: deregistering", 2s));
  const auto second_at = Clock::now();
  ASSERT_TRUE(agent.signal(SIGTERM));
  const auto code = agent.wait_exit(5s);
  const long long took = ms_between(second_at, Clock::now());
  report("second SIGTERM -> exit", took);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 1) << "exit code 1 (kExitFailure) marks a forced exit; 0 means the second signal was ignored";
  EXPECT_LT(took, 300) << "the first signal's revoke alone waits 600 ms";
  EXPECT_TRUE(agent.output_contains("second signal"));
}

// ------------------------------------------------------------------------------------------------ conflicts

TEST_F(Registration, SecondAgentWithSameIdDoesNotStealKeyAndTakesOverWhenFirstStops) {
  const ServiceDef first = kUser;
  ServiceDef second = kUser;
  second.address = "10.0.0.8";
  second.port = 8081;
  AgentProcess& agent_a = start_agent({first});
  const auto held = wait_registered(service_key(first));
  ASSERT_TRUE(held.has_value());
  ASSERT_EQ(held->value, sidecar_json(first));

  WatchRecorder watch(etcd_->endpoint(), service_key(first));
  ASSERT_TRUE(watch.created());
  AgentProcess& agent_b = start_agent({second});
  ASSERT_TRUE(agent_b.wait_for_output(
      "conflict: " + service_key(first) + " is held by lease " + lease_hex(held->lease), kRegisterTimeout));
  // Not stealing is an absence: watch for a while, through several of B's conflict retries (0.5 s, 1 s, ...).
  EXPECT_FALSE(watch.wait_for([](const Events& e) { return !e.empty(); }, 2500ms))
      << "the second agent touched a key held by another live lease";
  const auto still = client_->get(service_key(first));
  ASSERT_TRUE(still.has_value());
  EXPECT_EQ(still->lease, held->lease);
  EXPECT_EQ(still->value, sidecar_json(first));
  EXPECT_TRUE(agent_b.is_running());

  const auto stopped_at = Clock::now();
  ASSERT_TRUE(agent_a.signal(SIGTERM));
  EXPECT_EQ(agent_a.wait_exit(2s), 0);
  const auto taken = wait_for_key(service_key(first), [&](const Kv& kv) {
    return kv.lease != 0 && kv.lease != held->lease && kv.value == sidecar_json(second);
  });
  ASSERT_TRUE(taken.has_value()) << "the second agent did not take over";
  report("first agent SIGTERM -> second agent holds the key", ms_between(stopped_at, Clock::now()));
  EXPECT_LT(ms_between(stopped_at, Clock::now()), 3000);
  ASSERT_TRUE(agent_b.wait_for_output("conflict resolved", 2s));
  EXPECT_EQ(word_after(agent_b.output(), "conflict resolved: registered " + service_key(first) + " lease "),
            lease_hex(taken->lease));
}

TEST_F(Registration, AgentStoppedPastLeaseTtlReregistersWithNewLeaseAfterSigcont) {
  AgentProcess& agent = start_agent({kUser}, "2s");
  const auto kv = wait_registered(service_key(kUser));
  ASSERT_TRUE(kv.has_value());
  ASSERT_EQ(client_->lease_ttl(kv->lease).granted_ttl, 2);

  ASSERT_TRUE(agent.sigstop());
  ASSERT_TRUE(wait_until([&] { return client_->lease_ttl(kv->lease).ttl == -1; }, 6s))
      << "the lease of a frozen agent must expire on the server";
  EXPECT_FALSE(client_->get(service_key(kUser)).has_value());

  const auto resumed_at = Clock::now();
  ASSERT_TRUE(agent.sigcont());
  const auto back = wait_for_key(service_key(kUser), [&](const Kv& now) {
    return now.lease != 0 && now.lease != kv->lease;
  });
  ASSERT_TRUE(back.has_value()) << "no re-registration after SIGCONT";
  report("agent SIGCONT -> key back on a new lease", ms_between(resumed_at, Clock::now()));
  EXPECT_EQ(back->value, kv->value);
  EXPECT_EQ(client_->lease_ttl(back->lease).granted_ttl, 2);
  EXPECT_TRUE(agent.wait_for_output("lease " + lease_hex(kv->lease) + " lost", 2s));
}

}  // namespace
}  // namespace sidecar::test
