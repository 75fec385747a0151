// Owns: reading the manifest's YAML: one document, maps checked against their known keys, typed values with
// ${VAR} expanded, and every error and warning at the line and column it points at.
// Thread: pure; one Reader per parse, used by one thread.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstddef>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/core/manifest.hpp"
#include "agent/core/manifest/text.hpp"

namespace sidecar::core::manifest {

struct Entry {
  std::string key;
  YAML::Node key_node;
  YAML::Node value;
};

// A map whose keys have been checked against the schema; unknown and duplicate keys are already reported.
struct MapView {
  YAML::Node node;
  std::vector<Entry> entries;

  const Entry* find(std::string_view key) const;
  // Present with a value: `key:` with nothing after it counts as absent.
  const Entry* get(std::string_view key) const;
};

enum class Need { kOptional, kNonEmpty };

template <typename T>
struct Choice {
  std::string_view name;
  T value;
};

// "a map", "a list", "'text'", "nothing": what was written instead of what was expected.
std::string describe(const YAML::Node& node);

class Reader {
 public:
  Reader(std::string_view source, const EnvLookup& env) : source_(source), env_(env) {}

  // The document's root; nullopt (with the error recorded) when the text is not one non-empty YAML document.
  std::optional<YAML::Node> load(std::string_view text);
  // Errors and warnings in document order; `manifest` is handed out only when there was no error.
  ParseResult finish(Manifest manifest);

  const std::string& source() const { return source_; }
  const EnvLookup& env() const { return env_; }
  std::size_t error_count() const { return errors_.size(); }

  SourceLocation location(const YAML::Mark& mark) const;
  SourceLocation location(const YAML::Node& node) const { return location(node.Mark()); }
  void error(const SourceLocation& where, std::string field, std::string message);
  void error(const YAML::Node& node, std::string field, std::string message);
  void warn(const YAML::Node& node, std::string field, std::string message);

  // YAML itself lets a later key silently win; a manifest is hand-written, so a repeated key is a mistake to
  // point at. False (error reported) when `key` was already seen in this map.
  bool first_occurrence(std::map<std::string, int>& first_line, const std::string& key, const SourceLocation& where,
                        const std::string& field);
  std::optional<MapView> open_map(const YAML::Node& node, const std::string& path,
                                  std::span<const std::string_view> known);
  // The entry for `key`, or an "is required" error pointing at the key (if written empty) or the enclosing map.
  const Entry* require(const MapView& map, std::string_view key, const std::string& path);
  // The items of a list section; `noun` names one item for the "forgot the dash" hint.
  std::optional<YAML::Node> sequence(const Entry& e, const std::string& field, std::string_view noun);
  // For each item of the list section `e` that is a map of `known` keys: a new Spec with its `where` set,
  // filled by `read(spec, item, path, map)` and appended to `out`. The other items are reported. `field` is
  // the section's path, `noun` names one item as for sequence().
  template <typename Spec, typename Read>
  void read_items(const Entry& e, const std::string& field, std::string_view noun,
                  std::span<const std::string_view> known, std::vector<Spec>& out, Read&& read) {
    const std::optional<YAML::Node> items = sequence(e, field, noun);
    if (!items) return;
    for (std::size_t i = 0; i < items->size(); ++i) {
      const YAML::Node item = (*items)[i];
      const std::string path = index_path(field, i);
      const std::optional<MapView> map = open_map(item, path, known);
      if (!map) continue;
      Spec spec;
      spec.where = location(item);
      read(spec, item, path, *map);
      out.push_back(std::move(spec));
    }
  }

  // Expanded text; kNonEmpty reports an empty result, naming the ${...} that produced it.
  std::optional<std::string> text(const Entry& e, const std::string& field, Need need,
                                  std::string_view expected = "a string");
  std::optional<std::string> identifier(const Entry& e, const std::string& field);
  std::optional<long long> integer(const Entry& e, const std::string& field, long long lo, long long hi);
  std::optional<bool> boolean(const Entry& e, const std::string& field);
  std::optional<Duration> duration(const Entry& e, const std::string& field);
  std::optional<Duration> positive_duration(const Entry& e, const std::string& field);
  // Permission bits are always read as octal, quoted or not: "644", "0644" and "0o644" are all rw-r--r--.
  std::optional<unsigned> mode(const Entry& e, const std::string& field);

  template <typename T>
  std::optional<T> choice(const Entry& e, const std::string& field, std::span<const Choice<T>> choices) {
    const std::optional<std::string> value = text(e, field, Need::kNonEmpty, "a name");
    if (!value) return std::nullopt;
    std::vector<std::string_view> names;
    for (const Choice<T>& c : choices) {
      if (c.name == *value) return c.value;
      names.push_back(c.name);
    }
    report_bad_choice(e, field, *value, names);
    return std::nullopt;
  }

  // Two writers racing on one file would make its content depend on event order: the second is an error.
  void claim_output(const std::string& output, const std::string& field, const YAML::Node& node);

 private:
  struct Scalar {
    std::string value;  // expanded
    std::string raw;    // as written
    YAML::Node node;
    std::vector<std::string> unset;
  };
  std::optional<Scalar> scalar(const Entry& e, const std::string& field, std::string_view expected);
  void report_bad_choice(const Entry& e, const std::string& field, const std::string& value,
                         std::span<const std::string_view> names);

  std::string source_;
  const EnvLookup& env_;
  std::vector<ManifestError> errors_;
  std::vector<ManifestError> warnings_;
  std::map<std::string, std::pair<std::string, int>> output_writers_;  // output -> (field, line) of its first writer
};

}  // namespace sidecar::core::manifest
