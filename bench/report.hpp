// Owns: the result table (one row per measure), free-text notes, and the machine description line.
// Thread: main thread only; sections append rows as they finish and the table is printed once at the end.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace sidecar::bench {

enum class Verdict {
  kPass,
  kFail,     // measured, and the target was missed: the number is printed all the same
  kInfo,     // context for another row; no target of its own
  kError,    // could not be measured (timeout, agent died); `result` says why
  kSkipped,  // not run in this mode (--quick, --only)
};

struct Row {
  std::string section;
  std::string measure;
  std::string result;
  std::string target;
  Verdict verdict = Verdict::kInfo;
};

class Report {
 public:
  void add(Row row) { rows_.push_back(std::move(row)); }
  void add_check(std::string section, std::string measure, std::string result, std::string target, bool met) {
    add(Row{std::move(section), std::move(measure), std::move(result), std::move(target),
            met ? Verdict::kPass : Verdict::kFail});
  }
  void add_info(std::string section, std::string measure, std::string result) {
    add(Row{std::move(section), std::move(measure), std::move(result), "-", Verdict::kInfo});
  }
  // Details that do not fit a table cell (memory breakdowns, per-section caveats); printed under the table.
  void note(std::string text) { notes_.push_back(std::move(text)); }

  const std::vector<Row>& rows() const { return rows_; }
  bool any(Verdict v) const;

  // Fixed-width pipe table (valid Markdown as is), then the notes, as a Markdown list when `markdown`.
  void print(std::ostream& out, bool markdown) const;

 private:
  std::vector<Row> rows_;
  std::vector<std::string> notes_;
};

const char* to_string(Verdict v);

}  // namespace sidecar::bench
