#include "agent/core/manifest.hpp"

#include "agent/core/instance.hpp"

#include <arpa/inet.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <span>
#include <sstream>
#include <utility>

namespace sidecar::core {

std::string ManifestError::to_string() const {
  std::string out = where.file.empty() ? std::string("<manifest>") : where.file;
  if (where.line > 0) {
    out += ":" + std::to_string(where.line) + ":" + std::to_string(where.column);
  }
  if (!field.empty()) out += ": " + field;
  out += ": " + message;
  return out;
}

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

namespace {

constexpr std::string_view kTopLevelKeys[] = {"etcd", "lease", "services", "discover", "config", "admin", "shutdown"};
constexpr std::string_view kAdminKeys[] = {"listen", "enabled"};
constexpr std::string_view kShutdownKeys[] = {"drain_delay"};
constexpr std::string_view kCheckKeys[] = {"http",  "tcp",  "exec",        "grpc",    "name",   "interval",
                                           "timeout", "rise", "fall", "expect_body", "headers", "service"};
constexpr std::string_view kCheckTypes[] = {"http", "tcp", "exec", "grpc"};
constexpr Duration kDefaultCheckTimeout{2000};
constexpr long long kMaxRiseFall = 100;
constexpr std::string_view kEtcdKeys[] = {"endpoints", "prefix",        "dial_timeout", "request_timeout", "username",
                                          "password_file", "password_env", "password",  "tls"};
constexpr std::string_view kTlsKeys[] = {"ca", "cert", "key"};
constexpr std::string_view kLeaseKeys[] = {"ttl"};
constexpr std::string_view kServiceKeys[] = {"name",         "id",     "address",       "port",
                                             "metadata",     "value_format", "checks", "initial_status"};
constexpr std::string_view kDiscoverKeys[] = {"service", "output",        "format",        "template",
                                              "mode",    "include_self",  "min_instances", "wait",
                                              "check_command", "on_change", "command_timeout"};
constexpr std::string_view kWaitKeys[] = {"min", "max"};
constexpr std::string_view kConfigKeys[] = {"key",  "prefix",    "output",   "default",
                                            "format", "mode", "on_change", "command_timeout"};

constexpr Duration kMinLeaseTtl{1000};
constexpr Duration kMaxLeaseTtl{60 * 60 * 1000};
constexpr unsigned kMaxMode = 0777;

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

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

// Names and ids become etcd key segments and file names downstream, hence the narrow charset.
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

std::optional<int> parse_port_number(std::string_view text) {
  if (text.empty() || text.size() > 5) return std::nullopt;
  int port = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
  if (ec != std::errc() || end != text.data() + text.size() || port < 1 || port > 65535) return std::nullopt;
  return port;
}

struct Endpoint {
  std::string url;
  std::string error;
};

// "host:port", "http://host:port", "https://[::1]:2379/" -> "<scheme>://<host>:<port>".
Endpoint normalise_endpoint(std::string_view text) {
  std::string scheme = "http";
  std::string_view rest = text;
  if (const std::size_t at = text.find("://"); at != std::string_view::npos) {
    scheme.clear();
    for (const char c : text.substr(0, at)) scheme += lower(c);
    if (scheme != "http" && scheme != "https") {
      return {"", "unsupported scheme '" + std::string(text.substr(0, at)) + "' in endpoint '" + std::string(text) +
                      "' (use http:// or https://)"};
    }
    rest = text.substr(at + 3);
  }
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  const auto bad = [&](const std::string& why) {
    return Endpoint{"", "invalid endpoint '" + std::string(text) + "': " + why + " (expected http(s)://host:port)"};
  };
  if (rest.find_first_of("/?#") != std::string_view::npos) return bad("paths are not allowed");
  if (rest.find('@') != std::string_view::npos) return bad("credentials in the URL are not supported");
  if (has_space(rest)) return bad("contains whitespace");

  std::string_view host;
  std::string_view port;
  if (!rest.empty() && rest.front() == '[') {
    const std::size_t close = rest.find(']');
    if (close == std::string_view::npos) return bad("unterminated '[' in IPv6 address");
    host = rest.substr(0, close + 1);
    const std::string_view after = rest.substr(close + 1);
    if (after.empty()) return bad("missing port");
    if (after.front() != ':') return bad("unexpected text after ']'");
    port = after.substr(1);
    if (host.size() == 2) return bad("missing host");
  } else {
    const std::size_t colon = rest.rfind(':');
    if (colon == std::string_view::npos) return bad("missing port");
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
    if (host.empty()) return bad("missing host");
    if (host.find(':') != std::string_view::npos) return bad("IPv6 addresses must be written in brackets");
  }
  if (!parse_port_number(port)) return bad("port must be a number between 1 and 65535");
  return {scheme + "://" + std::string(host) + ":" + std::string(port), ""};
}

struct HostPort {
  std::string host;  // IPv6 without brackets
  int port = 0;
  std::string error;
};

// "host:port" or "[v6]:port". `default_port` > 0 makes the port optional.
HostPort split_host_port(std::string_view text, int default_port) {
  if (text.empty()) return {"", 0, "missing host"};
  if (has_space(text)) return {"", 0, "contains whitespace"};
  std::string_view host;
  std::optional<std::string_view> port;
  if (text.front() == '[') {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos) return {"", 0, "unterminated '[' in IPv6 address"};
    host = text.substr(1, close - 1);
    const std::string_view after = text.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return {"", 0, "unexpected text after ']'"};
      port = after.substr(1);
    }
  } else {
    const std::size_t colon = text.rfind(':');
    if (colon != std::string_view::npos) {
      host = text.substr(0, colon);
      port = text.substr(colon + 1);
      if (host.find(':') != std::string_view::npos) return {"", 0, "IPv6 addresses must be written in brackets"};
    } else {
      host = text;
    }
  }
  if (host.empty()) return {"", 0, "missing host"};
  if (!port) {
    if (default_port > 0) return {std::string(host), default_port, ""};
    return {"", 0, "missing port"};
  }
  const std::optional<int> number = parse_port_number(*port);
  if (!number) return {"", 0, "port must be a number between 1 and 65535"};
  return {std::string(host), *number, ""};
}

