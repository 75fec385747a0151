#include "agent/core/health_state.hpp"

#include <nlohmann/json.hpp>

#include "agent/core/lease_record.hpp"

namespace sidecar::core {

namespace {

using nlohmann::json;
constexpr int kVersion = 1;

bool same_ttl(const std::optional<TtlRecord>& a, const std::optional<TtlRecord>& b) {
  if (a.has_value() != b.has_value()) return false;
  return !a || (a->report == b->report && a->note == b->note && a->at_unix_ms == b->at_unix_ms);
}

bool same_maintenance(const std::optional<MaintenanceRecord>& a, const std::optional<MaintenanceRecord>& b) {
  if (a.has_value() != b.has_value()) return false;
  return !a || (a->reason == b->reason && a->since_unix_ms == b->since_unix_ms);
}

}  // namespace

bool HealthState::operator==(const HealthState& other) const {
  if (services.size() != other.services.size()) return false;
  for (auto a = services.begin(), b = other.services.begin(); a != services.end(); ++a, ++b) {
    if (a->first != b->first || !same_ttl(a->second.ttl, b->second.ttl) ||
        !same_maintenance(a->second.maintenance, b->second.maintenance)) {
      return false;
    }
  }
  return true;
}

std::string encode_health_state(const HealthState& state) {
  json services = json::object();
  for (const auto& [key, record] : state.services) {
    if (record.empty()) continue;
    json entry = json::object();
    if (record.ttl) {
      entry["ttl"] = {{"report", to_string(record.ttl->report)},
                      {"note", record.ttl->note},
                      {"at_unix_ms", record.ttl->at_unix_ms}};
    }
    if (record.maintenance) {
      entry["maintenance"] = {{"reason", record.maintenance->reason},
                              {"since_unix_ms", record.maintenance->since_unix_ms}};
    }
    services[key] = std::move(entry);
  }
  // Invalid UTF-8 in a note (the app sent bytes) is replaced, never a throw.
  return json{{"version", kVersion}, {"services", std::move(services)}}.dump(-1, ' ', false,
                                                                            json::error_handler_t::replace) +
         "\n";
}

std::optional<HealthState> decode_health_state(std::string_view text, std::string* error) {
  const json doc = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    *error = "not a JSON object (truncated or not a health state file)";
    return std::nullopt;
  }
  const auto version = doc.find("version");
  if (version == doc.end() || !version->is_number_integer() || version->get<int>() != kVersion) {
    *error = "unknown version (expected " + std::to_string(kVersion) + ")";
    return std::nullopt;
  }
  const auto services = doc.find("services");
  if (services == doc.end() || !services->is_object()) {
    *error = "\"services\" is missing or not an object";
    return std::nullopt;
  }
  HealthState out;
  for (const auto& item : services->items()) {
    // Named copies, not structured bindings: clang 14 (the fuzz build) cannot capture those in a lambda.
    const std::string& key = item.key();
    const auto& entry = item.value();
    const auto bad = [&](const std::string& why) {
      *error = "service \"" + key + "\": " + why;
      return std::nullopt;
    };
    if (!entry.is_object()) return bad("not an object");
    ServiceHealthRecord record;
    if (const auto ttl = entry.find("ttl"); ttl != entry.end()) {
      if (!ttl->is_object()) return bad("\"ttl\" is not an object");
      const auto report = ttl->find("report");
      const auto note = ttl->find("note");
      const auto at = ttl->find("at_unix_ms");
      if (report == ttl->end() || !report->is_string() || !parse_ttl_report(report->get<std::string>())) {
        return bad("\"ttl.report\" must be pass, warn or fail");
      }
      if (note != ttl->end() && !note->is_string()) return bad("\"ttl.note\" is not a string");
      if (at == ttl->end() || !at->is_number_integer()) return bad("\"ttl.at_unix_ms\" is not an integer");
      record.ttl = TtlRecord{*parse_ttl_report(report->get<std::string>()),
                             note == ttl->end() ? std::string() : bound_output(note->get<std::string>()),
                             at->get<int64_t>()};
    }
    if (const auto m = entry.find("maintenance"); m != entry.end()) {
      if (!m->is_object()) return bad("\"maintenance\" is not an object");
      const auto reason = m->find("reason");
      const auto since = m->find("since_unix_ms");
      if (reason != m->end() && !reason->is_string()) return bad("\"maintenance.reason\" is not a string");
      if (since == m->end() || !since->is_number_integer()) return bad("\"maintenance.since_unix_ms\" is not an integer");
      record.maintenance = MaintenanceRecord{reason == m->end() ? std::string() : reason->get<std::string>(),
                                             since->get<int64_t>()};
    }
    out.services.emplace(key, std::move(record));
  }
  return out;
}

std::string health_state_file_name(std::string_view manifest_absolute_path) {
  std::string name = lease_record_file_name(manifest_absolute_path);
  const std::string suffix = ".lease";
  if (name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
    name.resize(name.size() - suffix.size());
  }
  return name + ".health";
}

int64_t record_age_ms(int64_t at_unix_ms, int64_t now_unix_ms) {
  return now_unix_ms > at_unix_ms ? now_unix_ms - at_unix_ms : 0;
}

}  // namespace sidecar::core
