// Owns: a point-in-time picture of the agent (lease, services, discoveries, mirrors, config version) and
// what the admin endpoint derives from it: readiness, the /v1/status JSON and the Prometheus families.
// Thread: pure; the daemon fills a snapshot on the io_context thread, these functions only read it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/core/metrics.hpp"

namespace sidecar::core {

struct LeaseSnapshot {
  int64_t id = 0;                               // 0: no live lease
  std::string state = "none";                   // none | granting | alive
  int64_t ttl_seconds = 0;                      // as configured
  std::optional<double> remaining_seconds;      // until the conservative deadline (send time + TTL)
  uint64_t grants = 0;
  uint64_t losses = 0;
  uint64_t keys_restored = 0;
  HistogramSample keepalive_rtt;                // seconds
};

struct ServiceSnapshot {
  std::string name;
  std::string id;
  std::string key;
  std::string state;                            // pending | writing | registered | conflict
  int64_t conflict_lease = 0;                   // the other agent's lease while in conflict
  // False while the service is deliberately not registered (failing health check, drained): it is then not
  // counted against readiness. Set by the health-check layer; always true without it.
  bool wanted = true;
  nlohmann::json checks = nlohmann::json::array();  // health-check results, filled by the check layer
};

// One watched prefix (a discovery or a config mirror) and the file it writes.
struct WatchSnapshot {
  std::string kind;                             // "discover" | "config"
  std::string name;                             // service name, or the config key/prefix
  std::string prefix;                           // what is watched in etcd
  std::string output;                           // the file (or directory) written
  bool synced = false;                          // first snapshot applied
  int64_t revision = 0;
  uint64_t watch_starts = 0;
  uint64_t resyncs = 0;
  size_t count = 0;                             // instances (discover) or keys (config)
  size_t invalid = 0;                           // discover: values currently unusable
  uint64_t invalid_values_total = 0;
  uint64_t writes = 0;
  uint64_t write_failures = 0;
  uint64_t check_failures = 0;
  uint64_t on_change_runs = 0;
  uint64_t on_change_failures = 0;
  double writing_seconds = 0;                   // render + write + check_command, summed
  double on_change_seconds = 0;                 // on_change runs, summed
  std::string last_error;
};

struct ConfigVersion {
  std::string path;
  std::string hash;                             // fnv1a64 of the manifest bytes, 16 hex digits
  int64_t mtime_unix = 0;                       // seconds
};

struct AgentSnapshot {
  std::string version;
  double start_time_unix = 0;
  bool shutting_down = false;
  LeaseSnapshot lease;
  std::vector<ServiceSnapshot> services;
  std::vector<WatchSnapshot> watches;
  ConfigVersion config;
};

struct Readiness {
  bool ready = false;
  nlohmann::json body;  // {"ready":bool, "missing":[{"kind":..., "name":..., "reason":...}]}
};

// Ready when every wanted service is registered and every discovery has synced once (config mirrors do not
// gate readiness: an absent config key is a normal state). Not ready while shutting down.
Readiness evaluate_readiness(const AgentSnapshot& snapshot);

nlohmann::json status_json(const AgentSnapshot& snapshot);

// Every etcd_sidecar_* family the agent exports (see README), in a stable order.
std::vector<MetricFamily> agent_metrics(const AgentSnapshot& snapshot);

// 64-bit FNV-1a as 16 lower-case hex digits: a cheap, stable fingerprint of the manifest bytes.
std::string content_hash(std::string_view bytes);

}  // namespace sidecar::core
