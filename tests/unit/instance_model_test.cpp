// The richer instance model: what we store (ports, tags, weight, zone, region, state), and the values other
// writers store (seed-style NestJS JSON, etcd Go naming, plain host:port) read back as instances.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "agent/core/instance.hpp"

namespace sidecar::core {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

ServiceSpec rich_spec() {
  ServiceSpec s;
  s.name = "order-service";
  s.id = "order-1";
  s.address = "10.0.0.7";
  s.port = 8080;
  s.ports = {{"http", 8080}, {"grpc", 9090}};
  s.tags = {"v2", "canary"};
  s.weight = 10;
  s.zone = "a";
  s.region = "eu-west";
  s.metadata = {{"version", "1.2.0"}};
  return s;
}

ParsedValue parse(std::string_view value) { return parse_instance_value("x", value); }

TEST(InstanceModel, EncodesRichFieldsAfterTheOldOnesInAFixedOrder) {
  EXPECT_EQ(encode_registration(rich_spec(), InstanceState::kWarning),
            R"({"name":"order-service","id":"order-1","address":"10.0.0.7","port":8080,)"
            R"("metadata":{"version":"1.2.0"},"ports":{"grpc":9090,"http":8080},"tags":["canary","v2"],)"
            R"("weight":10,"zone":"a","region":"eu-west","state":"warning"})");
}

TEST(InstanceModel, PlainServiceEncodesExactlyAsBefore) {
  ServiceSpec s;
  s.name = "s";
  s.id = "s-1";
  s.address = "10.0.0.1";
  s.port = 80;
  EXPECT_EQ(encode_registration(s), R"({"name":"s","id":"s-1","address":"10.0.0.1","port":80,"metadata":{}})");
  s.value_format = ValueFormat::kEtcdEndpoints;
  EXPECT_EQ(encode_registration(s), R"({"Op":0,"Addr":"10.0.0.1:80","Metadata":{}})");
}

TEST(InstanceModel, EtcdEndpointsValueKeepsGoFieldsFirstAndAddsTheRestAtTopLevel) {
  ServiceSpec s = rich_spec();
  s.value_format = ValueFormat::kEtcdEndpoints;
  const std::string value = encode_registration(s);
  EXPECT_THAT(value, ::testing::StartsWith(R"({"Op":0,"Addr":"10.0.0.7:8080","Metadata":{"version":"1.2.0"},)"));
  // Go's encoding/json ignores unknown fields; what matters to it is that Op/Addr/Metadata are unchanged.
  const auto doc = nlohmann::json::parse(value);
  EXPECT_EQ(doc["weight"], 10);
}

TEST(InstanceModel, OurValueRoundTripsEveryField) {
  for (const auto format : {ValueFormat::kSidecarJson, ValueFormat::kEtcdEndpoints}) {
    ServiceSpec s = rich_spec();
    s.value_format = format;
    const ParsedValue p = parse(encode_registration(s, InstanceState::kDraining));
    ASSERT_EQ(p.kind, ParsedValue::Kind::kInstance) << p.instance.error();
    const Instance& i = p.instance;
    EXPECT_EQ(i.endpoint(), "10.0.0.7:8080");
    EXPECT_THAT(i.ports(), ElementsAre(Pair("grpc", 9090), Pair("http", 8080)));
    EXPECT_EQ(i.port_named("grpc"), 9090);
    EXPECT_EQ(i.port_named("admin"), 0);
    EXPECT_THAT(i.tags(), ElementsAre("canary", "v2"));
    EXPECT_TRUE(i.has_tag("canary"));
    EXPECT_FALSE(i.has_tag("v1"));
    EXPECT_EQ(i.weight, 10);
    EXPECT_EQ(i.zone(), "a");
    EXPECT_EQ(i.region(), "eu-west");
    EXPECT_EQ(i.state, InstanceState::kDraining);
    EXPECT_EQ(i.metadata_json, R"({"version":"1.2.0"})");
  }
}

TEST(InstanceModel, PlainInstanceHasNoExtrasBlockAndEmptyAccessors) {
  const ParsedValue p = parse(R"({"address":"h","port":1,"metadata":{}})");
  ASSERT_EQ(p.kind, ParsedValue::Kind::kInstance);
  EXPECT_EQ(p.instance.extras, nullptr);
  EXPECT_TRUE(p.instance.tags().empty());
  EXPECT_TRUE(p.instance.ports().empty());
  EXPECT_EQ(p.instance.zone(), "");
  EXPECT_EQ(p.instance.weight, 1);
  EXPECT_EQ(p.instance.state, InstanceState::kPassing);
}

TEST(InstanceModel, StaysWithinSixteenBytesOfTheOldLayout) {
  // Before the rich fields: 4 strings (id, address, metadata_json, error) + int port + 3 x int64.
  constexpr size_t kOldSize = 4 * sizeof(std::string) + 8 + 3 * sizeof(int64_t);
  static_assert(sizeof(Instance) <= kOldSize + 16, "the rich fields belong in InstanceExtras");
  EXPECT_LE(sizeof(Instance), kOldSize + 16);
}

TEST(ForeignValues, SeedStyleAddressAndPort) {
  const ParsedValue p = parse(R"({"address":"10.0.0.9","port":3000})");
  ASSERT_EQ(p.kind, ParsedValue::Kind::kInstance);
  EXPECT_EQ(p.instance.endpoint(), "10.0.0.9:3000");
  EXPECT_EQ(p.instance.metadata_json, "{}");
}

TEST(ForeignValues, SeedStyleExtraFieldsBecomeMetadata) {
  const ParsedValue p =
      parse(R"({"name":"order","address":"10.0.0.9","port":3000,"version":"1.2.0","build":7,"weight":5})");
  ASSERT_EQ(p.kind, ParsedValue::Kind::kInstance);
  // Defined fields (name, address, port, weight) are not metadata; the rest is.
  EXPECT_EQ(p.instance.metadata_json, R"({"build":7,"version":"1.2.0"})");
  EXPECT_EQ(p.instance.weight, 5);
}

TEST(ForeignValues, AMetadataObjectWinsOverExtraFields) {
  const ParsedValue p = parse(R"({"address":"h","port":1,"metadata":{"a":"1"},"version":"2"})");
  ASSERT_EQ(p.kind, ParsedValue::Kind::kInstance);
  EXPECT_EQ(p.instance.metadata_json, R"({"a":"1"})");
}

TEST(ForeignValues, GoNamingWithMetadata) {
  const ParsedValue p = parse(R"({"Op":0,"Addr":"10.0.0.5:9000","Metadata":{"version":"3"}})");
  ASSERT_EQ(p.kind, ParsedValue::Kind::kInstance);
  EXPECT_EQ(p.instance.endpoint(), "10.0.0.5:9000");
  EXPECT_EQ(p.instance.metadata_json, R"({"version":"3"})");
}

TEST(ForeignValues, GoNamingWithAttributesAndNullMetadata) {
  const ParsedValue p = parse(R"({"Op":0,"Addr":"10.0.0.5:9000","Metadata":null,"Attributes":{"zone":"b"}})");
  ASSERT_EQ(p.kind, ParsedValue::Kind::kInstance);
  EXPECT_EQ(p.instance.metadata_json, R"({"zone":"b"})");
}

TEST(ForeignValues, PlainHostPortText) {
  for (const char* text : {"10.0.0.9:3000", "10.0.0.9:3000\n", " db.internal:5432 ", "[::1]:8080"}) {
    const ParsedValue p = parse(text);
    ASSERT_EQ(p.kind, ParsedValue::Kind::kInstance) << text << ": " << p.instance.error();
  }
  EXPECT_EQ(parse("[::1]:8080").instance.address, "::1");
  EXPECT_EQ(parse("db.internal:5432\n").instance.endpoint(), "db.internal:5432");
}

TEST(ForeignValues, MalformedTextIsInvalidNotFatal) {
  for (const char* text : {"hello", "10.0.0.9", "10.0.0.9:0", "a b:80", "{\"address\":", "x;rm:80"}) {
    const ParsedValue p = parse(text);
    EXPECT_EQ(p.kind, ParsedValue::Kind::kInvalid) << text;
    EXPECT_FALSE(p.instance.valid());
    EXPECT_FALSE(p.instance.error().empty());
  }
}

TEST(ForeignValues, WeightOutOfRangeIsClampedAndJunkIsTheDefault) {
  EXPECT_EQ(parse(R"({"address":"h","port":1,"weight":0})").instance.weight, 1);
  EXPECT_EQ(parse(R"({"address":"h","port":1,"weight":-5})").instance.weight, 1);
  EXPECT_EQ(parse(R"({"address":"h","port":1,"weight":50000})").instance.weight, 10000);
  EXPECT_EQ(parse(R"({"address":"h","port":1,"weight":"20"})").instance.weight, 20);
  EXPECT_EQ(parse(R"({"address":"h","port":1,"weight":2.7})").instance.weight, 2);
  EXPECT_EQ(parse(R"({"address":"h","port":1,"weight":"heavy"})").instance.weight, 1);
  EXPECT_EQ(parse(R"({"address":"h","port":1,"weight":1e300})").instance.weight, 10000);
  EXPECT_EQ(parse(R"({"address":"h","port":1,"weight":"99999999999999999999"})").instance.weight, 10000);
}

TEST(ForeignValues, BadPortsTagsAndZonesAreDroppedNotFatal) {
  const ParsedValue p = parse(
      R"({"address":"h","port":1,"ports":{"http":80,"BAD":81,"grpc":70000,"x":"82"},)"
      R"("tags":["ok",7,"not ok","ok"],"zone":"eu west","region":5})");
  ASSERT_EQ(p.kind, ParsedValue::Kind::kInstance);
  EXPECT_THAT(p.instance.ports(), ElementsAre(Pair("http", 80), Pair("x", 82)));
  EXPECT_THAT(p.instance.tags(), ElementsAre("ok"));
  EXPECT_EQ(p.instance.zone(), "");
  EXPECT_EQ(p.instance.region(), "");
}

TEST(PublicationStates, EveryKnownStateIsRead) {
  for (const auto state : {InstanceState::kPassing, InstanceState::kWarning, InstanceState::kMaintenance,
                           InstanceState::kDraining}) {
    const std::string value =
        R"({"address":"h","port":1,"state":")" + std::string(to_string(state)) + "\"}";
    const ParsedValue p = parse(value);
    ASSERT_EQ(p.kind, ParsedValue::Kind::kInstance);
    EXPECT_EQ(p.instance.state, state);
  }
}

