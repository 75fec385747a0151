// Owns: gathering the agent's live objects (registrar, discoveries, config mirrors) into a core::AgentSnapshot
// for the admin endpoint.
// Thread: io_context thread: it reads state that only that thread writes.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "agent/core/agent_status.hpp"
#include "agent/core/manifest.hpp"
#include "agent/runtime/config_mirror.hpp"
#include "agent/runtime/discovery.hpp"
#include "agent/runtime/health_monitor.hpp"
#include "agent/runtime/registrar.hpp"

namespace sidecar::daemon {

struct SnapshotSources {
  const core::Manifest* manifest = nullptr;
  const runtime::Registrar* registrar = nullptr;  // null when the manifest registers nothing
  // Per manifest service, in manifest order: its key's index in the registrar (stable across reloads, so
  // not necessarily its position) and its checks (one monitor per service).
  struct Service {
    size_t key_index = 0;
    const runtime::HealthMonitor* health = nullptr;
  };
  std::vector<Service> services;
  const std::vector<std::unique_ptr<runtime::Discovery>>* discoveries = nullptr;
  const std::vector<std::unique_ptr<runtime::ConfigMirror>>* mirrors = nullptr;
  const bool* shutting_down = nullptr;
  core::ConfigVersion config;
  double start_time_unix = 0;
  std::string version;
};

core::AgentSnapshot collect_snapshot(const SnapshotSources& sources);

// Check results and drain state as metric families (etcd_sidecar_check_*, etcd_sidecar_drained).
void collect_check_metrics(const SnapshotSources& sources, std::vector<core::MetricFamily>& out);

// Hash and mtime of the manifest file as it is on disk now; empty hash when it cannot be read.
core::ConfigVersion read_config_version(const std::string& path);

}  // namespace sidecar::daemon
