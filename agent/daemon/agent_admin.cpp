#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "agent/daemon/agent_internal.hpp"
#include "agent/runtime/catalog_report.hpp"

// The admin endpoint's view of the agent: the snapshot sources, the reload metrics and the drain hooks.
namespace sidecar::daemon {

SnapshotSources Agent::sources() const {
  SnapshotSources src;
  src.manifest = &manifest_;
  src.registrar = registrar_.get();
  for (const auto& s : services_) src.services.push_back({s.key_index, s.health.get()});
  src.discoveries = &discoveries_;
  src.mirrors = &mirrors_;
  src.shutting_down = &shutting_down_;
  src.config = config_;
  src.start_time_unix = start_time_unix_;
  src.version = SIDECAR_VERSION;
  return src;
}

void Agent::setup_admin() {
  admin_->handlers().snapshot = [this] { return collect_snapshot(sources()); };
  admin_->handlers().metric_collectors.push_back(
      [this](std::vector<core::MetricFamily>& out) { collect_check_metrics(sources(), out); });
  admin_->handlers().metric_collectors.push_back([this](std::vector<core::MetricFamily>& out) {
    out.push_back({"etcd_sidecar_reloads_total", "Manifest reloads applied (SIGHUP)", core::MetricType::kCounter,
                   {{{}, static_cast<double>(reloads_)}}, {}});
    out.push_back({"etcd_sidecar_reload_failures_total",
                   "Manifest reloads rejected (invalid or unreadable manifest); the old one kept running",
                   core::MetricType::kCounter, {{{}, static_cast<double>(reload_failures_)}}, {}});
    out.push_back({"etcd_sidecar_config_info", "The running manifest; the value is always 1",
                   core::MetricType::kGauge, {{{{"path", config_.path}, {"hash", config_.hash}}, 1.0}}, {}});
  });
  admin_->handlers().metric_collectors.push_back(
      [this](std::vector<core::MetricFamily>& out) { runtime::collect_catalog_metrics(*catalog_, out); });
  admin_->handlers().status_decorators.push_back(
      [this](nlohmann::json& doc) { runtime::add_catalog_status(*catalog_, doc); });
  admin_->handlers().status_decorators.push_back([this](nlohmann::json& doc) {
    doc["drained"] = registrar_ != nullptr && registrar_->drained();
    doc["reloads"] = {{"applied", reloads_}, {"failed", reload_failures_}};
    // Per service: the state its value carries, its health, and its maintenance (with the reason).
    if (!doc.contains("services") || !doc["services"].is_array()) return;
    for (auto& svc : doc["services"]) {
      for (size_t i = 0; i < manifest_.services.size() && i < services_.size(); ++i) {
        const core::ServiceSpec& spec = manifest_.services[i];
        if (svc.value("key", "") != manifest_.key_of(spec)) continue;
        if (registrar_) svc["state"] = std::string(core::to_string(registrar_->instance_state(services_[i].key_index)));
        if (services_[i].health) svc["health"] = core::to_string(services_[i].health->status(0));
        const auto it = health_state_.services.find(spec.name + "/" + spec.id);
        if (it != health_state_.services.end() && it->second.maintenance) {
          svc["maintenance"] = {{"reason", it->second.maintenance->reason},
                                {"since_unix_ms", it->second.maintenance->since_unix_ms}};
        } else {
          svc["maintenance"] = nullptr;
        }
      }
    }
  });
  admin_->handlers().services = [this] { return service_refs(); };
  admin_->handlers().check_report = [this](size_t service, core::TtlReport report, std::string note) {
    return on_check_report(service, report, std::move(note));
  };
  admin_->handlers().maintenance = [this](const core::MaintenanceRequest& request) { return on_maintenance(request); };
  // POST /v1/drain and /v1/undrain: the same as SIGUSR1/SIGUSR2, for a Kubernetes preStop hook.
  admin_->handlers().drain = [this](bool drain) {
    if (shutting_down_) return false;
    if (registrar_) registrar_->set_drained(drain, drain ? "POST /v1/drain" : "POST /v1/undrain");
    return true;
  };
  setup_catalog_http();
  add_xds_admin();
  admin_->start();
}

}  // namespace sidecar::daemon
