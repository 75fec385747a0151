#include "agent/core/xds_stream.hpp"

#include <gtest/gtest.h>

#include <map>

namespace sidecar::core::xds {
namespace {

using Kind = RequestResult::Kind;

// The resource cache as the stream sees it: name -> state; anything else is absent.
struct FakeCache {
  std::map<std::string, ResourceState> states;
  XdsStream::Lookup lookup() {
    return [this](const std::string& name) {
      const auto it = states.find(name);
      return it == states.end() ? ResourceState{ResourceState::Kind::kAbsent, 0} : it->second;
    };
  }
  void present(const std::string& name, uint64_t version) { states[name] = {ResourceState::Kind::kPresent, version}; }
  void pending(const std::string& name) { states[name] = {ResourceState::Kind::kPending, 0}; }
};

Request request(ResourceType type, std::vector<std::string> names, std::string nonce = "", std::string version = "") {
  Request r;
  r.type = type;
  r.names = std::move(names);
  r.response_nonce = std::move(nonce);
  r.version_info = std::move(version);
  return r;
}

TEST(XdsStream, TypeUrlsAreEnvoysV3Names) {
  EXPECT_EQ(type_url(ResourceType::kListener), "type.googleapis.com/envoy.config.listener.v3.Listener");
  EXPECT_EQ(resource_type_of("type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"),
            ResourceType::kEndpoints);
  EXPECT_EQ(resource_type_of("type.googleapis.com/envoy.api.v2.Listener"), std::nullopt);
}

TEST(XdsStream, FirstRequestIsAnsweredWithThePresentResources) {
  FakeCache cache;
  cache.present("order", 1);
  XdsStream s(7);
  const RequestResult r = s.on_request(request(ResourceType::kListener, {"order"}));
  EXPECT_EQ(r.kind, Kind::kInitial);
  EXPECT_EQ(r.subscribed, std::vector<std::string>{"order"});
  const auto resp = s.next_response(ResourceType::kListener, cache.lookup());
  ASSERT_TRUE(resp);
  EXPECT_EQ(resp->names, std::vector<std::string>{"order"});
  EXPECT_EQ(resp->version_info, "7.1");
  EXPECT_FALSE(resp->nonce.empty());
  // Sent once: nothing is due until something changes.
  EXPECT_FALSE(s.next_response(ResourceType::kListener, cache.lookup()));
}

TEST(XdsStream, PendingNameHoldsTheResponseUntilItsLookupEnds) {
  FakeCache cache;
  cache.pending("order");
  XdsStream s(1);
  s.on_request(request(ResourceType::kCluster, {"order"}));
  EXPECT_FALSE(s.next_response(ResourceType::kCluster, cache.lookup()));
  cache.present("order", 3);
  const auto resp = s.next_response(ResourceType::kCluster, cache.lookup());
  ASSERT_TRUE(resp);
  EXPECT_EQ(resp->names, std::vector<std::string>{"order"});
}

TEST(XdsStream, UnknownNameGetsAnEmptyResponseSoTheClientKnowsItDoesNotExist) {
  FakeCache cache;
  XdsStream s(1);
  s.on_request(request(ResourceType::kListener, {"nope"}));
  const auto resp = s.next_response(ResourceType::kListener, cache.lookup());
  ASSERT_TRUE(resp);
  EXPECT_TRUE(resp->names.empty());
}

TEST(XdsStream, AckRecordsTheVersionAndAChangeSendsANewOne) {
  FakeCache cache;
  cache.present("order", 1);
  XdsStream s(1);
  s.on_request(request(ResourceType::kEndpoints, {"order"}));
  const auto first = s.next_response(ResourceType::kEndpoints, cache.lookup());
  ASSERT_TRUE(first);
  const RequestResult ack = s.on_request(request(ResourceType::kEndpoints, {"order"}, first->nonce, first->version_info));
  EXPECT_EQ(ack.kind, Kind::kAck);
  EXPECT_EQ(s.accepted_version(ResourceType::kEndpoints), first->version_info);
  EXPECT_FALSE(s.next_response(ResourceType::kEndpoints, cache.lookup()));  // an ACK is not answered
  cache.present("order", 2);
  const auto second = s.next_response(ResourceType::kEndpoints, cache.lookup());
  ASSERT_TRUE(second);
  EXPECT_NE(second->version_info, first->version_info);
  EXPECT_NE(second->nonce, first->nonce);
}

TEST(XdsStream, NackKeepsTheAcceptedVersionAndIsReportedOnce) {
  FakeCache cache;
  cache.present("order", 1);
  XdsStream s(1);
  s.on_request(request(ResourceType::kCluster, {"order"}));
  const auto first = s.next_response(ResourceType::kCluster, cache.lookup());
  s.on_request(request(ResourceType::kCluster, {"order"}, first->nonce, first->version_info));
  cache.present("order", 2);
  const auto bad = s.next_response(ResourceType::kCluster, cache.lookup());
  ASSERT_TRUE(bad);
  Request nack = request(ResourceType::kCluster, {"order"}, bad->nonce, first->version_info);
  nack.nack = true;
  nack.error = "bad cluster";
  const RequestResult r1 = s.on_request(nack);
  EXPECT_EQ(r1.kind, Kind::kNack);
  EXPECT_TRUE(r1.first_nack);
  EXPECT_EQ(s.accepted_version(ResourceType::kCluster), first->version_info);
  // The same rejected response is not re-sent, and a repeated NACK of it is not reported again.
  EXPECT_FALSE(s.next_response(ResourceType::kCluster, cache.lookup()));
  EXPECT_FALSE(s.on_request(nack).first_nack);
  // The next change is sent.
  cache.present("order", 3);
  EXPECT_TRUE(s.next_response(ResourceType::kCluster, cache.lookup()));
}

TEST(XdsStream, StaleNonceIsIgnoredNamesAndAll) {
  FakeCache cache;
  cache.present("a", 1);
  cache.present("b", 1);
  XdsStream s(1);
  s.on_request(request(ResourceType::kListener, {"a"}));
  const auto first = s.next_response(ResourceType::kListener, cache.lookup());
  cache.present("a", 2);
  const auto second = s.next_response(ResourceType::kListener, cache.lookup());
  ASSERT_TRUE(second);
  const RequestResult stale = s.on_request(request(ResourceType::kListener, {"a", "b"}, first->nonce));
  EXPECT_EQ(stale.kind, Kind::kStale);
  EXPECT_TRUE(stale.subscribed.empty());
  EXPECT_EQ(s.names(ResourceType::kListener), std::set<std::string>{"a"});
  const RequestResult ack = s.on_request(request(ResourceType::kListener, {"a", "b"}, second->nonce));
  EXPECT_EQ(ack.kind, Kind::kAck);
  EXPECT_EQ(ack.subscribed, std::vector<std::string>{"b"});
  const auto third = s.next_response(ResourceType::kListener, cache.lookup());
  ASSERT_TRUE(third);
  EXPECT_EQ(third->names, (std::vector<std::string>{"a", "b"}));
}

TEST(XdsStream, DroppedNameIsUnsubscribedWithoutAResponse) {
  FakeCache cache;
  cache.present("a", 1);
  cache.present("b", 1);
  XdsStream s(1);
  s.on_request(request(ResourceType::kEndpoints, {"a", "b"}));
  const auto first = s.next_response(ResourceType::kEndpoints, cache.lookup());
  const RequestResult r = s.on_request(request(ResourceType::kEndpoints, {"a"}, first->nonce));
  EXPECT_EQ(r.unsubscribed, std::vector<std::string>{"b"});
  EXPECT_FALSE(s.next_response(ResourceType::kEndpoints, cache.lookup()));
  cache.present("b", 2);  // no longer wanted: no response
  EXPECT_FALSE(s.next_response(ResourceType::kEndpoints, cache.lookup()));
}

TEST(XdsStream, ResourceThatDisappearsIsLeftOutOfTheNextResponse) {
  FakeCache cache;
  cache.present("a", 1);
  XdsStream s(1);
  s.on_request(request(ResourceType::kListener, {"a"}));
  ASSERT_TRUE(s.next_response(ResourceType::kListener, cache.lookup()));
  cache.states.erase("a");
  const auto resp = s.next_response(ResourceType::kListener, cache.lookup());
  ASSERT_TRUE(resp);
  EXPECT_TRUE(resp->names.empty());
}

TEST(XdsStream, TypesAreIndependentAndNonceIsUniquePerStream) {
  FakeCache cache;
  cache.present("a", 1);
  XdsStream s(1);
  s.on_request(request(ResourceType::kListener, {"a"}));
  s.on_request(request(ResourceType::kCluster, {"a"}));
  EXPECT_FALSE(s.next_response(ResourceType::kEndpoints, cache.lookup()));  // never requested
  const auto l = s.next_response(ResourceType::kListener, cache.lookup());
  const auto c = s.next_response(ResourceType::kCluster, cache.lookup());
  ASSERT_TRUE(l && c);
  EXPECT_NE(l->nonce, c->nonce);
  EXPECT_EQ(s.all_names(), std::set<std::string>{"a"});
}

TEST(XdsStream, RequestWithoutNonceStartsOverAndIsAnswered) {
  FakeCache cache;
  cache.present("a", 1);
  XdsStream s(1);
  s.on_request(request(ResourceType::kListener, {"a"}));
  ASSERT_TRUE(s.next_response(ResourceType::kListener, cache.lookup()));
  const RequestResult again = s.on_request(request(ResourceType::kListener, {"a"}, "", "1.1"));
  EXPECT_EQ(again.kind, Kind::kInitial);
  EXPECT_TRUE(s.next_response(ResourceType::kListener, cache.lookup()));
}

}  // namespace
}  // namespace sidecar::core::xds
