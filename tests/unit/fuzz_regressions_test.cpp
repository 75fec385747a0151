// Bugs the fuzz targets (tests/fuzz) found in the pure layers, pinned as readable unit tests. The raw
// inputs that found them stay in tests/fuzz/corpus/<target>/ and are replayed too.
#include <gtest/gtest.h>

#include "agent/core/endpoint_set.hpp"
#include "agent/core/instance.hpp"
#include "agent/core/manifest.hpp"

namespace sidecar::core {
namespace {

TEST(EndpointSetFuzzRegression, SnapshotListingAKeyTwiceCountsOnlyTheValueThatWins) {
  // fuzz_endpoint_set: an invalid value followed by a valid one for the same key made reset() count the
  // key as invalid although the valid value replaced it, so size() came out one short (and could wrap).
  EndpointSet set("/services/svc");
  std::vector<KvInput> snapshot = {
      {"/services/svc/a", "garbage", 1, 1, 0},
      {"/services/svc/a", R"({"address":"10.0.0.1","port":80})", 2, 2, 0},
  };
  set.reset(std::move(snapshot), 2);
  EXPECT_EQ(set.size(), 1u);
  EXPECT_EQ(set.invalid_count(), 0u);
  EXPECT_EQ(set.sorted().size(), 1u);
}

}  // namespace
}  // namespace sidecar::core

namespace sidecar::core {
namespace {

TEST(ManifestFuzzRegression, StrayCommaIsAnErrorInsteadOfEndlessDocuments) {
  // fuzz_manifest: yaml-cpp 0.7's LoadAll() loops forever on a top-level ',' (allocating an empty document
  // per turn until memory runs out). The parser must return an error at once.
  const auto env = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
  for (const char* text : {",", "services: []\n, x\n", "# comment\n,     $$ text\nlease: {ttl: 1s}\n"}) {
    const ParseResult r = parse_manifest(text, "m.yaml", env);
    EXPECT_FALSE(r.ok()) << text;
    ASSERT_FALSE(r.errors.empty()) << text;
  }
}

}  // namespace
}  // namespace sidecar::core

namespace sidecar::core {
namespace {

TEST(ValueFuzzRegression, BracketedHostWithOneColonIsNotAnAddress) {
  // fuzz_value: "[2001:1]:443" was accepted with address "2001:1"; written back as our own value
  // {"address":"2001:1","port":443} it read as address "2001". IPv6 has at least two colons.
  EXPECT_EQ(parse_instance_value("x", R"({"Op":0,"Addr":"[2001:1]:443"})").kind, ParsedValue::Kind::kInvalid);
  EXPECT_EQ(parse_instance_value("x", R"({"address":"[2001:db8::1]","port":443})").instance.address, "2001:db8::1");
  EXPECT_TRUE(valid_address("[::1]"));
  EXPECT_TRUE(valid_address("fe80::1%eth0"));
  EXPECT_FALSE(valid_address("host:8080"));
}

TEST(ManifestFuzzRegression, RegisteredAddressMustBeReadableByDiscovery) {
  // fuzz_manifest: the manifest accepted any address without spaces or '/', e.g. "a$b" (every reader,
  // the agent's own discovery included, rejects that value) or "2001:1" (read back as host "2001").
  const auto env = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
  for (const char* address : {"a$b", "2001:1", "host:8080", "a,b"}) {
    const std::string text = std::string("services:\n  - {name: a, id: b, port: 80, address: \"") + address + "\"}\n";
    const ParseResult r = parse_manifest(text, "m.yaml", env);
    EXPECT_FALSE(r.ok()) << address;
  }
  for (const char* address : {"10.0.0.1", "[::1]", "::1", "host.example", "my_host-1"}) {
    const std::string text = std::string("services:\n  - {name: a, id: b, port: 80, address: \"") + address + "\"}\n";
    EXPECT_TRUE(parse_manifest(text, "m.yaml", env).ok()) << address;
  }
}

}  // namespace
}  // namespace sidecar::core
