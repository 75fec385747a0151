// Black-box tests of `discover:` against a real etcd: the agent binary runs from a manifest in a temp dir,
// the test changes /services/... through its own client and waits on the agent's output file.
#include <gtest/gtest.h>

#include <grpcpp/grpcpp.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "etcd/rpc.grpc.pb.h"
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

constexpr const char* kService = "order-service";
// The agent's debug line for every write of the output file.
constexpr const char* kWrote = "discover order-service: wrote ";
constexpr const char* kPrefix = "/services/order-service/";
// etcd 3.4's default --max-txn-ops.
constexpr std::size_t kMaxTxnOps = 128;

std::string key_of(const std::string& id) { return kPrefix + id; }

// The value this agent itself registers (value_format: sidecar).
std::string sidecar_value(const std::string& id, const std::string& address, int port, json metadata = json::object()) {
  return json{{"name", kService}, {"id", id}, {"address", address}, {"port", port}, {"metadata", metadata}}.dump();
}

using Endpoints = std::map<std::string, std::string>;  // id -> "address:port"

Endpoints endpoints_in_file(const json& doc) {
  Endpoints out;
  if (!doc.contains("instances") || !doc["instances"].is_array()) return out;
  for (const auto& inst : doc["instances"]) {
    out[inst.value("id", "")] = inst.value("address", "") + ":" + std::to_string(inst.value("port", 0));
  }
  return out;
}

// What the file should list for the prefix as etcd holds it now (values written by sidecar_value).
Endpoints endpoints_in_etcd(EtcdSyncClient& client) {
  Endpoints out;
  for (const auto& kv : client.get_prefix(kPrefix)) {
    const json v = json::parse(kv.value, nullptr, false);
    out[kv.key.substr(std::string(kPrefix).size())] =
        v.value("address", "") + ":" + std::to_string(v.value("port", 0));
  }
  return out;
}

std::string describe(const Endpoints& e, std::size_t limit = 20) {
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

// Applies puts (value set) and deletes (value nullopt) in Txn batches of at most kMaxTxnOps operations.
using Change = std::pair<std::string, std::optional<std::string>>;
::testing::AssertionResult apply_in_txns(EtcdSyncClient& client, const std::vector<Change>& changes) {
  auto stub = etcdserverpb::KV::NewStub(client.channel());
  for (std::size_t begin = 0; begin < changes.size(); begin += kMaxTxnOps) {
    etcdserverpb::TxnRequest request;
    for (std::size_t i = begin; i < std::min(changes.size(), begin + kMaxTxnOps); ++i) {
      auto* op = request.add_success();
      if (changes[i].second) {
        op->mutable_request_put()->set_key(changes[i].first);
        op->mutable_request_put()->set_value(*changes[i].second);
      } else {
        op->mutable_request_delete_range()->set_key(changes[i].first);
      }
    }
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + 10s);
    etcdserverpb::TxnResponse response;
    const grpc::Status status = stub->Txn(&context, request, &response);
    if (!status.ok()) {
      return ::testing::AssertionFailure() << "Txn at change " << begin << " failed: " << status.error_message();
    }
  }
  return ::testing::AssertionSuccess();
}

// Suite name is what the tests are reported under: Discovery.<Behaviour>.
class Discovery : public EtcdAgentFixture {
 protected:
  Discovery() { log_tail_bytes_ = 6 * 1024; }

  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(EtcdAgentFixture::SetUp());
    output_ = dir_ / "order-service.json";
  }

  void TearDown() override {
    if (agent_) {
      EXPECT_TRUE(agent_->is_running()) << "the agent must survive everything these tests do to it";
    }
    EtcdAgentFixture::TearDown();
  }

  // One `discover:` entry for order-service; `extra` holds further fields, each line indented by 4 spaces.
  std::string manifest(const std::string& extra = "", const std::string& output = "") const {
    return etcd_manifest_section(etcd_->client_url()) + "discover:\n  - service: " + kService +
           "\n    output: " + (output.empty() ? output_.string() : output) + "\n" + extra;
  }

  void start_agent(const std::string& manifest_yaml) {
    agent_ = AgentProcess::start_in(dir_.path(), manifest_yaml);
    ASSERT_NE(agent_, nullptr) << "cannot start " << SIDECAR_BINARY;
  }

  // Waits until the output file parses as JSON and `predicate` holds on it.
  ::testing::AssertionResult wait_for_file(const std::function<bool(const json&)>& predicate,
                                           std::chrono::milliseconds timeout = 10s,
                                           std::chrono::milliseconds poll = 10ms) {
    std::optional<json> last;
    if (wait_until(
            [&] {
              last = read_json_file(output_);
              return last && predicate(*last);
            },
            timeout, poll)) {
      return ::testing::AssertionSuccess();
    }
    auto failure = ::testing::AssertionFailure() << "after " << timeout.count() << " ms " << output_ << " is ";
    if (!last) return failure << "missing or not JSON: " << read_file(output_).value_or("<missing>").substr(0, 400);
    return failure << describe(endpoints_in_file(*last));
  }

  ::testing::AssertionResult wait_for_endpoints(const Endpoints& expected, std::chrono::milliseconds timeout = 10s,
                                                std::chrono::milliseconds poll = 10ms) {
    auto result = wait_for_file([&](const json& doc) { return endpoints_in_file(doc) == expected; }, timeout, poll);
    if (!result) result << "\nexpected " << describe(expected);
    return result;
  }

  // The file lists exactly what etcd holds right now.
  ::testing::AssertionResult wait_for_etcd_content(std::chrono::milliseconds timeout = 10s) {
    return wait_for_endpoints(endpoints_in_etcd(*client_), timeout);
  }

  TempDir dir_{"discovery-it"};
  fs::path output_;
};

