// services[].checks[], initial_status and shutdown.drain_delay: what they parse to, and every mistake reported
// at the line and column where it was made.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "agent/core/manifest.hpp"
#include "tests/unit/manifest_test_support.hpp"

namespace sidecar::core {
namespace {

using std::chrono::milliseconds;
using ::testing::ElementsAre;
using ::testing::Pair;

using namespace manifest_testing;

// A manifest with one service whose `checks:` list is `checks` (indented as list items under it).
std::string with_checks(const std::string& checks) {
  return "services:\n"
         "  - name: api\n"
         "    id: api-1\n"
         "    port: 8080\n"
         "    checks:\n" +
         checks;
}

TEST(ManifestChecks, ParsesEveryCheckTypeWithItsOptions) {
  const ParseResult r = parse(R"(
services:
  - name: api
    id: api-1
    port: 8080
    initial_status: passing
    checks:
      - http: http://127.0.0.1:8080/healthz?full=1
        expect_body: UP
        headers: {Authorization: "Bearer x", X-Probe: "1"}
        interval: 2s
        timeout: 1s
        rise: 2
        fall: 3
      - tcp: "[::1]:9000"
        name: port open
      - exec: ["/usr/local/bin/check-db", "--quick"]
        timeout: 5s
      - grpc: localhost:9090
        service: api.v1.Api
shutdown:
  drain_delay: 5s
)");
  ASSERT_TRUE(r.ok()) << r.errors.front().to_string();
  const ServiceSpec& s = r.manifest->services.at(0);
  EXPECT_EQ(s.initial_status, InitialStatus::kPassing);
  ASSERT_EQ(s.checks.size(), 4u);

  const CheckSpec& h = s.checks[0];
  EXPECT_EQ(h.type, CheckType::kHttp);
  EXPECT_EQ(h.host, "127.0.0.1");
  EXPECT_EQ(h.port, 8080);
  EXPECT_EQ(h.path, "/healthz?full=1");
  EXPECT_EQ(h.expect_body, "UP");
  EXPECT_THAT(h.headers, ElementsAre(Pair("Authorization", "Bearer x"), Pair("X-Probe", "1")));
  EXPECT_EQ(h.interval, milliseconds(2000));
  EXPECT_EQ(h.timeout, milliseconds(1000));
  EXPECT_EQ(h.rise, 2);
  EXPECT_EQ(h.fall, 3);
  EXPECT_EQ(h.name, "http http://127.0.0.1:8080/healthz?full=1");
  EXPECT_EQ(h.where.line, 7);

  const CheckSpec& t = s.checks[1];
  EXPECT_EQ(t.type, CheckType::kTcp);
  EXPECT_EQ(t.host, "::1");
  EXPECT_EQ(t.port, 9000);
  EXPECT_EQ(t.name, "port open");

  const CheckSpec& e = s.checks[2];
  EXPECT_EQ(e.type, CheckType::kExec);
  EXPECT_THAT(e.argv, ElementsAre("/usr/local/bin/check-db", "--quick"));
  EXPECT_EQ(e.timeout, milliseconds(5000));

  const CheckSpec& g = s.checks[3];
  EXPECT_EQ(g.type, CheckType::kGrpc);
  EXPECT_EQ(g.host, "localhost");
  EXPECT_EQ(g.port, 9090);
  EXPECT_EQ(g.grpc_service, "api.v1.Api");

  EXPECT_EQ(r.manifest->drain_delay, milliseconds(5000));
}

TEST(ManifestChecks, AppliesDefaults) {
  const ParseResult r = parse(with_checks("      - http: http://localhost\n"));
  ASSERT_TRUE(r.ok()) << r.errors.front().to_string();
  const ServiceSpec& s = r.manifest->services.at(0);
  EXPECT_EQ(s.initial_status, InitialStatus::kCritical);
  const CheckSpec& c = s.checks.at(0);
  EXPECT_EQ(c.port, 80);
  EXPECT_EQ(c.path, "/");
  EXPECT_EQ(c.interval, milliseconds(10000));
  EXPECT_EQ(c.timeout, milliseconds(2000));
  EXPECT_EQ(c.rise, 2);
  EXPECT_EQ(c.fall, 3);
  EXPECT_EQ(r.manifest->drain_delay, milliseconds(0));
}

TEST(ManifestChecks, DefaultTimeoutStaysBelowAShortInterval) {
  const ParseResult r = parse(with_checks("      - tcp: localhost:1\n        interval: 1s\n"));
  ASSERT_TRUE(r.ok()) << r.errors.front().to_string();
  EXPECT_EQ(r.manifest->services[0].checks[0].timeout, milliseconds(500));
}

TEST(ManifestChecks, RejectsABadHttpUrl) {
  const ParseResult r = parse(with_checks("      - http: 127.0.0.1:8080/healthz\n"));
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(6, 15, "services[0].checks[0].http", "missing http://")));
}

