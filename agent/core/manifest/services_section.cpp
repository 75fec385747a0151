#include <algorithm>

#include "agent/core/instance.hpp"
#include "agent/core/manifest/sections.hpp"

namespace sidecar::core::manifest {

namespace {

constexpr std::string_view kServiceKeys[] = {"name",   "id",     "address", "port",   "metadata",     "value_format",
                                             "checks", "ports",  "tags",    "weight", "zone",         "region",
                                             "initial_status"};

// Each entry of the map section `section` whose key is acceptable (`key_problem` returns nullopt; else its
// message is reported at the key) and not a repeat (YAML would let a repeated key silently win).
template <typename KeyProblem, typename Each>
void read_map_entries(Reader& r, const Entry& section, const std::string& path, std::string_view expected,
                      KeyProblem&& key_problem, Each&& each) {
  if (!section.value.IsMap()) {
    r.error(section.value, path, "expected " + std::string(expected) + ", got " + describe(section.value));
    return;
  }
  std::map<std::string, int> first_line;
  for (auto it = section.value.begin(); it != section.value.end(); ++it) {
    const YAML::Node key_node = it->first;
    if (const std::optional<std::string> problem = key_problem(key_node)) {
      r.error(key_node, path, *problem);
      continue;
    }
    const std::string key = key_node.Scalar();
    const std::string field = join_path(path, key);
    if (!r.first_occurrence(first_line, key, r.location(key_node), field)) continue;
    each(Entry{key, key_node, it->second}, field);
  }
}

// `ports: {http: 8080, grpc: 9090}`.
void read_ports(Reader& r, const Entry& section, const std::string& path, std::map<std::string, int>& out) {
  const auto key_problem = [](const YAML::Node& key) -> std::optional<std::string> {
    if (key.IsScalar() && valid_port_name(key.Scalar())) return std::nullopt;
    return "port name " + describe(key) + " must be 1-15 of [a-z0-9-] (like 'http', 'grpc')";
  };
  read_map_entries(r, section, path, "a map of name: port", key_problem, [&](const Entry& e, const std::string& field) {
    if (auto v = r.integer(e, field, 1, 65535)) out[e.key] = static_cast<int>(*v);
  });
}

void read_tags(Reader& r, const Entry& section, const std::string& path, std::vector<std::string>& out) {
  read_list(r, section, path, "tags", [&](const Entry& item, const std::string& field) {
    const auto v = r.text(item, field, Need::kNonEmpty, "a tag");
    if (!v) return;
    if (!valid_label(*v)) {
      r.error(item.value, field, "tag '" + *v + "' must be 1-64 of [A-Za-z0-9._-]");
      return;
    }
    out.push_back(*v);
  });
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
}

}  // namespace

void read_metadata(Reader& r, const Entry& section, const std::string& path, std::map<std::string, std::string>& out) {
  const auto key_problem = [](const YAML::Node& key) -> std::optional<std::string> {
    if (key.IsScalar() && !key.Scalar().empty()) return std::nullopt;
    return "metadata keys must be non-empty strings, got " + describe(key);
  };
  read_map_entries(r, section, path, "a map of strings", key_problem, [&](const Entry& e, const std::string& field) {
    if (e.value.IsNull()) {
      r.error(e.key_node, field, "has no value (write \"\" for an empty string)");
      return;
    }
    if (auto v = r.text(e, field, Need::kOptional, "a string, number or boolean")) out[e.key] = std::move(*v);
  });
}

// `zone:`/`region:` of a service or of the agent: optional, expanded, [A-Za-z0-9._-]{1,64}.
std::optional<std::string> read_locality(Reader& r, const Entry& e, const std::string& field) {
  std::optional<std::string> v = r.text(e, field, Need::kOptional);
  if (!v || v->empty()) return v;
  if (!valid_label(*v)) {
    r.error(e.value, field, "must be 1-64 of [A-Za-z0-9._-], got '" + *v + "'");
    return std::nullopt;
  }
  return v;
}

void read_services(Reader& r, const Entry& section, std::vector<ServiceSpec>& out) {
  std::map<std::pair<std::string, std::string>, int> first_line;
  r.read_items(section, "services", "service", kServiceKeys, out,
               [&](ServiceSpec& spec, const YAML::Node& item, const std::string& path, const MapView& map) {
    bool complete = true;

    if (const Entry* e = r.require(map, "name", path)) {
      if (auto v = r.identifier(*e, join_path(path, "name"))) spec.name = std::move(*v); else complete = false;
    } else {
      complete = false;
    }
    if (const Entry* e = r.require(map, "id", path)) {
      if (auto v = r.identifier(*e, join_path(path, "id"))) spec.id = std::move(*v); else complete = false;
    } else {
      complete = false;
    }
    if (const Entry* e = map.get("address")) {
      const std::string field = join_path(path, "address");
      if (auto v = r.text(*e, field, Need::kNonEmpty)) {
        if (!valid_address(*v)) {
          r.error(e->value, field, "must be a host name or IP address, got '" + *v + "'");
        } else {
          spec.address = std::move(*v);
        }
      }
    }
    if (const Entry* e = r.require(map, "port", path)) {
      if (auto v = r.integer(*e, join_path(path, "port"), 1, 65535)) spec.port = static_cast<int>(*v);
    }
    if (const Entry* e = map.get("metadata")) read_metadata(r, *e, join_path(path, "metadata"), spec.metadata);
    if (const Entry* e = map.get("ports")) read_ports(r, *e, join_path(path, "ports"), spec.ports);
    if (const Entry* e = map.get("tags")) read_tags(r, *e, join_path(path, "tags"), spec.tags);
    if (const Entry* e = map.get("weight")) {
      if (auto v = r.integer(*e, join_path(path, "weight"), kMinWeight, kMaxWeight)) spec.weight = static_cast<int>(*v);
    }
    if (const Entry* e = map.get("zone")) {
      if (auto v = read_locality(r, *e, join_path(path, "zone"))) spec.zone = std::move(*v);
    }
    if (const Entry* e = map.get("region")) {
      if (auto v = read_locality(r, *e, join_path(path, "region"))) spec.region = std::move(*v);
    }
    if (const Entry* e = map.get("value_format")) {
      static constexpr Choice<ValueFormat> kFormats[] = {{"sidecar", ValueFormat::kSidecarJson},
                                                         {"etcd-endpoints", ValueFormat::kEtcdEndpoints}};
      if (auto v = r.choice<ValueFormat>(*e, join_path(path, "value_format"), kFormats)) spec.value_format = *v;
    }
    if (const Entry* e = map.get("checks")) read_checks(r, *e, join_path(path, "checks"), spec.checks);
    if (const Entry* e = map.get("initial_status")) {
      static constexpr Choice<InitialStatus> kStatuses[] = {{"critical", InitialStatus::kCritical},
                                                            {"passing", InitialStatus::kPassing}};
      if (auto v = r.choice<InitialStatus>(*e, join_path(path, "initial_status"), kStatuses)) {
        spec.initial_status = *v;
      }
    }

    if (complete) {
      const auto [seen, inserted] = first_line.emplace(std::pair(spec.name, spec.id), spec.where.line);
      if (!inserted) {
        r.error(item, path,
                "duplicate service " + spec.name + "/" + spec.id + ", first defined at line " +
                    std::to_string(seen->second));
      }
    }
  });
}

}  // namespace sidecar::core::manifest
