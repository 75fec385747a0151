// The manifest's `dns:` section: off by default, defaults, and errors naming file, line and field.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "agent/core/manifest.hpp"
#include "tests/unit/manifest_test_support.hpp"

namespace sidecar::core {
namespace {

using manifest_testing::ErrorAt;
using ::testing::ElementsAre;

ParseResult parse_with(const std::string& dns_section) {
  return manifest_testing::parse("discover:\n  - {service: a, output: /tmp/a.json}\n" + dns_section);
}

TEST(DnsManifest, IsOffUnlessListenIsWritten) {
  const ParseResult r = parse_with("dns:\n  listen: \"\"\n");
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r.manifest->dns.enabled);
  EXPECT_FALSE(parse_with("").manifest->dns.enabled);
}

TEST(DnsManifest, ReadsListenAndDefaultsDomainTtlAndMaxStale) {
  const ParseResult r = parse_with("dns:\n  listen: \"127.0.0.1:8600\"\n");
  ASSERT_TRUE(r.ok()) << r.errors.front().to_string();
  EXPECT_TRUE(r.manifest->dns.enabled);
  EXPECT_EQ(r.manifest->dns.host, "127.0.0.1");
  EXPECT_EQ(r.manifest->dns.port, 8600);
  EXPECT_EQ(r.manifest->dns.domain, "sidecar.");
  EXPECT_EQ(r.manifest->dns.ttl, std::chrono::seconds(5));
  EXPECT_EQ(r.manifest->dns.max_stale, std::chrono::seconds(0));
}

TEST(DnsManifest, NormalisesTheDomainAndAcceptsAZeroTtl) {
  const ParseResult r = parse_with("dns:\n  listen: \"[::1]:0\"\n  domain: Mesh.Internal\n  ttl: 0s\n  max_stale: 2m\n");
  ASSERT_TRUE(r.ok()) << r.errors.front().to_string();
  EXPECT_EQ(r.manifest->dns.host, "::1");
  EXPECT_EQ(r.manifest->dns.domain, "mesh.internal.");
  EXPECT_EQ(r.manifest->dns.ttl, std::chrono::seconds(0));
  EXPECT_EQ(r.manifest->dns.max_stale, std::chrono::minutes(2));
}

TEST(DnsManifest, ADnsOnlyManifestIsSomethingToDo) {
  const ParseResult r = manifest_testing::parse("dns:\n  listen: \"127.0.0.1:8600\"\n");
  EXPECT_TRUE(r.ok());
}

TEST(DnsManifest, RejectsBadListenDomainAndFractionalTtlWithTheirPlace) {
  const ParseResult r =
      parse_with("dns:\n  listen: \"localhost:53\"\n  domain: \"a..b\"\n  ttl: 1500ms\n  max_stale: -1s\n  ttls: 1s\n");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(4, 11, "dns.listen", "not an IPv4 address"),
                                    ErrorAt(5, 11, "dns.domain", "not a domain name"),
                                    ErrorAt(6, 8, "dns.ttl", "whole seconds"),
                                    ErrorAt(7, 14, "dns.max_stale", ""),
                                    ErrorAt(8, 3, "dns.ttls", "ttl")));
}

}  // namespace
}  // namespace sidecar::core
