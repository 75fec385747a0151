// The manifest parser: what a valid manifest becomes, and that every mistake is reported where it was made.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <ostream>
#include <string>

#include "agent/core/manifest.hpp"
#include "tests/unit/manifest_test_support.hpp"

namespace sidecar::core {
namespace {

using std::chrono::milliseconds;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

using namespace manifest_testing;

// The manifest shipped as config/example.yaml (unit tests cannot see the source tree; keep the two in sync).
constexpr std::string_view kExampleManifest = R"(
# Example manifest for etcd-sidecar.
etcd:
  endpoints: ["http://127.0.0.1:2379"]
  prefix: /services

lease:
  ttl: 10s

services:
  - name: user-service
    id: ${HOSTNAME:-dev}-8080
    address: ${POD_IP:-127.0.0.1}
    port: 8080
    metadata:
      version: "1.2.0"          # quoted so YAML does not read it as a number
      zone: ${ZONE:-local}

  - name: order-service
    id: ${HOSTNAME:-dev}-9090
    address: ${POD_IP:-127.0.0.1}
    port: 9090
    metadata:
      version: "0.9.1"
      zone: ${ZONE:-local}

discover:
  - service: user-service
    output: ./run/user-service.json
    format: json
    include_self: true
    wait: {min: 100ms, max: 1s}
)";

// ---------------------------------------------------------------- valid manifests

TEST(ManifestParser, ParsesExampleManifestWithDevelopmentDefaults) {
  const ParseResult r = parse(kExampleManifest);
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(r.errors);
  EXPECT_THAT(r.warnings, IsEmpty());
  const Manifest& m = *r.manifest;
  EXPECT_EQ(m.source, "m.yaml");
  EXPECT_THAT(m.etcd.endpoints, ElementsAre("http://127.0.0.1:2379"));
  EXPECT_EQ(m.lease_ttl, milliseconds(10000));
  ASSERT_THAT(m.services, SizeIs(2));
  EXPECT_EQ(m.key_of(m.services[0]), "/services/user-service/dev-8080");
  EXPECT_EQ(m.services[0].address, "127.0.0.1");
  EXPECT_EQ(m.services[0].port, 8080);
  EXPECT_EQ(m.services[0].metadata, (std::map<std::string, std::string>{{"version", "1.2.0"}, {"zone", "local"}}));
  EXPECT_EQ(m.services[0].where.line, 10);
  EXPECT_EQ(m.services[0].where.column, 5);
  EXPECT_EQ(m.key_of(m.services[1]), "/services/order-service/dev-9090");
  EXPECT_EQ(m.services[1].port, 9090);
  ASSERT_THAT(m.discover, SizeIs(1));
  EXPECT_EQ(m.discover[0].service, "user-service");
  EXPECT_EQ(m.discover[0].output, "./run/user-service.json");
  EXPECT_EQ(m.discover[0].wait_min, milliseconds(100));
  EXPECT_EQ(m.discover[0].wait_max, milliseconds(1000));
}

TEST(ManifestParser, ExampleManifestTakesIdentityFromTheEnvironment) {
  const ParseResult r = parse(kExampleManifest, fixed_env({{"HOSTNAME", "pod-7"}, {"POD_IP", "10.0.0.7"}}));
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(r.errors);
  EXPECT_EQ(r.manifest->key_of(r.manifest->services[0]), "/services/user-service/pod-7-8080");
  EXPECT_EQ(r.manifest->services[1].address, "10.0.0.7");
}

TEST(ManifestParser, ParsesEveryField) {
  const ParseResult r = parse(R"(
etcd:
  endpoints: ["https://etcd-0:2379", "etcd-1:2379"]
  prefix: /registry/
  dial_timeout: 500ms
  request_timeout: 1.5s
lease:
  ttl: 30s
services:
  - name: api
    id: a-1
    address: 10.1.2.3
    port: "443"
    metadata: {tier: gold, weight: 10, canary: false}
    value_format: etcd-endpoints
discover:
  - service: api
    output: /etc/nginx/api.conf
    format: template
    template: /etc/etcd-sidecar/upstream.mustache
    mode: "0600"
    include_self: false
    min_instances: 2
    wait: {min: 50ms, max: 2s, holdoff: 250ms}
    check_command: "nginx -t -c {{staged}}"
    on_change: "nginx -s reload"
    command_timeout: 5s
  - service: api
    output: api.txt
    format: lines
config:
  - key: /config/api/app.yaml
    output: /etc/api/app.yaml
    default: "log: info"
    mode: 640
    on_change: "kill -HUP 1"
    command_timeout: 1m
  - prefix: /config/api/flags/
    output: /etc/api/flags
    format: dir
)");
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(r.errors);
  EXPECT_THAT(r.warnings, IsEmpty());
  const Manifest& m = *r.manifest;
  EXPECT_THAT(m.etcd.endpoints, ElementsAre("https://etcd-0:2379", "http://etcd-1:2379"));
  EXPECT_EQ(m.etcd.prefix, "/registry");
  EXPECT_EQ(m.etcd.dial_timeout, milliseconds(500));
  EXPECT_EQ(m.etcd.request_timeout, milliseconds(1500));
  EXPECT_EQ(m.lease_ttl, milliseconds(30000));

  ASSERT_THAT(m.services, SizeIs(1));
  const ServiceSpec& s = m.services[0];
  EXPECT_EQ(m.key_of(s), "/registry/api/a-1");
  EXPECT_EQ(s.address, "10.1.2.3");
  EXPECT_EQ(s.port, 443);
  EXPECT_EQ(s.metadata,
            (std::map<std::string, std::string>{{"canary", "false"}, {"tier", "gold"}, {"weight", "10"}}));
  EXPECT_EQ(s.value_format, ValueFormat::kEtcdEndpoints);

  ASSERT_THAT(m.discover, SizeIs(2));
  const DiscoverSpec& d = m.discover[0];
  EXPECT_EQ(d.format, OutputFormat::kTemplate);
  EXPECT_EQ(d.template_path, "/etc/etcd-sidecar/upstream.mustache");
  EXPECT_EQ(d.mode, 0600u);
  EXPECT_FALSE(d.include_self);
  EXPECT_EQ(d.min_instances, 2);
  EXPECT_EQ(d.wait_min, milliseconds(50));
  EXPECT_EQ(d.wait_max, milliseconds(2000));
  EXPECT_EQ(d.wait_holdoff, std::optional<milliseconds>(milliseconds(250)));
  EXPECT_EQ(d.check_command, "nginx -t -c {{staged}}");
  EXPECT_EQ(d.on_change, "nginx -s reload");
  EXPECT_EQ(d.command_timeout, milliseconds(5000));
  EXPECT_EQ(d.where.line, 16);
  EXPECT_EQ(m.discover[1].format, OutputFormat::kLines);
  EXPECT_EQ(m.discover[1].output, "api.txt");

  ASSERT_THAT(m.config, SizeIs(2));
  EXPECT_EQ(m.config[0].key, "/config/api/app.yaml");
  EXPECT_EQ(m.config[0].prefix, "");
  EXPECT_EQ(m.config[0].default_value, std::optional<std::string>("log: info"));
  EXPECT_EQ(m.config[0].mode, 0640u);
  EXPECT_EQ(m.config[0].on_change, "kill -HUP 1");
  EXPECT_EQ(m.config[0].command_timeout, milliseconds(60000));
  EXPECT_EQ(m.config[1].key, "");
  EXPECT_EQ(m.config[1].prefix, "/config/api/flags/");
  EXPECT_EQ(m.config[1].format, "dir");
  EXPECT_EQ(m.config[1].default_value, std::nullopt);
}

TEST(ManifestParser, AppliesDefaultsToOmittedFields) {
  const ParseResult r = parse(R"(
services:
  - {name: a, id: b, port: 1}
discover:
  - {service: a, output: out.json}
config:
  - {key: /k, output: k.txt}
  - {prefix: /p/, output: p.json}
)");
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(r.errors);
  const Manifest& m = *r.manifest;
  EXPECT_THAT(m.etcd.endpoints, ElementsAre("http://127.0.0.1:2379"));
  EXPECT_EQ(m.etcd.prefix, "/services");
  EXPECT_EQ(m.etcd.dial_timeout, milliseconds(2000));
  EXPECT_EQ(m.etcd.request_timeout, milliseconds(1000));
  EXPECT_EQ(m.lease_ttl, milliseconds(10000));
  EXPECT_EQ(m.services[0].address, "127.0.0.1");
  EXPECT_THAT(m.services[0].metadata, IsEmpty());
  EXPECT_EQ(m.services[0].value_format, ValueFormat::kSidecarJson);
  const DiscoverSpec& d = m.discover[0];
  EXPECT_EQ(d.format, OutputFormat::kJson);
  EXPECT_EQ(d.mode, 0644u);
  EXPECT_TRUE(d.include_self);
  EXPECT_EQ(d.min_instances, 0);
  EXPECT_EQ(d.wait_min, milliseconds(0));
  EXPECT_EQ(d.wait_max, milliseconds(1000));
  EXPECT_EQ(d.command_timeout, milliseconds(30000));
  EXPECT_EQ(d.check_command, "");
  EXPECT_EQ(m.config[0].default_value, std::nullopt);
  EXPECT_EQ(m.config[0].mode, 0644u);
  EXPECT_EQ(m.config[1].format, "json");
  EXPECT_EQ(m.config[1].command_timeout, milliseconds(30000));
}

TEST(ManifestParser, AcceptsManifestWithOnlyDiscover) {
  const ParseResult r = parse(R"(
discover:
  - service: order-service
    output: /run/order.json
)");
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(r.errors);
  EXPECT_THAT(r.manifest->services, IsEmpty());
  EXPECT_THAT(r.manifest->discover, SizeIs(1));
}

TEST(ManifestParser, AcceptsManifestWithOnlyConfig) {
  const ParseResult r = parse(R"(
config:
  - prefix: /config/x/
    output: /etc/x.json
)");
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(r.errors);
  EXPECT_THAT(r.manifest->services, IsEmpty());
  EXPECT_THAT(r.manifest->config, SizeIs(1));
}

TEST(ManifestParser, NormalisesEndpointsAndAcceptsASingleString) {
  const ParseResult r = parse(R"(
etcd:
  endpoints: 10.0.0.1:2379
services: [{name: a, id: b, port: 1}]
)");
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(r.errors);
  EXPECT_THAT(r.manifest->etcd.endpoints, ElementsAre("http://10.0.0.1:2379"));

  const ParseResult list = parse(R"(
etcd:
  endpoints: ["HTTPS://etcd:2379/", "[::1]:2379", "http://[fe80::1]:12379"]
services: [{name: a, id: b, port: 1}]
)");
  ASSERT_TRUE(list.ok()) << ::testing::PrintToString(list.errors);
  EXPECT_THAT(list.manifest->etcd.endpoints,
              ElementsAre("https://etcd:2379", "http://[::1]:2379", "http://[fe80::1]:12379"));
}

TEST(ManifestParser, StripsTrailingSlashesFromEtcdPrefix) {
  const ParseResult r = parse(R"(
etcd: {prefix: /svc//}
services: [{name: a, id: b, port: 1}]
)");
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(r.errors);
  EXPECT_EQ(r.manifest->etcd.prefix, "/svc");
  EXPECT_EQ(r.manifest->key_of(r.manifest->services[0]), "/svc/a/b");
}

TEST(ManifestParser, ReadsModeAsOctalWhetherQuotedOrNot) {
  const ParseResult r = parse(R"(
discover:
  - {service: a, output: "1", mode: 0644}
  - {service: a, output: "2", mode: "0600"}
  - {service: a, output: "3", mode: 755}
  - {service: a, output: "4", mode: 0o640}
)");
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(r.errors);
  EXPECT_EQ(r.manifest->discover[0].mode, 0644u);
  EXPECT_EQ(r.manifest->discover[1].mode, 0600u);
  EXPECT_EQ(r.manifest->discover[2].mode, 0755u);
  EXPECT_EQ(r.manifest->discover[3].mode, 0640u);
}

TEST(ManifestParser, ExpandsEnvironmentInValuesOfEveryType) {
  const ParseResult r = parse(R"(
lease: {ttl: "${TTL}"}
services:
  - name: ${NAME}
    id: ${ID:-x}
    port: ${PORT}
    metadata:
      ${NOT_EXPANDED}: ${ZONE}
discover:
  - service: ${NAME}
    output: ${DIR}/out.json
    include_self: ${SELF}
    on_change: "echo $${HOME} $$"
)",
                              fixed_env({{"TTL", "20s"},
                                         {"NAME", "web"},
                                         {"PORT", "9000"},
                                         {"ZONE", "eu-1"},
                                         {"DIR", "/run"},
                                         {"SELF", "false"}}));
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(r.errors);
  const Manifest& m = *r.manifest;
  EXPECT_EQ(m.lease_ttl, milliseconds(20000));
  EXPECT_EQ(m.key_of(m.services[0]), "/services/web/x");
  EXPECT_EQ(m.services[0].port, 9000);
  // Keys are names in the schema, never data: they are not expanded.
  EXPECT_EQ(m.services[0].metadata, (std::map<std::string, std::string>{{"${NOT_EXPANDED}", "eu-1"}}));
  EXPECT_EQ(m.discover[0].service, "web");
  EXPECT_EQ(m.discover[0].output, "/run/out.json");
  EXPECT_FALSE(m.discover[0].include_self);
  EXPECT_EQ(m.discover[0].on_change, "echo ${HOME} $");
}

TEST(ManifestParser, AllowsTheSameServiceNameWithDifferentIds) {
  const ParseResult r = parse(R"(
services:
  - {name: web, id: a, port: 80}
  - {name: web, id: b, port: 81}
  - {name: api, id: a, port: 82}
)");
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(r.errors);
  EXPECT_THAT(r.manifest->services, SizeIs(3));
}

// ---------------------------------------------------------------- warnings

TEST(ManifestParser, WarnsWhenAVariableIsUnsetButTheValueIsStillUsable) {
  const ParseResult r = parse(R"(
services:
  - name: web
    id: ${HOSTNAME}-8080
    port: 8080
)");
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(r.errors);
  EXPECT_EQ(r.manifest->services[0].id, "-8080");
  EXPECT_THAT(r.warnings, ElementsAre("m.yaml:3:9: services[0].id: environment variable HOSTNAME is not set; "
                                      "'${HOSTNAME}' expands to nothing"));
}

TEST(ManifestParser, WarnsWhenCheckCommandCannotSeeTheStagedFile) {
  const ParseResult r = parse(R"(
discover:
  - service: web
    output: /etc/nginx/web.conf
    check_command: nginx -t
)");
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(r.errors);
  ASSERT_THAT(r.warnings, SizeIs(1));
  EXPECT_THAT(r.warnings[0], HasSubstr("m.yaml:4:20: discover[0].check_command: does not mention {{staged}}"));
}

// ---------------------------------------------------------------- whole-file errors

TEST(ManifestParser, RejectsEmptyDocument) {
  for (const char* text : {"", "# only a comment\n", "---\n", "~\n"}) {
    const ParseResult r = parse_manifest(text, "m.yaml", fixed_env());
    EXPECT_FALSE(r.ok()) << "'" << text << "'";
    ASSERT_THAT(r.errors, SizeIs(1)) << "'" << text << "'";
    EXPECT_EQ(r.errors[0].to_string(), "m.yaml: manifest is empty");
  }
}

TEST(ManifestParser, RejectsManifestWithNothingToDo) {
  for (const char* text : {"etcd: {prefix: /x}\n", "services: []\ndiscover:\nconfig: []\n"}) {
    const ParseResult r = parse_manifest(text, "m.yaml", fixed_env());
    ASSERT_THAT(r.errors, SizeIs(1)) << text;
    EXPECT_EQ(r.errors[0].where.line, 0);
    EXPECT_THAT(r.errors[0].message, HasSubstr("nothing to do"));
  }
}

TEST(ManifestParser, RejectsADocumentThatIsNotAMap) {
  const ParseResult r = parse(R"(
- name: web
)");
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(1, 1, "", "manifest must be a map")));
}

