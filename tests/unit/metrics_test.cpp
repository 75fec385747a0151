// The Prometheus text renderer and the fixed-bucket histogram.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "agent/core/metrics.hpp"

namespace sidecar::core {
namespace {

using ::testing::HasSubstr;

TEST(PrometheusText, WritesHelpTypeAndOneLinePerSample) {
  MetricFamily f{"etcd_sidecar_things_total", "Things seen.", MetricType::kCounter, {}, {}};
  f.samples.push_back({{{"service", "a"}}, 3});
  f.samples.push_back({{{"service", "b"}}, 0});
  EXPECT_EQ(render_prometheus({f}),
            "# HELP etcd_sidecar_things_total Things seen.\n"
            "# TYPE etcd_sidecar_things_total counter\n"
            "etcd_sidecar_things_total{service=\"a\"} 3\n"
            "etcd_sidecar_things_total{service=\"b\"} 0\n");
}

TEST(PrometheusText, EscapesLabelValuesAndHelp) {
  MetricFamily f{"m", "line one\nback\\slash", MetricType::kGauge, {}, {}};
  f.samples.push_back({{{"path", "a\"b\\c\nd"}}, 1});
  const std::string text = render_prometheus({f});
  EXPECT_THAT(text, HasSubstr("# HELP m line one\\nback\\\\slash\n"));
  EXPECT_THAT(text, HasSubstr("m{path=\"a\\\"b\\\\c\\nd\"} 1\n"));
}

TEST(PrometheusText, FamilyWithoutSamplesStillDeclaresItself) {
  MetricFamily f{"etcd_sidecar_empty", "Nothing yet.", MetricType::kGauge, {}, {}};
  EXPECT_EQ(render_prometheus({f}), "# HELP etcd_sidecar_empty Nothing yet.\n# TYPE etcd_sidecar_empty gauge\n");
}

TEST(PrometheusText, FormatsSpecialAndFractionalValues) {
  EXPECT_EQ(format_metric_value(42), "42");
  EXPECT_EQ(format_metric_value(-3), "-3");
  EXPECT_EQ(format_metric_value(0.25), "0.25");
  EXPECT_EQ(format_metric_value(0.0005), "0.0005");
  EXPECT_EQ(format_metric_value(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(format_metric_value(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(format_metric_value(std::nan("")), "NaN");
  EXPECT_EQ(format_metric_value(1e20), "1e+20");
}

TEST(Histogram, CountsInclusiveUpperBoundsCumulatively) {
  Histogram h({0.1, 1});
  h.observe(0.05);
  h.observe(0.1);  // "le" is inclusive: lands in the 0.1 bucket
  h.observe(0.5);
  h.observe(7);
  const HistogramSample s = h.sample();
  EXPECT_EQ(s.cumulative, (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(s.count, 4u);
  EXPECT_DOUBLE_EQ(s.sum, 7.65);
}

TEST(PrometheusText, RendersHistogramBucketsSumAndCount) {
  Histogram h({0.5, 1});
  h.observe(0.25);
  h.observe(2);
  MetricFamily f{"rtt_seconds", "Round trip.", MetricType::kHistogram, {}, {h.sample({{"peer", "x"}})}};
  EXPECT_EQ(render_prometheus({f}),
            "# HELP rtt_seconds Round trip.\n"
            "# TYPE rtt_seconds histogram\n"
            "rtt_seconds_bucket{peer=\"x\",le=\"0.5\"} 1\n"
            "rtt_seconds_bucket{peer=\"x\",le=\"1\"} 1\n"
            "rtt_seconds_bucket{peer=\"x\",le=\"+Inf\"} 2\n"
            "rtt_seconds_sum{peer=\"x\"} 2.25\n"
            "rtt_seconds_count{peer=\"x\"} 2\n");
}

TEST(Histogram, LatencyBucketsAscend) {
  const auto b = latency_buckets_seconds();
  ASSERT_FALSE(b.empty());
  EXPECT_TRUE(std::is_sorted(b.begin(), b.end()));
}

}  // namespace
}  // namespace sidecar::core
