#include "bench/svg_histogram.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "bench/stats.hpp"

namespace sidecar::bench {
namespace {

constexpr double kWidth = 900;
constexpr double kPanelHeight = 300;
constexpr double kTitleHeight = 40;
constexpr double kLeft = 60;
constexpr double kRight = 20;
constexpr double kTop = 66;      // panel title and one legend line per series
constexpr double kBottom = 42;   // x tick labels and axis title
constexpr int kBins = 40;

std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

std::string tick_label(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, v == std::floor(v) ? "%.0f" : "%.1f", v);
  return buf;
}

// Smallest of 1, 2, 2.5, 5 x 10^k that is >= v: axis ends on a number a reader can divide in their head.
double round_up_nice(double v) {
  if (v <= 0) return 1;
  const double exponent = std::pow(10.0, std::floor(std::log10(v)));
  for (double step : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    if (step * exponent >= v) return step * exponent;
  }
  return 10 * exponent;
}

void render_panel(std::ostringstream& svg, const HistogramPanel& panel, double y0) {
  double x_max = 0;
  std::size_t total = 0;
  for (const auto& s : panel.series) {
    x_max = std::max(x_max, percentile(s.samples_ms, 99));
    total += s.samples_ms.size();
  }
  x_max = round_up_nice(x_max * 1.1);
  const double bin_width = x_max / kBins;
  const double plot_w = kWidth - kLeft - kRight;
  const double plot_h = kPanelHeight - kTop - kBottom;
  const double plot_x = kLeft;
  const double plot_y = y0 + kTop;

  // counts[series][bin]; the last bin (index kBins) is the overflow bar.
  std::vector<std::vector<int>> counts(panel.series.size(), std::vector<int>(kBins + 1, 0));
  int y_max = 1;
  for (std::size_t s = 0; s < panel.series.size(); ++s) {
    for (double v : panel.series[s].samples_ms) {
      const int bin = v >= x_max ? kBins : std::max(0, static_cast<int>(v / bin_width));
      y_max = std::max(y_max, ++counts[s][std::min(bin, kBins)]);
    }
  }
  const double y_top = round_up_nice(y_max);  // gridlines at quarters of a round number
  const double slot_w = plot_w / (kBins + 1.5);  // +1 overflow bar, +0.5 gap before it

  svg << "<text x=\"" << num(plot_x) << "\" y=\"" << num(y0 + 18)
      << "\" font-size=\"14\" font-weight=\"bold\">" << escape(panel.title) << "</text>\n";
  // Legend: label, p50, p99; one line per series so long labels never overlap.
  double legend_y = y0 + 28;
  for (const auto& s : panel.series) {
    const Summary sum = summarize(s.samples_ms);
    const std::string text = s.label + "  p50 " + format_ms(sum.p50) + "  p99 " + format_ms(sum.p99) + "  (n=" +
                             std::to_string(sum.count) + ")";
    svg << "<rect x=\"" << num(plot_x) << "\" y=\"" << num(legend_y) << "\" width=\"10\" height=\"10\" fill=\""
        << s.color << "\"/>\n";
    svg << "<text x=\"" << num(plot_x + 14) << "\" y=\"" << num(legend_y + 9) << "\" font-size=\"12\">"
        << escape(text) << "</text>\n";
    legend_y += 16;
  }
  if (total == 0) {
    svg << "<text x=\"" << num(plot_x + plot_w / 2) << "\" y=\"" << num(plot_y + plot_h / 2)
        << "\" font-size=\"12\" text-anchor=\"middle\">no samples</text>\n";
    return;
  }

  // Axes, y grid at quarters.
  svg << "<line x1=\"" << num(plot_x) << "\" y1=\"" << num(plot_y + plot_h) << "\" x2=\"" << num(plot_x + plot_w)
      << "\" y2=\"" << num(plot_y + plot_h) << "\" stroke=\"#333\"/>\n";
  svg << "<line x1=\"" << num(plot_x) << "\" y1=\"" << num(plot_y) << "\" x2=\"" << num(plot_x) << "\" y2=\""
      << num(plot_y + plot_h) << "\" stroke=\"#333\"/>\n";
  for (int q = 1; q <= 4; ++q) {
    const double value = y_top * q / 4.0;
    const double y = plot_y + plot_h - plot_h * q / 4.0;
    svg << "<line x1=\"" << num(plot_x) << "\" y1=\"" << num(y) << "\" x2=\"" << num(plot_x + plot_w) << "\" y2=\""
        << num(y) << "\" stroke=\"#ddd\"/>\n";
    svg << "<text x=\"" << num(plot_x - 6) << "\" y=\"" << num(y + 4)
        << "\" font-size=\"11\" text-anchor=\"end\">" << tick_label(value) << "</text>\n";
  }
  svg << "<text x=\"14\" y=\"" << num(plot_y + plot_h / 2) << "\" font-size=\"11\" transform=\"rotate(-90 14 "
      << num(plot_y + plot_h / 2) << ")\" text-anchor=\"middle\">samples</text>\n";

  // Bars.
  const double bar_w = slot_w / static_cast<double>(std::max<std::size_t>(1, panel.series.size()));
  for (std::size_t s = 0; s < panel.series.size(); ++s) {
    for (int bin = 0; bin <= kBins; ++bin) {
      const int c = counts[s][bin];
      if (c == 0) continue;
      const double slot_x = plot_x + slot_w * (bin == kBins ? kBins + 0.5 : bin);
      const double h = plot_h * c / y_top;
      svg << "<rect x=\"" << num(slot_x + bar_w * s) << "\" y=\"" << num(plot_y + plot_h - h) << "\" width=\""
          << num(bar_w * 0.9) << "\" height=\"" << num(h) << "\" fill=\"" << panel.series[s].color
          << "\"><title>" << escape(panel.series[s].label) << ": " << c << "</title></rect>\n";
    }
  }
  // p50 markers.
  for (const auto& s : panel.series) {
    const double p50 = percentile(s.samples_ms, 50);
    if (s.samples_ms.empty() || p50 >= x_max) continue;
    const double x = plot_x + slot_w * (p50 / bin_width);
    svg << "<line x1=\"" << num(x) << "\" y1=\"" << num(plot_y) << "\" x2=\"" << num(x) << "\" y2=\""
        << num(plot_y + plot_h) << "\" stroke=\"" << s.color << "\" stroke-dasharray=\"4 3\"/>\n";
  }
  // X ticks: every 5 bins, then the overflow bar.
  for (int bin = 0; bin <= kBins; bin += 5) {
    const double x = plot_x + slot_w * bin;
    svg << "<line x1=\"" << num(x) << "\" y1=\"" << num(plot_y + plot_h) << "\" x2=\"" << num(x) << "\" y2=\""
        << num(plot_y + plot_h + 4) << "\" stroke=\"#333\"/>\n";
    svg << "<text x=\"" << num(x) << "\" y=\"" << num(plot_y + plot_h + 16)
        << "\" font-size=\"11\" text-anchor=\"middle\">" << tick_label(bin * bin_width) << "</text>\n";
  }
  svg << "<text x=\"" << num(plot_x + slot_w * (kBins + 1)) << "\" y=\"" << num(plot_y + plot_h + 16)
      << "\" font-size=\"11\" text-anchor=\"middle\">&gt;" << tick_label(x_max) << "</text>\n";
  svg << "<text x=\"" << num(plot_x + plot_w / 2) << "\" y=\"" << num(plot_y + plot_h + 34)
      << "\" font-size=\"12\" text-anchor=\"middle\">latency after the put call starts (ms), bin "
      << escape(format_ms(bin_width)) << "</text>\n";
}

}  // namespace

std::string render_histogram_svg(const std::string& title, const std::vector<HistogramPanel>& panels) {
  const double height = kTitleHeight + kPanelHeight * static_cast<double>(std::max<std::size_t>(1, panels.size()));
  std::ostringstream svg;
  svg << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << num(kWidth) << "\" height=\"" << num(height)
      << "\" viewBox=\"0 0 " << num(kWidth) << " " << num(height) << "\" font-family=\"sans-serif\">\n";
  svg << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  svg << "<text x=\"" << num(kWidth / 2) << "\" y=\"26\" font-size=\"16\" font-weight=\"bold\" text-anchor=\"middle\">"
      << escape(title) << "</text>\n";
  for (std::size_t i = 0; i < panels.size(); ++i) {
    render_panel(svg, panels[i], kTitleHeight + kPanelHeight * static_cast<double>(i));
  }
  svg << "</svg>\n";
  return svg.str();
}

}  // namespace sidecar::bench
