#include "agent/runtime/catalog_report.hpp"

#include <nlohmann/json.hpp>

namespace sidecar::runtime {

void collect_catalog_metrics(const Catalog& catalog, std::vector<core::MetricFamily>& out) {
  const auto& policy = catalog.policy();
  const double on_demand = static_cast<double>(policy.on_demand());
  out.push_back({"etcd_sidecar_catalog_services",
                 "Services the catalog watches: held by a consumer (a discover entry) or started by lookups",
                 core::MetricType::kGauge,
                 {{{{"origin", "subscribed"}}, static_cast<double>(policy.size()) - on_demand},
                  {{{"origin", "on_demand"}}, on_demand}},
                 {}});
  core::MetricFamily instances{"etcd_sidecar_catalog_instances", "Valid instances of each watched service",
                               core::MetricType::kGauge, {}, {}};
  core::MetricFamily index{"etcd_sidecar_catalog_index",
                           "The etcd revision of the last change to each watched service",
                           core::MetricType::kGauge, {}, {}};
  for (const auto& [name, service] : catalog.services()) {
    instances.samples.push_back({{{"service", name}}, static_cast<double>(service->set().size())});
    index.samples.push_back({{{"service", name}}, static_cast<double>(service->index())});
  }
  out.push_back(std::move(instances));
  out.push_back(std::move(index));
  out.push_back({"etcd_sidecar_catalog_lookups_refused_total",
                 "Lookups of an unwatched service refused because catalog.max_services were watched already",
                 core::MetricType::kCounter, {{{}, static_cast<double>(catalog.policy().refused_total())}}, {}});
  out.push_back({"etcd_sidecar_catalog_watches_expired_total",
                 "On-demand watches stopped after catalog.idle_timeout without a lookup",
                 core::MetricType::kCounter, {{{}, static_cast<double>(catalog.stats().expired_total)}}, {}});
}

void add_catalog_status(const Catalog& catalog, nlohmann::json& doc) {
  const auto& policy = catalog.policy();
  nlohmann::json services = nlohmann::json::array();
  for (const auto& [name, service] : catalog.services()) {
    services.push_back({{"name", name},
                        {"index", service->index()},
                        {"synced", service->synced()},
                        {"instances", service->set().size()},
                        {"invalid", service->set().invalid_count()},
                        {"consumers", service->listeners()},
                        {"on_demand", policy.holders(name) == 0}});
  }
  doc["catalog"] = {{"max_services", policy.limits().max_services},
                    {"idle_timeout_seconds",
                     std::chrono::duration<double>(policy.limits().idle_timeout).count()},
                    {"refused_total", catalog.policy().refused_total()},
                    {"expired_total", catalog.stats().expired_total},
                    {"services", std::move(services)}};
}

}  // namespace sidecar::runtime