TEST(PublicationStates, UnknownStateMakesTheValueInvalidSoItIsNotRoutedTo) {
  const ParsedValue text = parse(R"({"address":"h","port":1,"state":"critical"})");
  EXPECT_EQ(text.kind, ParsedValue::Kind::kInvalid);
  EXPECT_THAT(text.instance.error(), HasSubstr("unknown state \"critical\""));
  EXPECT_EQ(parse(R"({"address":"h","port":1,"state":1})").kind, ParsedValue::Kind::kInvalid);
  EXPECT_EQ(parse(R"({"address":"h","port":1,"state":"PASSING"})").kind, ParsedValue::Kind::kInvalid);
}

TEST(PublicationStates, OnlyPassingAndWarningAreShownByDefault) {
  EXPECT_TRUE(shown_by_default(InstanceState::kPassing));
  EXPECT_TRUE(shown_by_default(InstanceState::kWarning));
  EXPECT_FALSE(shown_by_default(InstanceState::kMaintenance));
  EXPECT_FALSE(shown_by_default(InstanceState::kDraining));
}

TEST(InstanceModel, SameRenderingSeesWeightStateAndExtras) {
  const Instance a = parse(R"({"address":"h","port":1,"tags":["x"]})").instance;
  const Instance b = parse(R"({"port":1,"tags":["x"],"address":"h"})").instance;
  EXPECT_TRUE(a.same_rendering(b));  // equal content in separate blocks
  EXPECT_FALSE(a.same_rendering(parse(R"({"address":"h","port":1,"tags":["y"]})").instance));
  EXPECT_FALSE(a.same_rendering(parse(R"({"address":"h","port":1,"tags":["x"],"weight":2})").instance));
  EXPECT_FALSE(a.same_rendering(parse(R"({"address":"h","port":1,"tags":["x"],"state":"warning"})").instance));
}

