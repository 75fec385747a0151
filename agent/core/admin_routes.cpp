#include "agent/core/admin_routes.hpp"

namespace sidecar::core {

namespace {

AdminReply json_reply(int status, const nlohmann::json& body) {
  return AdminReply{status, "application/json", body.dump() + "\n", ""};
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

}  // namespace

AdminReply handle_admin_request(std::string_view method, std::string_view target, const AdminHandlers& h) {
  const std::string_view path = target.substr(0, target.find('?'));
  struct Route {
    std::string_view path;
    std::string_view method;
  };
  static constexpr Route kRoutes[] = {{"/livez", "GET"},         {"/readyz", "GET"},      {"/metrics", "GET"},
                                      {"/v1/status", "GET"},     {"/v1/drain", "POST"},   {"/v1/undrain", "POST"}};
  const Route* route = nullptr;
  for (const Route& r : kRoutes) {
    if (r.path == path) route = &r;
  }
  if (route == nullptr) return error_reply(404, "no such endpoint: " + std::string(path));
  if (route->method != method) {
    AdminReply reply = error_reply(405, std::string(path) + " only accepts " + std::string(route->method));
    reply.allow = std::string(route->method);
    return reply;
  }

  if (path == "/livez") return AdminReply{200, "text/plain; charset=utf-8", "ok\n", ""};
  if (path == "/v1/drain") return drain_reply(h, true);
  if (path == "/v1/undrain") return drain_reply(h, false);

  const AgentSnapshot snapshot = h.snapshot ? h.snapshot() : AgentSnapshot{};
  if (path == "/readyz") {
    const Readiness r = evaluate_readiness(snapshot);
    return json_reply(r.ready ? 200 : 503, r.body);
  }
  if (path == "/metrics") {
    std::vector<MetricFamily> families = agent_metrics(snapshot);
    for (const auto& collect : h.metric_collectors) collect(families);
    return AdminReply{200, std::string(kPrometheusContentType), render_prometheus(families), ""};
  }
  nlohmann::json status = status_json(snapshot);  // /v1/status
  for (const auto& decorate : h.status_decorators) decorate(status);
  return json_reply(200, status);
}

}  // namespace sidecar::core
