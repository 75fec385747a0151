#include "agent/output/render.hpp"

#include <algorithm>
#include <cctype>
#include <exception>
#include <functional>
#include <map>
#include <memory>

#include <kainjow/mustache.hpp>
#include <nlohmann/json.hpp>

namespace sidecar::output {
namespace {

using nlohmann::json;
namespace mustache = kainjow::mustache;

std::string quote(std::string_view s) {
  return json(std::string(s)).dump(-1, ' ', false, json::error_handler_t::replace);
}

// Appends s as a JSON string. Ids and addresses are almost always plain printable ASCII, which JSON takes
// as is: that case is copied directly (a 10,000-instance file spent most of its render time building a
// json value per string); anything else goes through nlohmann, so the bytes are identical either way.
void append_quoted(std::string& out, std::string_view s) {
  const bool plain = std::all_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u >= 0x20 && u < 0x7f && c != '"' && c != '\\';
  });
  if (!plain) {
    out += quote(s);
    return;
  }
  out += '"';
  out += s;
  out += '"';
}

// Only valid instances; in id order unless the spec sorts otherwise (then the caller's order is kept: it
// comes from select_instances). The caller normally passes EndpointSet::sorted() (already ordered), so
// the sort is skipped in the common case.
std::vector<const core::Instance*> ordered(const std::vector<const core::Instance*>& in, core::SortOrder order) {
  std::vector<const core::Instance*> out;
  out.reserve(in.size());
  for (const auto* inst : in) {
    if (inst != nullptr && inst->valid()) out.push_back(inst);
  }
  if (order != core::SortOrder::kId) return out;
  auto by_id = [](const core::Instance* a, const core::Instance* b) { return a->id < b->id; };
  if (!std::is_sorted(out.begin(), out.end(), by_id)) std::sort(out.begin(), out.end(), by_id);
  return out;
}

void append_fragment(std::string& out, const core::Instance& inst) {
  out += "{\"id\":";
  append_quoted(out, inst.id);
  out += ",\"address\":";
  append_quoted(out, inst.address);
  out += ",\"port\":";
  out += std::to_string(inst.port);
  out += ",\"metadata\":";
  // Already compact, sorted JSON produced by parse_instance_value: spliced, not re-parsed.
  out += inst.metadata_json.empty() ? std::string_view("{}") : std::string_view(inst.metadata_json);
  // The rich fields only when not at their default, as in the stored value: a plain set renders the
  // bytes it always did.
  if (!inst.ports().empty()) {
    out += ",\"ports\":{";
    bool first = true;
    for (const auto& [name, port] : inst.ports()) {
      if (!first) out += ',';
      first = false;
      append_quoted(out, name);
      out += ':';
      out += std::to_string(port);
    }
    out += '}';
  }
  if (!inst.tags().empty()) {
    out += ",\"tags\":[";
    bool first = true;
    for (const auto& tag : inst.tags()) {
      if (!first) out += ',';
      first = false;
      append_quoted(out, tag);
    }
    out += ']';
  }
  if (inst.weight != core::kDefaultWeight) {
    out += ",\"weight\":";
    out += std::to_string(inst.weight);
  }
  if (!inst.zone().empty()) {
    out += ",\"zone\":";
    append_quoted(out, inst.zone());
  }
  if (!inst.region().empty()) {
    out += ",\"region\":";
    append_quoted(out, inst.region());
  }
  if (inst.state != core::InstanceState::kPassing) {
    out += ",\"state\":";
    append_quoted(out, core::to_string(inst.state));
  }
  out += '}';
}

void append_json_head(std::string& out, std::string_view service, int64_t revision) {
  out += "{\"service\":";
  out += quote(service);
  out += ",\"revision\":";
  out += std::to_string(revision);
  out += ",\"instances\":[";
}

constexpr std::string_view kJsonTail = "]}\n";

