#include "agent/core/instance.hpp"

#include <algorithm>
#include <charconv>
#include <initializer_list>

#include <nlohmann/json.hpp>

namespace sidecar::core {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;

std::string dump_compact(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }
std::string dump_compact(const ordered_json& j) {
  return j.dump(-1, ' ', false, ordered_json::error_handler_t::replace);
}

std::string_view strip_brackets(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') return host.substr(1, host.size() - 2);
  return host;
}

std::optional<int> parse_port_text(std::string_view text) {
  if (text.empty() || text.size() > 5) return std::nullopt;
  int value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size()) return std::nullopt;
  if (value < 1 || value > 65535) return std::nullopt;
  return value;
}

bool valid_host(std::string_view host) {
  if (host.empty() || host.size() > 255) return false;
  // A ':' means IPv6, which has at least two. With one, "a:1" would be read back as host "a" port 1 by
  // split_host_port, so a value we accept could not be written and read again as the same address.
  if (const auto colon = host.find(':'); colon != std::string_view::npos && host.find(':', colon + 1) == std::string_view::npos) {
    return false;
  }
  for (char c : host) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
              c == '_' || c == ':' || c == '%';
    if (!ok) return false;
  }
  return true;
}

// Nesting depth of JSON text, ignoring brackets inside strings. Cheap guard run before parsing.
int json_depth(std::string_view text) {
  int depth = 0;
  int max_depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      max_depth = std::max(max_depth, ++depth);
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return max_depth;
}

const json* find_field(const json& obj, std::initializer_list<const char*> names) {
  for (const char* name : names) {
    auto it = obj.find(name);
    if (it != obj.end() && !it->is_null()) return &*it;
  }
  return nullptr;
}

std::string type_name_of(const json& j) { return j.type_name(); }

const std::string kEmptyString;
const std::vector<std::string> kNoTags;
const std::vector<std::pair<std::string, int>> kNoPorts;

// Top-level fields our format (and the formats we read) define; everything else of a value without a
// metadata object is the writer's metadata.
constexpr std::string_view kDefinedFields[] = {"address", "host",   "ip",     "Address", "Addr",  "port",
                                               "Port",    "name",   "id",     "Op",      "ports", "tags",
                                               "weight",  "zone",   "region", "state",   "metadata",
                                               "Metadata", "Attributes"};

bool is_defined_field(std::string_view key) {
  return std::find(std::begin(kDefinedFields), std::end(kDefinedFields), key) != std::end(kDefinedFields);
}

// Foreign weights are clamped rather than refused: a writer's "weight":0 or 50000 should not take the
// instance out of the set.
int read_weight(const json& j) {
  long long v = kDefaultWeight;
  if (j.is_number_integer()) {
    v = j.get<long long>();
  } else if (j.is_number_float()) {
    const double d = j.get<double>();
    v = d != d ? kDefaultWeight : d < kMinWeight ? kMinWeight : d > kMaxWeight ? kMaxWeight : static_cast<long long>(d);
  } else if (j.is_string()) {
    const auto& text = j.get_ref<const std::string&>();
    long long parsed = 0;
    const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), parsed);
    if (ec == std::errc() && ptr == text.data() + text.size()) v = parsed;
    else if (ec == std::errc::result_out_of_range) v = text.front() == '-' ? kMinWeight : kMaxWeight;
  }
  return static_cast<int>(std::clamp<long long>(v, kMinWeight, kMaxWeight));
}

std::optional<int> read_port_value(const json& j) {
  if (j.is_number_integer()) {
    const int64_t v = j.get<int64_t>();
    if (v >= 1 && v <= 65535) return static_cast<int>(v);
    return std::nullopt;
  }
  if (j.is_string()) return parse_port_text(j.get_ref<const std::string&>());
  return std::nullopt;
}

