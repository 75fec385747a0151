#include "agent/core/instance.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace sidecar::core {
namespace {

ServiceSpec order_service() {
  ServiceSpec s;
  s.name = "order-service";
  s.id = "order-1";
  s.address = "10.0.0.5";
  s.port = 8080;
  s.metadata = {{"zone", "eu-1"}, {"version", "1.2.3"}};
  return s;
}

TEST(EncodeRegistration, SidecarJsonHasFixedKeyOrderAndSortedMetadata) {
  EXPECT_EQ(encode_registration(order_service()),
            R"({"name":"order-service","id":"order-1","address":"10.0.0.5","port":8080,)"
            R"("metadata":{"version":"1.2.3","zone":"eu-1"}})");
}

TEST(EncodeRegistration, SidecarJsonEmptyMetadataIsAnObject) {
  ServiceSpec s = order_service();
  s.metadata.clear();
  EXPECT_EQ(encode_registration(s),
            R"({"name":"order-service","id":"order-1","address":"10.0.0.5","port":8080,"metadata":{}})");
}

TEST(EncodeRegistration, EtcdEndpointsFormatUsesOpAddrMetadata) {
  ServiceSpec s = order_service();
  s.value_format = ValueFormat::kEtcdEndpoints;
  EXPECT_EQ(encode_registration(s), R"({"Op":0,"Addr":"10.0.0.5:8080","Metadata":{"version":"1.2.3","zone":"eu-1"}})");
}

TEST(EncodeRegistration, EtcdEndpointsBracketsIpv6) {
  ServiceSpec s = order_service();
  s.value_format = ValueFormat::kEtcdEndpoints;
  s.address = "::1";
  s.metadata.clear();
  EXPECT_EQ(encode_registration(s), R"({"Op":0,"Addr":"[::1]:8080","Metadata":{}})");
  s.address = "[::1]";  // already bracketed in the manifest: not doubled
  EXPECT_EQ(encode_registration(s), R"({"Op":0,"Addr":"[::1]:8080","Metadata":{}})");
}

TEST(EncodeRegistration, SidecarJsonStoresIpv6WithoutBrackets) {
  ServiceSpec s = order_service();
  s.address = "[fe80::1]";
  auto j = nlohmann::json::parse(encode_registration(s));
  EXPECT_EQ(j["address"], "fe80::1");
}

TEST(EncodeRegistration, EscapesSpecialCharactersAndReplacesInvalidUtf8) {
  ServiceSpec s = order_service();
  s.metadata = {{"note", "a \"quoted\"\nline"}, {"bad", std::string("x\xff")}};
  std::string out = encode_registration(s);
  auto j = nlohmann::json::parse(out);  // must be valid JSON
  EXPECT_EQ(j["metadata"]["note"], "a \"quoted\"\nline");
  EXPECT_EQ(j["metadata"]["bad"], "x\xEF\xBF\xBD");
}

TEST(EncodeRegistration, RoundTripsThroughParserForBothFormats) {
  for (auto fmt : {ValueFormat::kSidecarJson, ValueFormat::kEtcdEndpoints}) {
    ServiceSpec s = order_service();
    s.value_format = fmt;
    ParsedValue p = parse_instance_value("order-1", encode_registration(s));
    ASSERT_EQ(p.kind, ParsedValue::Kind::kInstance) << p.instance.error();
    EXPECT_EQ(p.instance.address, "10.0.0.5");
    EXPECT_EQ(p.instance.port, 8080);
    EXPECT_EQ(p.instance.metadata_json, R"({"version":"1.2.3","zone":"eu-1"})");
  }
}

TEST(ParseInstanceValue, ReadsOurOwnFormat) {
  ParsedValue p = parse_instance_value(
      "a", R"({"name":"s","id":"ignored","address":"10.1.2.3","port":3000,"metadata":{"z":"1","a":"2"}})");
  ASSERT_EQ(p.kind, ParsedValue::Kind::kInstance);
  EXPECT_TRUE(p.instance.valid());
  EXPECT_EQ(p.instance.id, "a");  // the key decides the id, not the value
  EXPECT_EQ(p.instance.address, "10.1.2.3");
  EXPECT_EQ(p.instance.port, 3000);
  EXPECT_EQ(p.instance.metadata_json, R"({"a":"2","z":"1"})");
  EXPECT_EQ(p.instance.metadata()["z"], "1");
}

TEST(ParseInstanceValue, ReadsForeignNestJsShapeIgnoringUnknownFields) {
  ParsedValue p = parse_instance_value("x", R"({"address":"10.1.2.3","port":3000,"name":"x","weight":5})");
  ASSERT_EQ(p.kind, ParsedValue::Kind::kInstance);
  EXPECT_EQ(p.instance.address, "10.1.2.3");
  EXPECT_EQ(p.instance.port, 3000);
  EXPECT_EQ(p.instance.metadata_json, "{}");
}

TEST(ParseInstanceValue, AcceptsHostAndIpFieldNamesAndStringPort) {
  ParsedValue h = parse_instance_value("x", R"({"host":"db.internal","port":"5432"})");
  ASSERT_EQ(h.kind, ParsedValue::Kind::kInstance);
  EXPECT_EQ(h.instance.address, "db.internal");
  EXPECT_EQ(h.instance.port, 5432);
  ParsedValue i = parse_instance_value("x", R"({"ip":"192.168.0.1","Port":80})");
  ASSERT_EQ(i.kind, ParsedValue::Kind::kInstance);
  EXPECT_EQ(i.instance.address, "192.168.0.1");
  EXPECT_EQ(i.instance.port, 80);
}

TEST(ParseInstanceValue, ReadsEtcdEndpointsFormat) {
  ParsedValue p = parse_instance_value("x", R"({"Op":0,"Addr":"10.0.0.1:9000","Metadata":{"w":2}})");
  ASSERT_EQ(p.kind, ParsedValue::Kind::kInstance);
  EXPECT_EQ(p.instance.address, "10.0.0.1");
  EXPECT_EQ(p.instance.port, 9000);
  EXPECT_EQ(p.instance.metadata_json, R"({"w":2})");
}

TEST(ParseInstanceValue, EtcdEndpointsNullMetadataIsEmpty) {
  ParsedValue p = parse_instance_value("x", R"({"Op":0,"Addr":"h:1","Metadata":null})");
  ASSERT_EQ(p.kind, ParsedValue::Kind::kInstance);
  EXPECT_EQ(p.instance.metadata_json, "{}");
}

TEST(ParseInstanceValue, EtcdEndpointsIpv6Addr) {
  ParsedValue p = parse_instance_value("x", R"({"Addr":"[2001:db8::7]:443"})");
  ASSERT_EQ(p.kind, ParsedValue::Kind::kInstance);
  EXPECT_EQ(p.instance.address, "2001:db8::7");
  EXPECT_EQ(p.instance.port, 443);
  EXPECT_EQ(p.instance.endpoint(), "[2001:db8::7]:443");
}

TEST(ParseInstanceValue, EtcdEndpointsDeleteOpIsADeleteMarker) {
  ParsedValue p = parse_instance_value("x", R"({"Op":1,"Addr":"10.0.0.1:9000"})");
  EXPECT_EQ(p.kind, ParsedValue::Kind::kDeleteMarker);
  EXPECT_NE(p.instance.error().find("Op"), std::string::npos);
}

TEST(ParseInstanceValue, UnknownOpIsInvalid) {
  ParsedValue p = parse_instance_value("x", R"({"Op":7,"Addr":"10.0.0.1:9000"})");
  EXPECT_EQ(p.kind, ParsedValue::Kind::kInvalid);
  EXPECT_NE(p.instance.error().find("7"), std::string::npos);
}

TEST(ParseInstanceValue, AddressWithEmbeddedPortNeedsNoPortField) {
  ParsedValue p = parse_instance_value("x", R"({"address":"10.0.0.1:81"})");
  ASSERT_EQ(p.kind, ParsedValue::Kind::kInstance);
  EXPECT_EQ(p.instance.address, "10.0.0.1");
  EXPECT_EQ(p.instance.port, 81);
}

TEST(ParseInstanceValue, ExplicitPortWinsOverEmbeddedPort) {
  ParsedValue p = parse_instance_value("x", R"({"address":"10.0.0.1:81","port":82})");
  ASSERT_EQ(p.kind, ParsedValue::Kind::kInstance);
  EXPECT_EQ(p.instance.port, 82);
}

TEST(ParseInstanceValue, BareIpv6AddressIsNotSplitAtColons) {
  ParsedValue p = parse_instance_value("x", R"({"address":"fe80::1","port":8080})");
  ASSERT_EQ(p.kind, ParsedValue::Kind::kInstance);
  EXPECT_EQ(p.instance.address, "fe80::1");
  EXPECT_EQ(p.instance.endpoint(), "[fe80::1]:8080");
}

TEST(ParseInstanceValue, BracketedIpv6AddressFieldIsUnbracketed) {
  ParsedValue p = parse_instance_value("x", R"({"address":"[::1]","port":8080})");
  ASSERT_EQ(p.kind, ParsedValue::Kind::kInstance);
  EXPECT_EQ(p.instance.address, "::1");
}

struct InvalidCase {
  const char* name;
  std::string value;
  const char* reason_fragment;
};

class ParseInstanceValueInvalid : public ::testing::TestWithParam<InvalidCase> {};

TEST_P(ParseInstanceValueInvalid, IsKeptAsInvalidWithReason) {
  const auto& c = GetParam();
  ParsedValue p = parse_instance_value("bad-1", c.value);
  EXPECT_EQ(p.kind, ParsedValue::Kind::kInvalid);
  EXPECT_FALSE(p.instance.valid());
  EXPECT_EQ(p.instance.id, "bad-1");
  EXPECT_TRUE(p.instance.address.empty());
  EXPECT_EQ(p.instance.port, 0);
  EXPECT_NE(p.instance.error().find(c.reason_fragment), std::string::npos) << p.instance.error();
}

INSTANTIATE_TEST_SUITE_P(
    Values, ParseInstanceValueInvalid,
    ::testing::Values(InvalidCase{"NotJson", "hello", "not valid JSON"},
                      InvalidCase{"Empty", "", "empty"},
                      InvalidCase{"Array", "[1,2]", "array"},
                      InvalidCase{"String", "\"10.0.0.1:80\"", "string"},
                      InvalidCase{"Number", "42", "number"},
                      InvalidCase{"MissingAddress", R"({"port":80})", "no address"},
                      InvalidCase{"NumericAddress", R"({"address":10,"port":80})", "not a string"},
                      InvalidCase{"EmptyAddress", R"({"address":"","port":80})", "not a hostname"},
                      InvalidCase{"InjectedAddress", R"({"address":"a; include /etc/passwd","port":80})",
                                  "not a hostname"},
                      InvalidCase{"NewlineAddress", R"({"address":"a\nb","port":80})", "not a hostname"},
                      InvalidCase{"MissingPort", R"({"address":"10.0.0.1"})", "no port"},
                      InvalidCase{"PortZero", R"({"address":"h","port":0})", "1..65535"},
                      InvalidCase{"PortTooLarge", R"({"address":"h","port":65536})", "1..65535"},
                      InvalidCase{"PortNegative", R"({"address":"h","port":-1})", "1..65535"},
                      InvalidCase{"PortFloat", R"({"address":"h","port":80.5})", "1..65535"},
                      InvalidCase{"PortWords", R"({"address":"h","port":"http"})", "1..65535"},
                      InvalidCase{"PortBool", R"({"address":"h","port":true})", "1..65535"},
                      InvalidCase{"AddrWithoutPort", R"({"Op":0,"Addr":"10.0.0.1"})", "no port"},
                      InvalidCase{"OpString", R"({"Op":"add","Addr":"h:1"})", "Op"},
                      InvalidCase{"InvalidUtf8", std::string("{\"address\":\"h\xff\",\"port\":1}"), "not valid JSON"},
                      InvalidCase{"TrailingGarbage", R"({"address":"h","port":1} x)", "not valid JSON"},
                      InvalidCase{"TooDeep", std::string(40, '[') + std::string(40, ']'), "nested deeper"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(ParseInstanceValue, OversizedValueIsInvalidWithoutParsing) {
  std::string big = R"({"address":"h","port":1,"metadata":{"pad":")" + std::string(70 * 1024, 'x') + "\"}}";
  ParsedValue p = parse_instance_value("x", big);
  EXPECT_EQ(p.kind, ParsedValue::Kind::kInvalid);
  EXPECT_NE(p.instance.error().find("limit"), std::string::npos);
  // The same value passes with a higher limit: the size check is the only reason.
  EXPECT_EQ(parse_instance_value("x", big, 1 << 20).kind, ParsedValue::Kind::kInstance);
}

TEST(ParseInstanceValue, BracketsInsideStringsDoNotCountTowardsDepth) {
  std::string value = R"({"address":"h","port":1,"metadata":{"s":")" + std::string(100, '[') + "\"}}";
  EXPECT_EQ(parse_instance_value("x", value).kind, ParsedValue::Kind::kInstance);
}

TEST(ParseInstanceValue, NonObjectMetadataIsIgnored) {
  ParsedValue p = parse_instance_value("x", R"({"address":"h","port":1,"metadata":"v1"})");
  ASSERT_EQ(p.kind, ParsedValue::Kind::kInstance);
  EXPECT_EQ(p.instance.metadata_json, "{}");
}

TEST(ParseInstanceValue, SameValueGivesSameMetadataBytesRegardlessOfKeyOrder) {
  auto a = parse_instance_value("x", R"({"address":"h","port":1,"metadata":{"b":1,"a":{"d":2,"c":3}}})");
  auto b = parse_instance_value("x", R"({"port":1,"metadata":{"a":{"c":3,"d":2},"b":1},"address":"h"})");
  EXPECT_EQ(a.instance.metadata_json, b.instance.metadata_json);
  EXPECT_TRUE(a.instance.same_rendering(b.instance));
}

TEST(HostPort, SplitsIpv4HostnameAndBracketedIpv6) {
  EXPECT_EQ(split_host_port("10.0.0.1:80"), std::make_pair(std::string("10.0.0.1"), 80));
  EXPECT_EQ(split_host_port("db:5432"), std::make_pair(std::string("db"), 5432));
  EXPECT_EQ(split_host_port("[::1]:8080"), std::make_pair(std::string("::1"), 8080));
}

TEST(HostPort, RejectsMissingOrBadPorts) {
  EXPECT_FALSE(split_host_port("10.0.0.1"));
  EXPECT_FALSE(split_host_port("::1"));
  EXPECT_FALSE(split_host_port("[::1]"));
  EXPECT_FALSE(split_host_port("[::1]8080"));
  EXPECT_FALSE(split_host_port("h:"));
  EXPECT_FALSE(split_host_port("h:0"));
  EXPECT_FALSE(split_host_port("h:65536"));
  EXPECT_FALSE(split_host_port("h:80x"));
  EXPECT_FALSE(split_host_port("h:+80"));
}

TEST(HostPort, JoinBracketsOnlyUnbracketedIpv6) {
  EXPECT_EQ(join_host_port("10.0.0.1", 80), "10.0.0.1:80");
  EXPECT_EQ(join_host_port("::1", 80), "[::1]:80");
  EXPECT_EQ(join_host_port("[::1]", 80), "[::1]:80");
}

TEST(Instance, StaysSmallSoAHundredThousandFitInLittleMemory) {
  // 100k instances must stay well under 100 MB; the struct itself is the fixed part of that cost.
  EXPECT_LE(sizeof(Instance), 192u);
}

}  // namespace
}  // namespace sidecar::core