TEST(ManifestParser, ConvertsYamlSyntaxErrorsInsteadOfThrowing) {
  ParseResult r;
  ASSERT_NO_THROW(r = parse(R"(
services:
  - name: web
    port: [8080
)"));
  ASSERT_THAT(r.errors, SizeIs(1));
  EXPECT_THAT(r.errors[0].message, HasSubstr("invalid YAML"));
  EXPECT_EQ(r.errors[0].where.file, "m.yaml");
  EXPECT_EQ(r.errors[0].where.line, 4);
}

TEST(ManifestParser, ReportsSyntaxErrorAtTheOffendingLine) {
  const ParseResult r = parse(R"(
services:
  - name: web
   id: x
)");
  ASSERT_THAT(r.errors, SizeIs(1));
  EXPECT_THAT(r.errors[0], ErrorAt(3, 4, "", "invalid YAML"));
}

TEST(ManifestParser, HintsAtQuotingWhenExpansionBreaksAFlowMap) {
  const ParseResult r = parse(R"(
services:
  - {name: web, id: ${HOSTNAME}, port: 80}
)");
  ASSERT_THAT(r.errors, SizeIs(1));
  EXPECT_THAT(r.errors[0].message, HasSubstr("quote values that use ${...}"));
}

TEST(ManifestParser, RejectsMoreThanOneDocument) {
  const ParseResult r = parse(R"(
services: [{name: a, id: b, port: 1}]
---
services: [{name: c, id: d, port: 2}]
)");
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(3, 1, "", "single YAML document, found 2")));
}

