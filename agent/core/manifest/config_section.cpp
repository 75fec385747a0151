#include "agent/core/manifest/sections.hpp"

namespace sidecar::core::manifest {

namespace {

constexpr std::string_view kConfigKeys[] = {"key",  "prefix",    "output",   "default",
                                            "format", "mode", "on_change", "command_timeout"};

// The etcd path of `key:` or `prefix:`: written out (a bare `key:` is "is required") and starting with '/'.
std::optional<std::string> etcd_path(Reader& r, const Entry& e, const std::string& field) {
  if (e.value.IsNull()) {
    r.error(e.key_node, field, "is required");
    return std::nullopt;
  }
  std::optional<std::string> v = r.text(e, field, Need::kNonEmpty);
  if (v && v->front() != '/') {
    r.error(e.value, field, "must start with '/', got '" + *v + "'");
    return std::nullopt;
  }
  return v;
}

}  // namespace

void read_config(Reader& r, const Entry& section, std::vector<ConfigSpec>& out) {
  r.read_items(section, "config", "entry", kConfigKeys, out,
               [&](ConfigSpec& spec, const YAML::Node& item, const std::string& path, const MapView& map) {

    const Entry* key = map.find("key");
    const Entry* prefix = map.find("prefix");
    if (key != nullptr && prefix != nullptr) {
      const Entry* later = r.location(key->key_node).line > r.location(prefix->key_node).line ? key : prefix;
      r.error(later->key_node, path, "has both key and prefix; use exactly one");
    } else if (key == nullptr && prefix == nullptr) {
      r.error(item, path, "needs either key (one value) or prefix (every key below it)");
    } else if (key != nullptr) {
      const std::string field = join_path(path, "key");
      if (auto v = etcd_path(r, *key, field)) {
        if (v->back() == '/') r.warn(key->value, field, "ends with '/'; use prefix: to mirror every key below it");
        spec.key = std::move(*v);
      }
    } else {
      const std::string field = join_path(path, "prefix");
      if (auto v = etcd_path(r, *prefix, field)) {
        if (v->back() != '/') {
          r.error(prefix->value, field, "must end with '/', got '" + *v + "' (did you mean '" + *v + "/'?)");
        } else {
          spec.prefix = std::move(*v);
        }
      }
    }

    read_output(r, map, path, {spec.output, spec.mode, spec.on_change, spec.command_timeout});
    if (const Entry* e = map.find("default")) {
      const std::string field = join_path(path, "default");
      if (prefix != nullptr && key == nullptr) {
        r.error(e->key_node, field, "only applies to key: entries");
      } else if (!e->value.IsNull()) {
        if (auto v = r.text(*e, field, Need::kOptional)) spec.default_value = std::move(*v);
      } else {
        spec.default_value = std::string();
      }
    }
    if (const Entry* e = map.find("format")) {
      const std::string field = join_path(path, "format");
      if (key != nullptr && prefix == nullptr) {
        r.error(e->key_node, field, "only applies to prefix: entries (a key is written as its raw value)");
      } else if (!e->value.IsNull()) {
        static constexpr Choice<std::string_view> kFormats[] = {{"json", "json"}, {"dir", "dir"}};
        if (auto v = r.choice<std::string_view>(*e, field, kFormats)) spec.format = std::string(*v);
      }
    }
  });
}

}  // namespace sidecar::core::manifest
