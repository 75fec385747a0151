#include <nlohmann/json.hpp>

#include "agent/daemon/agent_internal.hpp"

// The catalog's HTTP view on the admin endpoint: its routes, its bound (http.max_waiters), its metrics.
namespace sidecar::daemon {

void Agent::setup_catalog_http() {
  frontend::CatalogHttpOptions options;
  options.local_zone = manifest_.agent.zone;
  options.seed = host_name();
  catalog_http_ = std::make_unique<frontend::CatalogHttp>(io_, *catalog_, std::move(options));
  catalog_http_->start();
  admin_->set_max_parked(manifest_.http.max_waiters);
  admin_->set_async_routes(catalog_http_.get());
  admin_->handlers().metric_collectors.push_back([this](std::vector<core::MetricFamily>& out) {
    const auto& s = catalog_http_->stats();
    const auto counter = [&out](std::string name, std::string help, uint64_t value) {
      out.push_back({std::move(name), std::move(help), core::MetricType::kCounter, {{{}, static_cast<double>(value)}}, {}});
    };
    const auto gauge = [&out](std::string name, std::string help, double value) {
      out.push_back({std::move(name), std::move(help), core::MetricType::kGauge, {{{}, value}}, {}});
    };
    counter("etcd_sidecar_http_catalog_requests_total", "Requests to /v1/catalog/..", s.requests_total);
    counter("etcd_sidecar_http_blocking_queries_total", "Blocking queries that waited for a change (?index=N)",
            s.blocking_total);
    counter("etcd_sidecar_http_blocking_changed_total", "Blocking queries answered by a change of their service",
            s.blocking_changed_total);
    counter("etcd_sidecar_http_blocking_timeouts_total", "Blocking queries answered at the end of their wait",
            s.blocking_timeouts_total);
    counter("etcd_sidecar_http_event_streams_total", "Event streams opened (Accept: text/event-stream)",
            s.streams_total);
    counter("etcd_sidecar_http_events_total", "Events sent on event streams", s.events_total);
    counter("etcd_sidecar_http_stale_answers_total",
            "Catalog answers from the last good set while its watch had lost etcd", s.stale_answers_total);
    counter("etcd_sidecar_http_unavailable_total",
            "Catalog requests answered 503: not synced in time, refused by catalog.max_services, or stopping",
            s.unavailable_total);
    counter("etcd_sidecar_http_waiters_refused_total", "Blocking queries and streams refused (429) at http.max_waiters",
            s.waiters_refused_total);
    gauge("etcd_sidecar_http_waiting", "Blocking queries waiting now", static_cast<double>(catalog_http_->waiting()));
    gauge("etcd_sidecar_http_event_streams", "Event streams open now",
          static_cast<double>(catalog_http_->streams_open()));
  });
  admin_->handlers().status_decorators.push_back([this](nlohmann::json& doc) {
    doc["http"] = {{"waiting", catalog_http_->waiting()},
                   {"event_streams", catalog_http_->streams_open()},
                   {"max_waiters", admin_->options().max_parked}};
  });
}

}  // namespace sidecar::daemon