// ---------------------------------------------------------------- field errors

TEST(ManifestParser, RejectsUnknownKeyWithLineAndColumnAndSuggestion) {
  const ParseResult r = parse(R"(
services:
  - name: web
    id: a
    port: 80
    prot: 8080
)");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.errors,
              ElementsAre(ErrorAt(5, 5, "services[0].prot", "unknown key 'prot' (did you mean 'port'?)")));
  EXPECT_EQ(r.errors[0].to_string(), "m.yaml:5:5: services[0].prot: unknown key 'prot' (did you mean 'port'?)");
}

TEST(ManifestParser, ListsKnownKeysWhenNoKnownKeyIsClose) {
  const ParseResult r = parse(R"(
etcd:
  compression: gzip
services: [{name: a, id: b, port: 1}]
)");
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(2, 3, "etcd.compression",
                                            "unknown key 'compression' (expected one of: endpoints, prefix, "
                                            "dial_timeout, request_timeout, username, password_file, "
                                            "password_env, password, tls)")));
}

TEST(ManifestParser, RejectsUnknownKeysAtEveryLevel) {
  const ParseResult r = parse(R"(
servics: []
lease: {tll: 10s}
discover:
  - service: a
    output: b
    wait: {mn: 1s}
config:
  - key: /a
    output: c
    on_chnage: x
checks: []
)");
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(1, 1, "servics", "did you mean 'services'?"),
                                    ErrorAt(2, 9, "lease.tll", "did you mean 'ttl'?"),
                                    ErrorAt(6, 12, "discover[0].wait.mn", "did you mean 'min'?"),
                                    ErrorAt(10, 5, "config[0].on_chnage", "did you mean 'on_change'?"),
                                    ErrorAt(11, 1, "checks", "unknown key 'checks'")));
}

