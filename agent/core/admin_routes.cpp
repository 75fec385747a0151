#include "agent/core/admin_routes.hpp"

#include "agent/core/health.hpp"

namespace sidecar::core {

namespace {

constexpr std::string_view kChecksPrefix = "/v1/checks/";

AdminReply json_reply(int status, const nlohmann::json& body) {
  return AdminReply{status, "application/json", body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n",
                    "", ""};
}

AdminReply error_reply(int status, std::string message) {
  return json_reply(status, {{"error", std::move(message)}});
}

AdminReply drain_reply(const AdminHandlers& h, bool drain) {
  if (!h.drain) {
    return error_reply(501, std::string(drain ? "drain" : "undrain") +
                                " is not available: no drain handler is installed in this agent");
  }
  if (!h.drain(drain)) return error_reply(500, std::string(drain ? "drain" : "undrain") + " failed; see the agent log");
  return json_reply(200, {{"draining", drain}});
}

// The note as the app sent it, without the line break `echo` or a heredoc adds.
std::string note_of(std::string_view body) {
  while (!body.empty() && (body.back() == '\n' || body.back() == '\r')) body.remove_suffix(1);
  return bound_output(std::string(body));
}

AdminReply check_report_reply(std::string_view path, const AdminHandlers& h, std::string_view body) {
  if (!h.services || !h.check_report) return error_reply(501, "check reports are not available in this agent");
  // "<id>/<report>" or "<name>/<id>/<report>".
  const std::string_view rest = path.substr(kChecksPrefix.size());
  const size_t slash = rest.rfind('/');
  if (slash == std::string_view::npos || slash == 0) {
    return error_reply(404, "expected /v1/checks/<id>/pass, /warn or /fail, got " + std::string(path));
  }
  const std::string_view ref = rest.substr(0, slash);
  const std::optional<TtlReport> report = parse_ttl_report(rest.substr(slash + 1));
  if (!report) {
    return error_reply(404, "no such report '" + std::string(rest.substr(slash + 1)) + "': use pass, warn or fail");
  }
  const std::vector<ServiceRef> services = h.services();
  const ServiceLookup found = find_service(services, ref);
  if (!found.index) return json_reply(found.status, found.body);
  if (!services[*found.index].has_ttl) {
    nlohmann::json with_ttl = nlohmann::json::array();
    for (size_t i = 0; i < services.size(); ++i) {
      if (services[i].has_ttl) with_ttl.push_back(display_ref(services, i));
    }
    // 409, not 404: the service exists, but its health comes from probes, which a report cannot overrule.
    return json_reply(409, {{"error", "service " + services[*found.index].name + "/" + services[*found.index].id +
                                          " has no ttl check (its health comes from its probes); add "
                                          "'- ttl: 30s' to its checks to let the app report"},
                            {"ttl_ids", with_ttl}});
  }
  return json_reply(200, h.check_report(*found.index, *report, note_of(body)));
}

AdminReply maintenance_reply(const AdminRequest& request, const AdminHandlers& h) {
  if (!h.services || !h.maintenance) return error_reply(501, "maintenance is not available in this agent");
  const std::vector<ServiceRef> services = h.services();
  MaintenanceRequest m;
  m.on = request.method == "POST";
  if (const auto ref = query_param(request.target, "service"); ref && !ref->empty()) {
    const ServiceLookup found = find_service(services, *ref);
    if (!found.index) return json_reply(found.status, found.body);
    m.services.push_back(*found.index);
  } else {
    for (size_t i = 0; i < services.size(); ++i) m.services.push_back(i);
  }
  if (m.on) m.reason = bound_output(query_param(request.target, "reason").value_or(""), kMaxMaintenanceReason);
  return json_reply(200, h.maintenance(m));
}

}  // namespace

AdminReply handle_admin_request(std::string_view method, std::string_view target, const AdminHandlers& handlers) {
  return handle_admin_request(AdminRequest{method, target, {}, {}}, handlers);
}

AdminReply handle_admin_request(const AdminRequest& request, const AdminHandlers& h) {
  const std::string_view method = request.method;
  const std::string_view path = request.target.substr(0, request.target.find('?'));
  struct Route {
    std::string_view path;
    std::string_view methods;  // as in Allow: "POST, DELETE"
    bool write;
  };
  static constexpr Route kRoutes[] = {{"/livez", "GET", false},        {"/readyz", "GET", false},
                                      {"/metrics", "GET", false},      {"/v1/status", "GET", false},
                                      {"/v1/drain", "POST", true},     {"/v1/undrain", "POST", true},
                                      {"/v1/maintenance", "POST, DELETE", true}};
  static constexpr Route kChecks{kChecksPrefix, "PUT", true};
  const Route* route = nullptr;
  for (const Route& r : kRoutes) {
    if (r.path == path) route = &r;
  }
  if (route == nullptr && path.substr(0, kChecksPrefix.size()) == kChecksPrefix) route = &kChecks;
  if (route == nullptr) return error_reply(404, "no such endpoint: " + std::string(path));
  bool allowed = false;
  for (std::string_view rest = route->methods; !rest.empty();) {
    const size_t comma = rest.find(',');
    allowed |= rest.substr(0, comma) == method;
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 2);
  }
  if (!allowed) {
    AdminReply reply = error_reply(405, std::string(path) + " only accepts " + std::string(route->methods));
    reply.allow = std::string(route->methods);
    return reply;
  }
  if (route->write && !h.token.empty() && !bearer_matches(request.authorization, h.token)) {
    AdminReply reply = error_reply(401, request.authorization.empty()
                                            ? "this endpoint needs 'Authorization: Bearer <token>' (admin.token_file)"
                                            : "wrong bearer token");
    reply.www_authenticate = "Bearer realm=\"etcd-sidecar\"";
    return reply;
  }

  if (path == "/livez") return AdminReply{200, "text/plain; charset=utf-8", "ok\n", "", ""};
  if (path == "/v1/drain") return drain_reply(h, true);
  if (path == "/v1/undrain") return drain_reply(h, false);
  if (route == &kChecks) return check_report_reply(path, h, request.body);
  if (path == "/v1/maintenance") return maintenance_reply(request, h);

  const AgentSnapshot snapshot = h.snapshot ? h.snapshot() : AgentSnapshot{};
  if (path == "/readyz") {
    const Readiness r = evaluate_readiness(snapshot);
    return json_reply(r.ready ? 200 : 503, r.body);
  }
  if (path == "/metrics") {
    std::vector<MetricFamily> families = agent_metrics(snapshot);
    for (const auto& collect : h.metric_collectors) collect(families);
    return AdminReply{200, std::string(kPrometheusContentType), render_prometheus(families), "", ""};
  }
  nlohmann::json status = status_json(snapshot);  // /v1/status
  for (const auto& decorate : h.status_decorators) decorate(status);
  return json_reply(200, status);
}

}  // namespace sidecar::core
