// The ADS protocol as a client sees it on the wire, with a raw client (tests/support/ads_client.hpp) that
// writes each request by hand: versions and nonces, ACK and NACK, several streams, reconnects, names that
// are not there, and 1,000 streams at once. A real agent on a real etcd; instances are put straight in.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/listener/v3/listener.pb.h"
#include "tests/support/ads_client.hpp"
#include "tests/support/agent_fixture.hpp"
#include "tests/support/process.hpp"
#include "tests/support/secure_etcd.hpp"
#include "tests/support/wait.hpp"

namespace sidecar::test {
namespace {

using namespace std::chrono_literals;
using Response = discovery::DiscoveryResponse;

constexpr auto kAnswer = 5s;  // the bound on any one response the agent owes

std::string instance(uint16_t port) {
  return R"({"address":"127.0.0.1","port":)" + std::to_string(port) + "}";
}

// The response's one ClusterLoadAssignment as sorted "address:port" strings (empty when it has none).
std::vector<std::string> endpoints(const Response& response) {
  if (response.resources_size() != 1) return {};
  auto out = endpoints_of(response.resources(0)).value_or(std::vector<std::string>{});
  std::sort(out.begin(), out.end());
  return out;
}

// The names of the Listeners (or Clusters) in a response, in order.
std::vector<std::string> names(const Response& response) {
  std::vector<std::string> out;
  for (const auto& any : response.resources()) {
    if (any.type_url() == kListenerType) {
      envoy::config::listener::v3::Listener listener;
      if (listener.ParseFromString(any.value())) out.push_back(listener.name());
    } else if (any.type_url() == kClusterType) {
      envoy::config::cluster::v3::Cluster cluster;
      if (cluster.ParseFromString(any.value())) out.push_back(cluster.name());
    }
  }
  return out;
}

class XdsProtocol : public EtcdAgentFixture {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(start_etcd());
    ASSERT_NO_FATAL_FAILURE(start_agent(""));
  }
  // `xds_extra`: more keys of the xds section, each line indented by two spaces.
  void start_agent(const std::string& xds_extra) {
    xds_port_ = free_port();
    const std::string yaml = "etcd:\n  endpoints: [\"" + etcd_->client_url() +
                             "\"]\n  prefix: /services\nxds:\n  listen: \"127.0.0.1:" + std::to_string(xds_port_) +
                             "\"\n" + xds_extra + "admin:\n  enabled: false\n";
    agent_ = AgentProcess::start(yaml, {"--log-level", "debug"});
    ASSERT_TRUE(agent_);
    ASSERT_TRUE(agent_->wait_for_output("xds: serving ADS", 5s)) << agent_->output();
  }

  std::string target() const { return "127.0.0.1:" + std::to_string(xds_port_); }
  // A channel of its own (its own connection): a separate client, as far as the agent can tell.
  std::shared_ptr<grpc::Channel> channel() {
    grpc::ChannelArguments args;
    args.SetInt("sidecar.test.connection", ++channels_);
    return grpc::CreateCustomChannel(target(), grpc::InsecureChannelCredentials(), args);
  }
  void put(const std::string& service, const std::string& id, uint16_t port) {
    ASSERT_GT(client_->put("/services/" + service + "/" + id, instance(port)), 0) << client_->last_error();
  }