// Into `out`, whose capacity is kept: the caller reuses one buffer, so a megabyte-sized file does not cost
// fresh pages (and their page faults) on every write.
void render_json(std::string& out, std::string_view service, int64_t revision,
                 const std::vector<const core::Instance*>& list) {
  out.clear();
  out.reserve(64 + list.size() * 96);
  append_json_head(out, service, revision);
  bool first = true;
  for (const auto* inst : list) {
    if (!first) out += ',';
    first = false;
    append_fragment(out, *inst);
  }
  out += kJsonTail;
}

std::string render_lines(const std::vector<const core::Instance*>& list) {
  std::string out;
  out.reserve(list.size() * 24);
  for (const auto* inst : list) {
    out += inst->endpoint();
    out += '\n';
  }
  return out;
}

mustache::data to_data(const json& j) {
  switch (j.type()) {
    case json::value_t::object: {
      mustache::data obj{mustache::data::type::object};
      for (const auto& [k, v] : j.items()) obj[k] = to_data(v);
      return obj;
    }
    case json::value_t::array: {
      mustache::data list{mustache::data::type::list};
      for (const auto& v : j) list.push_back(to_data(v));
      return list;
    }
    case json::value_t::string:
      return mustache::data{j.get_ref<const std::string&>()};
    case json::value_t::boolean:
      return mustache::data{j.get<bool>()};
    case json::value_t::null:
    case json::value_t::discarded:
      return mustache::data{false};
    default:  // numbers
      return mustache::data{j.dump()};
  }
}

std::string env_name(std::string_view service) {
  std::string out(service);
  for (char& c : out) {
    unsigned char u = static_cast<unsigned char>(c);
    c = std::isalnum(u) ? static_cast<char>(std::toupper(u)) : '_';
  }
  return out;
}

std::string slug(std::string_view id) {
  std::string out(id);
  for (char& c : out) {
    unsigned char u = static_cast<unsigned char>(c);
    if (!(std::isalnum(u) || c == '.' || c == '_' || c == '-')) c = '_';
  }
  return out;
}

std::string identity(const std::string& s) { return s; }

mustache::data text(std::string value) { return mustache::data{std::move(value)}; }

mustache::data make_item(const core::Instance& inst, size_t index, size_t count) {
  mustache::data item{mustache::data::type::object};
  item["id"] = text(inst.id);
  item["slug"] = text(slug(inst.id));
  item["address"] = text(inst.address);
  item["port"] = text(std::to_string(inst.port));
  item["endpoint"] = text(inst.endpoint());
  item["index"] = text(std::to_string(index));
  item["first"] = mustache::data{index == 0};
  item["last"] = mustache::data{index + 1 == count};
  item["metadata"] = to_data(inst.metadata());
  item["weight"] = text(std::to_string(inst.weight));
  item["state"] = text(std::string(core::to_string(inst.state)));
  // Absent zone/region are false, so {{#zone}}…{{/zone}} can guard them.
  item["zone"] = inst.zone().empty() ? mustache::data{false} : text(inst.zone());
  item["region"] = inst.region().empty() ? mustache::data{false} : text(inst.region());
  mustache::data tags{mustache::data::type::list};
  for (const auto& tag : inst.tags()) tags.push_back(text(tag));
  item["tags"] = std::move(tags);
  mustache::data ports{mustache::data::type::object};
  mustache::data port_list{mustache::data::type::list};
  for (const auto& [name, port] : inst.ports()) {
    ports[name] = text(std::to_string(port));
    mustache::data entry{mustache::data::type::object};
    entry["name"] = text(name);
    entry["port"] = text(std::to_string(port));
    port_list.push_back(std::move(entry));
  }
  item["ports"] = std::move(ports);
  item["port_list"] = std::move(port_list);
  return item;
}

// One list of instances in the context: the top-level "instances", or those of one zone or one tag.
struct Group {
  std::vector<const core::Instance*> members;
  const mustache::data* placeholders = nullptr;  // the list of `true` placeholders standing for them
};

