// Registration at scale against an etcd with default flags (--max-txn-ops 128): more own keys than one Txn
// may carry must still be read, watched and restored. Timings are printed as "[ measured ]" lines and
// recorded as test properties (in the XML report) so the figures can be quoted.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/agent_process.hpp"
#include "tests/support/etcd_client.hpp"
#include "tests/support/etcd_process.hpp"
#include "tests/support/wait.hpp"

namespace sidecar::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Events = std::vector<WatchEvent>;

constexpr int kDefaultServices = 300;  // > 2 x 128: the read needs three Txns at one revision

// SIDECAR_SCALE_SERVICES=10000 runs the same scenario by hand at a larger scale.
int service_count() {
  const char* env = std::getenv("SIDECAR_SCALE_SERVICES");
  const int n = env ? std::atoi(env) : 0;
  return n >= kDefaultServices ? n : kDefaultServices;
}

std::vector<ServiceDef> many_services(int count) {
  std::vector<ServiceDef> out;
  for (int i = 0; i < count; ++i) {
    // Distinct service names: the keys do not share one /services/<name>/ prefix.
    out.push_back({.name = "svc-" + std::to_string(i), .id = "id-" + std::to_string(i), .port = 10000 + i});
  }
  return out;
}

// Milliseconds from the DELETE of `key` to the PUT that follows it, as seen by `watch`; nullopt if none.
std::optional<long long> restore_gap(const Events& events, const std::string& key) {
  for (std::size_t d = 0; d < events.size(); ++d) {
    if (events[d].key != key || events[d].type != WatchEvent::Type::kDelete) continue;
    for (std::size_t p = d + 1; p < events.size(); ++p) {
      if (events[p].key == key && events[p].type == WatchEvent::Type::kPut) {
        return std::chrono::duration_cast<std::chrono::milliseconds>(events[p].received_at - events[d].received_at)
            .count();
      }
    }
  }
  return std::nullopt;
}

// The agent's log without its one "registered" line per key.
std::string log_tail(const AgentProcess& agent) {
  std::string out;
  const std::string all = agent.output();
  std::size_t at = 0;
  while (at < all.size()) {
    const std::size_t eol = std::min(all.find('\n', at), all.size());
    const std::string line = all.substr(at, eol - at);
    if (line.find("registered /services/") == std::string::npos) out += line + "\n";
    at = eol + 1;
  }
  return out.size() > 8000 ? out.substr(out.size() - 8000) : out;
}

TEST(RegistrationScale, ThreeHundredServicesAreAllRegisteredAndADeletedKeyComesBackQuickly) {
  auto etcd = EtcdProcess::start();  // default flags: no raised --max-txn-ops
  ASSERT_NE(etcd, nullptr) << "etcd did not start";
  EtcdSyncClient client(etcd->endpoint());
  const int kServices = service_count();
  const auto services = many_services(kServices);
  auto agent = AgentProcess::start(registration_manifest(etcd->client_url(), services));
  ASSERT_NE(agent, nullptr);

  std::vector<Kv> kvs;
  const bool all_registered = wait_until(
      [&] {
        kvs = client.get_prefix("/services/");
        return kvs.size() == static_cast<std::size_t>(kServices) &&
               std::all_of(kvs.begin(), kvs.end(), [&](const Kv& kv) { return kv.lease == kvs[0].lease && kv.lease != 0; });
      },
      std::chrono::milliseconds(20000 + 10 * kServices));
  ASSERT_TRUE(all_registered) << kvs.size() << " of " << kServices << " keys registered\n" << log_tail(*agent);

  // Keys in the first, second and last read chunk; the first one also waits out the watch's set-up.
  const std::vector<int> victims = {0, 127, 128, 200, kServices - 1};
  std::vector<long long> gaps;
  for (const int victim : victims) {
    const std::string key = service_key(services[static_cast<std::size_t>(victim)]);
    WatchRecorder watch(etcd->endpoint(), key);
    ASSERT_TRUE(watch.created());
    ASSERT_EQ(client.del(key), 1) << client.last_error() << "\n" << log_tail(*agent);
    const bool back = watch.wait_for([&](const Events& e) { return restore_gap(e, key).has_value(); },
                                     victim == victims.front() ? 10s : 5s);
    ASSERT_TRUE(back) << key << " deleted by another client was never written back\n" << log_tail(*agent);
    gaps.push_back(*restore_gap(watch.events(), key));
    std::printf("[ measured ] %d services, %s deleted -> back: %lld ms\n", kServices, key.c_str(), gaps.back());
  }
  // Only the victims were deleted; more restores mean keys were judged by a stale read.
  std::printf("[ measured ] %d services: %zu restore(s) logged for %zu deletion(s)\n", kServices,
              agent->count_in_output("(deleted by another client)"), victims.size());
  std::fflush(stdout);
  // The first deletion may have raced the watch's set-up; the others measure the steady state.
  const long long worst = *std::max_element(gaps.begin() + 1, gaps.end());
  RecordProperty("restore_ms_worst", std::to_string(worst));
  RecordProperty("restore_ms_first", std::to_string(gaps.front()));
  // Target 100 ms (measured 0-63 ms here); the bound leaves room for a loaded 2-core CI machine
  // running two suites at once, and is still far below the old behaviour (never restored).
  EXPECT_LT(worst, 400) << "target is 100 ms";

  const auto lease = kvs[0].lease;
  for (const auto& kv : client.get_prefix("/services/")) EXPECT_EQ(kv.lease, lease) << kv.key << " moved lease";
  EXPECT_EQ(agent->count_in_output("too many operations"), 0u) << log_tail(*agent);
  EXPECT_TRUE(agent->is_running());
  if (HasFailure()) std::fprintf(stderr, "---- agent log (registered lines left out):\n%s\n", log_tail(*agent).c_str());
}

}  // namespace
}  // namespace sidecar::test