TEST_F(Discovery, PutAndDeleteReachTheFile) {
  start_agent(manifest());
  ASSERT_TRUE(wait_for_endpoints({})) << "the first sync writes the file even for an empty set";
  const auto doc = read_json_file(output_);
  ASSERT_TRUE(doc);
  EXPECT_EQ(doc->value("service", ""), kService);
  EXPECT_TRUE((*doc)["instances"].is_array());

  ASSERT_GT(client_->put(key_of("a"), sidecar_value("a", "10.0.0.1", 8080, {{"zone", "z1"}})), 0);
  ASSERT_TRUE(wait_for_endpoints({{"a", "10.0.0.1:8080"}}));
  ASSERT_GT(client_->put(key_of("b"), sidecar_value("b", "10.0.0.2", 8081)), 0);
  ASSERT_TRUE(wait_for_endpoints({{"a", "10.0.0.1:8080"}, {"b", "10.0.0.2:8081"}}));

  // The document shape: sorted by id, metadata carried through, the revision of the last applied change.
  const std::int64_t rev_b = client_->get(key_of("b"))->mod_revision;
  const auto full = read_json_file(output_);
  ASSERT_TRUE(full);
  ASSERT_EQ((*full)["instances"].size(), 2u);
  EXPECT_EQ((*full)["instances"][0]["id"], "a");
  EXPECT_EQ((*full)["instances"][0]["metadata"], (json{{"zone", "z1"}}));
  EXPECT_EQ((*full)["instances"][1]["id"], "b");
  EXPECT_EQ((*full)["instances"][1]["port"], 8081);
  EXPECT_GE(full->value("revision", std::int64_t{0}), rev_b);

  ASSERT_EQ(client_->del(key_of("a")), 1);
  ASSERT_TRUE(wait_for_endpoints({{"b", "10.0.0.2:8081"}}));
  ASSERT_GT(client_->put(key_of("b"), sidecar_value("b", "10.0.0.3", 9000)), 0);
  ASSERT_TRUE(wait_for_endpoints({{"b", "10.0.0.3:9000"}})) << "an update replaces the address";
  ASSERT_EQ(client_->del(key_of("b")), 1);
  ASSERT_TRUE(wait_for_endpoints({}));
}

TEST_F(Discovery, TrailingSlashKeepsSimilarServiceNamesOut) {
  // Some before the agent starts (initial Range), some after (watch events).
  ASSERT_GT(client_->put("/services/orders/1", sidecar_value("1", "10.9.9.1", 1)), 0);
  ASSERT_GT(client_->put("/services/order-x/1", sidecar_value("1", "10.9.9.2", 2)), 0);
  ASSERT_GT(client_->put("/services/order/1", sidecar_value("1", "10.0.0.1", 80)), 0);
  const std::string yaml = etcd_manifest_section(etcd_->client_url()) + "discover:\n  - service: order\n    output: " +
                     output_.string() + "\n";
  start_agent(yaml);
  ASSERT_TRUE(wait_for_endpoints({{"1", "10.0.0.1:80"}}));

  ASSERT_GT(client_->put("/services/orders/2", sidecar_value("2", "10.9.9.3", 3)), 0);
  ASSERT_GT(client_->put("/services/order-x/2", sidecar_value("2", "10.9.9.4", 4)), 0);
  ASSERT_GT(client_->put("/services/order2", sidecar_value("x", "10.9.9.5", 5)), 0);
  ASSERT_GT(client_->put("/services/order", sidecar_value("y", "10.9.9.6", 6)), 0);
  // Written last: once it shows up, everything before it has been through the agent.
  ASSERT_GT(client_->put("/services/order/zz", sidecar_value("zz", "10.0.0.2", 81)), 0);
  ASSERT_TRUE(wait_for_endpoints({{"1", "10.0.0.1:80"}, {"zz", "10.0.0.2:81"}}));
  const auto doc = read_json_file(output_);
  ASSERT_TRUE(doc);
  EXPECT_EQ(doc->value("service", ""), "order");
}

