#include "agent/core/catalog_query.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace sidecar::core {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

TEST(CatalogQuery, ServicesListTakesNoParameters) {
  const auto q = parse_catalog_query("/v1/catalog/services");
  ASSERT_TRUE(q.ok()) << q.error;
  EXPECT_EQ(q.kind, CatalogQuery::Kind::kServices);
  const auto bad = parse_catalog_query("/v1/catalog/services?tag=v2");
  EXPECT_EQ(bad.status, 400);
  EXPECT_THAT(bad.error, HasSubstr("no parameters"));
}

TEST(CatalogQuery, ServiceNameIsDecodedAndTheSelectorKeptAsWritten) {
  const auto q = parse_catalog_query("/v1/catalog/service/order%2Dservice?tag=v2&tag=canary&zone=a&state=passing");
  ASSERT_TRUE(q.ok()) << q.error;
  EXPECT_EQ(q.kind, CatalogQuery::Kind::kService);
  EXPECT_EQ(q.service, "order-service");
  EXPECT_THAT(q.selector.tags, ::testing::ElementsAre("v2", "canary"));
  EXPECT_EQ(q.selector.zone, "a");
  EXPECT_EQ(q.selector_text, "tag=v2&tag=canary&zone=a&state=passing");
  EXPECT_FALSE(q.index.has_value());
  EXPECT_EQ(q.wait, 0ms);
}

TEST(CatalogQuery, IndexAloneWaitsConsulsDefaultAndWaitIsCutToTenMinutes) {
  const auto q = parse_catalog_query("/v1/catalog/service/order?index=41");
  ASSERT_TRUE(q.ok()) << q.error;
  EXPECT_EQ(q.index, 41);
  EXPECT_EQ(q.wait, kDefaultBlockingWait);
  EXPECT_EQ(q.selector_text, "") << "index= and wait= are not part of the selector";

  const auto shorter = parse_catalog_query("/v1/catalog/service/order?wait=30s&tag=v2&index=7");
  ASSERT_TRUE(shorter.ok()) << shorter.error;
  EXPECT_EQ(shorter.index, 7);
  EXPECT_EQ(shorter.wait, 30s);
  EXPECT_EQ(shorter.selector_text, "tag=v2");

  const auto longer = parse_catalog_query("/v1/catalog/service/order?index=7&wait=2h");
  ASSERT_TRUE(longer.ok()) << longer.error;
  EXPECT_EQ(longer.wait, kMaxBlockingWait);
}

TEST(CatalogQuery, BadParametersAre400NamingTheParameter) {
  EXPECT_THAT(parse_catalog_query("/v1/catalog/service/order?index=-1").error, HasSubstr("index: '-1'"));
  EXPECT_THAT(parse_catalog_query("/v1/catalog/service/order?index=4x").error, HasSubstr("index: '4x'"));
  EXPECT_THAT(parse_catalog_query("/v1/catalog/service/order?index=").error, HasSubstr("index: ''"));
  EXPECT_THAT(parse_catalog_query("/v1/catalog/service/order?index=1&wait=soon").error, HasSubstr("wait: 'soon'"));
  EXPECT_THAT(parse_catalog_query("/v1/catalog/service/order?wait=30s").error, HasSubstr("only with index="));
  EXPECT_THAT(parse_catalog_query("/v1/catalog/service/order?tags=v2").error, HasSubstr("unknown parameter 'tags'"));
  EXPECT_EQ(parse_catalog_query("/v1/catalog/service/order?tags=v2").status, 400);
  EXPECT_EQ(parse_catalog_query("/v1/catalog/service/order%zz").status, 400);
  EXPECT_EQ(parse_catalog_query("/v1/catalog/service/Bad_Name!").status, 400);
}

TEST(CatalogQuery, OtherCatalogPathsAre404) {
  EXPECT_EQ(parse_catalog_query("/v1/catalog/service/").status, 404);
  EXPECT_EQ(parse_catalog_query("/v1/catalog/nodes").status, 404);
  EXPECT_EQ(parse_catalog_query("/v1/catalog/servicesx").status, 404);
}

TEST(CatalogQuery, ABlockingQueryIsAnsweredWhenTheIndexMovesEitherWay) {
  EXPECT_FALSE(blocking_ready(41, 41));
  EXPECT_TRUE(blocking_ready(42, 41));
  EXPECT_TRUE(blocking_ready(3, 41)) << "etcd came back wiped: revisions restarted";
  EXPECT_TRUE(blocking_ready(0, 41));
}

TEST(CatalogQuery, JitterAddsAtMostASixteenthOfTheWait) {
  EXPECT_EQ(blocking_wait_with_jitter(160s, 0.0), 160s);
  EXPECT_EQ(blocking_wait_with_jitter(160s, 0.5), 165s);
  EXPECT_LT(blocking_wait_with_jitter(160s, 0.9999999), 170s);
  EXPECT_GE(blocking_wait_with_jitter(160s, 0.9999999), 169s);
  EXPECT_EQ(blocking_wait_with_jitter(160s, -3), 160s);
  EXPECT_LT(blocking_wait_with_jitter(160s, 7), 170s);
}

}  // namespace
}  // namespace sidecar::core
