// core::dns: query names in Consul's shape, the rcode rules, the records each type gets, and the weighted
// rotation. No packets, no sockets.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "agent/core/dns_query.hpp"
#include "agent/core/instance.hpp"

namespace sidecar::core::dns {
namespace {

std::vector<std::string_view> labels(const std::vector<std::string>& storage) {
  return {storage.begin(), storage.end()};
}

Name parse(const std::vector<std::string>& l) { return parse_name(labels(l), domain_labels("sidecar.")); }

class DnsPlan : public ::testing::Test {
 protected:
  void add(const std::string& id, const std::string& value) {
    store_.push_back(parse_instance_value(id, value).instance);
    ASSERT_TRUE(store_.back().valid()) << value;
  }
  std::vector<const Instance*> sorted() const {
    std::vector<const Instance*> out;
    for (const auto& i : store_) out.push_back(&i);
    return out;
  }
  AnswerSet plan(const std::vector<std::string>& name, uint16_t qtype) {
    return plan_answers(parse(name), qtype, sorted(), PlanContext{"sidecar.", "a"});
  }
  static std::string ip4(const Record& r) {
    return std::to_string(r.ip[0]) + "." + std::to_string(r.ip[1]) + "." + std::to_string(r.ip[2]) + "." +
           std::to_string(r.ip[3]);
  }
  std::vector<Instance> store_;
};

TEST(DnsName, ParsesServiceTagZoneNamedPortAndInstance) {
  const Name plain = parse({"order-service", "service", "sidecar"});
  EXPECT_EQ(plain.kind, Name::Kind::kService);
  EXPECT_EQ(plain.service, "order-service");
  const Name tagged = parse({"v2", "order-service", "SERVICE", "Sidecar"});
  EXPECT_EQ(tagged.kind, Name::Kind::kService);
  EXPECT_EQ(tagged.tag, "v2");
  const Name zoned = parse({"order-service", "service", "a", "zone", "sidecar"});
  EXPECT_EQ(zoned.zone, "a");
  EXPECT_EQ(zoned.service, "order-service");
  const Name srv = parse({"_GRPC", "_tcp", "order-service", "service", "sidecar"});
  EXPECT_EQ(srv.kind, Name::Kind::kService);
  EXPECT_EQ(srv.port_name, "grpc");
  EXPECT_EQ(srv.tag, "");
  const Name inst = parse({"i1", "order-service", "instance", "sidecar"});
  EXPECT_EQ(inst.kind, Name::Kind::kInstance);
  EXPECT_EQ(inst.id, "i1");
}

TEST(DnsName, TellsOutsideApexAndUnknownApart) {
  EXPECT_EQ(parse({"example", "com"}).kind, Name::Kind::kOutside);
  EXPECT_EQ(parse({}).kind, Name::Kind::kOutside);
  EXPECT_EQ(parse({"sidecar"}).kind, Name::Kind::kApex);
  EXPECT_EQ(parse({"x", "sidecar"}).kind, Name::Kind::kUnknown);
  EXPECT_EQ(parse({"a", "b", "c", "service", "sidecar"}).kind, Name::Kind::kUnknown);
  EXPECT_EQ(parse({"service", "sidecar"}).kind, Name::Kind::kUnknown);
}

TEST_F(DnsPlan, AnswersOnlyPublishedSelectedInstancesAndOneRecordPerAddress) {
  add("a", R"({"address":"10.0.0.1","port":80,"tags":["v2"],"zone":"a"})");
  add("b", R"({"address":"10.0.0.2","port":80,"state":"warning","zone":"b"})");
  add("c", R"({"address":"10.0.0.3","port":80,"state":"draining"})");
  add("d", R"({"address":"10.0.0.1","port":81})");
  add("e", R"({"address":"::1","port":80})");
  const AnswerSet all = plan({"web", "service", "sidecar"}, kTypeA);
  EXPECT_EQ(all.rcode, Rcode::kNoError);
  ASSERT_EQ(all.answers.size(), 2u);
  EXPECT_EQ(ip4(all.answers[0]), "10.0.0.1");
  EXPECT_EQ(all.answers[0].weight, 2) << "a and d share the address: their weights add up";
  EXPECT_EQ(ip4(all.answers[1]), "10.0.0.2");
  const AnswerSet v2 = plan({"v2", "web", "service", "sidecar"}, kTypeA);
  ASSERT_EQ(v2.answers.size(), 1u);
  EXPECT_EQ(ip4(v2.answers[0]), "10.0.0.1");
  const AnswerSet zone_b = plan({"web", "service", "b", "zone", "sidecar"}, kTypeA);
  ASSERT_EQ(zone_b.answers.size(), 1u);
  EXPECT_EQ(ip4(zone_b.answers[0]), "10.0.0.2");
  const AnswerSet v6 = plan({"web", "service", "sidecar"}, kTypeAaaa);
  ASSERT_EQ(v6.answers.size(), 1u);
  EXPECT_EQ(v6.answers[0].kind, Record::Kind::kAaaa);
  EXPECT_EQ(v6.answers[0].ip[15], 1);
}

TEST_F(DnsPlan, NoSelectedInstanceIsNxdomainAndAMissingTypeIsNodataBothWithTheSoa) {
  add("a", R"({"address":"10.0.0.1","port":80,"state":"maintenance"})");
  add("b", R"({"address":"10.0.0.2","port":80,"tags":["v1"]})");
  const AnswerSet none = plan({"v2", "web", "service", "sidecar"}, kTypeA);
  EXPECT_EQ(none.rcode, Rcode::kNxDomain);
  EXPECT_TRUE(none.soa_authority);
  EXPECT_TRUE(none.answers.empty());
  const AnswerSet nodata = plan({"web", "service", "sidecar"}, kTypeAaaa);
  EXPECT_EQ(nodata.rcode, Rcode::kNoError);
  EXPECT_TRUE(nodata.soa_authority);
  EXPECT_TRUE(nodata.answers.empty());
  const AnswerSet txt = plan({"web", "service", "sidecar"}, 16);
  EXPECT_EQ(txt.rcode, Rcode::kNoError);
  EXPECT_TRUE(txt.answers.empty());
  EXPECT_EQ(plan({"nonsense", "sidecar"}, kTypeA).rcode, Rcode::kNxDomain);
  EXPECT_TRUE(plan({"sidecar"}, kTypeSoa).soa_answer);
}

TEST_F(DnsPlan, SrvGivesTheDefaultOrNamedPortAndInstanceTargetsWithTheirAddresses) {
  add("a", R"({"address":"10.0.0.1","port":80,"ports":{"grpc":9090},"weight":7})");
  add("b", R"({"address":"10.0.0.2","port":81})");
  const AnswerSet srv = plan({"web", "service", "sidecar"}, kTypeSrv);
  ASSERT_EQ(srv.answers.size(), 2u);
  EXPECT_EQ(srv.answers[0].port, 80);
  EXPECT_EQ(srv.answers[0].weight, 7);
  EXPECT_EQ(srv.answers[0].target, "a.web.instance.sidecar.");
  ASSERT_GE(srv.answers[0].extra, 0);
  EXPECT_EQ(srv.extra[static_cast<size_t>(srv.answers[0].extra)].owner, "a.web.instance.sidecar.");
  EXPECT_EQ(ip4(srv.extra[static_cast<size_t>(srv.answers[0].extra)]), "10.0.0.1");
  const AnswerSet grpc = plan({"_grpc", "_tcp", "web", "service", "sidecar"}, kTypeSrv);
  ASSERT_EQ(grpc.answers.size(), 1u) << "b has no port named grpc";
  EXPECT_EQ(grpc.answers[0].port, 9090);
  const AnswerSet inst = plan({"b", "web", "instance", "sidecar"}, kTypeA);
  ASSERT_EQ(inst.answers.size(), 1u);
  EXPECT_EQ(ip4(inst.answers[0]), "10.0.0.2");
}

TEST_F(DnsPlan, AHostNameIsACnameOnAddressQueriesAndTheSrvTarget) {
  add("h", R"({"address":"db.example.com","port":5432})");
  const AnswerSet a = plan({"db", "service", "sidecar"}, kTypeA);
  ASSERT_EQ(a.answers.size(), 1u);
  EXPECT_EQ(a.answers[0].kind, Record::Kind::kCname);
  EXPECT_EQ(a.answers[0].target, "db.example.com.");
  EXPECT_TRUE(a.single);
  const AnswerSet srv = plan({"db", "service", "sidecar"}, kTypeSrv);
  ASSERT_EQ(srv.answers.size(), 1u);
  EXPECT_EQ(srv.answers[0].target, "db.example.com.");
  EXPECT_EQ(srv.answers[0].extra, -1);
}

TEST_F(DnsPlan, RotationStartsAtEachRecordAsOftenAsItsWeightAndSpreadsThem) {
  add("a", R"({"address":"10.0.0.1","port":80,"weight":3})");
  add("b", R"({"address":"10.0.0.2","port":80})");
  add("c", R"({"address":"10.0.0.3","port":80})");
  const AnswerSet set = plan({"web", "service", "sidecar"}, kTypeA);
  std::map<size_t, int> first;
  std::vector<size_t> starts;
  for (uint64_t q = 0; q < 5 * 10; ++q) {
    starts.push_back(rotation_start(set, q));
    ++first[starts.back()];
  }
  EXPECT_EQ(first[0], 30);
  EXPECT_EQ(first[1], 10);
  EXPECT_EQ(first[2], 10);
  // Not three queries in a row on the heavy one, then one on each of the others: they alternate.
  int changes = 0;
  for (size_t i = 1; i < starts.size(); ++i) changes += starts[i] != starts[i - 1] ? 1 : 0;
  EXPECT_GT(changes, 20);
}

TEST_F(DnsPlan, OneInstanceOrAnInstanceNameNeverRotates) {
  add("a", R"({"address":"10.0.0.1","port":80})");
  const AnswerSet set = plan({"web", "service", "sidecar"}, kTypeA);
  for (uint64_t q = 0; q < 5; ++q) EXPECT_EQ(rotation_start(set, q), 0u);
}

}  // namespace
}  // namespace sidecar::core::dns