struct HttpUrl {
  std::string host;
  int port = 80;
  std::string path = "/";
  std::string error;
};

// http://host[:port][/path][?query]; the fragment is dropped (never sent).
HttpUrl parse_http_url(std::string_view text) {
  const auto bad = [&](const std::string& why) {
    HttpUrl url;
    url.error = "invalid URL '" + std::string(text) + "': " + why + " (expected http://host[:port]/path)";
    return url;
  };
  const std::size_t at = text.find("://");
  if (at == std::string_view::npos) return bad("missing http://");
  std::string scheme;
  for (const char c : text.substr(0, at)) scheme += lower(c);
  if (scheme == "https") return bad("https is not supported by checks yet");
  if (scheme != "http") return bad("unsupported scheme '" + std::string(text.substr(0, at)) + "'");
  std::string_view rest = text.substr(at + 3);
  if (has_space(rest)) return bad("contains whitespace");
  if (const std::size_t hash = rest.find('#'); hash != std::string_view::npos) rest = rest.substr(0, hash);
  const std::size_t path_at = rest.find_first_of("/?");
  const std::string_view authority = rest.substr(0, path_at);
  if (authority.find('@') != std::string_view::npos) return bad("credentials in the URL are not supported");
  HostPort hp = split_host_port(authority, 80);
  if (!hp.error.empty()) return bad(hp.error);
  HttpUrl url;
  url.host = std::move(hp.host);
  url.port = hp.port;
  if (path_at != std::string_view::npos) {
    url.path = std::string(rest.substr(path_at));
    if (url.path.front() == '?') url.path.insert(url.path.begin(), '/');
  }
  return url;
}

struct Entry {
  std::string key;
  YAML::Node key_node;
  YAML::Node value;
};

// A map whose keys have been checked against the schema; unknown and duplicate keys are already reported.
struct MapView {
  YAML::Node node;
  std::vector<Entry> entries;

  const Entry* find(std::string_view key) const {
    for (const Entry& e : entries) {
      if (e.key == key) return &e;
    }
    return nullptr;
  }
  // Present with a value: `key:` with nothing after it counts as absent.
  const Entry* get(std::string_view key) const {
    const Entry* e = find(key);
    return (e != nullptr && !e->value.IsNull()) ? e : nullptr;
  }
};

struct Scalar {
  std::string value;  // expanded
  std::string raw;    // as written
  YAML::Node node;
  std::vector<std::string> unset;
};

enum class Need { kOptional, kNonEmpty };

template <typename T>
struct Choice {
  std::string_view name;
  T value;
};

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

class Parser {
 public:
  Parser(std::string_view source, const EnvLookup& env) : source_(source), env_(env) {}

