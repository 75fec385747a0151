#include <algorithm>

#include "agent/core/manifest/address.hpp"
#include "agent/core/manifest/sections.hpp"

namespace sidecar::core::manifest {

namespace {

constexpr std::string_view kCheckKeys[] = {"http",    "tcp",  "exec", "grpc",        "ttl",     "name",   "interval",
                                           "timeout", "rise", "fall", "expect_body", "headers", "service"};
constexpr std::string_view kCheckTypes[] = {"http", "tcp", "exec", "grpc", "ttl"};
constexpr Duration kDefaultCheckTimeout{2000};
constexpr long long kMaxRiseFall = 100;
// A TTL below a second is a heartbeat the app cannot keep over a busy event loop; above a day it is no check.
constexpr Duration kMinTtl{1000};
constexpr Duration kMaxTtl{24 * 3600 * 1000};

void read_headers(Reader& r, const Entry& section, const std::string& path,
                  std::vector<std::pair<std::string, std::string>>& out) {
  if (!section.value.IsMap()) {
    r.error(section.value, path, "expected a map of header names to values, got " + describe(section.value));
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
      r.error(key_node, path, "header names must be letters, digits, '-' or '_', got " + describe(key_node));
      continue;
    }
    const std::string field = join_path(path, key_node.Scalar());
    const Entry entry{key_node.Scalar(), key_node, it->second};
    if (entry.value.IsNull()) {
      r.error(key_node, field, "has no value (write \"\" for an empty header)");
      continue;
    }
    if (auto v = r.text(entry, field, Need::kOptional, "a string")) {
      if (v->find_first_of("\r\n") != std::string::npos) {
        r.error(entry.value, field, "must not contain line breaks");
        continue;
      }
      out.emplace_back(key_node.Scalar(), std::move(*v));
    }
  }
}

// One check; nullopt when it has an error (already reported).
std::optional<CheckSpec> read_check(Reader& r, const YAML::Node& item, const std::string& path) {
  if (!item.IsMap()) {
    r.error(item, path, "expected a map with one of http, tcp, exec, grpc or ttl, got " + describe(item));
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
      r.error(it->first, join_path(path, key), std::move(message));
      return std::nullopt;
    }
  }
  const size_t errors_before = r.error_count();
  const std::optional<MapView> map = r.open_map(item, path, kCheckKeys);
  if (!map) return std::nullopt;
  CheckSpec spec;
  spec.where = r.location(item);

  std::vector<const Entry*> types;
  for (const std::string_view type : kCheckTypes) {
    if (const Entry* e = map->find(type)) types.push_back(e);
  }
  if (types.empty()) {
    r.error(item, path, "needs a check type: one of http, tcp, exec, grpc or ttl");
    return std::nullopt;
  }
  if (types.size() > 1) {
    // Point at the second one written, whatever the order of kCheckTypes.
    std::sort(types.begin(), types.end(), [&](const Entry* a, const Entry* b) {
      return r.location(a->key_node).line < r.location(b->key_node).line;
    });
    r.error(types[1]->key_node, path,
            "has more than one check type (" + types[0]->key + " and " + types[1]->key + "); use one per check");
    return std::nullopt;
  }
  const Entry& type_entry = *types.front();
  const std::string type_field = join_path(path, type_entry.key);
  if (type_entry.value.IsNull()) {
    r.error(type_entry.key_node, type_field, "is required");
    return std::nullopt;
  }
  if (type_entry.key == "ttl") {
    spec.type = CheckType::kTtl;
    if (auto d = r.duration(type_entry, type_field)) {
      if (*d < kMinTtl || *d > kMaxTtl) {
        r.error(type_entry.value, type_field, "must be between 1s and 24h, got " + format_duration(*d));
      } else {
        spec.ttl = *d;
        spec.target = format_duration(*d);
      }
    }
  } else if (type_entry.key == "exec") {
    spec.type = CheckType::kExec;
    if (!type_entry.value.IsSequence()) {
      r.error(type_entry.value, type_field,
              "expected a list of arguments (run without a shell), e.g. [\"/usr/local/bin/check\", \"--quick\"], got " +
                  describe(type_entry.value));
    } else if (type_entry.value.size() == 0) {
      r.error(type_entry.value, type_field, "must name a program to run");
    } else {
      for (std::size_t a = 0; a < type_entry.value.size(); ++a) {
        const Entry arg{type_entry.key, type_entry.key_node, type_entry.value[a]};
        const Need need = a == 0 ? Need::kNonEmpty : Need::kOptional;
        if (auto v = r.text(arg, index_path(type_field, a), need, "a string")) spec.argv.push_back(std::move(*v));
      }
      for (const std::string& a : spec.argv) spec.target += (spec.target.empty() ? "" : " ") + a;
    }
  } else if (auto value = r.text(type_entry, type_field, Need::kNonEmpty, "an address")) {
    spec.target = *value;
    if (type_entry.key == "http") {
      spec.type = CheckType::kHttp;
      HttpUrl url = parse_http_url(*value);
      if (!url.error.empty()) {
        r.error(type_entry.value, type_field, url.error);
      } else {
        spec.host = std::move(url.host);
        spec.port = url.port;
        spec.path = std::move(url.path);
      }
    } else {
      spec.type = type_entry.key == "tcp" ? CheckType::kTcp : CheckType::kGrpc;
      HostPort hp = split_host_port(*value, 0);
      if (!hp.error.empty()) {
        r.error(type_entry.value, type_field,
                "invalid address '" + *value + "': " + hp.error + " (expected host:port)");
      } else {
        spec.host = std::move(hp.host);
        spec.port = hp.port;
      }
    }
  }
  spec.name = std::string(type_entry.key) + " " + spec.target;
  if (const Entry* e = map->get("name")) {
    if (auto v = r.text(*e, join_path(path, "name"), Need::kNonEmpty)) spec.name = std::move(*v);
  }

