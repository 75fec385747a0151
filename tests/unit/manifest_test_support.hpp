// Owns: what the manifest unit tests share: a fixed environment, parsing a raw-string manifest, matching an
// error by line/column/field, and readable printing of errors. Thread: the gtest main thread.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>

#include "agent/core/manifest.hpp"

namespace sidecar::core {

// Readable failures: gtest would otherwise print ManifestError and SourceLocation as raw bytes.
inline void PrintTo(const ManifestError& e, std::ostream* os) { *os << e.to_string(); }
inline void PrintTo(const SourceLocation& l, std::ostream* os) { *os << l.file << ":" << l.line << ":" << l.column; }

namespace manifest_testing {

// Only `vars` are set: the tests never depend on the environment they run in.
inline EnvLookup fixed_env(std::map<std::string, std::string> vars = {}) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    const auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

// Raw strings start with a newline for readability; line 1 is the line after R"(. Source name "m.yaml".
inline ParseResult parse(std::string_view text, const EnvLookup& env = fixed_env()) {
  if (!text.empty() && text.front() == '\n') text.remove_prefix(1);
  return parse_manifest(text, "m.yaml", env);
}

inline ::testing::Matcher<ManifestError> ErrorAt(int line, int column, const std::string& field,
                                                 const std::string& message_part) {
  using ::testing::AllOf;
  using ::testing::Field;
  return AllOf(Field(&ManifestError::where, AllOf(Field(&SourceLocation::file, "m.yaml"),
                                                  Field(&SourceLocation::line, line),
                                                  Field(&SourceLocation::column, column))),
               Field(&ManifestError::field, field),
               Field(&ManifestError::message, ::testing::HasSubstr(message_part)));
}

// Every error and warning, one a line: the message of a failed ASSERT_TRUE(r.ok()).
inline std::string all_errors(const ParseResult& r) {
  std::string out;
  for (const auto& e : r.errors) out += e.to_string() + "\n";
  for (const auto& w : r.warnings) out += w + "\n";
  return out;
}

}  // namespace manifest_testing
}  // namespace sidecar::core