  uint16_t xds_port_ = 0;
  int channels_ = 0;
};

TEST_F(XdsProtocol, ResponsesCarryVersionNonceAndTheEtcdEndpointsAndAPutAfterTheAckSendsANewVersion) {
  put("order-service", "a", 9001);
  put("order-service", "b", 9002);
  AdsClient ads(channel(), "ads-ack");

  ASSERT_TRUE(ads.send(kClusterType, {"order-service"}));
  const auto cds = ads.next(kClusterType, kAnswer);
  ASSERT_TRUE(cds) << agent_->output();
  EXPECT_FALSE(cds->version_info().empty());
  EXPECT_FALSE(cds->nonce().empty());
  ASSERT_EQ(cds->resources_size(), 1);
  ASSERT_EQ(cds->resources(0).type_url(), kClusterType);
  envoy::config::cluster::v3::Cluster cluster;
  ASSERT_TRUE(cluster.ParseFromString(cds->resources(0).value()));
  EXPECT_EQ(cluster.name(), "order-service");
  EXPECT_EQ(cluster.type(), envoy::config::cluster::v3::Cluster::EDS);
  EXPECT_TRUE(cluster.eds_cluster_config().eds_config().has_ads());
  EXPECT_EQ(cluster.eds_cluster_config().service_name(), "order-service");
  ASSERT_TRUE(ads.ack(*cds, {"order-service"}));

  ASSERT_TRUE(ads.send(kEndpointsType, {"order-service"}));
  const auto eds = ads.next(kEndpointsType, kAnswer);
  ASSERT_TRUE(eds) << agent_->output();
  EXPECT_EQ(eds->type_url(), kEndpointsType);
  EXPECT_FALSE(eds->version_info().empty());
  EXPECT_FALSE(eds->nonce().empty());
  EXPECT_NE(eds->nonce(), cds->nonce());
  ASSERT_EQ(eds->resources_size(), 1);
  EXPECT_EQ(eds->resources(0).type_url(), "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment");
  envoy::config::endpoint::v3::ClusterLoadAssignment cla;
  ASSERT_TRUE(cla.ParseFromString(eds->resources(0).value()));
  EXPECT_EQ(cla.cluster_name(), "order-service");
  EXPECT_EQ(endpoints(*eds), (std::vector<std::string>{"127.0.0.1:9001", "127.0.0.1:9002"}));
  ASSERT_TRUE(ads.ack(*eds, {"order-service"}));

  put("order-service", "c", 9003);
  const auto update = ads.next(kEndpointsType, kAnswer);
  ASSERT_TRUE(update) << agent_->output();
  EXPECT_NE(update->version_info(), eds->version_info());
  EXPECT_NE(update->nonce(), eds->nonce());
  EXPECT_EQ(endpoints(*update), (std::vector<std::string>{"127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"}));
}

TEST_F(XdsProtocol, NackIsLoggedOnceAndTheStreamKeepsSendingUpdates) {
  put("order-service", "a", 9001);
  AdsClient ads(channel(), "ads-nack");
  ASSERT_TRUE(ads.send(kEndpointsType, {"order-service"}));
  const auto first = ads.next(kEndpointsType, kAnswer);
  ASSERT_TRUE(first) << agent_->output();
  ASSERT_TRUE(ads.ack(*first, {"order-service"}));

  put("order-service", "b", 9002);
  const auto second = ads.next(kEndpointsType, kAnswer);
  ASSERT_TRUE(second) << agent_->output();
  ASSERT_EQ(endpoints(*second).size(), 2u);
  // Rejected: the nonce of the new response, the version the client still runs (the previous one).
  const std::string error = "endpoint 127.0.0.1:9002 refused by the test";
  ASSERT_TRUE(ads.send(kEndpointsType, {"order-service"}, first->version_info(), second->nonce(), error));
  const std::string line = "xds: client ads-nack rejected a endpoints update (it keeps the last one it accepted): " + error;
  ASSERT_TRUE(agent_->wait_for_output(line, kAnswer)) << agent_->output();

  // The same NACK again, then one that also adds a name: a new name wants an answer, and once that answer
  // is here the agent has read the repeated NACK before it.
  ASSERT_TRUE(ads.send(kEndpointsType, {"order-service"}, first->version_info(), second->nonce(), error));
  ASSERT_TRUE(ads.send(kEndpointsType, {"order-service", "other-service"}, first->version_info(), second->nonce(), error));
  const auto marker = ads.next(kEndpointsType, kAnswer);
  ASSERT_TRUE(marker) << agent_->output();
  EXPECT_EQ(agent_->count_in_output(line), 1u);
  EXPECT_FALSE(ads.closed());

  put("order-service", "c", 9003);
  const auto after = ads.next(kEndpointsType, kAnswer);
  ASSERT_TRUE(after) << agent_->output();
  EXPECT_NE(after->version_info(), second->version_info());
  EXPECT_EQ(endpoints(*after), (std::vector<std::string>{"127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"}));
}

TEST_F(XdsProtocol, TwoClientsOnOneServiceBothGetTheUpdateOfOnePut) {
  put("order-service", "a", 9001);
  AdsClient one(channel(), "ads-one");
  AdsClient two(channel(), "ads-two");
  for (AdsClient* ads : {&one, &two}) {
    ASSERT_TRUE(ads->send(kEndpointsType, {"order-service"}));
    const auto initial = ads->next(kEndpointsType, kAnswer);
    ASSERT_TRUE(initial) << agent_->output();
    EXPECT_EQ(endpoints(*initial), std::vector<std::string>{"127.0.0.1:9001"});
    ASSERT_TRUE(ads->ack(*initial, {"order-service"}));
  }

  put("order-service", "b", 9002);
  for (AdsClient* ads : {&one, &two}) {
    const auto update = ads->next(kEndpointsType, kAnswer);
    ASSERT_TRUE(update) << agent_->output();
    EXPECT_EQ(endpoints(*update), (std::vector<std::string>{"127.0.0.1:9001", "127.0.0.1:9002"}));
  }
}

TEST_F(XdsProtocol, ReconnectWithTheLastVersionGetsTheCurrentState) {
  put("order-service", "a", 9001);
  std::string last_version;
  {
    AdsClient first(channel(), "ads-reconnect");
    ASSERT_TRUE(first.send(kEndpointsType, {"order-service"}));
    const auto response = first.next(kEndpointsType, kAnswer);
    ASSERT_TRUE(response) << agent_->output();
    ASSERT_TRUE(first.ack(*response, {"order-service"}));
    last_version = response->version_info();
    EXPECT_EQ(first.close().error_code(), grpc::StatusCode::CANCELLED);
  }
  put("order-service", "b", 9002);  // while no stream is open

  // A new stream: no nonce yet, the version the client holds. Versions are per stream, so the old one
  // never matches and the agent answers at once with what it has.
  AdsClient second(channel(), "ads-reconnect");
  ASSERT_TRUE(second.send(kEndpointsType, {"order-service"}, last_version));
  auto response = second.next(kEndpointsType, kAnswer);
  ASSERT_TRUE(response) << agent_->output();
  EXPECT_NE(response->version_info(), last_version);
  // The catalog may not have applied the put yet when the stream starts: then the next response has it.
  const std::vector<std::string> both = {"127.0.0.1:9001", "127.0.0.1:9002"};
  while (response && endpoints(*response) != both) {
    ASSERT_TRUE(second.ack(*response, {"order-service"}));
    response = second.next(kEndpointsType, kAnswer);
  }
  ASSERT_TRUE(response) << "the second instance never arrived\n" << agent_->output();
  EXPECT_EQ(endpoints(*response), both);
}

TEST_F(XdsProtocol, NamesWithoutInstancesAreLeftOutUntilTheServiceGetsOne) {
  put("order-service", "a", 9001);
  AdsClient ads(channel(), "ads-absent");
  // A service with no instances, and a name that cannot be a service at all (no watch is started for it).
  const std::vector<std::string> wanted = {"order-service", "empty-service", "bad name!"};
  ASSERT_TRUE(ads.send(kListenerType, wanted));
  const auto lds = ads.next(kListenerType, kAnswer);
  ASSERT_TRUE(lds) << agent_->output();
  // State of the world: a name left out of the response does not exist (for now).
  EXPECT_EQ(names(*lds), std::vector<std::string>{"order-service"});
  envoy::config::listener::v3::Listener listener;
  ASSERT_TRUE(listener.ParseFromString(lds->resources(0).value()));
  EXPECT_EQ(listener.api_listener().api_listener().type_url(),
            "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager");
  ASSERT_TRUE(ads.ack(*lds, wanted));

  ASSERT_TRUE(ads.send(kClusterType, wanted));
  const auto cds = ads.next(kClusterType, kAnswer);
  ASSERT_TRUE(cds) << agent_->output();
  EXPECT_EQ(names(*cds), std::vector<std::string>{"order-service"});
  ASSERT_TRUE(ads.ack(*cds, wanted));

  put("empty-service", "a", 9005);
  const auto lds2 = ads.next(kListenerType, kAnswer);
  ASSERT_TRUE(lds2) << agent_->output();
  EXPECT_EQ(names(*lds2), (std::vector<std::string>{"empty-service", "order-service"}));
  const auto cds2 = ads.next(kClusterType, kAnswer);
  ASSERT_TRUE(cds2) << agent_->output();
  EXPECT_EQ(names(*cds2), (std::vector<std::string>{"empty-service", "order-service"}));
}

TEST_F(XdsProtocol, WildcardRequestIsAnsweredWithNoResources) {
  put("order-service", "a", 9001);
  AdsClient ads(channel(), "ads-wildcard");
  // Envoy's CDS and LDS subscriptions name nothing ("everything"); the agent serves named resources only.
  ASSERT_TRUE(ads.send(kClusterType, {}));
  const auto cds = ads.next(kClusterType, kAnswer);
  ASSERT_TRUE(cds) << agent_->output();
  EXPECT_FALSE(cds->version_info().empty());
  EXPECT_EQ(cds->resources_size(), 0);
}

TEST_F(XdsProtocol, ThousandStreamsOnTenServicesAllGetOnePutWithinFiveSeconds) {
  constexpr size_t kStreams = 1000;
  constexpr size_t kServices = 10;
  constexpr size_t kConnections = 4;
  for (size_t k = 0; k < kServices; ++k) put("svc-" + std::to_string(k), "a", static_cast<uint16_t>(10000 + k));

  const std::string added = "127.0.0.1:20000";
  std::mutex mu;
  std::vector<size_t> responses(kStreams, 0);
  std::vector<std::chrono::steady_clock::time_point> updated_at(kStreams);
  size_t answered = 0;  // streams with at least one response
  size_t updated = 0;   // streams that have seen `added`
  AdsFanout fanout(
      target(), kConnections, kStreams, std::string(kEndpointsType),
      [](size_t i) { return "svc-" + std::to_string(i % kServices); },
      [&](size_t i, const Response& response, std::chrono::steady_clock::time_point at) {
        const auto eps = endpoints(response);
        const bool has_added = std::find(eps.begin(), eps.end(), added) != eps.end();
        std::lock_guard lock(mu);
        if (responses[i]++ == 0) ++answered;
        if (has_added && updated_at[i] == std::chrono::steady_clock::time_point{}) {
          updated_at[i] = at;
          ++updated;
        }
      });
  const auto count = [&](const size_t& n) {
    std::lock_guard lock(mu);
    return n;
  };

  const auto started = std::chrono::steady_clock::now();
  fanout.start();
  ASSERT_TRUE(wait_until([&] { return count(answered) == kStreams; }, 15s))
      << count(answered) << " of " << kStreams << " streams answered; failed " << fanout.failed();
  const auto all_answered = std::chrono::steady_clock::now();

  const auto put_at = std::chrono::steady_clock::now();
  put("svc-0", "b", 20000);
  const size_t watching = kStreams / kServices;
  ASSERT_TRUE(wait_until([&] { return count(updated) == watching; }, 5s))
      << count(updated) << " of " << watching << " streams updated";
  std::chrono::steady_clock::time_point last;
  {
    std::lock_guard lock(mu);
    last = *std::max_element(updated_at.begin(), updated_at.end());
  }
  const auto ms = [](auto d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); };
  std::cout << "[ measure  ] " << kStreams << " ADS streams on " << kConnections << " connections answered in "
            << ms(all_answered - started) << " ms; one put reached all " << watching << " watching streams in "
            << ms(last - put_at) << " ms (put to the last response)\n";
  EXPECT_LE(last - put_at, 5s);
  EXPECT_EQ(fanout.failed(), 0u);
}