TEST(ManifestParser, RejectsDuplicateKeysInAMap) {
  const ParseResult r = parse(R"(
services:
  - name: web
    id: a
    port: 80
    port: 81
)");
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(5, 5, "services[0].port", "duplicate key 'port' (first defined at line 4)")));
}

TEST(ManifestParser, RejectsMapWhereListIsExpected) {
  const ParseResult r = parse(R"(
services:
  name: web
  id: a
  port: 80
)");
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(2, 3, "services",
                                            "expected a list, got a map (start each service with '- ')")));
}

TEST(ManifestParser, RejectsScalarWhereMapIsExpected) {
  const ParseResult r = parse(R"(
etcd: http://127.0.0.1:2379
lease: 10s
services: [{name: a, id: b, port: 1}]
)");
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(1, 7, "etcd", "expected a map, got 'http://127.0.0.1:2379'"),
                                    ErrorAt(2, 8, "lease", "expected a map, got '10s'")));
}

TEST(ManifestParser, RejectsNonIntegerPort) {
  const ParseResult r = parse(R"(
services:
  - name: web
    id: a
    port: http
  - name: web
    id: b
    port: 80.5
  - name: web
    id: c
    port: [80]
)");
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(4, 11, "services[0].port", "expected an integer, got 'http'"),
                                    ErrorAt(7, 11, "services[1].port", "expected an integer, got '80.5'"),
                                    ErrorAt(10, 11, "services[2].port", "expected an integer, got a list")));
}