// A kainjow data tree costs ~4 KB per instance (an unordered_map per object, a heap string per field);
// 100k instances would need 400 MB. Instead each instance list is a list of allocation-free placeholders,
// and this context swaps a placeholder for its real object while the section is rendering that element,
// so one instance is materialised at a time. Lookup rules are kainjow's own (innermost scope first,
// dotted names walk objects, "." is the current element).
class LazyInstancesContext final : public mustache::basic_context<std::string> {
 public:
  LazyInstancesContext(const mustache::data* root, const std::vector<Group>& groups) : groups_(groups) {
    for (size_t g = 0; g < groups_.size(); ++g) {
      const auto& items = groups_[g].placeholders->list_value();
      if (!items.empty()) by_address_.emplace(&items.front(), g);
    }
    push(root);
  }

  void push(const mustache::data* data) override {
    if (auto found = placeholder(data)) {
      const Group& group = groups_[found->first];
      owned_.push_back(std::make_unique<mustache::data>(
          make_item(*group.members[found->second], found->second, group.members.size())));
      stack_.push_back({owned_.back().get(), true});
    } else {
      stack_.push_back({data, false});
    }
  }

  void pop() override {
    if (stack_.back().owned) owned_.pop_back();
    stack_.pop_back();
  }

  const mustache::data* get(const std::string& name) const override {
    if (name == ".") return stack_.back().data;
    std::vector<std::string> parts;
    size_t start = 0;
    while (true) {
      size_t dot = name.find('.', start);
      parts.push_back(name.substr(start, dot - start));
      if (dot == std::string::npos) break;
      start = dot + 1;
    }
    for (auto it = stack_.rbegin(); it != stack_.rend(); ++it) {
      const mustache::data* var = it->data;
      for (const auto& part : parts) {
        var = var->get(part);
        if (var == nullptr) break;
      }
      if (var != nullptr) return var;
    }
    return nullptr;
  }

  // Partials would need files the manifest does not declare: none are offered.
  const mustache::data* get_partial(const std::string&) const override { return nullptr; }

 private:
  struct Frame {
    const mustache::data* data;
    bool owned;
  };

  // (group, index in the group) when `data` is one of the placeholders.
  std::optional<std::pair<size_t, size_t>> placeholder(const mustache::data* data) const {
    auto it = by_address_.upper_bound(data);
    if (it == by_address_.begin()) return std::nullopt;
    --it;
    const auto& items = groups_[it->second].placeholders->list_value();
    std::less<const mustache::data*> before;
    if (before(&items.back(), data)) return std::nullopt;
    return std::pair(it->second, static_cast<size_t>(data - &items.front()));
  }

  const std::vector<Group>& groups_;
  std::map<const mustache::data*, size_t, std::less<>> by_address_;  // first placeholder -> group
  std::vector<Frame> stack_;
  std::vector<std::unique_ptr<mustache::data>> owned_;
};

mustache::data placeholders_for(size_t count) {
  mustache::data list{mustache::data::type::list};
  for (size_t i = 0; i < count; ++i) list.push_back(mustache::data{true});
  return list;
}

std::string total_weight(const std::vector<const core::Instance*>& list) {
  uint64_t total = 0;
  for (const auto* inst : list) total += inst->weight;
  return std::to_string(total);
}

