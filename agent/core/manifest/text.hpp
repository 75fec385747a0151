// Owns: the text grammars under the manifest's values: "did you mean" suggestions, field paths, durations
// written back for messages, identifiers (durations and ${VAR} themselves are public, in manifest.hpp).
// Thread: pure functions; any thread.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "agent/core/manifest.hpp"

namespace sidecar::core::manifest {

char lower(char c);

// The closest candidate within two edits (case-insensitive), unless the word is so short that anything
// would be "close": "prot" -> "port".
std::optional<std::string_view> closest(std::string_view word, std::span<const std::string_view> candidates);
// "a, b, c": the list of accepted names in "expected one of" messages.
std::string join_names(std::span<const std::string_view> names);

// "services[0]" + "port" -> "services[0].port"; "" + "etcd" -> "etcd".
std::string join_path(const std::string& path, std::string_view key);
// "services" + 2 -> "services[2]".
std::string index_path(const std::string& path, std::size_t index);

// The shortest exact spelling of `d` ("90s" -> "90s", "60000ms" -> "1m") for messages.
std::string format_duration(Duration d);

// Why `text` cannot be a service name or id (nullopt when it can): they become etcd key segments and file
// names downstream, hence the narrow charset.
std::optional<std::string> identifier_problem(std::string_view text);

bool has_space(std::string_view text);

}  // namespace sidecar::core::manifest
