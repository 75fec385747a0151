// Owns: rendering latency samples as a self-contained SVG histogram (hand-written SVG text, no libraries).
// Thread: pure; returns the document as a string, the caller writes it.
#pragma once

#include <string>
#include <vector>

namespace sidecar::bench {

struct HistogramSeries {
  std::string label;        // "raw watcher"
  std::string color;        // any SVG colour, "#1f77b4"
  std::vector<double> samples_ms;
};

struct HistogramPanel {
  std::string title;        // "put -> file, 200 instances"
  std::vector<HistogramSeries> series;
};

// One panel per entry, stacked vertically, sharing nothing but the width. Each panel's x axis runs from 0
// to a round number just above the largest p99 of its series; slower samples are counted in a final
// "overflow" bar so the interesting part of the distribution is not squashed by one outlier. Bars of the
// series sit side by side within a bin; a dashed line marks each series' p50.
std::string render_histogram_svg(const std::string& title, const std::vector<HistogramPanel>& panels);

}  // namespace sidecar::bench