TEST(ManifestParser, RejectsPortOutOfRange) {
  const ParseResult r = parse(R"(
services:
  - {name: web, id: a, port: 0}
  - {name: web, id: b, port: 65536}
  - {name: web, id: c, port: -80}
  - {name: web, id: d, port: 99999999999999999999}
  - {name: web, id: e, port: 65535}
)");
  EXPECT_THAT(r.errors,
              ElementsAre(ErrorAt(2, 30, "services[0].port", "out of range: must be between 1 and 65535, got 0"),
                          ErrorAt(3, 30, "services[1].port", "out of range: must be between 1 and 65535, got 65536"),
                          ErrorAt(4, 30, "services[2].port", "got -80"),
                          ErrorAt(5, 30, "services[3].port", "out of range")));
}

TEST(ManifestParser, ReportsMissingRequiredFieldsAtTheItem) {
  const ParseResult r = parse(R"(
services:
  - address: 10.0.0.1
discover:
  - format: lines
config:
  - key: /a
)");
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(2, 5, "services[0].name", "is required"),
                                    ErrorAt(2, 5, "services[0].id", "is required"),
                                    ErrorAt(2, 5, "services[0].port", "is required"),
                                    ErrorAt(4, 5, "discover[0].service", "is required"),
                                    ErrorAt(4, 5, "discover[0].output", "is required"),
                                    ErrorAt(6, 5, "config[0].output", "is required")));
}

TEST(ManifestParser, ReportsRequiredFieldWrittenWithoutValueAtItsKey) {
  const ParseResult r = parse(R"(
services:
  - name: web
    id:
    port: 80
)");
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(3, 5, "services[0].id", "is required")));
}

TEST(ManifestParser, RejectsDuplicateServiceNameAndId) {
  const ParseResult r = parse(R"(
services:
  - name: user-service
    id: a
    port: 80
  - name: other
    id: a
    port: 81
  - name: user-service
    id: ${ID}
    port: 82
)",
                              fixed_env({{"ID", "a"}}));
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(8, 5, "services[2]",
                                            "duplicate service user-service/a, first defined at line 2")));
}

TEST(ManifestParser, RejectsBadDurations) {
  const ParseResult r = parse(R"(
etcd:
  dial_timeout: 10
  request_timeout: fast
discover:
  - service: a
    output: b
    command_timeout: -1s
    wait: {min: 1x}
)");
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(2, 17, "etcd.dial_timeout", "invalid duration '10': missing unit"),
                                    ErrorAt(3, 20, "etcd.request_timeout", "invalid duration 'fast'"),
                                    ErrorAt(7, 22, "discover[0].command_timeout", "invalid duration '-1s'"),
                                    ErrorAt(8, 17, "discover[0].wait.min", "invalid duration '1x'")));
}