// Instances of one service mostly carry the same tags, zone and ports: 100,000 instances in 3 zones need 3
// extras blocks, not 100,000 (about 170 bytes each). A small per-thread table of recently built blocks
// hands out an equal one when there is one. Results are the same either way, only the sharing differs;
// the table holds at most kRecentExtras blocks.
constexpr size_t kRecentExtras = 32;

std::shared_ptr<const InstanceExtras> share_extras(std::shared_ptr<const InstanceExtras> fresh) {
  thread_local std::vector<std::shared_ptr<const InstanceExtras>> recent;  // most recently used last
  for (size_t i = recent.size(); i-- > 0;) {
    if (*recent[i] == *fresh) {
      std::shared_ptr<const InstanceExtras> found = recent[i];
      if (i + 1 != recent.size()) {
        recent.erase(recent.begin() + static_cast<std::ptrdiff_t>(i));
        recent.push_back(found);
      }
      return found;
    }
  }
  if (recent.size() == kRecentExtras) recent.erase(recent.begin());
  recent.push_back(fresh);
  return fresh;
}

// Reads ports, tags, zone and region of a JSON value; nullptr when it has none of them.
std::shared_ptr<const InstanceExtras> read_extras(const json& doc) {
  auto extras = std::make_shared<InstanceExtras>();
  if (const json* ports = find_field(doc, {"ports"}); ports != nullptr && ports->is_object()) {
    for (const auto& [name, value] : ports->items()) {
      const auto port = read_port_value(value);
      if (port && valid_port_name(name)) extras->ports.emplace_back(name, *port);
    }
    // nlohmann's object is a std::map: already sorted and unique.
  }
  if (const json* tags = find_field(doc, {"tags"}); tags != nullptr && tags->is_array()) {
    for (const json& tag : *tags) {
      if (tag.is_string() && valid_label(tag.get_ref<const std::string&>())) extras->tags.push_back(tag.get<std::string>());
    }
    std::sort(extras->tags.begin(), extras->tags.end());
    extras->tags.erase(std::unique(extras->tags.begin(), extras->tags.end()), extras->tags.end());
  }
  for (auto [name, field] : {std::pair{"zone", &InstanceExtras::zone}, std::pair{"region", &InstanceExtras::region}}) {
    const json* value = find_field(doc, {name});
    if (value != nullptr && value->is_string() && valid_label(value->get_ref<const std::string&>())) {
      (*extras).*field = value->get<std::string>();
    }
  }
  if (extras->empty()) return nullptr;
  return share_extras(std::move(extras));
}

// The optional fields of encode_registration, appended only when not at their default.
template <typename Json>
void put_optional_fields(Json& out, const ServiceSpec& s, InstanceState state) {
  if (!s.ports.empty()) {
    Json ports = Json::object();
    for (const auto& [name, port] : s.ports) ports[name] = port;  // std::map: sorted
    out["ports"] = std::move(ports);
  }
  if (!s.tags.empty()) {
    std::vector<std::string> tags = s.tags;
    std::sort(tags.begin(), tags.end());
    tags.erase(std::unique(tags.begin(), tags.end()), tags.end());
    out["tags"] = tags;
  }
  if (s.weight != kDefaultWeight) out["weight"] = s.weight;
  if (!s.zone.empty()) out["zone"] = s.zone;
  if (!s.region.empty()) out["region"] = s.region;
  if (state != InstanceState::kPassing) out["state"] = std::string(to_string(state));
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string_view trim(std::string_view text) {
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return text;
}

}  // namespace

bool valid_port_name(std::string_view name) {
  if (name.empty() || name.size() > 15) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; });
}

bool valid_label(std::string_view text) {
  if (text.empty() || text.size() > 64) return false;
  return std::all_of(text.begin(), text.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
  });
}

const std::string& Instance::error() const { return extras ? extras->error : kEmptyString; }

void Instance::set_error(std::string reason) {
  auto next = extras ? std::make_shared<InstanceExtras>(*extras) : std::make_shared<InstanceExtras>();
  next->error = std::move(reason);
  extras = std::move(next);
}