TEST(ManifestChecks, RejectsAnHttpsUrlSinceChecksHaveNoTls) {
  const ParseResult r = parse(with_checks("      - http: https://example.com/health\n"));
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(6, 15, "services[0].checks[0].http", "https is not supported")));
}

TEST(ManifestChecks, RejectsAnHttpUrlWithABadPort) {
  const ParseResult r = parse(with_checks("      - http: http://localhost:99999/\n"));
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(6, 15, "services[0].checks[0].http", "port must be a number")));
}

TEST(ManifestChecks, RejectsATcpAddressWithoutAPort) {
  const ParseResult r = parse(with_checks("      - tcp: localhost\n"));
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(6, 14, "services[0].checks[0].tcp", "missing port")));
}

TEST(ManifestChecks, RejectsAGrpcAddressWithAnUnbracketedIpv6Host) {
  const ParseResult r = parse(with_checks("      - grpc: ::1:9090\n"));
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(6, 15, "services[0].checks[0].grpc", "brackets")));
}

TEST(ManifestChecks, RejectsRiseBelowOne) {
  const ParseResult r = parse(with_checks("      - tcp: localhost:1\n        rise: 0\n"));
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(7, 15, "services[0].checks[0].rise", "between 1 and 100")));
}

TEST(ManifestChecks, RejectsFallBelowOne) {
  const ParseResult r = parse(with_checks("      - tcp: localhost:1\n        fall: -2\n"));
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(7, 15, "services[0].checks[0].fall", "between 1 and 100")));
}

TEST(ManifestChecks, RejectsATimeoutNotBelowTheInterval) {
  const ParseResult r = parse(with_checks("      - tcp: localhost:1\n        interval: 1s\n        timeout: 1s\n"));
  EXPECT_THAT(r.errors,
              ElementsAre(ErrorAt(8, 18, "services[0].checks[0].timeout", "must be less than interval (1s)")));
}

TEST(ManifestChecks, RejectsAZeroInterval) {
  const ParseResult r = parse(with_checks("      - tcp: localhost:1\n        interval: 0s\n"));
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(7, 19, "services[0].checks[0].interval", "greater than 0")));
}

TEST(ManifestChecks, RejectsAnUnknownCheckTypeWithASuggestion) {
  const ParseResult r = parse(with_checks("      - htpp: http://localhost/\n"));
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(6, 9, "services[0].checks[0].htpp",
                                            "unknown check type 'htpp' (did you mean 'http'?)")));
}

TEST(ManifestChecks, RejectsAnUnknownCheckTypeListingTheKnownOnes) {
  const ParseResult r = parse(with_checks("      - script: /bin/true\n        interval: 5s\n"));
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(6, 9, "services[0].checks[0].script",
                                            "expected one of: http, tcp, exec, grpc")));
}

TEST(ManifestChecks, RejectsACheckWithoutAType) {
  const ParseResult r = parse(with_checks("      - interval: 5s\n"));
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(6, 9, "services[0].checks[0]", "needs a check type")));
}

TEST(ManifestChecks, RejectsTwoTypesInOneCheck) {
  const ParseResult r = parse(with_checks("      - tcp: localhost:1\n        http: http://localhost/\n"));
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(7, 9, "services[0].checks[0]", "more than one check type")));
}

TEST(ManifestChecks, RejectsExecGivenAsAShellString) {
  const ParseResult r = parse(with_checks("      - exec: /usr/bin/check --quick\n"));
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(6, 15, "services[0].checks[0].exec", "list of arguments")));
}

TEST(ManifestChecks, RejectsAnEmptyExecList) {
  const ParseResult r = parse(with_checks("      - exec: []\n"));
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(6, 15, "services[0].checks[0].exec", "must name a program")));
}

