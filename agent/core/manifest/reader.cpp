#include "agent/core/manifest/reader.hpp"

#include <yaml-cpp/eventhandler.h>

#include <algorithm>
#include <charconv>
#include <climits>
#include <sstream>

namespace sidecar::core::manifest {

namespace {

constexpr unsigned kMaxMode = 0777;

// Counts the documents of a YAML stream without building them, and where the second one's root starts.
struct DocumentCounter : YAML::EventHandler {
  int documents = 0;
  YAML::Mark second_root = YAML::Mark::null_mark();
  YAML::Mark last_start = YAML::Mark::null_mark();
  bool stuck = false;  // a document started where the previous one did: the parser is not advancing
  bool in_new_document = false;

  bool progressed() const { return !stuck; }
  void OnDocumentStart(const YAML::Mark& mark) override {
    stuck = documents > 0 && mark.pos == last_start.pos;
    last_start = mark;
    ++documents;
    in_new_document = true;
  }
  void OnDocumentEnd() override {}
  void node(const YAML::Mark& mark) {
    if (in_new_document && documents == 2) second_root = mark;
    in_new_document = false;
  }
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { node(mark); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { node(mark); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t, const std::string&) override { node(mark); }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    node(mark);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    node(mark);
  }
  void OnMapEnd() override {}
};
// Enough to say "found N" for any real mistake (a stray ---) without walking a huge stream.
constexpr int kMaxDocumentsCounted = 64;

}  // namespace

const Entry* MapView::find(std::string_view key) const {
  for (const Entry& e : entries) {
    if (e.key == key) return &e;
  }
  return nullptr;
}

const Entry* MapView::get(std::string_view key) const {
  const Entry* e = find(key);
  return (e != nullptr && !e->value.IsNull()) ? e : nullptr;
}

std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return "'" + node.Scalar() + "'";
    case YAML::NodeType::Null:
      return "nothing";
    case YAML::NodeType::Undefined:
      break;
  }
  return "an undefined value";
}

std::optional<YAML::Node> Reader::load(std::string_view text) {
  YAML::Node root;
  DocumentCounter counter;
  try {
    // Not YAML::LoadAll: yaml-cpp 0.7 (Debian 12) never returns from it on some malformed input, e.g. a
    // stray ',' at the top level, producing empty documents without consuming the token until memory
    // runs out (jbeder/yaml-cpp#1040; found by tests/fuzz/manifest_fuzz.cpp). Load() reads one document;
    // the counter only looks for a second one and stops when the parser makes no progress.
    const std::string input(text);
    root = YAML::Load(input);
    std::istringstream stream(input);
    YAML::Parser parser(stream);
    while (counter.documents < kMaxDocumentsCounted && parser.HandleNextDocument(counter)) {
      if (!counter.progressed()) break;
    }
  } catch (const YAML::Exception& e) {
    std::string message = "invalid YAML: " + e.msg;
    // The classic trap: `{zone: ${ZONE}}` - YAML reads the braces of ${...} as flow-map syntax.
    if (e.msg.find("flow") != std::string::npos && text.find("${") != std::string_view::npos) {
      message += " (inside {...} or [...], quote values that use ${...})";
    }
    error(location(e.mark), "", std::move(message));
    return std::nullopt;
  }
  if (counter.stuck) {
    error(location(counter.last_start), "", "invalid YAML: unexpected token (e.g. a stray ',' outside [...])");
    return std::nullopt;
  }
  if (counter.documents <= 1 && root.IsNull()) {
    error(SourceLocation{source_, 0, 0}, "", "manifest is empty");
    return std::nullopt;
  }
  if (counter.documents > 1) {
    error(location(counter.second_root), "",
          "manifest must be a single YAML document, found " + std::to_string(counter.documents));
  }
  return root;
}

SourceLocation Reader::location(const YAML::Mark& mark) const {
  if (mark.is_null() || mark.line < 0) return SourceLocation{source_, 0, 0};
  return SourceLocation{source_, mark.line + 1, mark.column + 1};
}
void Reader::error(const SourceLocation& where, std::string field, std::string message) {
  errors_.push_back(ManifestError{where, std::move(field), std::move(message)});
}
void Reader::error(const YAML::Node& node, std::string field, std::string message) {
  error(location(node), std::move(field), std::move(message));
}
void Reader::warn(const YAML::Node& node, std::string field, std::string message) {
  warnings_.push_back(ManifestError{location(node), std::move(field), std::move(message)});
}