RenderResult render_template(const core::DiscoverSpec& spec, std::string_view service, int64_t revision,
                             const std::vector<const core::Instance*>& list, const std::string& template_text) {
  const std::string name = spec.template_path.empty() ? std::string("(inline)") : spec.template_path;
  mustache::mustache tmpl{template_text};
  if (!tmpl.is_valid()) return {{}, "template " + name + ": " + tmpl.error_message()};
  tmpl.set_custom_escape(identity);

  // Groups in the order of `list` (the selection's sort), keyed by zone / tag name (sorted).
  std::map<std::string, std::vector<const core::Instance*>> zones;
  std::map<std::string, std::vector<const core::Instance*>> tags;
  for (const auto* inst : list) {
    zones[inst->zone()].push_back(inst);
    for (const auto& tag : inst->tags()) tags[tag].push_back(inst);
  }

  mustache::data root{mustache::data::type::object};
  root["service"] = text(std::string(service));
  root["service_env"] = text(env_name(service));
  root["revision"] = text(std::to_string(revision));
  root["count"] = text(std::to_string(list.size()));
  root["empty"] = mustache::data{list.empty()};
  root["total_weight"] = text(total_weight(list));
  std::vector<Group> groups;
  groups.push_back({list, nullptr});
  root["instances"] = placeholders_for(list.size());
  mustache::data zone_list{mustache::data::type::list};
  for (auto& [zone, members] : zones) {
    mustache::data entry{mustache::data::type::object};
    entry["zone"] = text(zone);
    entry["count"] = text(std::to_string(members.size()));
    entry["total_weight"] = text(total_weight(members));
    entry["instances"] = placeholders_for(members.size());
    zone_list.push_back(std::move(entry));
    groups.push_back({std::move(members), nullptr});
  }
  root["zones"] = std::move(zone_list);
  mustache::data tag_list{mustache::data::type::list};
  for (auto& [tag, members] : tags) {
    mustache::data entry{mustache::data::type::object};
    entry["tag"] = text(tag);
    entry["count"] = text(std::to_string(members.size()));
    entry["instances"] = placeholders_for(members.size());
    tag_list.push_back(std::move(entry));
    groups.push_back({std::move(members), nullptr});
  }
  root["tags"] = std::move(tag_list);
  // Addresses are taken once the tree is complete: nothing moves after this (references into an
  // unordered_map stay valid, and the lists are not touched again).
  groups[0].placeholders = root.get("instances");
  size_t g = 1;
  for (const auto& entry : root.get("zones")->list_value()) groups[g++].placeholders = entry.get("instances");
  for (const auto& entry : root.get("tags")->list_value()) groups[g++].placeholders = entry.get("instances");

  LazyInstancesContext ctx(&root, groups);
  std::string bytes = tmpl.render(ctx);
  if (!tmpl.is_valid()) return {{}, "template " + name + ": " + tmpl.error_message()};
  return {std::move(bytes), std::nullopt};
}

}  // namespace

std::optional<std::string> render_into(std::string& out, const core::DiscoverSpec& spec, std::string_view service,
                                       int64_t revision, const std::vector<const core::Instance*>& instances,
                                       const std::string& template_text) {
  try {
    auto list = ordered(instances, spec.sort);
    switch (spec.format) {
      case core::OutputFormat::kJson:
        render_json(out, service, revision, list);
        return std::nullopt;
      case core::OutputFormat::kLines:
        out = render_lines(list);
        return std::nullopt;
      case core::OutputFormat::kTemplate: {
        auto r = render_template(spec, service, revision, list, template_text);
        if (r.ok()) out = std::move(r.bytes);
        return r.error;
      }
    }
    return "unknown output format";
  } catch (const std::exception& e) {  // allocation failure; nothing else here throws
    return std::string("render ") + std::string(service) + ": " + e.what();
  }
}

RenderResult render(const core::DiscoverSpec& spec, std::string_view service, int64_t revision,
                    const std::vector<const core::Instance*>& instances, const std::string& template_text) {
  RenderResult r;
  r.error = render_into(r.bytes, spec, service, revision, instances, template_text);
  if (r.error) r.bytes.clear();
  return r;
}

std::optional<std::string> validate_template(const std::string& text) {
  try {
    mustache::mustache tmpl{text};
    if (!tmpl.is_valid()) return tmpl.error_message();
    return std::nullopt;
  } catch (const std::exception& e) {
    return std::string(e.what());
  }
}

std::string render_config_prefix_json(std::vector<std::pair<std::string, std::string>> kvs, std::string_view prefix) {
  json obj = json::object();
  for (auto& [key, value] : kvs) {
    if (key.size() <= prefix.size() || key.compare(0, prefix.size(), prefix) != 0) continue;
    obj[key.substr(prefix.size())] = std::move(value);
  }
  return obj.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

}  // namespace sidecar::output
