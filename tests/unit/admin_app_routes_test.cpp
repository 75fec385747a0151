// The admin endpoint's write routes for the app and the operator: TTL check reports, maintenance, and the
// bearer token every write needs when admin.token_file is set. Routing only, without a socket.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "agent/core/admin_routes.hpp"

namespace sidecar::core {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

struct Recorded {
  std::vector<std::tuple<size_t, TtlReport, std::string>> reports;
  std::vector<MaintenanceRequest> maintenance;
  std::vector<bool> drains;
};

// orders/o-1 (ttl), billing/b-1 (probes only), two services sharing id "x" (both ttl).
AdminHandlers app_handlers(Recorded& rec, std::string token = "") {
  AdminHandlers h;
  h.snapshot = [] { return AgentSnapshot{}; };
  h.token = std::move(token);
  h.services = [] {
    return std::vector<ServiceRef>{{"orders", "o-1", true}, {"billing", "b-1", false}, {"a", "x", true}, {"b", "x", true}};
  };
  h.check_report = [&rec](size_t service, TtlReport report, std::string note) {
    rec.reports.emplace_back(service, report, note);
    return nlohmann::json{{"status", "ok"}};
  };
  h.maintenance = [&rec](const MaintenanceRequest& m) {
    rec.maintenance.push_back(m);
    return nlohmann::json{{"maintenance", m.on}};
  };
  h.drain = [&rec](bool drain) {
    rec.drains.push_back(drain);
    return true;
  };
  return h;
}

AdminReply put(const AdminHandlers& h, std::string_view target, std::string_view body = "",
               std::string_view authorization = "") {
  return handle_admin_request(AdminRequest{"PUT", target, body, authorization}, h);
}

TEST(AdminAppRoutes, ACheckReportReachesTheServiceWithItsNote) {
  Recorded rec;
  const AdminHandlers h = app_handlers(rec);
  EXPECT_EQ(put(h, "/v1/checks/o-1/pass").status, 200);
  EXPECT_EQ(put(h, "/v1/checks/o-1/warn", "disk 91%\n").status, 200);
  EXPECT_EQ(put(h, "/v1/checks/orders/o-1/fail", "db down").status, 200) << "<name>/<id> names it too";
  ASSERT_EQ(rec.reports.size(), 3u);
  EXPECT_EQ(rec.reports[0], std::make_tuple(size_t{0}, TtlReport::kPass, std::string()));
  EXPECT_EQ(rec.reports[1], std::make_tuple(size_t{0}, TtlReport::kWarn, std::string("disk 91%")))
      << "the trailing line break is not part of the note";
  EXPECT_EQ(rec.reports[2], std::make_tuple(size_t{0}, TtlReport::kFail, std::string("db down")));
}

TEST(AdminAppRoutes, AnUnknownIdIs404ListingTheKnownIds) {
  Recorded rec;
  const AdminReply r = put(app_handlers(rec), "/v1/checks/o-2/pass");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.content_type, "application/json");
  const auto body = nlohmann::json::parse(r.body);
  EXPECT_THAT(body["error"].get<std::string>(), HasSubstr("'o-2'"));
  EXPECT_EQ(body["known_ids"], nlohmann::json({"o-1", "b-1", "a/x", "b/x"}));
  EXPECT_TRUE(rec.reports.empty());
}

TEST(AdminAppRoutes, AServiceWithoutATtlCheckIs409NamingTheOnesWithOne) {
  Recorded rec;
  const AdminReply r = put(app_handlers(rec), "/v1/checks/b-1/pass");
  EXPECT_EQ(r.status, 409);
  const auto body = nlohmann::json::parse(r.body);
  EXPECT_THAT(body["error"].get<std::string>(), HasSubstr("billing/b-1 has no ttl check"));
  EXPECT_EQ(body["ttl_ids"], nlohmann::json({"o-1", "a/x", "b/x"}));
  EXPECT_TRUE(rec.reports.empty());
}

TEST(AdminAppRoutes, ASharedIdIs409UntilNamedWithItsService) {
  Recorded rec;
  const AdminHandlers h = app_handlers(rec);
  const AdminReply r = put(h, "/v1/checks/x/pass");
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(nlohmann::json::parse(r.body)["candidates"], nlohmann::json({"a/x", "b/x"}));
  EXPECT_EQ(put(h, "/v1/checks/b/x/pass").status, 200);
  ASSERT_EQ(rec.reports.size(), 1u);
  EXPECT_EQ(std::get<0>(rec.reports[0]), 3u);
}

TEST(AdminAppRoutes, AnUnknownReportIs404AndOtherMethodsAre405) {
  Recorded rec;
  const AdminHandlers h = app_handlers(rec);
  const AdminReply r = put(h, "/v1/checks/o-1/ok");
  EXPECT_EQ(r.status, 404);
  EXPECT_THAT(r.body, HasSubstr("use pass, warn or fail"));
  const AdminReply get = handle_admin_request("GET", "/v1/checks/o-1/pass", h);
  EXPECT_EQ(get.status, 405);
  EXPECT_EQ(get.allow, "PUT");
  EXPECT_TRUE(rec.reports.empty());
}