class XdsProtocolTls : public XdsProtocol {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(start_etcd());
    certs_ = make_certs(dir_.path(), "xds");
    ASSERT_TRUE(certs_);
    ASSERT_NO_FATAL_FAILURE(start_agent("  tls:\n    cert: " + certs_->server.string() + "\n    key: " +
                                        certs_->server_key.string() + "\n    ca: " + certs_->ca.string() + "\n"));
  }
  std::shared_ptr<grpc::Channel> tls_channel(bool with_client_cert) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = read_file(certs_->ca).value_or("");
    if (with_client_cert) {
      ssl.pem_cert_chain = read_file(certs_->client).value_or("");
      ssl.pem_private_key = read_file(certs_->client_key).value_or("");
    }
    grpc::ChannelArguments args;
    args.SetInt("sidecar.test.connection", ++channels_);
    return grpc::CreateCustomChannel(target(), grpc::SslCredentials(ssl), args);
  }

  TempDir dir_{"xds-tls"};
  std::optional<CertSet> certs_;
};

TEST_F(XdsProtocolTls, ClientWithACertificateTheCaSignedGetsEndpointsOneWithoutIsRefused) {
  ASSERT_TRUE(agent_->output_contains("(mTLS)")) << agent_->output();
  put("order-service", "a", 9001);
  AdsClient ads(tls_channel(true), "ads-mtls");
  ASSERT_TRUE(ads.send(kEndpointsType, {"order-service"}));
  const auto eds = ads.next(kEndpointsType, kAnswer);
  ASSERT_TRUE(eds) << agent_->output();
  EXPECT_EQ(endpoints(*eds), std::vector<std::string>{"127.0.0.1:9001"});

  // No client certificate: the handshake fails, so the call ends without a response.
  AdsClient anonymous(tls_channel(false), "ads-anonymous");
  anonymous.send(kEndpointsType, {"order-service"});
  EXPECT_FALSE(anonymous.next(kEndpointsType, kAnswer));
  EXPECT_TRUE(anonymous.closed());
  EXPECT_EQ(anonymous.close().error_code(), grpc::StatusCode::UNAVAILABLE);
}

}  // namespace
}  // namespace sidecar::test
