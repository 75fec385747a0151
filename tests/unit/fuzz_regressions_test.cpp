// Bugs the fuzz targets (tests/fuzz) found in the pure layers, pinned as readable unit tests. The raw
// inputs that found them stay in tests/fuzz/corpus/<target>/ and are replayed too.
#include <gtest/gtest.h>

#include "agent/core/endpoint_set.hpp"
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