ParseResult Reader::finish(Manifest manifest) {
  // Cross-field checks are reported late but belong where they point; whole-file errors go last.
  const auto order = [](const ManifestError& a, const ManifestError& b) {
    const auto key = [](const ManifestError& e) {
      return std::pair(e.where.line == 0 ? INT_MAX : e.where.line, e.where.column);
    };
    return key(a) < key(b);
  };
  std::stable_sort(errors_.begin(), errors_.end(), order);
  std::stable_sort(warnings_.begin(), warnings_.end(), order);
  ParseResult result;
  for (const ManifestError& w : warnings_) result.warnings.push_back(w.to_string());
  result.errors = std::move(errors_);
  if (result.errors.empty()) result.manifest = std::move(manifest);
  return result;
}

bool Reader::first_occurrence(std::map<std::string, int>& first_line, const std::string& key,
                              const SourceLocation& where, const std::string& field) {
  if (const auto seen = first_line.find(key); seen != first_line.end()) {
    error(where, field, "duplicate key '" + key + "' (first defined at line " + std::to_string(seen->second) + ")");
    return false;
  }
  first_line.emplace(key, where.line);
  return true;
}

std::optional<MapView> Reader::open_map(const YAML::Node& node, const std::string& path,
                                        std::span<const std::string_view> known) {
  if (!node.IsMap()) {
    error(node, path, "expected a map, got " + describe(node));
    return std::nullopt;
  }
  MapView view{node, {}};
  std::map<std::string, int> first_line;
  for (auto it = node.begin(); it != node.end(); ++it) {
    const YAML::Node key_node = it->first;
    if (!key_node.IsScalar()) {
      error(key_node, path, "keys must be plain strings, got " + describe(key_node));
      continue;
    }
    const std::string key = key_node.Scalar();
    const std::string field = join_path(path, key);
    const SourceLocation where = location(key_node);
    if (!first_occurrence(first_line, key, where, field)) continue;
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      std::string message = "unknown key '" + key + "'";
      if (key == "<<") {
        message += " (YAML merge keys are not supported)";
      } else if (const auto suggestion = closest(key, known)) {
        message += " (did you mean '" + std::string(*suggestion) + "'?)";
      } else {
        message += " (expected one of: " + join_names(known) + ")";
      }
      error(where, field, std::move(message));
      continue;
    }
    view.entries.push_back(Entry{key, key_node, it->second});
  }
  return view;
}

const Entry* Reader::require(const MapView& map, std::string_view key, const std::string& path) {
  if (const Entry* e = map.get(key)) return e;
  const Entry* written = map.find(key);
  error(written != nullptr ? written->key_node : map.node, join_path(path, key), "is required");
  return nullptr;
}

std::optional<Reader::Scalar> Reader::scalar(const Entry& e, const std::string& field, std::string_view expected) {
  if (!e.value.IsScalar()) {
    error(e.value, field, "expected " + std::string(expected) + ", got " + describe(e.value));
    return std::nullopt;
  }
  Expansion expansion = expand_env(e.value.Scalar(), env_);
  if (expansion.error) {
    error(e.value, field, *expansion.error);
    return std::nullopt;
  }
  return Scalar{std::move(expansion.value), e.value.Scalar(), e.value, std::move(expansion.unset)};
}

std::optional<std::string> Reader::text(const Entry& e, const std::string& field, Need need,
                                        std::string_view expected) {
  std::optional<Scalar> s = scalar(e, field, expected);
  if (!s) return std::nullopt;
  if (need == Need::kNonEmpty && s->value.empty()) {
    if (s->raw.find("${") != std::string::npos) {
      error(s->node, field, "is empty after expanding '" + s->raw + "'");
    } else {
      error(s->node, field, "must not be empty");
    }
    return std::nullopt;
  }
  for (const std::string& name : s->unset) {
    warn(s->node, field, "environment variable " + name + " is not set; '${" + name + "}' expands to nothing");
  }
  return std::move(s->value);
}

std::optional<std::string> Reader::identifier(const Entry& e, const std::string& field) {
  std::optional<std::string> value = text(e, field, Need::kNonEmpty);
  if (!value) return std::nullopt;
  if (const auto problem = identifier_problem(*value)) {
    error(e.value, field, *problem);
    return std::nullopt;
  }
  return value;
}