TEST_F(Discovery, TenThousandInstancesThenOneMoreChange) {
  constexpr int kCount = 10000;
  auto id_of = [](int i) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "i%05d", i);
    return std::string(buf);
  };
  auto address_of = [](int i) { return "10.1." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1); };
  std::vector<Change> first_half;
  std::vector<Change> second_half;
  Endpoints expected;
  for (int i = 0; i < kCount; ++i) {
    (i < kCount / 2 ? first_half : second_half)
        .emplace_back(key_of(id_of(i)), sidecar_value(id_of(i), address_of(i), 20000 + i % 1000));
    expected[id_of(i)] = address_of(i) + ":" + std::to_string(20000 + i % 1000);
  }
  const auto started = std::chrono::steady_clock::now();
  // Half is there before the agent starts (the initial Range), half arrives as watch events.
  ASSERT_TRUE(apply_in_txns(*client_, first_half));
  start_agent(manifest());
  ASSERT_TRUE(wait_for_file([](const json& doc) { return doc["instances"].size() == kCount / 2; }, 10s, 50ms));
  ASSERT_TRUE(apply_in_txns(*client_, second_half));
  ASSERT_TRUE(wait_for_endpoints(expected, 15s, 50ms));
  const auto doc = read_json_file(output_);
  ASSERT_TRUE(doc);
  ASSERT_EQ((*doc)["instances"].size(), static_cast<std::size_t>(kCount));
  EXPECT_EQ((*doc)["instances"].front()["id"], id_of(0));
  EXPECT_EQ((*doc)["instances"].back()["id"], id_of(kCount - 1));

  ASSERT_GT(client_->put(key_of("zz-extra"), sidecar_value("zz-extra", "10.200.0.1", 1234)), 0);
  expected["zz-extra"] = "10.200.0.1:1234";
  ASSERT_TRUE(wait_for_endpoints(expected, 10s, 50ms));
  ASSERT_EQ(client_->del(key_of(id_of(4321))), 1);
  expected.erase(id_of(4321));
  ASSERT_TRUE(wait_for_endpoints(expected, 10s, 50ms));
  std::cout << "10,000 instances, 2 more changes: "
            << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count()
            << " ms\n";
}

TEST_F(Discovery, ForeignAndBrokenValuesAreSkippedWithOneWarningEach) {
  start_agent(manifest());
  ASSERT_TRUE(wait_for_endpoints({}));

  const std::string garbage = "this is {not json";
  const std::string oversized =
      json{{"address", "10.7.7.7"}, {"port", 7777}, {"metadata", {{"pad", std::string(70 * 1024, 'x')}}}}.dump();
  ASSERT_GT(oversized.size(), 64u * 1024u);
  ASSERT_GT(client_->put(key_of("ours"), sidecar_value("ours", "10.0.0.1", 8080, {{"v", "1"}})), 0);
  ASSERT_GT(client_->put(key_of("nestjs"), R"({"address":"10.1.2.3","port":3000})"), 0);
  ASSERT_GT(client_->put(key_of("endpoints"), R"({"Op":0,"Addr":"10.0.0.9:7000","Metadata":{"w":1}})"), 0);
  ASSERT_GT(client_->put(key_of("garbage"), garbage), 0);
  ASSERT_GT(client_->put(key_of("oversized"), oversized), 0);
  // The same broken values again: already reported, so no second warning.
  ASSERT_GT(client_->put(key_of("garbage"), garbage), 0);
  ASSERT_GT(client_->put(key_of("oversized"), oversized), 0);
  ASSERT_GT(client_->put(key_of("zz-sentinel"), sidecar_value("zz-sentinel", "10.0.0.2", 8081)), 0);

  ASSERT_TRUE(wait_for_endpoints({{"ours", "10.0.0.1:8080"},
                                  {"nestjs", "10.1.2.3:3000"},
                                  {"endpoints", "10.0.0.9:7000"},
                                  {"zz-sentinel", "10.0.0.2:8081"}}));
  const auto doc = read_json_file(output_);
  ASSERT_TRUE(doc);
  for (const auto& inst : (*doc)["instances"]) {
    if (inst["id"] == "endpoints") {
      EXPECT_EQ(inst["metadata"], (json{{"w", 1}}));
    } else if (inst["id"] == "ours") {
      EXPECT_EQ(inst["metadata"], (json{{"v", "1"}}));
    } else if (inst["id"] == "nestjs") {
      EXPECT_EQ(inst["metadata"], json::object());
    }
  }
  EXPECT_TRUE(agent_->is_running());
  EXPECT_EQ(agent_->count_in_output("ignoring /services/order-service/garbage"), 1u);
  EXPECT_EQ(agent_->count_in_output("ignoring /services/order-service/oversized"), 1u);
  EXPECT_EQ(agent_->count_in_output("ignoring /services/order-service/ours"), 0u);
  EXPECT_EQ(agent_->count_in_output("ignoring /services/order-service/nestjs"), 0u);
  EXPECT_EQ(agent_->count_in_output("ignoring /services/order-service/endpoints"), 0u);

  // A broken key that becomes valid is listed; a valid one that becomes broken is dropped.
  ASSERT_GT(client_->put(key_of("garbage"), sidecar_value("garbage", "10.0.0.5", 5555)), 0);
  ASSERT_GT(client_->put(key_of("nestjs"), "[1,2,3]"), 0);
  ASSERT_TRUE(wait_for_endpoints({{"ours", "10.0.0.1:8080"},
                                  {"garbage", "10.0.0.5:5555"},
                                  {"endpoints", "10.0.0.9:7000"},
                                  {"zz-sentinel", "10.0.0.2:8081"}}));
  EXPECT_EQ(agent_->count_in_output("ignoring /services/order-service/nestjs"), 1u);
}

