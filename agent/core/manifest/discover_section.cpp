#include <algorithm>
#include <climits>

#include "agent/core/instance.hpp"

#include "agent/core/manifest/sections.hpp"

namespace sidecar::core::manifest {

namespace {

constexpr std::string_view kDiscoverKeys[] = {"service", "output",        "format",        "template",
                                              "mode",    "include_self",  "min_instances", "wait",
                                              "check_command", "on_change", "command_timeout",
                                              "select",  "sort"};
constexpr std::string_view kWaitKeys[] = {"min", "max", "holdoff"};
constexpr std::string_view kSelectKeys[] = {"tags", "metadata", "zone", "min_local", "states"};

void read_select(Reader& r, const Entry& section, const std::string& path, Selector& select) {
  const std::optional<MapView> map = r.open_map(section.value, path, kSelectKeys);
  if (!map) return;
  if (const Entry* e = map->get("tags")) {
    read_list(r, *e, join_path(path, "tags"), "tags", [&](const Entry& item, const std::string& field) {
      if (auto v = r.text(item, field, Need::kNonEmpty, "a tag")) select.tags.push_back(std::move(*v));
    });
  }
  if (const Entry* e = map->get("metadata")) read_metadata(r, *e, join_path(path, "metadata"), select.metadata);
  if (const Entry* e = map->get("zone")) {
    const std::string field = join_path(path, "zone");
    if (auto v = r.text(*e, field, Need::kNonEmpty, "'local' or a zone name")) {
      if (*v != kLocalZone && !valid_label(*v)) {
        r.error(e->value, field, "must be 'local' or 1-64 of [A-Za-z0-9._-], got '" + *v + "'");
      } else {
        select.zone = std::move(*v);
      }
    }
  }
  if (const Entry* e = map->get("min_local")) {
    const std::string field = join_path(path, "min_local");
    if (auto v = r.integer(*e, field, 1, INT_MAX)) {
      select.min_local = static_cast<int>(*v);
      if (!select.zone || *select.zone != kLocalZone) {
        r.error(e->key_node, field, "only applies with zone: local");
      }
    }
  }
  if (const Entry* e = map->get("states")) {
    read_list(r, *e, join_path(path, "states"), "states", [&](const Entry& item, const std::string& field) {
      static constexpr Choice<InstanceState> kStates[] = {{"passing", InstanceState::kPassing},
                                                          {"warning", InstanceState::kWarning},
                                                          {"maintenance", InstanceState::kMaintenance},
                                                          {"draining", InstanceState::kDraining}};
      if (auto v = r.choice<InstanceState>(item, field, kStates)) {
        if (std::find(select.states.begin(), select.states.end(), *v) == select.states.end()) {
          select.states.push_back(*v);
        }
      }
    });
  }
}

void read_wait(Reader& r, const Entry& section, const std::string& path, DiscoverSpec& spec) {
  const std::optional<MapView> map = r.open_map(section.value, path, kWaitKeys);
  if (!map) return;
  bool ok = true;
  if (const Entry* e = map->get("min")) {
    if (auto d = r.duration(*e, join_path(path, "min"))) spec.wait_min = *d; else ok = false;
  }
  if (const Entry* e = map->get("max")) {
    if (auto d = r.duration(*e, join_path(path, "max"))) spec.wait_max = *d; else ok = false;
  }
  const Entry* holdoff = map->get("holdoff");
  if (holdoff != nullptr) {
    if (auto d = r.duration(*holdoff, join_path(path, "holdoff"))) spec.wait_holdoff = *d; else ok = false;
  }
  if (ok && spec.wait_min > spec.wait_max) {
    r.error(section.value, path,
            "min (" + format_duration(spec.wait_min) + ") must not exceed max (" + format_duration(spec.wait_max) +
                ")");
  }
  // A holdoff above max would be silently cut to max by the coalescer; say so instead.
  if (ok && spec.wait_holdoff && *spec.wait_holdoff > spec.wait_max) {
    r.error(holdoff->value, join_path(path, "holdoff"),
            "holdoff (" + format_duration(*spec.wait_holdoff) + ") must not exceed max (" + format_duration(spec.wait_max) +
                ")");
  }
}

}  // namespace

void read_discover(Reader& r, const Entry& section, std::vector<DiscoverSpec>& out) {
  r.read_items(section, "discover", "entry", kDiscoverKeys, out,
               [&](DiscoverSpec& spec, const YAML::Node& item, const std::string& path, const MapView& map) {

    if (const Entry* e = r.require(map, "service", path)) {
      if (auto v = r.identifier(*e, join_path(path, "service"))) spec.service = std::move(*v);
    }
    read_output(r, map, path, {spec.output, spec.mode, spec.on_change, spec.command_timeout});
    bool format_known = true;
    if (const Entry* e = map.get("format")) {
      static constexpr Choice<OutputFormat> kFormats[] = {{"json", OutputFormat::kJson},
                                                          {"lines", OutputFormat::kLines},
                                                          {"template", OutputFormat::kTemplate}};
      if (auto v = r.choice<OutputFormat>(*e, join_path(path, "format"), kFormats)) {
        spec.format = *v;
      } else {
        format_known = false;
      }
    }
    if (format_known) {
      const std::string field = join_path(path, "template");
      if (spec.format == OutputFormat::kTemplate) {
        if (const Entry* e = map.get("template")) {
          if (auto v = r.text(*e, field, Need::kNonEmpty)) spec.template_path = std::move(*v);
        } else {
          const Entry* written = map.find("template");
          r.error(written != nullptr ? written->key_node : item, field, "is required when format is template");
        }
      } else if (const Entry* e = map.find("template")) {
        r.error(e->key_node, field, "is only used with format: template");
      }
    }
    if (const Entry* e = map.get("include_self")) {
      if (auto v = r.boolean(*e, join_path(path, "include_self"))) spec.include_self = *v;
    }
    if (const Entry* e = map.get("min_instances")) {
      if (auto v = r.integer(*e, join_path(path, "min_instances"), 0, INT_MAX)) spec.min_instances = static_cast<int>(*v);
    }
    if (const Entry* e = map.get("wait")) read_wait(r, *e, join_path(path, "wait"), spec);
    if (const Entry* e = map.get("select")) read_select(r, *e, join_path(path, "select"), spec.select);
    if (const Entry* e = map.get("sort")) {
      static constexpr Choice<SortOrder> kSorts[] = {{"id", SortOrder::kId},
                                                     {"weight", SortOrder::kWeight},
                                                     {"random-stable", SortOrder::kRandomStable}};
      if (auto v = r.choice<SortOrder>(*e, join_path(path, "sort"), kSorts)) spec.sort = *v;
    }
    if (const Entry* e = map.get("check_command")) {
      const std::string field = join_path(path, "check_command");
      if (auto v = r.text(*e, field, Need::kOptional)) {
        if (!v->empty() && v->find("{{staged}}") == std::string::npos) {
          r.warn(e->value, field,
                 "does not mention {{staged}}, so it cannot see the file about to be installed");
        }
        spec.check_command = std::move(*v);
      }
    }
  });
}

}  // namespace sidecar::core::manifest
