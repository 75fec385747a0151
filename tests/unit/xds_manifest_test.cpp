#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "agent/core/manifest.hpp"
#include "tests/unit/manifest_test_support.hpp"

namespace sidecar::core {
namespace {

using ::testing::HasSubstr;

ParseResult parse_with(const std::string& xds_section) {
  return manifest_testing::parse("discover:\n  - {service: a, output: /tmp/a.json}\n" + xds_section);
}

TEST(XdsManifest, OffUnlessListenIsSet) {
  const ParseResult r = parse_with("");
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r.manifest->xds.enabled);
}

TEST(XdsManifest, ReadsLoopbackListenTlsAndLocalZone) {
  const ParseResult r = parse_with(
      "xds:\n  listen: \"127.0.0.1:18000\"\n  tls: {cert: c.pem, key: k.pem, ca: ca.pem}\n  select: {zone: local}\n");
  ASSERT_TRUE(r.ok()) << r.errors.front().to_string();
  EXPECT_TRUE(r.manifest->xds.enabled);
  EXPECT_EQ(r.manifest->xds.host, "127.0.0.1");
  EXPECT_EQ(r.manifest->xds.port, 18000);
  EXPECT_EQ(r.manifest->xds.tls_ca, "ca.pem");
  EXPECT_TRUE(r.manifest->xds.local_zone_first);
}

TEST(XdsManifest, RefusesPlaintextOffLoopbackNamingFileLineAndField) {
  const ParseResult r = parse_with("xds:\n  listen: \"0.0.0.0:18000\"\n");
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].where.file, "m.yaml");
  EXPECT_EQ(r.errors[0].where.line, 4);
  EXPECT_EQ(r.errors[0].field, "xds.listen");
  EXPECT_THAT(r.errors[0].message, HasSubstr("not a loopback address"));
  EXPECT_TRUE(parse_with("xds:\n  listen: \"0.0.0.0:18000\"\n  tls: {cert: c.pem, key: k.pem}\n").ok());
}

TEST(XdsManifest, RejectsHalfATlsPairAnOtherZoneAndAnUnknownKey) {
  EXPECT_FALSE(parse_with("xds:\n  listen: \"127.0.0.1:1\"\n  tls: {cert: c.pem}\n").ok());
  EXPECT_FALSE(parse_with("xds:\n  listen: \"127.0.0.1:1\"\n  select: {zone: eu-1a}\n").ok());
  EXPECT_FALSE(parse_with("xds:\n  listen: \"127.0.0.1:1\"\n  lisen: x\n").ok());
  EXPECT_FALSE(parse_with("xds:\n  tls: {cert: c.pem, key: k.pem}\n").ok());  // listen is required
}

TEST(XdsManifest, AnXdsServerAloneIsSomethingToDo) {
  EXPECT_TRUE(manifest_testing::parse("xds:\n  listen: \"127.0.0.1:18000\"\n").ok());
}

}  // namespace
}  // namespace sidecar::core