TEST_F(Discovery, StoppedAgentCatchesUpAfterCompaction) {
  Endpoints before;
  for (int i = 0; i < 20; ++i) {
    const std::string id = "base-" + std::to_string(i);
    ASSERT_GT(client_->put(key_of(id), sidecar_value(id, "10.2.0." + std::to_string(i + 1), 7000)), 0);
    before[id] = "10.2.0." + std::to_string(i + 1) + ":7000";
  }
  start_agent(manifest());
  ASSERT_TRUE(wait_for_endpoints(before));

  ASSERT_TRUE(agent_->sigstop());
  // etcd queues at most 128 responses per watch stream behind a reader that does not read; past that (and
  // past the HTTP/2 window and socket buffers, hence the bulky values) the watcher falls behind and has to
  // be served from history, which the compaction then removes. One revision per put, so one response each.
  const auto churn_started = std::chrono::steady_clock::now();
  const std::string pad(8192, 'p');
  constexpr int kChurn = 1500;
  for (int i = 0; i < kChurn; ++i) {
    const std::string id = "churn-" + std::to_string(i);
    ASSERT_GT(client_->put(key_of(id), sidecar_value(id, "10.3." + std::to_string(i / 250) + "." +
                                                             std::to_string(i % 250 + 1), 9000, {{"pad", pad}})),
              0)
        << client_->last_error();
  }
  std::vector<Change> removals;
  for (int i = 0; i < kChurn; ++i) {
    if (i % 50 != 0) removals.emplace_back(key_of("churn-" + std::to_string(i)), std::nullopt);
  }
  for (int i = 0; i < 20; i += 2) removals.emplace_back(key_of("base-" + std::to_string(i)), std::nullopt);
  ASSERT_TRUE(apply_in_txns(*client_, removals));
  ASSERT_GT(client_->put(key_of("base-1"), sidecar_value("base-1", "10.9.9.9", 9999)), 0);
  const std::int64_t rev = client_->revision();
  ASSERT_GT(rev, 0);
  ASSERT_TRUE(client_->compact(rev)) << client_->last_error();
  std::cout << "churn and compaction took "
            << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                     churn_started)
                   .count()
            << " ms\n";

  const Endpoints expected = endpoints_in_etcd(*client_);
  ASSERT_EQ(expected.size(), 10u + kChurn / 50);
  ASSERT_TRUE(agent_->sigcont());
  ASSERT_TRUE(wait_for_endpoints(expected, 15s));
  // Otherwise this test would only show that buffered events are applied, which the others already do.
  // (The agent currently logs this resync as "revision went back (header revision 0 ...)": etcd's compacted
  // cancel carries a zero header revision, and needs_resync() looks at the header before canceled().)
  EXPECT_GE(agent_->count_in_output("catalog order-service: synced "), 2u)
      << "the agent never re-read the prefix: the churn was too small to make its watcher fall behind";
}