const std::vector<std::string>& Instance::tags() const { return extras ? extras->tags : kNoTags; }
const std::vector<std::pair<std::string, int>>& Instance::ports() const { return extras ? extras->ports : kNoPorts; }
const std::string& Instance::zone() const { return extras ? extras->zone : kEmptyString; }
const std::string& Instance::region() const { return extras ? extras->region : kEmptyString; }

bool Instance::has_tag(std::string_view tag) const {
  const auto& list = tags();
  return std::binary_search(list.begin(), list.end(), tag, std::less<>());
}

int Instance::port_named(std::string_view name) const {
  for (const auto& [n, p] : ports()) {
    if (n == name) return p;
  }
  return 0;
}

bool Instance::same_rendering(const Instance& other) const {
  const bool same_extras = extras == other.extras || (extras && other.extras && *extras == *other.extras) ||
                           (!extras && other.extras && other.extras->empty()) ||
                           (extras && !other.extras && extras->empty());
  return same_extras && address == other.address && port == other.port && weight == other.weight &&
         state == other.state && metadata_json == other.metadata_json;
}

std::optional<std::pair<std::string, int>> split_host_port(std::string_view text) {
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') return std::nullopt;
    auto port = parse_port_text(text.substr(close + 2));
    if (!port) return std::nullopt;
    return std::make_pair(std::string(text.substr(1, close - 1)), *port);
  }
  size_t colon = text.find(':');
  if (colon == std::string_view::npos || text.find(':', colon + 1) != std::string_view::npos) return std::nullopt;
  auto port = parse_port_text(text.substr(colon + 1));
  if (!port) return std::nullopt;
  return std::make_pair(std::string(text.substr(0, colon)), *port);
}

std::string join_host_port(std::string_view host, int port) {
  std::string out;
  out.reserve(host.size() + 8);
  bool bracket = host.find(':') != std::string_view::npos && !(host.size() >= 1 && host.front() == '[');
  if (bracket) out += '[';
  out += host;
  if (bracket) out += ']';
  out += ':';
  out += std::to_string(port);
  return out;
}

bool valid_address(std::string_view address) { return valid_host(strip_brackets(address)); }

std::string Instance::endpoint() const { return join_host_port(address, port); }

json Instance::metadata() const {
  json parsed = json::parse(metadata_json, nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object()) return json::object();
  return parsed;
}

std::string encode_registration(const ServiceSpec& s, InstanceState state) {
  json metadata = json::object();
  for (const auto& [k, v] : s.metadata) metadata[k] = v;  // std::map: already sorted
  std::string host(strip_brackets(s.address));
  if (s.value_format == ValueFormat::kEtcdEndpoints) {
    ordered_json out;
    out["Op"] = 0;
    out["Addr"] = join_host_port(host, s.port);
    out["Metadata"] = metadata;
    put_optional_fields(out, s, state);
    return dump_compact(out);
  }
  ordered_json out;
  out["name"] = s.name;
  out["id"] = s.id;
  out["address"] = host;
  out["port"] = s.port;
  out["metadata"] = metadata;
  put_optional_fields(out, s, state);
  return dump_compact(out);
}

