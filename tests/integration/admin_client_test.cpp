// The test-side Prometheus parser must reject what Prometheus would reject, or metric tests built on it
// would pass on broken output.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/admin_client.hpp"

namespace sidecar::test {
namespace {

using ::testing::IsEmpty;
using ::testing::Not;

TEST(PrometheusParser, AcceptsWellFormedTextAndReadsValues) {
  const PromParse p = parse_prometheus(
      "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"q\\\"\\\\\\n\"} 3\n"
      "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3.5\nh_count 2\n");
  EXPECT_THAT(p.errors, IsEmpty());
  EXPECT_EQ(p.value("a_total", {{"x", "q\"\\\n"}}), 3.0);
  EXPECT_EQ(p.value("h_count"), 2.0);
  EXPECT_EQ(p.families.at("h").type, "histogram");
}

TEST(PrometheusParser, RejectsMalformedText) {
  const char* bad[] = {
      "# TYPE a_total counter\na_total{x=\"unterminated} 1\n",
      "# TYPE a_total counter\na_total{x=unquoted} 1\n",
      "# TYPE a_total counter\na_total one\n",
      "# TYPE a counter\na 1\n",                                    // counter without _total
      "# TYPE a gauge\n# TYPE a gauge\na 1\n",                     // two TYPE lines
      "# TYPE a gauge\nb 1\n",                                     // sample outside its family
      "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_count 1\n",     // no +Inf bucket
      "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_count 3\n",  // +Inf differs from _count
      "# TYPE a gauge\na{x=\"1\",x=\"2\"} 1\n",                    // duplicate label
      "# TYPE a gauge\na 1",                                       // no final newline
  };
  for (const char* text : bad) EXPECT_THAT(parse_prometheus(text).errors, Not(IsEmpty())) << text;
}

TEST(AdminPortFromLog, ReadsThePortOfTheListeningLine) {
  EXPECT_EQ(admin_port_from_log("x\n2026 info  admin endpoint listening on http://127.0.0.1:40123 (/livez)\n"), 40123);
  EXPECT_EQ(admin_port_from_log("admin endpoint listening on http://[::1]:9 (/livez)"), 9);
  EXPECT_EQ(admin_port_from_log("nothing here"), std::nullopt);
}

}  // namespace
}  // namespace sidecar::test