TEST_F(Discovery, EtcdRestartWithSameDataLosesNoEvent) {
  start_agent(manifest());
  ASSERT_TRUE(wait_for_endpoints({}));
  for (int i = 0; i < 30; ++i) {
    const std::string id = "pre-" + std::to_string(i);
    ASSERT_GT(client_->put(key_of(id), sidecar_value(id, "10.4.0." + std::to_string(i + 1), 6000)), 0);
  }
  // No wait for the agent: some of these events are probably still in flight when etcd dies.
  etcd_->kill9();
  ASSERT_TRUE(etcd_->restart());
  ASSERT_TRUE(wait_until([&] { return client_->healthy(); }, 5s)) << client_->last_error();
  for (int i = 0; i < 30; ++i) {
    const std::string id = "post-" + std::to_string(i);
    ASSERT_GT(client_->put(key_of(id), sidecar_value(id, "10.5.0." + std::to_string(i + 1), 6001)), 0)
        << client_->last_error();
  }
  for (int i = 0; i < 30; i += 3) ASSERT_EQ(client_->del(key_of("pre-" + std::to_string(i))), 1);
  const Endpoints expected = endpoints_in_etcd(*client_);
  ASSERT_EQ(expected.size(), 50u);
  ASSERT_TRUE(wait_for_endpoints(expected, 15s));
}

TEST_F(Discovery, WipedEtcdIsFollowedToItsNewState) {
  for (int i = 0; i < 5; ++i) {
    const std::string id = "old-" + std::to_string(i);
    ASSERT_GT(client_->put(key_of(id), sidecar_value(id, "10.6.0." + std::to_string(i + 1), 5000)), 0);
  }
  start_agent(manifest());
  ASSERT_TRUE(wait_for_file([](const json& doc) { return doc["instances"].size() == 5; }));

  ASSERT_TRUE(etcd_->restart_wiped());
  ASSERT_TRUE(wait_until([&] { return client_->healthy(); }, 5s)) << client_->last_error();
  for (int i = 0; i < 3; ++i) {
    const std::string id = "new-" + std::to_string(i);
    ASSERT_GT(client_->put(key_of(id), sidecar_value(id, "10.7.0." + std::to_string(i + 1), 5001)), 0);
  }
  ASSERT_TRUE(wait_for_endpoints({{"new-0", "10.7.0.1:5001"}, {"new-1", "10.7.0.2:5001"}, {"new-2", "10.7.0.3:5001"}},
                                 15s));
}

// The wiped store has already gone past the revision the agent had applied when the agent reconnects, so
// "revision went back" cannot tell it apart from the old store.
// KNOWN AGENT BUG (fails as of this writing; reported to the lead, agent/ is not ours to edit): a wiped
// single member comes back with the same cluster id (derived from the same token and peer URLs), and its
// revision is past ours, so PrefixWatcher resumes the watch at our old revision + 1 on a different store:
// the new keys written below that revision are never seen and the old instances are never removed. The
// log shows only "stream ended (Socket closed); resuming after revision 6" and no resync.
// Suggested fix: re-read the prefix (Range, then watch from its revision) after every lost stream instead
// of resuming; EndpointSet::reset() already reports "unchanged" so an identical set costs no file write.
TEST_F(Discovery, WipedEtcdThatOvertookTheOldRevisionIsFollowedToo) {
  for (int i = 0; i < 5; ++i) {
    const std::string id = "old-" + std::to_string(i);
    ASSERT_GT(client_->put(key_of(id), sidecar_value(id, "10.6.0." + std::to_string(i + 1), 5000)), 0);
  }
  start_agent(manifest());
  ASSERT_TRUE(wait_for_file([](const json& doc) { return doc["instances"].size() == 5; }));
  const std::int64_t old_revision = client_->revision();

  // Frozen, the agent cannot reconnect before the new store has moved past its revision.
  ASSERT_TRUE(agent_->sigstop());
  ASSERT_TRUE(etcd_->restart_wiped());
  ASSERT_TRUE(wait_until([&] { return client_->healthy(); }, 5s)) << client_->last_error();
  Endpoints expected;
  for (int i = 0; i < 12; ++i) {
    const std::string id = "new-" + std::to_string(i);
    ASSERT_GT(client_->put(key_of(id), sidecar_value(id, "10.7.0." + std::to_string(i + 1), 5001)), 0);
    expected[id] = "10.7.0." + std::to_string(i + 1) + ":5001";
  }
  ASSERT_GT(client_->revision(), old_revision + 2);
  ASSERT_TRUE(agent_->sigcont());
  ASSERT_TRUE(wait_for_endpoints(expected, 8s));
}

