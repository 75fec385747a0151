#include "agent/core/metrics.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace sidecar::core {

namespace {

// The exposition format escapes backslash and newline everywhere, and '"' inside label values only.
std::string escape(const std::string& text, bool quotes) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"' && quotes) {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void append_labels(std::string& out, const Labels& labels, const std::pair<std::string, std::string>* extra = nullptr) {
  if (labels.empty() && extra == nullptr) return;
  out += '{';
  bool first = true;
  const auto one = [&](const std::string& k, const std::string& v) {
    if (!first) out += ',';
    first = false;
    out += k;
    out += "=\"";
    out += escape(v, true);
    out += '"';
  };
  for (const auto& [k, v] : labels) one(k, v);
  if (extra != nullptr) one(extra->first, extra->second);
  out += '}';
}

const char* type_name(MetricType type) {
  switch (type) {
    case MetricType::kCounter: return "counter";
    case MetricType::kGauge: return "gauge";
    case MetricType::kHistogram: return "histogram";
  }
  return "untyped";
}

}  // namespace

std::string format_metric_value(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == std::trunc(value) && std::fabs(value) < 1e15) {
    return std::to_string(static_cast<long long>(value));
  }
  char buf[64];
  // Shortest round-trip form; plain decimals where they stay short ("0.0005", not "5e-04").
  const double magnitude = std::fabs(value);
  const auto format = (magnitude >= 1e-6 && magnitude < 1e15) ? std::chars_format::fixed : std::chars_format::general;
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value, format);
  return ec == std::errc() ? std::string(buf, end) : "NaN";
}

std::string render_prometheus(const std::vector<MetricFamily>& families) {
  std::string out;
  for (const MetricFamily& f : families) {
    out += "# HELP " + f.name + " " + escape(f.help, false) + "\n";
    out += "# TYPE " + f.name + " " + type_name(f.type) + "\n";
    for (const Sample& s : f.samples) {
      out += f.name;
      append_labels(out, s.labels);
      out += ' ';
      out += format_metric_value(s.value);
      out += '\n';
    }
    for (const HistogramSample& h : f.histograms) {
      for (size_t i = 0; i < h.bounds.size(); ++i) {
        const std::pair<std::string, std::string> le{"le", format_metric_value(h.bounds[i])};
        out += f.name + "_bucket";
        append_labels(out, h.labels, &le);
        out += ' ' + std::to_string(i < h.cumulative.size() ? h.cumulative[i] : h.count) + '\n';
      }
      const std::pair<std::string, std::string> inf{"le", "+Inf"};
      out += f.name + "_bucket";
      append_labels(out, h.labels, &inf);
      out += ' ' + std::to_string(h.count) + '\n';
      out += f.name + "_sum";
      append_labels(out, h.labels);
      out += ' ' + format_metric_value(h.sum) + '\n';
      out += f.name + "_count";
      append_labels(out, h.labels);
      out += ' ' + std::to_string(h.count) + '\n';
    }
  }
  return out;
}

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), buckets_(bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
  // The first bucket whose upper bound is >= value ("le" is inclusive).
  const auto it = std::lower_bound(bounds_.begin(), bounds_.end(), value);
  ++buckets_[static_cast<size_t>(it - bounds_.begin())];
  sum_ += value;
  ++count_;
}

HistogramSample Histogram::sample(Labels labels) const {
  HistogramSample s;
  s.labels = std::move(labels);
  s.bounds = bounds_;
  uint64_t running = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    running += buckets_[i];
    s.cumulative.push_back(running);
  }
  s.sum = sum_;
  s.count = count_;
  return s;
}

std::vector<double> latency_buckets_seconds() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};
}

}  // namespace sidecar::core