ParsedValue parse_instance_value(std::string_view id, std::string_view value, size_t max_bytes) {
  ParsedValue out;
  out.instance.id = std::string(id);
  auto invalid = [&out](std::string reason) {
    out.kind = ParsedValue::Kind::kInvalid;
    out.instance.set_error(std::move(reason));
    return std::move(out);
  };

  if (value.size() > max_bytes) {
    return invalid("value is " + std::to_string(value.size()) + " bytes, over the " + std::to_string(max_bytes) +
                   "-byte limit");
  }
  if (value.empty()) return invalid("empty value");
  if (json_depth(value) > kMaxInstanceValueDepth) {
    return invalid("JSON nested deeper than " + std::to_string(kMaxInstanceValueDepth) + " levels");
  }
  json doc;
  try {
    doc = json::parse(value.begin(), value.end(), nullptr, /*allow_exceptions=*/false);
  } catch (const std::exception& e) {  // allocation failure only; parse errors come back as discarded
    return invalid(std::string("cannot parse value: ") + e.what());
  }
  if (doc.is_discarded()) {
    // Plain "host:port" text, as simple registration scripts write it (etcdctl put key 10.0.0.9:3000).
    if (auto hp = split_host_port(trim(value)); hp && valid_host(hp->first)) {
      out.kind = ParsedValue::Kind::kInstance;
      out.instance.address = std::move(hp->first);
      out.instance.port = hp->second;
      return out;
    }
    return invalid("value is not valid JSON (nor host:port)");
  }
  if (!doc.is_object()) return invalid("value is a JSON " + type_name_of(doc) + ", not an object");

  if (const json* op = find_field(doc, {"Op"})) {
    if (!op->is_number_integer()) return invalid("\"Op\" is a " + type_name_of(*op) + ", not a number");
    int64_t code = op->get<int64_t>();
    if (code == 1) {
      out.kind = ParsedValue::Kind::kDeleteMarker;
      out.instance.set_error("etcd endpoints delete marker (\"Op\":1)");
      return out;
    }
    if (code != 0) return invalid("unknown \"Op\" " + std::to_string(code));
  }

  const json* addr = find_field(doc, {"address", "host", "ip", "Address", "Addr"});
  if (addr == nullptr) return invalid("no address (expected \"address\", \"host\", \"ip\" or \"Addr\")");
  if (!addr->is_string()) return invalid("address is a " + type_name_of(*addr) + ", not a string");
  const auto& addr_text = addr->get_ref<const std::string&>();

  std::string host;
  std::optional<int> embedded_port;
  if (auto hp = split_host_port(addr_text)) {
    host = std::move(hp->first);
    embedded_port = hp->second;
  } else {
    host = std::string(strip_brackets(addr_text));
  }
  if (!valid_host(host)) return invalid("address \"" + addr_text + "\" is not a hostname or IP address");

  std::optional<int> port;
  if (const json* p = find_field(doc, {"port", "Port"})) {
    if (p->is_number_integer()) {
      int64_t v = p->get<int64_t>();
      if (v >= 1 && v <= 65535) port = static_cast<int>(v);
    } else if (p->is_string()) {
      port = parse_port_text(p->get_ref<const std::string&>());
    }
    if (!port) return invalid("port " + dump_compact(*p) + " is not a number in 1..65535");
  } else {
    port = embedded_port;
  }
  if (!port) return invalid("no port (expected \"port\" or host:port in \"" + addr_text + "\")");

  InstanceState state = InstanceState::kPassing;
  if (const json* st = find_field(doc, {"state"})) {
    const auto parsed = st->is_string() ? parse_instance_state(st->get_ref<const std::string&>()) : std::nullopt;
    if (!parsed) return invalid("unknown state " + dump_compact(*st) + " (expected passing, warning, maintenance or draining)");
    state = *parsed;
  }

  out.kind = ParsedValue::Kind::kInstance;
  out.instance.address = std::move(host);
  out.instance.port = *port;
  out.instance.state = state;
  if (const json* w = find_field(doc, {"weight"})) out.instance.weight = static_cast<uint16_t>(read_weight(*w));
  out.instance.extras = read_extras(doc);
  const json* md = nullptr;
  for (const char* name : {"metadata", "Metadata", "Attributes"}) {
    md = find_field(doc, {name});
    if (md != nullptr && md->is_object()) break;
    md = nullptr;
  }
  if (md != nullptr) {
    out.instance.metadata_json = dump_compact(*md);
  } else {
    // The seed-style app's JSON.stringify(metadata): its other fields are its metadata.
    json extra = json::object();
    for (const auto& [key, field] : doc.items()) {
      if (!is_defined_field(key)) extra[key] = field;
    }
    if (!extra.empty()) out.instance.metadata_json = dump_compact(extra);
  }
  return out;
}

}  // namespace sidecar::core