TEST_F(Discovery, ConcurrentReaderNeverSeesAPartialFile) {
  start_agent(manifest());
  ASSERT_TRUE(wait_for_endpoints({}));

  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> reads{0};
  std::atomic<std::uint64_t> bad_reads{0};
  std::string first_bad;
  std::thread reader([&] {
    while (!stop.load()) {
      std::ifstream in(output_, std::ios::binary);
      std::ostringstream text;
      text << in.rdbuf();
      const json doc = json::parse(text.str(), nullptr, false);
      if (!in || doc.is_discarded() || !doc.is_object() || !doc.contains("instances") ||
          !doc["instances"].is_array()) {
        if (bad_reads++ == 0) first_bad = text.str().substr(0, 200);
      }
      ++reads;
    }
  });

  for (int i = 0; i < 2000; ++i) {
    const std::string id = "c-" + std::to_string(i % 150);
    if (i % 3 == 2) {
      client_->del(key_of(id));
    } else {
      ASSERT_GT(client_->put(key_of(id), sidecar_value(id, "10.8.0." + std::to_string(i % 200 + 1), 4000 + i)), 0)
          << client_->last_error();
    }
  }
  const auto settled = wait_for_etcd_content(15s);
  stop = true;
  reader.join();
  ASSERT_TRUE(settled);
  std::cout << reads.load() << " reads during the churn, " << bad_reads.load() << " bad\n";
  EXPECT_EQ(bad_reads.load(), 0u) << "first bad read: '" << first_bad << "'";
  EXPECT_GT(reads.load(), 200u) << "the reader must actually have raced the writer";
}

TEST_F(Discovery, TemplateRendersNginxUpstream) {
  const std::string templ = std::string(SIDECAR_SOURCE_DIR) + "/config/templates/nginx-upstream.mustache";
  const fs::path conf = dir_ / "order-service.conf";
  start_agent(manifest("    format: template\n    template: " + templ + "\n", conf.string()));
  ASSERT_TRUE(wait_until([&] { return read_file(conf).value_or("").find("65535 down;") != std::string::npos; }, 10s))
      << "an empty set renders the placeholder server: " << read_file(conf).value_or("<missing>");

  ASSERT_GT(client_->put(key_of("a"), sidecar_value("a", "10.1.2.3", 3000)), 0);
  ASSERT_GT(client_->put(key_of("b"), sidecar_value("b", "10.1.2.4", 3001)), 0);
  auto has_both = [&] {
    const std::string text = read_file(conf).value_or("");
    return text.find("server 10.1.2.3:3000;") != std::string::npos &&
           text.find("server 10.1.2.4:3001;") != std::string::npos;
  };
  ASSERT_TRUE(wait_until(has_both, 10s)) << read_file(conf).value_or("<missing>");
  const std::string text = *read_file(conf);
  EXPECT_NE(text.find("upstream order-service {"), std::string::npos) << text;
  EXPECT_EQ(text.find("down;"), std::string::npos) << "no placeholder once instances exist:\n" << text;
  EXPECT_LT(text.find("10.1.2.3:3000"), text.find("10.1.2.4:3001")) << "servers in id order:\n" << text;
}

TEST_F(Discovery, LinesFormatListsAddressPortPerLine) {
  const fs::path lines = dir_ / "order-service.txt";
  start_agent(manifest("    format: lines\n", lines.string()));
  ASSERT_TRUE(wait_until([&] { return read_file(lines).has_value(); }, 10s));
  EXPECT_EQ(*read_file(lines), "");
  ASSERT_GT(client_->put(key_of("b"), sidecar_value("b", "10.1.2.4", 3001)), 0);
  ASSERT_GT(client_->put(key_of("a"), sidecar_value("a", "10.1.2.3", 3000)), 0);
  ASSERT_GT(client_->put(key_of("c"), sidecar_value("c", "fd00::1", 3002)), 0);
  const std::string expected = "10.1.2.3:3000\n10.1.2.4:3001\n[fd00::1]:3002\n";
  ASSERT_TRUE(wait_until([&] { return read_file(lines) == expected; }, 10s)) << read_file(lines).value_or("<missing>");
  ASSERT_EQ(client_->del(key_of("a")), 1);
  ASSERT_TRUE(wait_until([&] { return read_file(lines) == "10.1.2.4:3001\n[fd00::1]:3002\n"; }, 10s))
      << read_file(lines).value_or("<missing>");
}

