#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "agent/core/instance.hpp"
#include "agent/daemon/agent_internal.hpp"

// The xDS server: started with the other listeners (before anything touches etcd, so a taken port fails the
// start cleanly), stopped and joined with the consumers (agent_shutdown.cpp), shown in /metrics and
// /v1/status.
namespace sidecar::daemon {

bool Agent::start_xds() {
  const core::XdsSpec& spec = manifest_.xds;
  if (!spec.enabled) return true;
  frontend::xds::XdsServerOptions options;
  options.listen = core::join_host_port(spec.host, spec.port);
  options.tls_cert = spec.tls_cert;
  options.tls_key = spec.tls_key;
  options.tls_ca = spec.tls_ca;
  if (spec.local_zone_first) {
    options.cache.endpoints.local_zone = manifest_.agent.zone;
    if (manifest_.agent.zone.empty()) {
      spdlog::warn("{}:{}: xds.select.zone: local, but the agent has no zone (agent.zone): one priority for all "
                   "endpoints", manifest_.source, spec.where.line);
    }
  }
  std::string error;
  xds_ = frontend::xds::XdsServer::start(io_, *catalog_, std::move(options), &error);
  if (!xds_) {
    spdlog::error("{}:{}: xds: {} (set xds.listen to a free port)", manifest_.source, spec.where.line, error);
    return false;
  }
  return true;
}

void Agent::add_xds_admin() {
  if (!xds_) return;
  admin_->handlers().metric_collectors.push_back(
      [this](std::vector<core::MetricFamily>& out) { xds_->collect_metrics(out); });
  admin_->handlers().status_decorators.push_back([this](nlohmann::json& doc) { doc["xds"] = xds_->status(); });
}

}  // namespace sidecar::daemon
