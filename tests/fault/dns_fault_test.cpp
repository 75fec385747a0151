// The DNS view through an etcd outage: etcd killed (kill -9) while dig asks, answers go on from the last
// good set (counted as stale) or become SERVFAIL past dns.max_stale; etcd back wiped: answers follow the
// new content.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/admin_client.hpp"
#include "tests/support/agent_fixture.hpp"
#include "tests/support/agent_process.hpp"
#include "tests/support/dns_client.hpp"
#include "tests/support/process.hpp"
#include "tests/support/wait.hpp"

namespace sidecar::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class DnsFault : public EtcdAgentFixture {
 protected:
  void start_agent(const std::string& max_stale) {
    const std::string manifest = etcd_manifest_section(etcd_->client_url()) + "dns:\n  listen: \"127.0.0.1:0\"\n"
                                 "  ttl: 1s\n  max_stale: " + max_stale + "\n";
    agent_ = AgentProcess::start(manifest, {"--admin-listen", "127.0.0.1:0"});
    ASSERT_NE(agent_, nullptr);
    ASSERT_TRUE(wait_until([&] { return (dns_port_ = dns_port_from_log(agent_->output())).has_value(); }, 10s));
    ASSERT_TRUE(wait_until([&] { return (admin_port_ = admin_port_from_log(agent_->output())).has_value(); }, 10s));
  }
  void put(const std::string& id, const std::string& address) {
    ASSERT_GT(client_->put("/services/svc/" + id, json{{"address", address}, {"port", 80}}.dump()), 0);
  }
  std::string dig(const std::string& type = "A") const {
    return test::dig(*dns_port_, {"svc.service.sidecar.", type}).output;
  }
  std::vector<std::string> addresses() const { return dig_short(*dns_port_, "svc.service.sidecar."); }
  std::string metrics() const { return http_request(*admin_port_, "GET", "/metrics").body; }

  std::optional<std::uint16_t> dns_port_;
  std::optional<std::uint16_t> admin_port_;
};

TEST_F(DnsFault, AnswersFromTheLastGoodSetWhileEtcdIsDeadThenFollowAWipedEtcd) {
  put("a", "10.9.0.1");
  put("b", "10.9.0.2");
  ASSERT_NO_FATAL_FAILURE(start_agent("0s"));
  ASSERT_THAT(addresses(), ElementsAre("10.9.0.1", "10.9.0.2"));

  etcd_->kill9();
  // The positive marker: the agent knows etcd is gone (its answers are counted stale), and still answers.
  EXPECT_TRUE(wait_until([&] {
    if (addresses() != std::vector<std::string>{"10.9.0.1", "10.9.0.2"}) return false;
    return metrics().find("etcd_sidecar_dns_stale_answers_total 0") == std::string::npos;
  }, 30s, 200ms)) << metrics();
  EXPECT_THAT(dig(), HasSubstr("status: NOERROR"));

  ASSERT_TRUE(etcd_->restart_wiped());
  put("c", "10.9.0.3");
  EXPECT_TRUE(wait_until([&] { return addresses() == std::vector<std::string>{"10.9.0.3"}; }, 30s, 200ms))
      << ::testing::PrintToString(addresses());
}

TEST_F(DnsFault, PastMaxStaleTheAnswerIsServfail) {
  put("a", "10.9.0.1");
  ASSERT_NO_FATAL_FAILURE(start_agent("1s"));
  ASSERT_THAT(addresses(), ElementsAre("10.9.0.1"));
  etcd_->kill9();
  EXPECT_TRUE(wait_until([&] { return dig().find("status: SERVFAIL") != std::string::npos; }, 30s, 200ms));
}

}  // namespace
}  // namespace sidecar::test
