// Owns: the Prometheus text exposition format (version 0.0.4): metric families in, text out; and a fixed-
// bucket histogram to feed it.
// Thread: pure; a Histogram is owned by whoever observes into it (the io_context thread in the agent).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace sidecar::core {

using Labels = std::vector<std::pair<std::string, std::string>>;

enum class MetricType { kCounter, kGauge, kHistogram };

struct Sample {
  Labels labels;
  double value = 0;
};

// A histogram series: `cumulative[i]` counts observations <= `bounds[i]`; +Inf is `count`.
struct HistogramSample {
  Labels labels;
  std::vector<double> bounds;
  std::vector<uint64_t> cumulative;
  double sum = 0;
  uint64_t count = 0;
};

// One # HELP / # TYPE block. Counters are named ..._total, durations ..._seconds (the caller's job; the
// renderer does not rename).
struct MetricFamily {
  std::string name;
  std::string help;
  MetricType type = MetricType::kGauge;
  std::vector<Sample> samples;               // counter, gauge
  std::vector<HistogramSample> histograms;   // histogram
};

// The families in order, each with HELP and TYPE, label values escaped (\\, \", \n). A family without
// samples still gets its HELP/TYPE lines, so the metric is discoverable before it first moves.
std::string render_prometheus(const std::vector<MetricFamily>& families);

// A number as Prometheus writes it: integers without a fraction, +Inf/-Inf/NaN spelled out.
std::string format_metric_value(double value);

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);  // ascending upper bounds, +Inf implied
  void observe(double value);
  HistogramSample sample(Labels labels = {}) const;
  uint64_t count() const { return count_; }

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> buckets_;  // per bucket (not cumulative); one extra for +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

// Round trips of a keepalive on a healthy loopback etcd are ~100 us; across zones tens of ms; over a
// second means trouble. The buckets span that range.
std::vector<double> latency_buckets_seconds();

}  // namespace sidecar::core