TEST(InstanceModel, InstancesWithEqualExtrasShareOneBlock) {
  // 100,000 instances in a few zones must not cost 100,000 blocks.
  const Instance a = parse(R"({"address":"10.0.0.1","port":1,"zone":"z1","tags":["v2"]})").instance;
  const Instance other = parse(R"({"address":"10.0.0.3","port":1,"zone":"z2","tags":["v2"]})").instance;
  const Instance b = parse(R"({"address":"10.0.0.2","port":2,"tags":["v2"],"zone":"z1"})").instance;
  ASSERT_NE(a.extras, nullptr);
  EXPECT_EQ(a.extras.get(), b.extras.get());
  EXPECT_NE(a.extras.get(), other.extras.get());
  EXPECT_EQ(other.zone(), "z2");
}

TEST(InstanceModel, SetErrorKeepsTheOtherExtrasAndDoesNotTouchCopies) {
  Instance a = parse(R"({"address":"h","port":1,"zone":"z"})").instance;
  const Instance copy = a;
  const Instance sharing = parse(R"({"address":"h2","port":1,"zone":"z"})").instance;
  a.set_error("broken");
  EXPECT_FALSE(a.valid());
  EXPECT_EQ(a.zone(), "z");
  EXPECT_TRUE(copy.valid());
  EXPECT_TRUE(sharing.valid());  // a shared block is copied, not changed
}

}  // namespace
}  // namespace sidecar::core