TEST(ManifestParser, RejectsZeroTimeouts) {
  const ParseResult r = parse(R"(
etcd: {request_timeout: 0s}
config: [{key: /a, output: b, command_timeout: 0ms}]
)");
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(1, 25, "etcd.request_timeout", "must be greater than 0"),
                                    ErrorAt(2, 48, "config[0].command_timeout", "must be greater than 0")));
}

TEST(ManifestParser, RejectsLeaseTtlOutsideOneSecondToOneHourOrNotWholeSeconds) {
  const auto ttl_error = [](const char* ttl) {
    const std::string text = std::string("lease:\n  ttl: ") + ttl + "\nservices: [{name: a, id: b, port: 1}]\n";
    const ParseResult r = parse_manifest(text, "m.yaml", fixed_env());
    return r.errors.size() == 1 ? r.errors[0].to_string() : ::testing::PrintToString(r.errors);
  };
  EXPECT_EQ(ttl_error("500ms"), "m.yaml:2:8: lease.ttl: must be at least 1s, got 500ms");
  EXPECT_EQ(ttl_error("61m"), "m.yaml:2:8: lease.ttl: must be at most 1h, got 61m");
  EXPECT_EQ(ttl_error("1.5s"),
            "m.yaml:2:8: lease.ttl: must be a whole number of seconds (etcd lease TTLs have second granularity), "
            "got 1.5s");
  EXPECT_TRUE(parse_manifest("lease: {ttl: 1h}\nservices: [{name: a, id: b, port: 1}]\n", "m.yaml", fixed_env()).ok());
  EXPECT_TRUE(parse_manifest("lease: {ttl: 1s}\nservices: [{name: a, id: b, port: 1}]\n", "m.yaml", fixed_env()).ok());
}

TEST(ManifestParser, ReportsRequiredFieldThatExpandsToNothing) {
  const ParseResult r = parse(R"(
services:
  - name: web
    id: ${HOSTNAME}
    port: ${PORT:-}
)",
                              fixed_env({{"HOSTNAME", ""}}));
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(3, 9, "services[0].id", "is empty after expanding '${HOSTNAME}'"),
                                    ErrorAt(4, 11, "services[0].port", "is empty after expanding '${PORT:-}'")));
  EXPECT_EQ(r.errors[0].to_string(), "m.yaml:3:9: services[0].id: is empty after expanding '${HOSTNAME}'");
}

TEST(ManifestParser, ReportsUnterminatedExpansionAtTheValue) {
  const ParseResult r = parse(R"(
services:
  - name: web
    id: ${HOSTNAME-8080
    port: 80
)");
  EXPECT_THAT(r.errors,
              ElementsAre(ErrorAt(3, 9, "services[0].id", "unterminated '${' in '${HOSTNAME-8080'")));
}

TEST(ManifestParser, RejectsInvalidCharactersInNameAndId) {
  const ParseResult r = parse(R"(
services:
  - name: user service
    id: a/b
    port: 80
discover:
  - service: "web*"
    output: x
)");
  EXPECT_THAT(r.errors,
              ElementsAre(ErrorAt(2, 11, "services[0].name", "invalid character ' ' in 'user service'"),
                          ErrorAt(3, 9, "services[0].id", "invalid character '/' in 'a/b'"),
                          ErrorAt(6, 14, "discover[0].service", "invalid character '*' in 'web*'")));
}

TEST(ManifestParser, RejectsBadEndpointUrls) {
  const ParseResult r = parse(R"(
etcd:
  endpoints:
    - http://127.0.0.1:2379
    - unix:///run/etcd.sock
    - http://127.0.0.1
    - http://127.0.0.1:2379/v3
    - http://:2379
    - https://etcd:99999
    - ::1:2379
    - {url: x}
services: [{name: a, id: b, port: 1}]
)");
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(4, 7, "etcd.endpoints[1]", "unsupported scheme 'unix'"),
                                    ErrorAt(5, 7, "etcd.endpoints[2]", "missing port"),
                                    ErrorAt(6, 7, "etcd.endpoints[3]", "paths are not allowed"),
                                    ErrorAt(7, 7, "etcd.endpoints[4]", "missing host"),
                                    ErrorAt(8, 7, "etcd.endpoints[5]", "port must be a number between 1 and 65535"),
                                    ErrorAt(9, 7, "etcd.endpoints[6]", "IPv6 addresses must be written in brackets"),
                                    ErrorAt(10, 7, "etcd.endpoints[7]", "expected a URL, got a map")));
}

TEST(ManifestParser, RejectsEmptyEndpointList) {
  const ParseResult r = parse(R"(
etcd: {endpoints: []}
services: [{name: a, id: b, port: 1}]
)");
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(1, 19, "etcd.endpoints", "must list at least one endpoint")));
}

TEST(ManifestParser, RejectsEtcdPrefixWithoutLeadingSlash) {
  const ParseResult r = parse(R"(
etcd: {prefix: services}
services: [{name: a, id: b, port: 1}]
)");
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(1, 16, "etcd.prefix", "must start with '/'")));
}

