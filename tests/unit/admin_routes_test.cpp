// Routing of the admin endpoint: status codes, bodies and content types, without a socket.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "agent/core/admin_routes.hpp"

namespace sidecar::core {
namespace {

using ::testing::HasSubstr;

AdminHandlers handlers_with(AgentSnapshot snapshot) {
  AdminHandlers h;
  h.snapshot = [snapshot] { return snapshot; };
  return h;
}

AgentSnapshot registered_one() {
  AgentSnapshot s;
  s.version = "9.9.9";
  s.services.push_back({"a", "1", "/services/a/1", "registered", 0, true, nlohmann::json::array()});
  return s;
}

TEST(AdminRoutes, LivezIsOkWithoutAskingForASnapshot) {
  AdminHandlers h;
  int calls = 0;
  h.snapshot = [&calls] {
    ++calls;
    return AgentSnapshot{};
  };
  const AdminReply r = handle_admin_request("GET", "/livez", h);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ok\n");
  EXPECT_EQ(calls, 0);
}

TEST(AdminRoutes, ReadyzIs200WhenReadyAnd503WithWhatIsMissing) {
  EXPECT_EQ(handle_admin_request("GET", "/readyz", handlers_with(registered_one())).status, 200);
  AgentSnapshot pending = registered_one();
  pending.services[0].state = "pending";
  const AdminReply r = handle_admin_request("GET", "/readyz", handlers_with(pending));
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.content_type, "application/json");
  const auto body = nlohmann::json::parse(r.body);
  EXPECT_EQ(body["ready"], false);
  EXPECT_EQ(body["missing"][0]["key"], "/services/a/1");
}

TEST(AdminRoutes, MetricsIsPrometheusTextAndRunsCollectors) {
  AdminHandlers h = handlers_with(registered_one());
  h.metric_collectors.push_back([](std::vector<MetricFamily>& families) {
    MetricFamily f{"etcd_sidecar_check_up", "Check result.", MetricType::kGauge, {}, {}};
    f.samples.push_back({{{"check", "http"}}, 1});
    families.push_back(std::move(f));
  });
  const AdminReply r = handle_admin_request("GET", "/metrics?name[]=x", h);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, kPrometheusContentType);
  EXPECT_THAT(r.body, HasSubstr("etcd_sidecar_build_info{version=\"9.9.9\"} 1\n"));
  EXPECT_THAT(r.body, HasSubstr("etcd_sidecar_check_up{check=\"http\"} 1\n"));
}

TEST(AdminRoutes, StatusIsJsonAndRunsDecorators) {
  AdminHandlers h = handlers_with(registered_one());
  h.status_decorators.push_back([](nlohmann::json& j) { j["draining"] = false; });
  const AdminReply r = handle_admin_request("GET", "/v1/status", h);
  EXPECT_EQ(r.status, 200);
  const auto body = nlohmann::json::parse(r.body);
  EXPECT_EQ(body["services"][0]["key"], "/services/a/1");
  EXPECT_EQ(body["draining"], false);
}

TEST(AdminRoutes, DrainWithoutAHandlerIs501) {
  const AdminReply r = handle_admin_request("POST", "/v1/drain", handlers_with(registered_one()));
  EXPECT_EQ(r.status, 501);
  EXPECT_THAT(r.body, HasSubstr("no drain handler"));
}

TEST(AdminRoutes, DrainAndUndrainCallTheHook) {
  AdminHandlers h = handlers_with(registered_one());
  std::vector<bool> calls;
  h.drain = [&calls](bool drain) {
    calls.push_back(drain);
    return true;
  };
  EXPECT_EQ(handle_admin_request("POST", "/v1/drain", h).status, 200);
  EXPECT_EQ(handle_admin_request("POST", "/v1/undrain", h).status, 200);
  EXPECT_EQ(calls, (std::vector<bool>{true, false}));
  h.drain = [](bool) { return false; };
  EXPECT_EQ(handle_admin_request("POST", "/v1/drain", h).status, 500);
}

TEST(AdminRoutes, UnknownPathIs404) {
  EXPECT_EQ(handle_admin_request("GET", "/nope", handlers_with({})).status, 404);
  EXPECT_EQ(handle_admin_request("GET", "/livez/extra", handlers_with({})).status, 404);
}

TEST(AdminRoutes, WrongMethodIs405WithAllow) {
  const AdminReply post_metrics = handle_admin_request("POST", "/metrics", handlers_with({}));
  EXPECT_EQ(post_metrics.status, 405);
  EXPECT_EQ(post_metrics.allow, "GET");
  const AdminReply get_drain = handle_admin_request("GET", "/v1/drain", handlers_with({}));
  EXPECT_EQ(get_drain.status, 405);
  EXPECT_EQ(get_drain.allow, "POST");
}

}  // namespace
}  // namespace sidecar::core