  // Options that belong to one type only: silently ignoring them would hide a misunderstanding.
  const auto only_for = [&](std::string_view key, CheckType type, std::string_view type_name) {
    const Entry* e = map->find(key);
    if (e != nullptr && spec.type != type) {
      r.error(e->key_node, join_path(path, key), "only applies to " + std::string(type_name) + " checks");
      return static_cast<const Entry*>(nullptr);
    }
    return e;
  };
  if (const Entry* e = only_for("expect_body", CheckType::kHttp, "http")) {
    if (!e->value.IsNull()) {
      if (auto v = r.text(*e, join_path(path, "expect_body"), Need::kOptional)) spec.expect_body = std::move(*v);
    }
  }
  if (const Entry* e = only_for("headers", CheckType::kHttp, "http")) {
    read_headers(r, *e, join_path(path, "headers"), spec.headers);
  }
  if (const Entry* e = only_for("service", CheckType::kGrpc, "grpc")) {
    if (!e->value.IsNull()) {
      if (auto v = r.text(*e, join_path(path, "service"), Need::kOptional)) spec.grpc_service = std::move(*v);
    }
  }

  if (spec.type == CheckType::kTtl) {
    // No probe runs: the probe's timing would be silently ignored, which hides a misunderstanding.
    for (const std::string_view key : {"interval", "timeout", "rise", "fall"}) {
      if (const Entry* e = map->find(key)) {
        r.error(e->key_node, join_path(path, key),
                "does not apply to ttl checks: the app reports pass, warn or fail at least once per ttl");
      }
    }
    if (r.error_count() != errors_before) return std::nullopt;
    return spec;
  }
  bool interval_ok = true;
  if (const Entry* e = map->get("interval")) {
    if (auto d = r.positive_duration(*e, join_path(path, "interval"))) spec.interval = *d; else interval_ok = false;
  }
  if (const Entry* e = map->get("timeout")) {
    const std::string field = join_path(path, "timeout");
    if (auto d = r.positive_duration(*e, field)) {
      spec.timeout = *d;
      if (interval_ok && spec.timeout >= spec.interval) {
        r.error(e->value, field,
                "must be less than interval (" + format_duration(spec.interval) + "), got " +
                    format_duration(spec.timeout) + ": a check must end before the next one is due");
      }
    }
  } else {
    spec.timeout = std::min(kDefaultCheckTimeout, spec.interval / 2);
    if (spec.timeout.count() == 0) spec.timeout = Duration(1);
  }
  if (const Entry* e = map->get("rise")) {
    if (auto v = r.integer(*e, join_path(path, "rise"), 1, kMaxRiseFall)) spec.rise = static_cast<int>(*v);
  }
  if (const Entry* e = map->get("fall")) {
    if (auto v = r.integer(*e, join_path(path, "fall"), 1, kMaxRiseFall)) spec.fall = static_cast<int>(*v);
  }
  if (r.error_count() != errors_before) return std::nullopt;
  return spec;
}

}  // namespace

void read_checks(Reader& r, const Entry& section, const std::string& path, std::vector<CheckSpec>& out) {
  const std::optional<YAML::Node> items = r.sequence(section, path, "check");
  if (!items) return;
  bool has_ttl = false;
  for (std::size_t i = 0; i < items->size(); ++i) {
    auto check = read_check(r, (*items)[i], index_path(path, i));
    if (!check) continue;
    if (check->type == CheckType::kTtl) {
      // The app reports per service id (PUT /v1/checks/<id>/pass): a second ttl check could not be told apart.
      if (has_ttl) {
        r.error((*items)[i], index_path(path, i), "a service has at most one ttl check (the app reports per service id)");
        continue;
      }
      has_ttl = true;
    }
    out.push_back(std::move(*check));
  }
}

}  // namespace sidecar::core::manifest
