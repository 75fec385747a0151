#include "bench/report.hpp"

#include <algorithm>
#include <array>

namespace sidecar::bench {

const char* to_string(Verdict v) {
  switch (v) {
    case Verdict::kPass: return "PASS";
    case Verdict::kFail: return "FAIL";
    case Verdict::kInfo: return "info";
    case Verdict::kError: return "ERROR";
    case Verdict::kSkipped: return "skipped";
  }
  return "?";
}

bool Report::any(Verdict v) const {
  return std::any_of(rows_.begin(), rows_.end(), [v](const Row& r) { return r.verdict == v; });
}

void Report::print(std::ostream& out, bool markdown) const {
  const std::array<std::string, 4> header = {"measure", "result", "target", "pass/fail"};
  std::array<std::size_t, 4> width{};
  for (std::size_t i = 0; i < header.size(); ++i) width[i] = header[i].size();
  auto cells = [](const Row& r) {
    return std::array<std::string, 4>{r.section + ": " + r.measure, r.result, r.target, to_string(r.verdict)};
  };
  for (const auto& r : rows_) {
    const auto c = cells(r);
    for (std::size_t i = 0; i < c.size(); ++i) width[i] = std::max(width[i], c[i].size());
  }
  auto line = [&](const std::array<std::string, 4>& c) {
    out << "|";
    for (std::size_t i = 0; i < c.size(); ++i) out << ' ' << c[i] << std::string(width[i] - c[i].size(), ' ') << " |";
    out << '\n';
  };
  line(header);
  out << "|";
  for (auto w : width) out << std::string(w + 2, '-') << "|";
  out << '\n';
  for (const auto& r : rows_) line(cells(r));
  if (!notes_.empty()) {
    out << '\n';
    for (const auto& n : notes_) out << (markdown ? "- " : "  ") << n << '\n';
  }
}

}  // namespace sidecar::bench