TEST(ManifestChecks, RejectsOptionsOfAnotherCheckType) {
  const ParseResult r = parse(with_checks("      - tcp: localhost:1\n        expect_body: UP\n"));
  EXPECT_THAT(r.errors,
              ElementsAre(ErrorAt(7, 9, "services[0].checks[0].expect_body", "only applies to http checks")));
}

TEST(ManifestChecks, RejectsAnUnknownOptionWithASuggestion) {
  const ParseResult r = parse(with_checks("      - tcp: localhost:1\n        intervall: 5s\n"));
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(7, 9, "services[0].checks[0].intervall", "did you mean 'interval'")));
}

TEST(ManifestChecks, RejectsAHeaderWithALineBreak) {
  const ParseResult r = parse(with_checks("      - http: http://localhost/\n        headers: {X-A: \"a\\r\\nb\"}\n"));
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(7, 24, "services[0].checks[0].headers.X-A", "line breaks")));
}

TEST(ManifestChecks, RejectsChecksThatAreNotAList) {
  const ParseResult r = parse(with_checks("      tcp: localhost:1\n"));
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(6, 7, "services[0].checks", "start each check with '- '")));
}

TEST(ManifestChecks, RejectsAnUnknownInitialStatus) {
  const ParseResult r = parse(R"(
services:
  - name: api
    id: api-1
    port: 8080
    initial_status: healthy
)");
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(5, 21, "services[0].initial_status", "expected one of: critical, passing")));
}

TEST(ManifestChecks, RejectsABadDrainDelay) {
  const ParseResult r = parse(R"(
services: [{name: api, id: api-1, port: 8080}]
shutdown:
  drain_delay: 5
  drain: 1s
)");
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(3, 16, "shutdown.drain_delay", "missing unit"),
                                    ErrorAt(4, 3, "shutdown.drain", "unknown key 'drain'")));
}

TEST(ManifestChecks, ReportsErrorsInEveryCheckNotJustTheFirst) {
  const ParseResult r = parse(with_checks("      - tcp: nope\n      - http: ftp://x/\n      - tcp: localhost:1\n        rise: 0\n"));
  EXPECT_EQ(r.errors.size(), 3u);
}

TEST(ManifestChecks, ParsesATtlCheckAlongsideAProbe) {
  const ParseResult r = parse(with_checks("      - ttl: 30s\n      - tcp: localhost:1\n      - ttl: 2s\n        name: app\n"));
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(8, 9, "services[0].checks[2]", "at most one ttl check")));
  const ParseResult ok = parse(with_checks("      - ttl: 30s\n      - tcp: localhost:1\n"));
  ASSERT_TRUE(ok.ok());
  const CheckSpec& c = ok.manifest->services[0].checks[0];
  EXPECT_EQ(c.type, CheckType::kTtl);
  EXPECT_EQ(c.ttl, milliseconds(30000));
  EXPECT_EQ(c.name, "ttl 30s");
}

TEST(ManifestChecks, RejectsATtlOutOfBoundsAndProbeTimingOnATtlCheck) {
  EXPECT_THAT(parse(with_checks("      - ttl: 500ms\n")).errors,
              ElementsAre(ErrorAt(6, 14, "services[0].checks[0].ttl", "between 1s and 24h")));
  EXPECT_THAT(parse(with_checks("      - ttl: 25h\n")).errors,
              ElementsAre(ErrorAt(6, 14, "services[0].checks[0].ttl", "between 1s and 24h")));
  EXPECT_THAT(parse(with_checks("      - ttl: 10s\n        interval: 5s\n")).errors,
              ElementsAre(ErrorAt(7, 9, "services[0].checks[0].interval", "does not apply to ttl checks")));
}

TEST(ManifestChecks, ParsesTheAdminTokenFile) {
  const ParseResult r = parse(with_checks("      - ttl: 5s\n") + "admin:\n  token_file: /run/secrets/admin-token\n");
  ASSERT_TRUE(r.ok()) << all_errors(r);
  EXPECT_EQ(r.manifest->admin.token_file, "/run/secrets/admin-token");
  EXPECT_THAT(parse(with_checks("      - ttl: 5s\n") + "admin:\n  token_file: \"\"\n").errors,
              ElementsAre(ErrorAt(8, 15, "admin.token_file", "")));
}

}  // namespace
}  // namespace sidecar::core