TEST(ManifestParser, RequiresTemplateForTemplateFormat) {
  const ParseResult r = parse(R"(
discover:
  - service: web
    output: /etc/nginx/web.conf
    format: template
)");
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(2, 5, "discover[0].template", "is required when format is template")));
}

TEST(ManifestParser, RejectsTemplateWithOtherFormats) {
  const ParseResult r = parse(R"(
discover:
  - service: web
    output: web.json
    template: /etc/t.mustache
  - service: web
    output: web.txt
    format: lines
    template: /etc/t.mustache
)");
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(4, 5, "discover[0].template", "only used with format: template"),
                                    ErrorAt(8, 5, "discover[1].template", "only used with format: template")));
}

TEST(ManifestParser, RejectsUnknownEnumValueWithSuggestion) {
  const ParseResult r = parse(R"(
services:
  - {name: a, id: b, port: 1, value_format: etcd}
discover:
  - {service: a, output: x, format: jsno}
config:
  - {prefix: /p/, output: y, format: yaml}
)");
  EXPECT_THAT(r.errors,
              ElementsAre(ErrorAt(2, 45, "services[0].value_format",
                                  "invalid value 'etcd' (expected one of: sidecar, etcd-endpoints)"),
                          ErrorAt(4, 37, "discover[0].format", "invalid value 'jsno' (did you mean 'json'?)"),
                          ErrorAt(6, 38, "config[0].format", "invalid value 'yaml' (expected one of: json, dir)")));
}

TEST(ManifestParser, RejectsConfigEntryWithBothKeyAndPrefix) {
  const ParseResult r = parse(R"(
config:
  - key: /config/a
    prefix: /config/
    output: a.json
)");
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(3, 5, "config[0]", "has both key and prefix; use exactly one")));
}

TEST(ManifestParser, RejectsConfigEntryWithNeitherKeyNorPrefix) {
  const ParseResult r = parse(R"(
config:
  - output: a.json
)");
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(2, 5, "config[0]", "needs either key")));
}

TEST(ManifestParser, RejectsConfigKeysAndPrefixesOfTheWrongShape) {
  const ParseResult r = parse(R"(
config:
  - key: config/a
    output: a
  - prefix: /config/flags
    output: b
  - prefix: flags/
    output: c
)");
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(2, 10, "config[0].key", "must start with '/'"),
                                    ErrorAt(4, 13, "config[1].prefix", "must end with '/'"),
                                    ErrorAt(6, 13, "config[2].prefix", "must start with '/'")));
}

TEST(ManifestParser, RejectsDefaultOnPrefixEntriesAndFormatOnKeyEntries) {
  const ParseResult r = parse(R"(
config:
  - prefix: /p/
    output: a
    default: "{}"
  - key: /k
    output: b
    format: dir
)");
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(4, 5, "config[0].default", "only applies to key: entries"),
                                    ErrorAt(7, 5, "config[1].format", "only applies to prefix: entries")));
}

TEST(ManifestParser, RejectsInvalidModes) {
  const ParseResult r = parse(R"(
discover:
  - {service: a, output: "1", mode: 0999}
  - {service: a, output: "2", mode: "04755"}
  - {service: a, output: "3", mode: rw-r--r--}
)");
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(2, 37, "discover[0].mode", "invalid file mode '0999'"),
                                    ErrorAt(3, 37, "discover[1].mode", "invalid file mode '04755'"),
                                    ErrorAt(4, 37, "discover[2].mode", "invalid file mode 'rw-r--r--'")));
}

TEST(ManifestParser, RejectsWaitMinAboveMax) {
  const ParseResult r = parse(R"(
discover:
  - service: a
    output: b
    wait: {min: 2s}
)");
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(4, 11, "discover[0].wait", "min (2s) must not exceed max (1s)")));
}

TEST(ManifestParser, ReadsAFixedWaitHoldoffAndLeavesItUnsetByDefault) {
  const ParseResult r = parse(R"(
discover:
  - {service: a, output: a.json, wait: {max: 1s, holdoff: 200ms}}
  - {service: b, output: b.json}
)");
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(r.errors);
  EXPECT_EQ(r.manifest->discover[0].wait_holdoff, std::optional<milliseconds>(milliseconds(200)));
  EXPECT_EQ(r.manifest->discover[1].wait_holdoff, std::nullopt);
}

TEST(ManifestParser, RejectsNegativeGarbageAndTooLargeWaitHoldoff) {
  const ParseResult r = parse(R"(
discover:
  - {service: a, output: a.json, wait: {holdoff: -5ms}}
  - {service: b, output: b.json, wait: {holdoff: soon}}
  - {service: c, output: c.json, wait: {max: 1s, holdoff: 2s}}
)");
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(2, 50, "discover[0].wait.holdoff", "invalid duration '-5ms'"),
                                    ErrorAt(3, 50, "discover[1].wait.holdoff", "invalid duration 'soon'"),
                                    ErrorAt(4, 59, "discover[2].wait.holdoff", "holdoff (2s) must not exceed max (1s)")));
}