std::optional<long long> Reader::integer(const Entry& e, const std::string& field, long long lo, long long hi) {
  const std::optional<std::string> value = text(e, field, Need::kNonEmpty, "an integer");
  if (!value) return std::nullopt;
  long long number = 0;
  const char* begin = value->data();
  const char* end = begin + value->size();
  const auto [stop, ec] = std::from_chars(begin, end, number);
  if (ec == std::errc::result_out_of_range) {
    error(e.value, field, "out of range: must be between " + std::to_string(lo) + " and " + std::to_string(hi) +
                              ", got " + *value);
    return std::nullopt;
  }
  if (ec != std::errc() || stop != end) {
    error(e.value, field, "expected an integer, got '" + *value + "'");
    return std::nullopt;
  }
  if (number < lo || number > hi) {
    error(e.value, field,
          hi >= INT_MAX ? "must be >= " + std::to_string(lo) + ", got " + *value
                          : "out of range: must be between " + std::to_string(lo) + " and " + std::to_string(hi) +
                                ", got " + *value);
    return std::nullopt;
  }
  return number;
}

std::optional<bool> Reader::boolean(const Entry& e, const std::string& field) {
  const std::optional<std::string> value = text(e, field, Need::kNonEmpty, "true or false");
  if (!value) return std::nullopt;
  std::string folded;
  for (const char c : *value) folded += lower(c);
  if (folded == "true" || folded == "yes" || folded == "on") return true;
  if (folded == "false" || folded == "no" || folded == "off") return false;
  error(e.value, field, "expected true or false, got '" + *value + "'");
  return std::nullopt;
}

std::optional<Duration> Reader::duration(const Entry& e, const std::string& field) {
  const std::optional<std::string> value = text(e, field, Need::kNonEmpty, "a duration");
  if (!value) return std::nullopt;
  if (const auto parsed = parse_duration(*value)) return parsed;
  const bool bare_number = std::all_of(value->begin(), value->end(), [](char c) { return c >= '0' && c <= '9'; });
  error(e.value, field,
        "invalid duration '" + *value + "'" +
            (bare_number ? ": missing unit (ms, s, m or h), e.g. '" + *value + "s'"
                         : " (expected a non-negative number with a unit: 250ms, 10s, 1.5m, 1h)"));
  return std::nullopt;
}

std::optional<Duration> Reader::positive_duration(const Entry& e, const std::string& field) {
  const std::optional<Duration> d = duration(e, field);
  if (d && d->count() == 0) {
    error(e.value, field, "must be greater than 0");
    return std::nullopt;
  }
  return d;
}

std::optional<unsigned> Reader::mode(const Entry& e, const std::string& field) {
  const std::optional<std::string> value = text(e, field, Need::kNonEmpty, "an octal file mode");
  if (!value) return std::nullopt;
  std::string_view digits = *value;
  if (digits.size() > 2 && digits[0] == '0' && (digits[1] == 'o' || digits[1] == 'O')) digits.remove_prefix(2);
  unsigned bits = 0;
  bool ok = !digits.empty() && digits.size() <= 4;
  for (const char c : digits) {
    if (c < '0' || c > '7') {
      ok = false;
      break;
    }
    bits = bits * 8 + static_cast<unsigned>(c - '0');
  }
  if (!ok || bits > kMaxMode) {
    error(e.value, field, "invalid file mode '" + *value + "' (expected octal permission bits 0000..0777, e.g. \"0644\")");
    return std::nullopt;
  }
  return bits;
}

std::optional<YAML::Node> Reader::sequence(const Entry& e, const std::string& field, std::string_view noun) {
  if (e.value.IsSequence()) return e.value;
  std::string message = "expected a list, got " + describe(e.value);
  if (e.value.IsMap()) message += " (start each " + std::string(noun) + " with '- ')";
  error(e.value, field, std::move(message));
  return std::nullopt;
}

void Reader::report_bad_choice(const Entry& e, const std::string& field, const std::string& value,
                               std::span<const std::string_view> names) {
  std::string message = "invalid value '" + value + "' (expected one of: " + join_names(names) + ")";
  if (const auto suggestion = closest(value, names)) {
    message = "invalid value '" + value + "' (did you mean '" + std::string(*suggestion) + "'?)";
  }
  error(e.value, field, std::move(message));
}

void Reader::claim_output(const std::string& output, const std::string& field, const YAML::Node& node) {
  const SourceLocation where = location(node);
  const auto [seen, inserted] = output_writers_.emplace(output, std::pair(field, where.line));
  if (!inserted) {
    error(where, field,
          "'" + output + "' is also written by " + seen->second.first + " (line " +
              std::to_string(seen->second.second) + ")");
  }
}

}  // namespace sidecar::core::manifest
