// Owns: the admin endpoint's routing — which path and method give which status and body — apart from any
// socket, so every answer can be checked without HTTP.
// Thread: pure; the handlers it calls run on the caller's thread (the io_context thread in the agent).
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/core/admin_request.hpp"
#include "agent/core/agent_status.hpp"
#include "agent/core/metrics.hpp"
#include "agent/core/ttl_check.hpp"

namespace sidecar::core {

struct AdminReply {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::string allow;  // set with 405: the methods the path accepts
  std::string www_authenticate;  // set with 401
};

struct AdminRequest {
  std::string_view method;
  std::string_view target;
  std::string_view body;
  std::string_view authorization;  // the Authorization header; "" when absent
};

// A maintenance request: the services it applies to (indices into services()), on or off, the reason.
struct MaintenanceRequest {
  std::vector<size_t> services;
  bool on = true;
  std::string reason;
};

struct AdminHandlers {
  std::function<AgentSnapshot()> snapshot;  // required
  // POST /v1/drain -> drain(true), /v1/undrain -> drain(false). Returns false when it could not be done.
  // Unset: 501, the agent was built or started without drain support.
  std::function<bool(bool drain)> drain;
  // Extension points: more families for /metrics (e.g. health-check results), more fields for /v1/status.
  std::vector<std::function<void(std::vector<MetricFamily>&)>> metric_collectors;
  std::vector<std::function<void(nlohmann::json&)>> status_decorators;
  // Set: every write route (drain, undrain, check reports, maintenance) needs "Authorization: Bearer
  // <token>"; 401 otherwise. Empty: writes are open (the endpoint is on loopback by default).
  std::string token;
  // The manifest's services, by which the check and maintenance routes name one. Unset: those routes 501.
  std::function<std::vector<ServiceRef>()> services;
  // PUT /v1/checks/<id>/<pass|warn|fail>: the service (index into services(), one with a ttl check), the
  // report and its note (bounded). Returns the body of the 200 answer.
  std::function<nlohmann::json(size_t service, TtlReport report, std::string note)> check_report;
  // POST / DELETE /v1/maintenance. Returns the body of the 200 answer.
  std::function<nlohmann::json(const MaintenanceRequest&)> maintenance;
};

// The longest maintenance reason kept; a longer one is cut (with a marker), like a check's output.
inline constexpr size_t kMaxMaintenanceReason = 1024;

inline constexpr std::string_view kPrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

// `target` is the request target as sent ("/metrics?x=1": the query is ignored).
//   GET  /livez      200 "ok" (answering at all proves the loop turns; never asks etcd)
//   GET  /readyz     200 or 503, JSON {"ready":..,"missing":[..]}
//   GET  /metrics    Prometheus text 0.0.4
//   GET  /v1/status  JSON
//   POST /v1/drain, /v1/undrain   the drain hook; 501 when unset
//   PUT  /v1/checks/<id>/pass|warn|fail   the app's TTL report (body: an optional note); <name>/<id> too
//   POST /v1/maintenance?service=<id>&reason=..   DELETE /v1/maintenance?service=<id>   (no service: all)
// Unknown path 404, known path with another method 405 (with Allow), a write without the token 401.
AdminReply handle_admin_request(const AdminRequest& request, const AdminHandlers& handlers);
// A request without a body or an Authorization header.
AdminReply handle_admin_request(std::string_view method, std::string_view target, const AdminHandlers& handlers);

}  // namespace sidecar::core