TEST(AdminAppRoutes, MaintenanceOnOneServiceOrAllWithAReason) {
  Recorded rec;
  const AdminHandlers h = app_handlers(rec);
  EXPECT_EQ(handle_admin_request("POST", "/v1/maintenance?service=o-1&reason=disk%20swap+today", h).status, 200);
  EXPECT_EQ(handle_admin_request("DELETE", "/v1/maintenance", h).status, 200);
  ASSERT_EQ(rec.maintenance.size(), 2u);
  EXPECT_TRUE(rec.maintenance[0].on);
  EXPECT_THAT(rec.maintenance[0].services, ElementsAre(0u));
  EXPECT_EQ(rec.maintenance[0].reason, "disk swap today");
  EXPECT_FALSE(rec.maintenance[1].on);
  EXPECT_THAT(rec.maintenance[1].services, ElementsAre(0u, 1u, 2u, 3u)) << "no service: every service";
  const AdminReply unknown = handle_admin_request("POST", "/v1/maintenance?service=nope", h);
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(nlohmann::json::parse(unknown.body)["known_ids"].size(), 4u);
  const AdminReply get = handle_admin_request("GET", "/v1/maintenance", h);
  EXPECT_EQ(get.status, 405);
  EXPECT_EQ(get.allow, "POST, DELETE");
}

TEST(AdminAppRoutes, WithATokenEveryWriteNeedsItAndReadsStayOpen) {
  Recorded rec;
  const AdminHandlers h = app_handlers(rec, "s3cret-token");
  for (const auto& [method, target] : std::vector<std::pair<std::string, std::string>>{
           {"PUT", "/v1/checks/o-1/pass"}, {"POST", "/v1/maintenance"}, {"DELETE", "/v1/maintenance"},
           {"POST", "/v1/drain"}, {"POST", "/v1/undrain"}}) {
    const AdminReply none = handle_admin_request(AdminRequest{method, target, "", ""}, h);
    EXPECT_EQ(none.status, 401) << method << " " << target;
    EXPECT_EQ(none.www_authenticate, "Bearer realm=\"etcd-sidecar\"");
    EXPECT_THAT(none.body, HasSubstr("Authorization: Bearer"));
    const AdminReply wrong = handle_admin_request(AdminRequest{method, target, "", "Bearer s3cret-tokem"}, h);
    EXPECT_EQ(wrong.status, 401) << method << " " << target;
    EXPECT_EQ(handle_admin_request(AdminRequest{method, target, "", "Basic czNjcmV0LXRva2Vu"}, h).status, 401);
    EXPECT_EQ(handle_admin_request(AdminRequest{method, target, "", "Bearer s3cret-token"}, h).status, 200)
        << method << " " << target;
  }
  EXPECT_EQ(rec.reports.size(), 1u);
  EXPECT_EQ(rec.maintenance.size(), 2u);
  EXPECT_EQ(rec.drains.size(), 2u);
  for (const char* read : {"/livez", "/readyz", "/metrics", "/v1/status"}) {
    const int status = handle_admin_request("GET", read, h).status;
    EXPECT_TRUE(status == 200 || status == 503) << read << ": " << status;
  }
  EXPECT_EQ(handle_admin_request(AdminRequest{"PUT", "/v1/checks/nope/pass", "", ""}, h).status, 401)
      << "the token comes before the list of ids";
}

TEST(AdminRequest, BearerComparisonIsExact) {
  EXPECT_TRUE(bearer_matches("Bearer abc", "abc"));
  EXPECT_TRUE(bearer_matches("bearer abc", "abc")) << "the scheme is case-insensitive";
  EXPECT_FALSE(bearer_matches("Bearer abcd", "abc"));
  EXPECT_FALSE(bearer_matches("Bearer ab", "abc"));
  EXPECT_FALSE(bearer_matches("Bearer ", "abc"));
  EXPECT_FALSE(bearer_matches("abc", "abc"));
  EXPECT_FALSE(bearer_matches("Bearer abc", "")) << "no token configured matches nothing";
}

TEST(AdminRequest, QueryParametersAreDecoded) {
  EXPECT_EQ(query_param("/x?a=1&reason=a%2Fb+c", "reason"), "a/b c");
  EXPECT_EQ(query_param("/x?flag&b=2", "flag"), "");
  EXPECT_EQ(query_param("/x?a=100%", "a"), "100%") << "a stray % is kept";
  EXPECT_FALSE(query_param("/x", "a"));
  EXPECT_FALSE(query_param("/x?ab=1", "a"));
}

}  // namespace
}  // namespace sidecar::core
