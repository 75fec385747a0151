// Owns: the admin endpoint's routing — which path and method give which status and body — apart from any
// socket, so every answer can be checked without HTTP.
// Thread: pure; the handlers it calls run on the caller's thread (the io_context thread in the agent).
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/core/agent_status.hpp"
#include "agent/core/metrics.hpp"

namespace sidecar::core {

struct AdminReply {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::string allow;  // set with 405: the methods the path accepts
};

struct AdminHandlers {
  std::function<AgentSnapshot()> snapshot;  // required
  // POST /v1/drain -> drain(true), /v1/undrain -> drain(false). Returns false when it could not be done.
  // Unset: 501, the agent was built or started without drain support.
  std::function<bool(bool drain)> drain;
  // Extension points: more families for /metrics (e.g. health-check results), more fields for /v1/status.
  std::vector<std::function<void(std::vector<MetricFamily>&)>> metric_collectors;
  std::vector<std::function<void(nlohmann::json&)>> status_decorators;
};

inline constexpr std::string_view kPrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

// `target` is the request target as sent ("/metrics?x=1": the query is ignored).
//   GET  /livez      200 "ok" (answering at all proves the loop turns; never asks etcd)
//   GET  /readyz     200 or 503, JSON {"ready":..,"missing":[..]}
//   GET  /metrics    Prometheus text 0.0.4
//   GET  /v1/status  JSON
//   POST /v1/drain, /v1/undrain   the drain hook; 501 when unset
// Unknown path 404, known path with another method 405 (with Allow).
AdminReply handle_admin_request(std::string_view method, std::string_view target, const AdminHandlers& handlers);

}  // namespace sidecar::core