TEST_F(Discovery, MinInstancesGuardKeepsTheLastGoodFile) {
  start_agent(manifest("    min_instances: 2\n"));
  // Below the minimum from the start: nothing is written at all.
  ASSERT_TRUE(wait_until([&] { return agent_->count_in_output("below min_instances") > 0; }, 10s));
  EXPECT_FALSE(fs::exists(output_));

  ASSERT_GT(client_->put(key_of("a"), sidecar_value("a", "10.0.0.1", 1)), 0);
  ASSERT_GT(client_->put(key_of("b"), sidecar_value("b", "10.0.0.2", 2)), 0);
  ASSERT_TRUE(wait_for_endpoints({{"a", "10.0.0.1:1"}, {"b", "10.0.0.2:2"}}));
  const std::string two = *read_file(output_);
  // Below the minimum until both were there, so exactly one write so far (its log line follows the rename).
  ASSERT_TRUE(wait_until([&] { return agent_->count_in_output(kWrote) >= 1; }, 5s));
  const std::size_t writes_of_two = agent_->count_in_output(kWrote);
  ASSERT_EQ(client_->del(key_of("a")), 1);
  // The agent says when it holds a write back (where it decides not to write); the file is still the last
  // good one then.
  ASSERT_TRUE(wait_until([&] { return agent_->count_in_output("below min_instances") >= 2; }, 10s));
  EXPECT_EQ(read_file(output_), two);

  // Back at the minimum: exactly one more write, so nothing was written while below it.
  ASSERT_GT(client_->put(key_of("c"), sidecar_value("c", "10.0.0.3", 3)), 0);
  ASSERT_TRUE(wait_for_endpoints({{"b", "10.0.0.2:2"}, {"c", "10.0.0.3:3"}}));
  // The log line follows the rename: the file can be seen a moment before it.
  ASSERT_TRUE(wait_until([&] { return agent_->count_in_output(kWrote) > writes_of_two; }, 5s));
  EXPECT_EQ(agent_->count_in_output(kWrote), writes_of_two + 1) << "a write happened while below min_instances";
  ASSERT_GT(client_->put(key_of("d"), sidecar_value("d", "10.0.0.4", 4)), 0);
  ASSERT_TRUE(wait_for_endpoints({{"b", "10.0.0.2:2"}, {"c", "10.0.0.3:3"}, {"d", "10.0.0.4:4"}}));
}

TEST_F(Discovery, OnChangeRunsOncePerBurst) {
  const fs::path counter = dir_ / "on_change.count";
  const fs::path seen = dir_ / "on_change.seen";
  // on_change records that it ran and what file it saw, so the test knows when it ran for the final file;
  // counted first, so a run whose file the test has seen is already in the count.
  start_agent(manifest("    on_change: \"echo run >> " + counter.string() + "; cat " + output_.string() + " > " +
                       seen.string() + "\"\n"));
  auto runs = [&] {
    const std::string text = read_file(counter).value_or("");
    return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
  };
  ASSERT_TRUE(wait_until([&] { return runs() == 1 && read_file(seen) == read_file(output_); }, 10s))
      << "the first write runs on_change once";

  // Long enough (a second or more of puts) to take many writes: on_change once per WRITE would show.
  constexpr int kBurst = 1500;
  Endpoints expected;
  for (int i = 0; i < kBurst; ++i) {
    const std::string id = "burst-" + std::to_string(i);
    ASSERT_GT(client_->put(key_of(id), sidecar_value(id, "10.9.0." + std::to_string(i % 250 + 1), 3000 + i)), 0);
    expected[id] = "10.9.0." + std::to_string(i % 250 + 1) + ":" + std::to_string(3000 + i);
  }
  ASSERT_TRUE(wait_for_endpoints(expected, 10s));
  ASSERT_TRUE(wait_until([&] { return read_file(seen) == read_file(output_); }, 10s))
      << "on_change must run after the final write";
  const int runs_after_burst = runs();
  const int burst_runs = runs_after_burst - 1;
  const auto writes = agent_->count_in_output(kWrote) - 1;
  // And not again without a change: one more change runs it exactly once more, so a spare run for the
  // burst (which would come first: on_change runs one at a time, in order) shows in the count.
  ASSERT_GT(client_->put(key_of("marker"), sidecar_value("marker", "10.9.9.9", 2999)), 0);
  ASSERT_TRUE(wait_until(
      [&] {
        const auto text = read_file(seen);
        return runs() > runs_after_burst && text && text->find("10.9.9.9") != std::string::npos;
      },
      10s))
      << "on_change must run for the marker's write";
  EXPECT_EQ(runs(), runs_after_burst + 1) << "on_change ran again without a change";
  std::cout << "a burst of " << kBurst << " puts took " << writes << " write(s) and ran on_change " << burst_runs
            << " time(s)\n";
  EXPECT_GE(burst_runs, 1);
  EXPECT_LE(burst_runs, 5);
  if (writes >= 8) EXPECT_LT(burst_runs, static_cast<int>(writes) / 2) << "on_change ran for most writes";
}

