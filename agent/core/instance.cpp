#include "agent/core/instance.hpp"

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

}  // namespace

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
    return dump_compact(out);
  }
  ordered_json out;
  out["name"] = s.name;
  out["id"] = s.id;
  out["address"] = host;
  out["port"] = s.port;
  out["metadata"] = metadata;
  if (state != InstanceState::kPassing) out["state"] = std::string(to_string(state));
  return dump_compact(out);
}

ParsedValue parse_instance_value(std::string_view id, std::string_view value, size_t max_bytes) {
  ParsedValue out;
  out.instance.id = std::string(id);
  auto invalid = [&out](std::string reason) {
    out.kind = ParsedValue::Kind::kInvalid;
    out.instance.error = std::move(reason);
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
  if (doc.is_discarded()) return invalid("value is not valid JSON");
  if (!doc.is_object()) return invalid("value is a JSON " + type_name_of(doc) + ", not an object");

  if (const json* op = find_field(doc, {"Op"})) {
    if (!op->is_number_integer()) return invalid("\"Op\" is a " + type_name_of(*op) + ", not a number");
    int64_t code = op->get<int64_t>();
    if (code == 1) {
      out.kind = ParsedValue::Kind::kDeleteMarker;
      out.instance.error = "etcd endpoints delete marker (\"Op\":1)";
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

  out.kind = ParsedValue::Kind::kInstance;
  out.instance.address = std::move(host);
  out.instance.port = *port;
  if (const json* md = find_field(doc, {"metadata", "Metadata"}); md != nullptr && md->is_object()) {
    out.instance.metadata_json = dump_compact(*md);
  }
  return out;
}

}  // namespace sidecar::core
