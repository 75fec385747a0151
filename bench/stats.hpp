// Owns: latency samples and their order statistics (nearest-rank percentiles), and how they are printed.
// Thread: pure; value types only, no shared state.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

namespace sidecar::bench {

using Clock = std::chrono::steady_clock;

// Durations are kept as fractional milliseconds: every target in the issue is stated in ms.
double to_ms(Clock::duration d);

struct Summary {
  std::size_t count = 0;
  double min = 0;
  double p50 = 0;
  double p99 = 0;
  double max = 0;
  double mean = 0;
};

// Nearest-rank percentile (the smallest sample with at least p % of the samples at or below it), so every
// reported figure is a latency that was actually observed. With fewer than 100 samples p99 is the maximum.
// 0 for an empty set; p is in (0, 100].
double percentile(std::vector<double> samples, double p);
Summary summarize(const std::vector<double>& samples);

// "3.21 ms"; two decimals below 10 ms, one below 100 ms, none above (the noise is larger than the digits).
std::string format_ms(double ms);
// "9.4 MB" from kB, in MiB (what ps, top and the targets mean by MB).
std::string format_mb(long kb);

}  // namespace sidecar::bench