TEST_F(Discovery, FailingCheckCommandKeepsTheOldFile) {
  // Refuses any file that mentions "forbidden".
  start_agent(manifest("    check_command: \"grep -q forbidden {{staged}} && exit 1 || exit 0\"\n"));
  ASSERT_TRUE(wait_for_endpoints({}));
  ASSERT_GT(client_->put(key_of("a"), sidecar_value("a", "10.0.0.1", 1)), 0);
  ASSERT_TRUE(wait_for_endpoints({{"a", "10.0.0.1:1"}}));
  const std::string good = *read_file(output_);

  ASSERT_GT(client_->put(key_of("b"), sidecar_value("b", "10.0.0.2", 2, {{"tag", "forbidden"}})), 0);
  ASSERT_TRUE(wait_until([&] { return agent_->count_in_output("check_command refused") >= 1; }, 10s));
  EXPECT_EQ(read_file(output_), good);
  // No staged leftovers next to the output.
  for (const auto& entry : fs::directory_iterator(dir_.path())) {
    EXPECT_EQ(entry.path().filename().string().find(".tmp."), std::string::npos) << entry.path();
  }

  ASSERT_EQ(client_->del(key_of("b")), 1);
  ASSERT_GT(client_->put(key_of("c"), sidecar_value("c", "10.0.0.3", 3)), 0);
  ASSERT_TRUE(wait_for_endpoints({{"a", "10.0.0.1:1"}, {"c", "10.0.0.3:3"}})) << "acceptable content is written again";
}

TEST_F(Discovery, OutputModeIsAppliedAndParentDirectoryCreated) {
  const fs::path nested = dir_ / "run" / "etcd-sidecar" / "order-service.json";
  ASSERT_FALSE(fs::exists(nested.parent_path()));
  output_ = nested;
  start_agent(manifest("    mode: \"0600\"\n", nested.string()));
  ASSERT_TRUE(wait_for_endpoints({}));
  struct stat st {};
  ASSERT_EQ(::stat(nested.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  ASSERT_GT(client_->put(key_of("a"), sidecar_value("a", "10.0.0.1", 1)), 0);
  ASSERT_TRUE(wait_for_endpoints({{"a", "10.0.0.1:1"}}));
  ASSERT_EQ(::stat(nested.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u) << "every rewrite keeps the mode";
}

TEST_F(Discovery, EtcdOutageLeavesTheFileUntouched) {
  start_agent(manifest());
  ASSERT_GT(client_->put(key_of("a"), sidecar_value("a", "10.0.0.1", 1)), 0);
  ASSERT_GT(client_->put(key_of("b"), sidecar_value("b", "10.0.0.2", 2)), 0);
  ASSERT_TRUE(wait_for_endpoints({{"a", "10.0.0.1:1"}, {"b", "10.0.0.2:2"}}));
  const std::string before = *read_file(output_);
  struct stat st_before {};
  ASSERT_EQ(::stat(output_.c_str(), &st_before), 0);

  // The log line of a write follows its rename: wait for it, or the count below misses that write.
  ASSERT_TRUE(wait_until([&] { return agent_->count_in_output(kWrote) >= 1; }, 5s));
  const std::size_t writes_before = agent_->count_in_output(kWrote);
  etcd_->kill9();
  // Sampled (so a transient truncation would be caught) until the agent has lost its watch and failed to
  // re-read the prefix: it has reacted to the outage by then.
  bool changed = false;
  ASSERT_TRUE(wait_until(
      [&] {
        changed = changed || read_file(output_) != before;
        return changed || agent_->output_contains("watch /services/order-service/: cannot read the prefix");
      },
      10s, 20ms))
      << "the agent never reported the outage";
  EXPECT_FALSE(changed) << "the file changed while etcd was down";
  struct stat st_after {};
  ASSERT_EQ(::stat(output_.c_str(), &st_after), 0);
  EXPECT_EQ(st_after.st_ino, st_before.st_ino) << "the file was replaced during the outage";
  EXPECT_TRUE(agent_->is_running());

  ASSERT_TRUE(etcd_->restart());
  ASSERT_GT(client_->put(key_of("c"), sidecar_value("c", "10.0.0.3", 3)), 0) << client_->last_error();
  ASSERT_TRUE(wait_for_endpoints({{"a", "10.0.0.1:1"}, {"b", "10.0.0.2:2"}, {"c", "10.0.0.3:3"}}, 15s))
      << "the agent resumes once etcd is back";
  // The resync finds a and b unchanged (no write), c takes one: any write during the outage shows here.
  ASSERT_TRUE(wait_until([&] { return agent_->count_in_output(kWrote) > writes_before; }, 5s));
  EXPECT_EQ(agent_->count_in_output(kWrote), writes_before + 1) << "the file was written during the outage";
}

}  // namespace
}  // namespace sidecar::test
