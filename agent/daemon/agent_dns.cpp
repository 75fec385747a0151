#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "agent/daemon/agent_internal.hpp"

// The DNS view (manifest `dns:`): bound at start before anything touches etcd, started once the catalog
// runs, restarted by a reload that changes its section, stopped and joined with the other consumers.
namespace sidecar::daemon {

namespace {

frontend::dns::DnsOptions dns_options(const core::Manifest& m) {
  frontend::dns::DnsOptions o;
  o.host = m.dns.host;
  o.port = m.dns.port;
  o.domain = m.dns.domain;
  o.ttl = std::chrono::duration_cast<std::chrono::seconds>(m.dns.ttl);
  o.max_stale = std::chrono::duration_cast<std::chrono::seconds>(m.dns.max_stale);
  o.local_zone = m.agent.zone;
  return o;
}

}  // namespace

bool Agent::bind_dns() {
  if (!manifest_.dns.enabled) return true;
  std::string error;
  dns_ = frontend::dns::DnsServer::bind(io_, *catalog_, dns_options(manifest_), &error);
  if (!dns_) {
    spdlog::error("{}:{}: dns.listen: cannot listen on {} (change dns.listen, or remove it to turn DNS off)",
                  manifest_.source, manifest_.dns.where.line, error);
    return false;
  }
  return true;
}

void Agent::start_dns() {
  if (dns_) dns_->start();
}

// The metrics and the "dns" object of /v1/status read whichever server runs now (a reload may replace it).
void Agent::setup_dns_admin() {
  admin_->handlers().metric_collectors.push_back([this](std::vector<core::MetricFamily>& out) {
    if (dns_) dns_->responder().collect_metrics(out);
  });
  admin_->handlers().status_decorators.push_back([this](nlohmann::json& doc) {
    if (!dns_) {
      doc["dns"] = {{"enabled", false}};
      return;
    }
    nlohmann::json dns = dns_->responder().status();
    dns["enabled"] = true;
    dns["listen"] = dns_->options().host + ":" + std::to_string(dns_->port());
    doc["dns"] = std::move(dns);
  });
}

// A changed `dns:` section (or agent zone, which `local.zone` names) restarts the server: the old sockets
// close first so the new ones can take the same port. If the new address cannot be bound, DNS stays off
// until a reload fixes it (the rest of the reload still applies).
void Agent::reload_dns(const core::Manifest& before) {
  if (before.dns == manifest_.dns && before.agent.zone == manifest_.agent.zone) return;
  if (dns_) {
    spdlog::info("reload: dns section changed; restarting the DNS server");
    dispose(std::move(dns_));
  }
  if (!manifest_.dns.enabled) {
    spdlog::info("reload: dns is off");
    return;
  }
  if (bind_dns()) start_dns();
}

}  // namespace sidecar::daemon
