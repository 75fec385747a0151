// Owns: the health state file's format: per service, the app's last TTL report and its maintenance, kept
//       across agent restarts so a restart neither flaps a registration nor ends a maintenance.
// Thread: pure; the daemon reads and writes the file.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "agent/core/ttl_check.hpp"

namespace sidecar::core {

struct TtlRecord {
  TtlReport report = TtlReport::kPass;
  std::string note;
  int64_t at_unix_ms = 0;  // wall clock: the only time that means something to the next process
};

struct MaintenanceRecord {
  std::string reason;
  int64_t since_unix_ms = 0;
};

struct ServiceHealthRecord {
  std::optional<TtlRecord> ttl;
  std::optional<MaintenanceRecord> maintenance;
  bool empty() const { return !ttl && !maintenance; }
};

// Keyed by "<name>/<id>" (unique in a manifest, unlike an id alone).
struct HealthState {
  std::map<std::string, ServiceHealthRecord> services;
  bool operator==(const HealthState& other) const;
};

// {"version":1,"services":{"<name>/<id>":{"ttl":{"report":"pass","note":"..","at_unix_ms":..},
//                                         "maintenance":{"reason":"..","since_unix_ms":..}}}}
std::string encode_health_state(const HealthState& state);
// nullopt with `*error` set when the text is not such a file (truncated, foreign, a newer version).
std::optional<HealthState> decode_health_state(std::string_view text, std::string* error);

// The lease record's name with ".health" for ".lease": one file per manifest, next to the lease record.
std::string health_state_file_name(std::string_view manifest_absolute_path);

// How old a record made at `at_unix_ms` is at `now_unix_ms`; a negative age (the clock stepped back) is 0.
int64_t record_age_ms(int64_t at_unix_ms, int64_t now_unix_ms);

}  // namespace sidecar::core