  ParseResult parse(std::string_view text) {
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
      return finish();
    }
    if (counter.stuck) {
      error(location(counter.last_start), "", "invalid YAML: unexpected token (e.g. a stray ',' outside [...])");
      return finish();
    }
    if (counter.documents <= 1 && root.IsNull()) {
      error(SourceLocation{source_, 0, 0}, "", "manifest is empty");
      return finish();
    }
    if (counter.documents > 1) {
      error(location(counter.second_root), "",
            "manifest must be a single YAML document, found " + std::to_string(counter.documents));
    }
    try {
      parse_root(root);
    } catch (const std::exception& e) {
      // Defensive: a yaml-cpp accessor throwing is a bug here, but the caller was promised no exceptions.
      error(SourceLocation{source_, 0, 0}, "", std::string("internal error while reading the manifest: ") + e.what());
    }
    return finish();
  }

 private:
  SourceLocation location(const YAML::Mark& mark) const {
    if (mark.is_null() || mark.line < 0) return SourceLocation{source_, 0, 0};
    return SourceLocation{source_, mark.line + 1, mark.column + 1};
  }
  SourceLocation location(const YAML::Node& node) const { return location(node.Mark()); }

  void error(const SourceLocation& where, std::string field, std::string message) {
    errors_.push_back(ManifestError{where, std::move(field), std::move(message)});
  }
  void error(const YAML::Node& node, std::string field, std::string message) {
    error(location(node), std::move(field), std::move(message));
  }
  void warn(const YAML::Node& node, std::string field, std::string message) {
    warnings_.push_back(ManifestError{location(node), std::move(field), std::move(message)});
  }

  ParseResult finish() {
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
    if (result.errors.empty()) result.manifest = std::move(manifest_);
    return result;
  }

  // YAML itself lets a later key silently win; a manifest is hand-written, so a repeated key is a mistake to
  // point at. False (error reported) when `key` was already seen in this map.
  bool first_occurrence(std::map<std::string, int>& first_line, const std::string& key, const SourceLocation& where,
                        const std::string& field) {
    if (const auto seen = first_line.find(key); seen != first_line.end()) {
      error(where, field, "duplicate key '" + key + "' (first defined at line " + std::to_string(seen->second) + ")");
      return false;
    }
    first_line.emplace(key, where.line);
    return true;
  }

  std::optional<MapView> open_map(const YAML::Node& node, const std::string& path,
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

  // The entry for `key`, or an "is required" error pointing at the key (if written empty) or the enclosing map.
  const Entry* require(const MapView& map, std::string_view key, const std::string& path) {
    if (const Entry* e = map.get(key)) return e;
    const Entry* written = map.find(key);
    error(written != nullptr ? written->key_node : map.node, join_path(path, key), "is required");
    return nullptr;
  }

  std::optional<Scalar> scalar(const Entry& e, const std::string& field, std::string_view expected) {
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

  // Expanded text; kNonEmpty reports an empty result, naming the ${...} that produced it.
  std::optional<std::string> text(const Entry& e, const std::string& field, Need need,
                                  std::string_view expected = "a string") {
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

  std::optional<std::string> identifier(const Entry& e, const std::string& field) {
    std::optional<std::string> value = text(e, field, Need::kNonEmpty);
    if (!value) return std::nullopt;
    if (const auto problem = identifier_problem(*value)) {
      error(e.value, field, *problem);
      return std::nullopt;
    }
    return value;
  }

  std::optional<long long> integer(const Entry& e, const std::string& field, long long lo, long long hi) {
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

  std::optional<bool> boolean(const Entry& e, const std::string& field) {
    const std::optional<std::string> value = text(e, field, Need::kNonEmpty, "true or false");
    if (!value) return std::nullopt;
    std::string folded;
    for (const char c : *value) folded += lower(c);
    if (folded == "true" || folded == "yes" || folded == "on") return true;
    if (folded == "false" || folded == "no" || folded == "off") return false;
    error(e.value, field, "expected true or false, got '" + *value + "'");
    return std::nullopt;
  }

  std::optional<Duration> duration(const Entry& e, const std::string& field) {
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

  std::optional<Duration> positive_duration(const Entry& e, const std::string& field) {
    const std::optional<Duration> d = duration(e, field);
    if (d && d->count() == 0) {
      error(e.value, field, "must be greater than 0");
      return std::nullopt;
    }
    return d;
  }

  // Permission bits are always read as octal, quoted or not: "644", "0644" and "0o644" are all rw-r--r--.
  std::optional<unsigned> mode(const Entry& e, const std::string& field) {
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

  template <typename T>
  std::optional<T> choice(const Entry& e, const std::string& field, std::span<const Choice<T>> choices) {
    const std::optional<std::string> value = text(e, field, Need::kNonEmpty, "a name");
    if (!value) return std::nullopt;
    std::vector<std::string_view> names;
    for (const Choice<T>& c : choices) {
      if (c.name == *value) return c.value;
      names.push_back(c.name);
    }
    std::string message = "invalid value '" + *value + "' (expected one of: " + join_names(names) + ")";
    if (const auto suggestion = closest(*value, names)) {
      message = "invalid value '" + *value + "' (did you mean '" + std::string(*suggestion) + "'?)";
    }
    error(e.value, field, std::move(message));
    return std::nullopt;
  }

  // The items of a list section; `noun` names one item for the "forgot the dash" hint.
  std::optional<YAML::Node> sequence(const Entry& e, const std::string& field, std::string_view noun) {
    if (e.value.IsSequence()) return e.value;
    std::string message = "expected a list, got " + describe(e.value);
    if (e.value.IsMap()) message += " (start each " + std::string(noun) + " with '- ')";
    error(e.value, field, std::move(message));
    return std::nullopt;
  }

  void parse_root(const YAML::Node& root) {
    manifest_.source = source_;
    if (!root.IsMap()) {
      error(root, "", "manifest must be a map with the keys " + join_names(kTopLevelKeys) + ", got " + describe(root));
      return;
    }
    const std::optional<MapView> top = open_map(root, "", kTopLevelKeys);
    if (!top) return;
    if (const Entry* e = top->get("etcd")) parse_etcd(*e);
    if (const Entry* e = top->get("lease")) parse_lease(*e);
    if (const Entry* e = top->get("services")) parse_services(*e);
    if (const Entry* e = top->get("discover")) parse_discover(*e);
    if (const Entry* e = top->get("config")) parse_config(*e);
    if (const Entry* e = top->get("admin")) parse_admin(*e);
    if (const Entry* e = top->get("shutdown")) parse_shutdown(*e);

    // Judged on what was written, not on what survived parsing, so a broken section is not also "nothing to do".
    const auto written = [&](std::string_view key) {
      const Entry* e = top->get(key);
      return e != nullptr && !(e->value.IsSequence() && e->value.size() == 0);
    };
    if (!written("services") && !written("discover") && !written("config")) {
      error(SourceLocation{source_, 0, 0}, "",
            "nothing to do: the manifest has no services, discover or config entries");
    }
  }

  void parse_etcd(const Entry& section) {
    const std::string path = "etcd";
    const std::optional<MapView> map = open_map(section.value, path, kEtcdKeys);
    if (!map) return;
    EtcdSpec& etcd = manifest_.etcd;

    if (const Entry* e = map->get("endpoints")) {
      const std::string field = join_path(path, "endpoints");
      std::vector<std::pair<Entry, std::string>> items;  // entry + its field path
      if (e->value.IsScalar()) {
        items.emplace_back(*e, field);
      } else if (e->value.IsSequence()) {
        for (std::size_t i = 0; i < e->value.size(); ++i) {
          items.emplace_back(Entry{e->key, e->key_node, e->value[i]}, index_path(field, i));
        }
        if (items.empty()) error(e->value, field, "must list at least one endpoint");
      } else {
        error(e->value, field, "expected a list of URLs or a single URL, got " + describe(e->value));
      }
      std::vector<std::string> endpoints;
      for (const auto& [item, item_field] : items) {
        const std::optional<std::string> value = text(item, item_field, Need::kNonEmpty, "a URL");
        if (!value) continue;
        Endpoint endpoint = normalise_endpoint(*value);
        if (!endpoint.error.empty()) {
          error(item.value, item_field, endpoint.error);
          continue;
        }
        endpoints.push_back(std::move(endpoint.url));
      }
      if (!endpoints.empty()) etcd.endpoints = std::move(endpoints);
    }

    if (const Entry* e = map->get("prefix")) {
      const std::string field = join_path(path, "prefix");
      if (std::optional<std::string> prefix = text(*e, field, Need::kNonEmpty)) {
        if (prefix->front() != '/') {
          error(e->value, field, "must start with '/', got '" + *prefix + "'");
        } else if (has_space(*prefix)) {
          error(e->value, field, "must not contain whitespace, got '" + *prefix + "'");
        } else {
          while (!prefix->empty() && prefix->back() == '/') prefix->pop_back();
          etcd.prefix = std::move(*prefix);
        }
      }
    }
    if (const Entry* e = map->get("dial_timeout")) {
      if (const auto d = positive_duration(*e, join_path(path, "dial_timeout"))) etcd.dial_timeout = *d;
    }
    if (const Entry* e = map->get("request_timeout")) {
      if (const auto d = positive_duration(*e, join_path(path, "request_timeout"))) etcd.request_timeout = *d;
    }
    parse_etcd_auth(*map, path);
    parse_etcd_tls(*map, path);
  }

  void parse_etcd_auth(const MapView& map, const std::string& path) {
    EtcdSpec& etcd = manifest_.etcd;
    const Entry* user = map.get("username");
    if (user) {
      if (auto v = text(*user, join_path(path, "username"), Need::kNonEmpty)) etcd.username = std::move(*v);
    }
    const Entry* sources[] = {map.get("password_file"), map.get("password_env"), map.get("password")};
    const char* names[] = {"password_file", "password_env", "password"};
    const Entry* chosen = nullptr;
    const char* chosen_name = nullptr;
    for (int i = 0; i < 3; ++i) {
      const Entry* e = sources[i];
      if (e == nullptr) continue;
      const std::string field = join_path(path, names[i]);
      if (chosen != nullptr) {
        error(e->key_node, field,
              std::string("only one password source is allowed; ") + chosen_name + " is already set");
        continue;
      }
      chosen = e;
      chosen_name = names[i];
      if (user == nullptr) {
        error(e->key_node, field, "needs etcd.username (the user this password belongs to)");
      }
    }
    if (user != nullptr && chosen == nullptr) {
      error(user->key_node, join_path(path, "username"),
            "needs a password: set one of password_file, password_env or password");
    }
    if (chosen == sources[0] && chosen != nullptr) {
      if (auto v = text(*chosen, join_path(path, "password_file"), Need::kNonEmpty)) etcd.password_file = std::move(*v);
    } else if (chosen == sources[1] && chosen != nullptr) {
      const std::string field = join_path(path, "password_env");
      if (auto v = text(*chosen, field, Need::kNonEmpty)) {
        const bool valid_name = std::all_of(v->begin(), v->end(), [](char c) {
          return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
        }) && !(v->front() >= '0' && v->front() <= '9');
        if (!valid_name) {
          error(chosen->value, field, "must be the name of an environment variable, e.g. ETCD_PASSWORD, got '" + *v + "'");
        } else {
          if (!env_(*v)) warn(chosen->value, field, "environment variable " + *v + " is not set (yet)");
          etcd.password_env = std::move(*v);
        }
      }
    } else if (chosen == sources[2] && chosen != nullptr) {
      const std::string field = join_path(path, "password");
      // Not through text(): its messages may quote the value, and this value must never be printed.
      if (!chosen->value.IsScalar()) {
        error(chosen->value, field, "expected a string");
      } else {
        Expansion x = expand_env(chosen->value.Scalar(), env_);
        if (x.error || x.value.empty()) {
          error(chosen->value, field, x.error ? "invalid ${...} expansion" : "must not be empty");
        } else {
          if (chosen->value.Scalar().find("${") == std::string::npos) {
            warn(chosen->key_node, field,
                 "a literal password is readable by anyone who can read this manifest; prefer password_file or "
                 "password_env");
          }
          etcd.password = std::move(x.value);
        }
      }
    }
  }

  void parse_etcd_tls(const MapView& map, const std::string& path) {
    EtcdSpec& etcd = manifest_.etcd;
    const Entry* section = map.get("tls");
    if (section == nullptr) return;
    const std::string tls_path = join_path(path, "tls");
    const std::optional<MapView> tls = open_map(section->value, tls_path, kTlsKeys);
    if (!tls) return;
    const auto file = [&](std::string_view key, std::string& into) {
      if (const Entry* e = tls->get(key)) {
        if (auto v = text(*e, join_path(tls_path, key), Need::kNonEmpty)) into = std::move(*v);
      }
    };
    file("ca", etcd.tls_ca);
    file("cert", etcd.tls_cert);
    file("key", etcd.tls_key);
    if (const Entry* cert = tls->get("cert"); cert != nullptr && tls->get("key") == nullptr) {
      error(cert->key_node, join_path(tls_path, "cert"), "needs etcd.tls.key (the client certificate's private key)");
    }
    if (const Entry* key = tls->get("key"); key != nullptr && tls->get("cert") == nullptr) {
      error(key->key_node, join_path(tls_path, "key"), "needs etcd.tls.cert (the client certificate)");
    }
    const bool any_https = std::any_of(etcd.endpoints.begin(), etcd.endpoints.end(),
                                       [](const std::string& url) { return url.rfind("https://", 0) == 0; });
    if (!any_https) {
      error(section->key_node, tls_path, "is set but no endpoint uses https:// (TLS applies to https:// endpoints)");
    }
  }

  void parse_admin(const Entry& section) {
    const std::string path = "admin";
    const std::optional<MapView> map = open_map(section.value, path, kAdminKeys);
    if (!map) return;
    AdminSpec& admin = manifest_.admin;
    admin.where = location(section.value);
    if (const Entry* e = map->find("listen"); e != nullptr) {
      const std::string field = join_path(path, "listen");
      // `listen: ""` (or `listen:` with nothing) is the short way to switch the endpoint off.
      if (e->value.IsNull()) {
        admin.enabled = false;
      } else if (const std::optional<std::string> value = text(*e, field, Need::kOptional, "an address")) {
        if (value->empty()) {
          admin.enabled = false;
        } else {
          ListenAddress listen = parse_listen_address(*value);
          if (!listen.error.empty()) {
            error(e->value, field, listen.error);
          } else {
            admin.host = std::move(listen.host);
            admin.port = listen.port;
          }
        }
      }
    }
    if (const Entry* e = map->get("enabled")) {
      if (const auto on = boolean(*e, join_path(path, "enabled")); on && !*on) admin.enabled = false;
    }
  }

  void parse_lease(const Entry& section) {
    const std::string path = "lease";
    const std::optional<MapView> map = open_map(section.value, path, kLeaseKeys);
    if (!map) return;
    const Entry* e = map->get("ttl");
    if (e == nullptr) return;
    const std::string field = join_path(path, "ttl");
    const std::optional<Duration> ttl = duration(*e, field);
    if (!ttl) return;
    if (*ttl < kMinLeaseTtl) {
      error(e->value, field, "must be at least 1s, got " + format_duration(*ttl));
    } else if (*ttl > kMaxLeaseTtl) {
      error(e->value, field, "must be at most 1h, got " + format_duration(*ttl));
    } else if (ttl->count() % 1000 != 0) {
      error(e->value, field,
            "must be a whole number of seconds (etcd lease TTLs have second granularity), got " + e->value.Scalar());
    } else {
      manifest_.lease_ttl = *ttl;
    }
  }

  void parse_services(const Entry& section) {
    const std::optional<YAML::Node> items = sequence(section, "services", "service");
    if (!items) return;
    std::map<std::pair<std::string, std::string>, int> first_line;
    for (std::size_t i = 0; i < items->size(); ++i) {
      const YAML::Node item = (*items)[i];
      const std::string path = index_path("services", i);
      const std::optional<MapView> map = open_map(item, path, kServiceKeys);
      if (!map) continue;
      ServiceSpec spec;
      spec.where = location(item);
      bool complete = true;

      if (const Entry* e = require(*map, "name", path)) {
        if (auto v = identifier(*e, join_path(path, "name"))) spec.name = std::move(*v); else complete = false;
      } else {
        complete = false;
      }
      if (const Entry* e = require(*map, "id", path)) {
        if (auto v = identifier(*e, join_path(path, "id"))) spec.id = std::move(*v); else complete = false;
      } else {
        complete = false;
      }
      if (const Entry* e = map->get("address")) {
        const std::string field = join_path(path, "address");
        if (auto v = text(*e, field, Need::kNonEmpty)) {
          if (!valid_address(*v)) {
            error(e->value, field, "must be a host name or IP address, got '" + *v + "'");
          } else {
            spec.address = std::move(*v);
          }
        }
      }
      if (const Entry* e = require(*map, "port", path)) {
        if (auto v = integer(*e, join_path(path, "port"), 1, 65535)) spec.port = static_cast<int>(*v);
      }
      if (const Entry* e = map->get("metadata")) parse_metadata(*e, join_path(path, "metadata"), spec.metadata);
      if (const Entry* e = map->get("value_format")) {
        static constexpr Choice<ValueFormat> kFormats[] = {{"sidecar", ValueFormat::kSidecarJson},
                                                           {"etcd-endpoints", ValueFormat::kEtcdEndpoints}};
        if (auto v = choice<ValueFormat>(*e, join_path(path, "value_format"), kFormats)) spec.value_format = *v;
      }
      if (const Entry* e = map->get("checks")) parse_checks(*e, join_path(path, "checks"), spec.checks);
      if (const Entry* e = map->get("initial_status")) {
        static constexpr Choice<InitialStatus> kStatuses[] = {{"critical", InitialStatus::kCritical},
                                                              {"passing", InitialStatus::kPassing}};
        if (auto v = choice<InitialStatus>(*e, join_path(path, "initial_status"), kStatuses)) {
          spec.initial_status = *v;
        }
      }

      if (complete) {
        const auto [seen, inserted] = first_line.emplace(std::pair(spec.name, spec.id), spec.where.line);
        if (!inserted) {
          error(item, path,
                "duplicate service " + spec.name + "/" + spec.id + ", first defined at line " +
                    std::to_string(seen->second));
        }
      }
      manifest_.services.push_back(std::move(spec));
    }
  }

  void parse_shutdown(const Entry& section) {
    const std::string path = "shutdown";
    const std::optional<MapView> map = open_map(section.value, path, kShutdownKeys);
    if (!map) return;
    if (const Entry* e = map->get("drain_delay")) {
      if (auto d = duration(*e, join_path(path, "drain_delay"))) manifest_.drain_delay = *d;
    }
  }

  void parse_checks(const Entry& section, const std::string& path, std::vector<CheckSpec>& out) {
    const std::optional<YAML::Node> items = sequence(section, path, "check");
    if (!items) return;
    for (std::size_t i = 0; i < items->size(); ++i) {
      if (auto check = parse_check((*items)[i], index_path(path, i))) out.push_back(std::move(*check));
    }
  }

  // One check; nullopt when it has an error (already reported).
  std::optional<CheckSpec> parse_check(const YAML::Node& item, const std::string& path) {
    if (!item.IsMap()) {
      error(item, path, "expected a map with one of http, tcp, exec or grpc, got " + describe(item));
      return std::nullopt;
    }
    // An unknown key where the type belongs ("script:", "htpp:") is the likely mistake: say it as such.
    bool has_type = false;
    for (auto it = item.begin(); it != item.end(); ++it) {
      if (!it->first.IsScalar()) continue;
      const std::string key = it->first.Scalar();
      if (std::find(std::begin(kCheckTypes), std::end(kCheckTypes), key) != std::end(kCheckTypes)) has_type = true;
    }
    std::vector<std::string_view> known(std::begin(kCheckKeys), std::end(kCheckKeys));
    if (!has_type) {
      for (auto it = item.begin(); it != item.end(); ++it) {
        if (!it->first.IsScalar()) continue;
        const std::string key = it->first.Scalar();
        if (std::find(known.begin(), known.end(), key) != known.end()) continue;
        std::string message = "unknown check type '" + key + "'";
        if (const auto suggestion = closest(key, kCheckTypes)) {
          message += " (did you mean '" + std::string(*suggestion) + "'?)";
        } else {
          message += " (expected one of: " + join_names(kCheckTypes) + ")";
        }
        error(it->first, join_path(path, key), std::move(message));
        return std::nullopt;
      }
    }
    const size_t errors_before = errors_.size();
    const std::optional<MapView> map = open_map(item, path, kCheckKeys);
    if (!map) return std::nullopt;
    CheckSpec spec;
    spec.where = location(item);

    std::vector<const Entry*> types;
    for (const std::string_view type : kCheckTypes) {
      if (const Entry* e = map->find(type)) types.push_back(e);
    }
    if (types.empty()) {
      error(item, path, "needs a check type: one of http, tcp, exec or grpc");
      return std::nullopt;
    }
    if (types.size() > 1) {
      // Point at the second one written, whatever the order of kCheckTypes.
      std::sort(types.begin(), types.end(), [&](const Entry* a, const Entry* b) {
        return location(a->key_node).line < location(b->key_node).line;
      });
      error(types[1]->key_node, path,
            "has more than one check type (" + types[0]->key + " and " + types[1]->key + "); use one per check");
      return std::nullopt;
    }
    const Entry& type_entry = *types.front();
    const std::string type_field = join_path(path, type_entry.key);
    if (type_entry.value.IsNull()) {
      error(type_entry.key_node, type_field, "is required");
      return std::nullopt;
    }
    if (type_entry.key == "exec") {
      spec.type = CheckType::kExec;
      if (!type_entry.value.IsSequence()) {
        error(type_entry.value, type_field,
              "expected a list of arguments (run without a shell), e.g. [\"/usr/local/bin/check\", \"--quick\"], got " +
                  describe(type_entry.value));
      } else if (type_entry.value.size() == 0) {
        error(type_entry.value, type_field, "must name a program to run");
      } else {
        for (std::size_t a = 0; a < type_entry.value.size(); ++a) {
          const Entry arg{type_entry.key, type_entry.key_node, type_entry.value[a]};
          const Need need = a == 0 ? Need::kNonEmpty : Need::kOptional;
          if (auto v = text(arg, index_path(type_field, a), need, "a string")) spec.argv.push_back(std::move(*v));
        }
        for (const std::string& a : spec.argv) spec.target += (spec.target.empty() ? "" : " ") + a;
      }
    } else if (auto value = text(type_entry, type_field, Need::kNonEmpty, "an address")) {
      spec.target = *value;
      if (type_entry.key == "http") {
        spec.type = CheckType::kHttp;
        HttpUrl url = parse_http_url(*value);
        if (!url.error.empty()) {
          error(type_entry.value, type_field, url.error);
        } else {
          spec.host = std::move(url.host);
          spec.port = url.port;
          spec.path = std::move(url.path);
        }
      } else {
        spec.type = type_entry.key == "tcp" ? CheckType::kTcp : CheckType::kGrpc;
        HostPort hp = split_host_port(*value, 0);
        if (!hp.error.empty()) {
          error(type_entry.value, type_field,
                "invalid address '" + *value + "': " + hp.error + " (expected host:port)");
        } else {
          spec.host = std::move(hp.host);
          spec.port = hp.port;
        }
      }
    }
    spec.name = std::string(type_entry.key) + " " + spec.target;
    if (const Entry* e = map->get("name")) {
      if (auto v = text(*e, join_path(path, "name"), Need::kNonEmpty)) spec.name = std::move(*v);
    }

    // Options that belong to one type only: silently ignoring them would hide a misunderstanding.
    const auto only_for = [&](std::string_view key, CheckType type, std::string_view type_name) {
      const Entry* e = map->find(key);
      if (e != nullptr && spec.type != type) {
        error(e->key_node, join_path(path, key), "only applies to " + std::string(type_name) + " checks");
        return static_cast<const Entry*>(nullptr);
      }
      return e;
    };
    if (const Entry* e = only_for("expect_body", CheckType::kHttp, "http")) {
      if (!e->value.IsNull()) {
        if (auto v = text(*e, join_path(path, "expect_body"), Need::kOptional)) spec.expect_body = std::move(*v);
      }
    }
    if (const Entry* e = only_for("headers", CheckType::kHttp, "http")) {
      parse_headers(*e, join_path(path, "headers"), spec.headers);
    }
    if (const Entry* e = only_for("service", CheckType::kGrpc, "grpc")) {
      if (!e->value.IsNull()) {
        if (auto v = text(*e, join_path(path, "service"), Need::kOptional)) spec.grpc_service = std::move(*v);
      }
    }

    bool interval_ok = true;
    if (const Entry* e = map->get("interval")) {
      if (auto d = positive_duration(*e, join_path(path, "interval"))) spec.interval = *d; else interval_ok = false;
    }
    if (const Entry* e = map->get("timeout")) {
      const std::string field = join_path(path, "timeout");
      if (auto d = positive_duration(*e, field)) {
        spec.timeout = *d;
        if (interval_ok && spec.timeout >= spec.interval) {
          error(e->value, field,
                "must be less than interval (" + format_duration(spec.interval) + "), got " +
                    format_duration(spec.timeout) + ": a check must end before the next one is due");
        }
      }
    } else {
      spec.timeout = std::min(kDefaultCheckTimeout, spec.interval / 2);
      if (spec.timeout.count() == 0) spec.timeout = Duration(1);
    }
    if (const Entry* e = map->get("rise")) {
      if (auto v = integer(*e, join_path(path, "rise"), 1, kMaxRiseFall)) spec.rise = static_cast<int>(*v);
    }
    if (const Entry* e = map->get("fall")) {
      if (auto v = integer(*e, join_path(path, "fall"), 1, kMaxRiseFall)) spec.fall = static_cast<int>(*v);
    }
    if (errors_.size() != errors_before) return std::nullopt;
    return spec;
  }

  void parse_headers(const Entry& section, const std::string& path,
                     std::vector<std::pair<std::string, std::string>>& out) {
    if (!section.value.IsMap()) {
      error(section.value, path, "expected a map of header names to values, got " + describe(section.value));
      return;
    }
    for (auto it = section.value.begin(); it != section.value.end(); ++it) {
      const YAML::Node key_node = it->first;
      const bool token = key_node.IsScalar() && !key_node.Scalar().empty() &&
                         std::all_of(key_node.Scalar().begin(), key_node.Scalar().end(), [](char c) {
                           return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                                  c == '-' || c == '_';
                         });
      if (!token) {
        error(key_node, path, "header names must be letters, digits, '-' or '_', got " + describe(key_node));
        continue;
      }
      const std::string field = join_path(path, key_node.Scalar());
      const Entry entry{key_node.Scalar(), key_node, it->second};
      if (entry.value.IsNull()) {
        error(key_node, field, "has no value (write \"\" for an empty header)");
        continue;
      }
      if (auto v = text(entry, field, Need::kOptional, "a string")) {
        if (v->find_first_of("\r\n") != std::string::npos) {
          error(entry.value, field, "must not contain line breaks");
          continue;
        }
        out.emplace_back(key_node.Scalar(), std::move(*v));
      }
    }
  }

  void parse_metadata(const Entry& section, const std::string& path, std::map<std::string, std::string>& out) {
    if (!section.value.IsMap()) {
      error(section.value, path, "expected a map of strings, got " + describe(section.value));
      return;
    }
    std::map<std::string, int> first_line;
    for (auto it = section.value.begin(); it != section.value.end(); ++it) {
      const YAML::Node key_node = it->first;
      if (!key_node.IsScalar() || key_node.Scalar().empty()) {
        error(key_node, path, "metadata keys must be non-empty strings, got " + describe(key_node));
        continue;
      }
      const std::string key = key_node.Scalar();
      const std::string field = join_path(path, key);
      const SourceLocation where = location(key_node);
      if (!first_occurrence(first_line, key, where, field)) continue;
      const Entry entry{key, key_node, it->second};
      if (entry.value.IsNull()) {
        error(key_node, field, "has no value (write \"\" for an empty string)");
        continue;
      }
      if (auto v = text(entry, field, Need::kOptional, "a string, number or boolean")) out[key] = std::move(*v);
    }
  }

  void parse_discover(const Entry& section) {
    const std::optional<YAML::Node> items = sequence(section, "discover", "entry");
    if (!items) return;
    for (std::size_t i = 0; i < items->size(); ++i) {
      const YAML::Node item = (*items)[i];
      const std::string path = index_path("discover", i);
      const std::optional<MapView> map = open_map(item, path, kDiscoverKeys);
      if (!map) continue;
      DiscoverSpec spec;
      spec.where = location(item);

      if (const Entry* e = require(*map, "service", path)) {
        if (auto v = identifier(*e, join_path(path, "service"))) spec.service = std::move(*v);
      }
      if (const Entry* e = require(*map, "output", path)) {
        const std::string field = join_path(path, "output");
        if (auto v = text(*e, field, Need::kNonEmpty)) {
          claim_output(*v, field, e->value);
          spec.output = std::move(*v);
        }
      }
      bool format_known = true;
      if (const Entry* e = map->get("format")) {
        static constexpr Choice<OutputFormat> kFormats[] = {{"json", OutputFormat::kJson},
                                                            {"lines", OutputFormat::kLines},
                                                            {"template", OutputFormat::kTemplate}};
        if (auto v = choice<OutputFormat>(*e, join_path(path, "format"), kFormats)) {
          spec.format = *v;
        } else {
          format_known = false;
        }
      }
      if (format_known) {
        const std::string field = join_path(path, "template");
        if (spec.format == OutputFormat::kTemplate) {
          if (const Entry* e = map->get("template")) {
            if (auto v = text(*e, field, Need::kNonEmpty)) spec.template_path = std::move(*v);
          } else {
            const Entry* written = map->find("template");
            error(written != nullptr ? written->key_node : item, field, "is required when format is template");
          }
        } else if (const Entry* e = map->find("template")) {
          error(e->key_node, field, "is only used with format: template");
        }
      }
      if (const Entry* e = map->get("mode")) {
        if (auto v = mode(*e, join_path(path, "mode"))) spec.mode = *v;
      }
      if (const Entry* e = map->get("include_self")) {
        if (auto v = boolean(*e, join_path(path, "include_self"))) spec.include_self = *v;
      }
      if (const Entry* e = map->get("min_instances")) {
        if (auto v = integer(*e, join_path(path, "min_instances"), 0, INT_MAX)) spec.min_instances = static_cast<int>(*v);
      }
      if (const Entry* e = map->get("wait")) parse_wait(*e, join_path(path, "wait"), spec);
      if (const Entry* e = map->get("check_command")) {
        const std::string field = join_path(path, "check_command");
        if (auto v = text(*e, field, Need::kOptional)) {
          if (!v->empty() && v->find("{{staged}}") == std::string::npos) {
            warn(e->value, field,
                 "does not mention {{staged}}, so it cannot see the file about to be installed");
          }
          spec.check_command = std::move(*v);
        }
      }
      if (const Entry* e = map->get("on_change")) {
        if (auto v = text(*e, join_path(path, "on_change"), Need::kOptional)) spec.on_change = std::move(*v);
      }
      if (const Entry* e = map->get("command_timeout")) {
        if (auto d = positive_duration(*e, join_path(path, "command_timeout"))) spec.command_timeout = *d;
      }
      manifest_.discover.push_back(std::move(spec));
    }
  }

  void parse_wait(const Entry& section, const std::string& path, DiscoverSpec& spec) {
    const std::optional<MapView> map = open_map(section.value, path, kWaitKeys);
    if (!map) return;
    bool ok = true;
    if (const Entry* e = map->get("min")) {
      if (auto d = duration(*e, join_path(path, "min"))) spec.wait_min = *d; else ok = false;
    }
    if (const Entry* e = map->get("max")) {
      if (auto d = duration(*e, join_path(path, "max"))) spec.wait_max = *d; else ok = false;
    }
    if (ok && spec.wait_min > spec.wait_max) {
      error(section.value, path,
            "min (" + format_duration(spec.wait_min) + ") must not exceed max (" + format_duration(spec.wait_max) +
                ")");
    }
  }

  void parse_config(const Entry& section) {
    const std::optional<YAML::Node> items = sequence(section, "config", "entry");
    if (!items) return;
    for (std::size_t i = 0; i < items->size(); ++i) {
      const YAML::Node item = (*items)[i];
      const std::string path = index_path("config", i);
      const std::optional<MapView> map = open_map(item, path, kConfigKeys);
      if (!map) continue;
      ConfigSpec spec;
      spec.where = location(item);

      const Entry* key = map->find("key");
      const Entry* prefix = map->find("prefix");
      if (key != nullptr && prefix != nullptr) {
        const Entry* later = location(key->key_node).line > location(prefix->key_node).line ? key : prefix;
        error(later->key_node, path, "has both key and prefix; use exactly one");
      } else if (key == nullptr && prefix == nullptr) {
        error(item, path, "needs either key (one value) or prefix (every key below it)");
      } else if (key != nullptr) {
        const std::string field = join_path(path, "key");
        if (key->value.IsNull()) {
          error(key->key_node, field, "is required");
        } else if (auto v = text(*key, field, Need::kNonEmpty)) {
          if (v->front() != '/') {
            error(key->value, field, "must start with '/', got '" + *v + "'");
          } else {
            if (v->back() == '/') {
              warn(key->value, field, "ends with '/'; use prefix: to mirror every key below it");
            }
            spec.key = std::move(*v);
          }
        }
      } else {
        const std::string field = join_path(path, "prefix");
        if (prefix->value.IsNull()) {
          error(prefix->key_node, field, "is required");
        } else if (auto v = text(*prefix, field, Need::kNonEmpty)) {
          if (v->front() != '/') {
            error(prefix->value, field, "must start with '/', got '" + *v + "'");
          } else if (v->back() != '/') {
            error(prefix->value, field, "must end with '/', got '" + *v + "' (did you mean '" + *v + "/'?)");
          } else {
            spec.prefix = std::move(*v);
          }
        }
      }

      if (const Entry* e = require(*map, "output", path)) {
        const std::string field = join_path(path, "output");
        if (auto v = text(*e, field, Need::kNonEmpty)) {
          claim_output(*v, field, e->value);
          spec.output = std::move(*v);
        }
      }
      if (const Entry* e = map->find("default")) {
        const std::string field = join_path(path, "default");
        if (prefix != nullptr && key == nullptr) {
          error(e->key_node, field, "only applies to key: entries");
        } else if (!e->value.IsNull()) {
          if (auto v = text(*e, field, Need::kOptional)) spec.default_value = std::move(*v);
        } else {
          spec.default_value = std::string();
        }
      }
      if (const Entry* e = map->find("format")) {
        const std::string field = join_path(path, "format");
        if (key != nullptr && prefix == nullptr) {
          error(e->key_node, field, "only applies to prefix: entries (a key is written as its raw value)");
        } else if (!e->value.IsNull()) {
          static constexpr Choice<std::string_view> kFormats[] = {{"json", "json"}, {"dir", "dir"}};
          if (auto v = choice<std::string_view>(*e, field, kFormats)) spec.format = std::string(*v);
        }
      }
      if (const Entry* e = map->get("mode")) {
        if (auto v = mode(*e, join_path(path, "mode"))) spec.mode = *v;
      }
      if (const Entry* e = map->get("on_change")) {
        if (auto v = text(*e, join_path(path, "on_change"), Need::kOptional)) spec.on_change = std::move(*v);
      }
      if (const Entry* e = map->get("command_timeout")) {
        if (auto d = positive_duration(*e, join_path(path, "command_timeout"))) spec.command_timeout = *d;
      }
      manifest_.config.push_back(std::move(spec));
    }
  }

  // Two writers racing on one file would make its content depend on event order.
  void claim_output(const std::string& output, const std::string& field, const YAML::Node& node) {
    const SourceLocation where = location(node);
    const auto [seen, inserted] = output_writers_.emplace(output, std::pair(field, where.line));
    if (!inserted) {
      error(where, field,
            "'" + output + "' is also written by " + seen->second.first + " (line " +
                std::to_string(seen->second.second) + ")");
    }
  }

  std::string source_;
  const EnvLookup& env_;
  Manifest manifest_;
  std::vector<ManifestError> errors_;
  std::vector<ManifestError> warnings_;
  std::map<std::string, std::pair<std::string, int>> output_writers_;  // output -> (field, line) of its first writer
};

}  // namespace

ListenAddress parse_listen_address(std::string_view text) {
  const auto bad = [&](const std::string& why) {
    return ListenAddress{"", 0, "invalid listen address '" + std::string(text) + "': " + why +
                                    " (expected ip:port, e.g. 127.0.0.1:9464 or [::1]:9464)"};
  };
  std::string host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos) return bad("unterminated '[' in IPv6 address");
    host = std::string(text.substr(1, close - 1));
    const std::string_view after = text.substr(close + 1);
    if (after.empty() || after.front() != ':') return bad("missing port");
    port = after.substr(1);
    in6_addr v6{};
    if (::inet_pton(AF_INET6, host.c_str(), &v6) != 1) return bad("'" + host + "' is not an IPv6 address");
  } else {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad("missing port");
    host = std::string(text.substr(0, colon));
    port = text.substr(colon + 1);
    if (host.empty()) return bad("missing host (use 0.0.0.0 to listen on every interface)");
    if (host.find(':') != std::string::npos) return bad("IPv6 addresses must be written in brackets");
    // An IP literal only: resolving a name at start would make the bind depend on DNS.
    in_addr v4{};
    if (::inet_pton(AF_INET, host.c_str(), &v4) != 1) return bad("'" + host + "' is not an IPv4 address");
  }
  unsigned number = 0;
  const auto [stop, ec] = std::from_chars(port.data(), port.data() + port.size(), number);
  if (port.empty() || ec != std::errc() || stop != port.data() + port.size() || number > 65535) {
    return bad("port must be a number between 0 and 65535");
  }
  return ListenAddress{std::move(host), static_cast<uint16_t>(number), ""};
}

const char* to_string(CheckType type) {
  switch (type) {
    case CheckType::kHttp: return "http";
    case CheckType::kTcp: return "tcp";
    case CheckType::kExec: return "exec";
    case CheckType::kGrpc: return "grpc";
  }
  return "unknown";
}

ParseResult parse_manifest(std::string_view text, std::string_view source_name, const EnvLookup& env) {
  return Parser(source_name, env).parse(text);
}

ParseResult load_manifest(const std::string& path, const EnvLookup& env) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  const auto unreadable = [&](int error_number) {
    ParseResult result;
    result.errors.push_back(
        ManifestError{SourceLocation{path, 0, 0}, "", std::string("cannot read manifest: ") + std::strerror(error_number)});
    return result;
  };
  if (file == nullptr) return unreadable(errno);
  std::string text;
  char buffer[8192];
  std::size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, file)) > 0) text.append(buffer, n);
  const bool failed = std::ferror(file) != 0;
  const int read_errno = errno;
  std::fclose(file);
  if (failed) return unreadable(read_errno != 0 ? read_errno : EIO);
  return parse_manifest(text, path, env);
}

}  // namespace sidecar::core
