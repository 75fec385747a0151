#include "agent/core/lease_record.hpp"

#include <cstdio>

#include <nlohmann/json.hpp>

#include "agent/core/registration.hpp"

namespace sidecar::core {

using nlohmann::json;

std::string encode_lease_record(const LeaseRecord& record) {
  json doc{{"lease", lease_to_hex(record.lease)},
           {"lease_id", record.lease},
           {"pid", record.pid},
           {"manifest", record.manifest},
           {"endpoints", record.endpoints}};
  return doc.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

std::optional<LeaseRecord> decode_lease_record(std::string_view text, std::string* error) {
  const json doc = json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    *error = "not a JSON object";
    return std::nullopt;
  }
  const auto id = doc.find("lease_id");
  if (id == doc.end() || !id->is_number_integer() || id->get<int64_t>() == 0) {
    *error = "no lease_id";
    return std::nullopt;
  }
  LeaseRecord record;
  record.lease = id->get<int64_t>();
  if (auto it = doc.find("pid"); it != doc.end() && it->is_number_integer()) record.pid = it->get<int64_t>();
  if (auto it = doc.find("manifest"); it != doc.end() && it->is_string()) record.manifest = it->get<std::string>();
  if (auto it = doc.find("endpoints"); it != doc.end() && it->is_array()) {
    for (const auto& e : *it) {
      if (e.is_string()) record.endpoints.push_back(e.get<std::string>());
    }
  }
  return record;
}

std::string lease_record_file_name(std::string_view manifest_absolute_path) {
  // FNV-1a, 64 bit: stable across builds and platforms, unlike std::hash.
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (unsigned char c : manifest_absolute_path) {
    hash ^= c;
    hash *= 0x100000001b3ULL;
  }
  std::string_view base = manifest_absolute_path;
  if (auto slash = base.rfind('/'); slash != std::string_view::npos) base.remove_prefix(slash + 1);
  if (auto dot = base.rfind('.'); dot != std::string_view::npos && dot > 0) base = base.substr(0, dot);
  std::string stem;
  for (char c : base) {
    const bool safe = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                      c == '_' || c == '.';
    stem += safe ? c : '_';
  }
  if (stem.empty()) stem = "manifest";
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(hash));
  return stem + "-" + hex + ".lease";
}

}  // namespace sidecar::core
