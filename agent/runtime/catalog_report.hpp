// Owns: how the catalog shows itself on the admin endpoint: its metrics families and its /v1/status part.
// Thread: io_context thread (reads the catalog as it is).
#pragma once

#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "agent/core/metrics.hpp"
#include "agent/runtime/catalog.hpp"

namespace sidecar::runtime {

// etcd_sidecar_catalog_services{origin="subscribed"|"on_demand"}, ..._instances{service}, ..._index{service},
// ..._lookups_refused_total, ..._watches_expired_total.
void collect_catalog_metrics(const Catalog& catalog, std::vector<core::MetricFamily>& out);
// doc["catalog"] = {"max_services", "idle_timeout_seconds", "refused_total", "expired_total",
//                   "services": [{"name", "index", "synced", "instances", "invalid", "consumers", "on_demand"}]}
void add_catalog_status(const Catalog& catalog, nlohmann::json& doc);

}  // namespace sidecar::runtime