TEST(ManifestParser, RejectsNegativeMinInstancesAndNonBooleanIncludeSelf) {
  const ParseResult r = parse(R"(
discover:
  - service: a
    output: b
    min_instances: -1
    include_self: maybe
)");
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(4, 20, "discover[0].min_instances", "must be >= 0, got -1"),
                                    ErrorAt(5, 19, "discover[0].include_self", "expected true or false, got 'maybe'")));
}

TEST(ManifestParser, RejectsNestedOrMissingMetadataValues) {
  const ParseResult r = parse(R"(
services:
  - name: a
    id: b
    port: 1
    metadata:
      zone: eu
      tags: [x, y]
      owner:
)");
  EXPECT_THAT(r.errors,
              ElementsAre(ErrorAt(7, 13, "services[0].metadata.tags", "expected a string, number or boolean, got a list"),
                          ErrorAt(8, 7, "services[0].metadata.owner", "has no value")));
}

TEST(ManifestParser, RejectsTwoEntriesWritingTheSameFile) {
  const ParseResult r = parse(R"(
discover:
  - {service: a, output: /run/a.json}
config:
  - {key: /k, output: /run/a.json}
)");
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(4, 23, "config[0].output",
                                            "'/run/a.json' is also written by discover[0].output (line 2)")));
}

TEST(ManifestParser, CollectsAllErrorsInDocumentOrder) {
  const ParseResult r = parse(R"(
config:
  - key: relative
    output: a
lease:
  ttl: 10
services:
  - name: web
    id: a
    port: 0
    adress: 10.0.0.1
)");
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(r.manifest.has_value());
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(2, 10, "config[0].key", "must start with '/'"),
                                    ErrorAt(5, 8, "lease.ttl", "missing unit"),
                                    ErrorAt(9, 11, "services[0].port", "out of range"),
                                    ErrorAt(10, 5, "services[0].adress", "did you mean 'address'?")));
}

TEST(ManifestParser, BrokenSectionIsNotAlsoReportedAsNothingToDo) {
  const ParseResult r = parse(R"(
services: web
)");
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(1, 11, "services", "expected a list, got 'web'")));
}

// ---------------------------------------------------------------- ManifestError, load_manifest

TEST(ManifestError, FormatsFileLineColumnFieldAndMessage) {
  const ManifestError e{SourceLocation{"/etc/m.yaml", 12, 7}, "services[0].port", "expected an integer, got 'x'"};
  EXPECT_EQ(e.to_string(), "/etc/m.yaml:12:7: services[0].port: expected an integer, got 'x'");
}

TEST(ManifestError, OmitsLocationWhenLineIsUnknownAndFieldWhenEmpty) {
  EXPECT_EQ((ManifestError{SourceLocation{"m.yaml", 0, 0}, "lease.ttl", "bad"}).to_string(), "m.yaml: lease.ttl: bad");
  EXPECT_EQ((ManifestError{SourceLocation{"m.yaml", 0, 0}, "", "manifest is empty"}).to_string(),
            "m.yaml: manifest is empty");
}

TEST(LoadManifest, ReportsUnreadableFileAsOneErrorNamingIt) {
  const std::string path = ::testing::TempDir() + "sidecar-manifest-test-does-not-exist/m.yaml";
  const ParseResult r = load_manifest(path, fixed_env());
  EXPECT_FALSE(r.ok());
  ASSERT_THAT(r.errors, SizeIs(1));
  EXPECT_EQ(r.errors[0].to_string(), path + ": cannot read manifest: No such file or directory");
}

TEST(LoadManifest, ReportsADirectoryAsUnreadable) {
  const ParseResult r = load_manifest(::testing::TempDir(), fixed_env());
  ASSERT_THAT(r.errors, SizeIs(1));
  EXPECT_THAT(r.errors[0].message, HasSubstr("cannot read manifest: Is a directory"));
}

TEST(LoadManifest, ParsesFileAndNamesItInErrors) {
  const std::string path = ::testing::TempDir() + "sidecar-manifest-test.yaml";
  {
    std::ofstream out(path);
    out << "services:\n  - name: a\n    id: b\n    port: x\n";
  }
  const ParseResult r = load_manifest(path, fixed_env());
  std::remove(path.c_str());
  ASSERT_THAT(r.errors, SizeIs(1));
  EXPECT_EQ(r.errors[0].to_string(), path + ":4:11: services[0].port: expected an integer, got 'x'");
}

}  // namespace
}  // namespace sidecar::core
