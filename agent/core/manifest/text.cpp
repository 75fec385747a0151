#include "agent/core/manifest/text.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace sidecar::core {

EnvLookup process_env() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

std::optional<Duration> parse_duration(std::string_view text) {
  // Integer arithmetic only: "0.1s" must be exactly 100ms, and digit caps keep every product inside int64.
  constexpr std::size_t kMaxWholeDigits = 12;
  constexpr std::size_t kMaxFractionDigits = 9;
  const auto is_digit = [](char c) { return c >= '0' && c <= '9'; };

  std::size_t i = 0;
  std::int64_t whole = 0;
  std::size_t whole_digits = 0;
  while (i < text.size() && is_digit(text[i])) {
    if (++whole_digits > kMaxWholeDigits) return std::nullopt;
    whole = whole * 10 + (text[i] - '0');
    ++i;
  }
  if (whole_digits == 0) return std::nullopt;

  std::int64_t fraction = 0;
  std::int64_t scale = 1;
  if (i < text.size() && text[i] == '.') {
    ++i;
    std::size_t fraction_digits = 0;
    while (i < text.size() && is_digit(text[i])) {
      if (++fraction_digits > kMaxFractionDigits) return std::nullopt;
      fraction = fraction * 10 + (text[i] - '0');
      scale *= 10;
      ++i;
    }
    if (fraction_digits == 0) return std::nullopt;
  }

  const std::string_view unit = text.substr(i);
  std::int64_t unit_ms = 0;
  if (unit == "ms") {
    unit_ms = 1;
  } else if (unit == "s") {
    unit_ms = 1000;
  } else if (unit == "m") {
    unit_ms = 60 * 1000;
  } else if (unit == "h") {
    unit_ms = 60 * 60 * 1000;
  } else {
    return std::nullopt;
  }
  // Sub-millisecond remainders would be silently truncated; refuse them instead.
  if ((fraction * unit_ms) % scale != 0) return std::nullopt;
  return Duration(whole * unit_ms + fraction * unit_ms / scale);
}

namespace {

bool is_var_start(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
bool is_var_char(char c) { return is_var_start(c) || (c >= '0' && c <= '9'); }

bool valid_var_name(std::string_view name) {
  if (name.empty() || !is_var_start(name.front())) return false;
  return std::all_of(name.begin(), name.end(), is_var_char);
}

// Appends the expansion of `text` to `out`; stops at the first error. Defaults may nest "${...}".
void expand_into(std::string_view text, const EnvLookup& env, Expansion& out) {
  std::size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (c != '$' || i + 1 >= text.size()) {
      out.value += c;
      ++i;
      continue;
    }
    const char next = text[i + 1];
    if (next == '$') {
      out.value += '$';
      i += 2;
      continue;
    }
    if (next != '{') {
      // "$HOME" and "$(cmd)" belong to the shell that runs hooks; leave them alone.
      out.value += c;
      ++i;
      continue;
    }
    std::size_t depth = 1;
    std::size_t j = i + 2;
    while (j < text.size()) {
      if (text[j] == '$' && j + 1 < text.size() && (text[j + 1] == '$' || text[j + 1] == '{')) {
        if (text[j + 1] == '{') ++depth;
        j += 2;
        continue;
      }
      if (text[j] == '}' && --depth == 0) break;
      ++j;
    }
    if (j >= text.size()) {
      out.error = "unterminated '${' in '" + std::string(text) + "'";
      return;
    }
    const std::string_view body = text.substr(i + 2, j - (i + 2));
    const std::size_t separator = body.find(":-");
    const std::string_view name = separator == std::string_view::npos ? body : body.substr(0, separator);
    if (!valid_var_name(name)) {
      out.error = "bad substitution '${" + std::string(body) +
                  "}' (expected ${NAME} or ${NAME:-default}, NAME made of letters, digits and '_')";
      return;
    }
    const std::optional<std::string> value = env(std::string(name));
    if (separator == std::string_view::npos) {
      if (value) {
        out.value += *value;
      } else {
        out.unset.emplace_back(name);
      }
    } else if (value && !value->empty()) {
      // Shell semantics of ":-": an empty variable is as good as an unset one.
      out.value += *value;
    } else {
      expand_into(body.substr(separator + 2), env, out);
      if (out.error) return;
    }
    i = j + 1;
  }
}

}  // namespace

Expansion expand_env(std::string_view text, const EnvLookup& env) {
  Expansion out;
  expand_into(text, env, out);
  if (out.error) out.value.clear();
  return out;
}

}  // namespace sidecar::core

namespace sidecar::core::manifest {

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

namespace {

// Optimal string alignment distance, case-insensitive: "prot" is one step from "port".
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) && lower(a[i - 2]) == lower(b[j - 1])) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

}  // namespace

// The closest candidate within two edits, unless the word is so short that anything would be "close".
std::optional<std::string_view> closest(std::string_view word, std::span<const std::string_view> candidates) {
  std::optional<std::string_view> best;
  std::size_t best_distance = 3;
  for (const std::string_view candidate : candidates) {
    const std::size_t distance = edit_distance(word, candidate);
    if (distance < best_distance && distance < word.size()) {
      best = candidate;
      best_distance = distance;
    }
  }
  return best;
}

std::string join_names(std::span<const std::string_view> names) {
  std::string out;
  for (const std::string_view name : names) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

std::string format_duration(Duration d) {
  const auto ms = d.count();
  if (ms != 0 && ms % (60 * 60 * 1000) == 0) return std::to_string(ms / (60 * 60 * 1000)) + "h";
  if (ms != 0 && ms % (60 * 1000) == 0) return std::to_string(ms / (60 * 1000)) + "m";
  if (ms != 0 && ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

std::string join_path(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}

std::string index_path(const std::string& path, std::size_t index) {
  return path + "[" + std::to_string(index) + "]";
}

std::optional<std::string> identifier_problem(std::string_view text) {
  for (const char c : text) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == '-';
    if (ok) continue;
    std::string shown;
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
      char buffer[8];
      std::snprintf(buffer, sizeof buffer, "\\x%02x", static_cast<unsigned char>(c));
      shown = buffer;
    } else {
      shown = std::string(1, c);
    }
    return "invalid character '" + shown + "' in '" + std::string(text) +
           "' (allowed: letters, digits, '.', '_', '-')";
  }
  return std::nullopt;
}

bool has_space(std::string_view text) {
  return std::any_of(text.begin(), text.end(),
                     [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; });
}

}  // namespace sidecar::core::manifest
