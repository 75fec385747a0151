#include "agent/output/render.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

namespace sidecar::output {
namespace {

using core::Instance;

Instance make(const std::string& id, const std::string& addr, int port, const std::string& metadata = "{}") {
  Instance i;
  i.id = id;
  i.address = addr;
  i.port = port;
  i.metadata_json = metadata;
  return i;
}

core::DiscoverSpec spec_of(core::OutputFormat format, std::string template_path = "") {
  core::DiscoverSpec s;
  s.service = "order-service";
  s.output = "/tmp/unused";
  s.format = format;
  s.template_path = std::move(template_path);
  return s;
}

std::vector<const Instance*> ptrs(const std::vector<Instance>& v) {
  std::vector<const Instance*> out;
  for (const auto& i : v) out.push_back(&i);
  return out;
}

// Shipped templates are read from the source tree: this file is compiled from tests/unit/.
std::string shipped_template(const std::string& name) {
  std::string here = __FILE__;
  std::string dir = here.substr(0, here.rfind('/'));
  std::ifstream in(dir + "/../../config/templates/" + name);
  EXPECT_TRUE(in.good()) << "cannot open " << dir << "/../../config/templates/" << name;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const std::vector<Instance> kThree = {make("b", "10.0.0.2", 8080, R"({"zone":"eu"})"), make("a", "10.0.0.1", 8080),
                                      make("c", "::1", 9090)};

TEST(RenderJson, CompactSortedByIdWithTrailingNewline) {
  RenderResult r = render(spec_of(core::OutputFormat::kJson), "order-service", 42, ptrs(kThree), "");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.bytes,
            R"({"service":"order-service","revision":42,"instances":[)"
            R"({"id":"a","address":"10.0.0.1","port":8080,"metadata":{}},)"
            R"({"id":"b","address":"10.0.0.2","port":8080,"metadata":{"zone":"eu"}},)"
            R"({"id":"c","address":"::1","port":9090,"metadata":{}}]})"
            "\n");
  EXPECT_NO_THROW(nlohmann::json::parse(r.bytes));
}

TEST(RenderJson, SameSetInAnyOrderGivesSameBytes) {
  std::vector<Instance> reversed(kThree.rbegin(), kThree.rend());
  auto a = render(spec_of(core::OutputFormat::kJson), "s", 1, ptrs(kThree), "");
  auto b = render(spec_of(core::OutputFormat::kJson), "s", 1, ptrs(reversed), "");
  EXPECT_EQ(a.bytes, b.bytes);
}

TEST(RenderJson, EmptySetIsAValidDocument) {
  auto r = render(spec_of(core::OutputFormat::kJson), "s", 7, {}, "");
  EXPECT_EQ(r.bytes, "{\"service\":\"s\",\"revision\":7,\"instances\":[]}\n");
}

TEST(RenderJson, SkipsInvalidInstances) {
  std::vector<Instance> v = {make("a", "h", 1), make("bad", "", 0)};
  v[1].set_error("not JSON");
  auto r = render(spec_of(core::OutputFormat::kJson), "s", 1, ptrs(v), "");
  auto doc = nlohmann::json::parse(r.bytes);
  ASSERT_EQ(doc["instances"].size(), 1u);
  EXPECT_EQ(doc["instances"][0]["id"], "a");
}

TEST(RenderJson, EscapesIdsAndReplacesInvalidUtf8) {
  std::vector<Instance> v = {make(std::string("we\"ird\xff"), "h", 1)};
  auto r = render(spec_of(core::OutputFormat::kJson), "s", 1, ptrs(v), "");
  ASSERT_TRUE(r.ok());
  auto doc = nlohmann::json::parse(r.bytes);
  EXPECT_EQ(doc["instances"][0]["id"], "we\"ird\xEF\xBF\xBD");
}

TEST(RenderLines, OneEndpointPerLineIpv6Bracketed) {
  auto r = render(spec_of(core::OutputFormat::kLines), "s", 1, ptrs(kThree), "");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.bytes, "10.0.0.1:8080\n10.0.0.2:8080\n[::1]:9090\n");
}

TEST(RenderLines, EmptySetIsEmptyFile) {
  EXPECT_EQ(render(spec_of(core::OutputFormat::kLines), "s", 1, {}, "").bytes, "");
}

TEST(RenderTemplate, ExposesServiceInstancesAndMetadata) {
  const std::string tmpl =
      "{{service}} {{service_env}} rev={{revision}} n={{count}}\n"
      "{{#instances}}{{index}}:{{id}}={{endpoint}} z={{metadata.zone}}{{#first}} first{{/first}}"
      "{{#last}} last{{/last}}\n{{/instances}}";
  auto r = render(spec_of(core::OutputFormat::kTemplate, "t.mustache"), "order-service", 9, ptrs(kThree), tmpl);
  ASSERT_TRUE(r.ok()) << *r.error;
  EXPECT_EQ(r.bytes,
            "order-service ORDER_SERVICE rev=9 n=3\n"
            "0:a=10.0.0.1:8080 z= first\n"
            "1:b=10.0.0.2:8080 z=eu\n"
            "2:c=[::1]:9090 z= last\n");
}

TEST(RenderTemplate, InnerSectionsSeeOuterScopes) {
  std::vector<Instance> v = {make("a", "h", 1, R"({"tags":["x","y"]})"), make("b", "h", 2)};
  auto r = render(spec_of(core::OutputFormat::kTemplate), "s", 1, ptrs(v),
                  "{{#instances}}{{service}}/{{id}}[{{#metadata.tags}}{{.}}{{id}}{{/metadata.tags}}]"
                  "({{#instances}}{{id}}{{port}}{{/instances}}){{/instances}}");
  ASSERT_TRUE(r.ok()) << *r.error;
  EXPECT_EQ(r.bytes, "s/a[xaya](a1b2)s/b[](a1b2)");
}

TEST(RenderTemplate, ManyInstancesKeepOrderAndFlags) {
  std::vector<Instance> v;
  for (int i = 0; i < 1000; ++i) v.push_back(make("i" + std::to_string(1000 + i), "10.0.0.1", 1 + i));
  auto r = render(spec_of(core::OutputFormat::kTemplate), "s", 1, ptrs(v),
                  "{{#instances}}{{#first}}<{{/first}}{{port}}{{^last}},{{/last}}{{#last}}>{{/last}}{{/instances}}");
  ASSERT_TRUE(r.ok());
  std::string expected = "<";
  for (int i = 0; i < 1000; ++i) expected += std::to_string(1 + i) + (i + 1 < 1000 ? "," : ">");
  EXPECT_EQ(r.bytes, expected);
}

TEST(RenderTemplate, UnknownNamesAndPartialsRenderEmpty) {
  auto r = render(spec_of(core::OutputFormat::kTemplate), "s", 1, ptrs(kThree), "[{{nope}}{{> part}}{{metadata.x.y}}]");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.bytes, "[]");
}

TEST(RenderTemplate, DoesNotHtmlEscape) {
  std::vector<Instance> v = {make("a", "h", 1, R"({"q":"a&b<c>\"d\""})")};
  auto r = render(spec_of(core::OutputFormat::kTemplate), "s", 1, ptrs(v), "{{#instances}}{{metadata.q}}{{/instances}}");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.bytes, "a&b<c>\"d\"");
}

TEST(RenderTemplate, MetadataTypesMapToMustacheValues) {
  std::vector<Instance> v = {make("a", "h", 1, R"({"n":3,"t":true,"f":false,"l":["x","y"],"o":{"k":"v"},"z":null})")};
  auto r = render(spec_of(core::OutputFormat::kTemplate), "s", 1, ptrs(v),
                  "{{#instances}}{{metadata.n}}|{{#metadata.t}}T{{/metadata.t}}|{{^metadata.f}}F{{/metadata.f}}|"
                  "{{#metadata.l}}{{.}}{{/metadata.l}}|{{metadata.o.k}}|{{^metadata.z}}null{{/metadata.z}}{{/instances}}");
  ASSERT_TRUE(r.ok()) << *r.error;
  EXPECT_EQ(r.bytes, "3|T|F|xy|v|null");
}

TEST(RenderTemplate, SyntaxErrorIsAValueNamingTheTemplate) {
  auto r = render(spec_of(core::OutputFormat::kTemplate, "/etc/sidecar/bad.mustache"), "s", 1, ptrs(kThree),
                  "{{#instances}}{{id}}");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error->find("/etc/sidecar/bad.mustache"), std::string::npos) << *r.error;
  EXPECT_NE(r.error->find("instances"), std::string::npos) << *r.error;
  EXPECT_TRUE(r.bytes.empty());
}

TEST(RenderTemplate, SlugMakesIdsSafeForServerNames) {
  std::vector<Instance> v = {make("pod a/1:x", "h", 1)};
  auto r = render(spec_of(core::OutputFormat::kTemplate), "s", 1, ptrs(v), "{{#instances}}{{slug}}{{/instances}}");
  EXPECT_EQ(r.bytes, "pod_a_1_x");
}

TEST(ValidateTemplate, AcceptsGoodAndReportsBadTemplates) {
  EXPECT_FALSE(validate_template("{{#instances}}{{id}}{{/instances}}").has_value());
  EXPECT_TRUE(validate_template("{{#instances}}").has_value());
  EXPECT_TRUE(validate_template("{{#a}}{{/b}}").has_value());
  EXPECT_TRUE(validate_template("{{unclosed").has_value());
}

TEST(ShippedTemplates, AllAreValid) {
  for (const char* name : {"nginx-upstream.mustache", "nginx-upstream-weighted.mustache", "haproxy-backend.mustache",
                           "env.mustache"}) {
    auto err = validate_template(shipped_template(name));
    EXPECT_FALSE(err.has_value()) << name << ": " << err.value_or("");
  }
}

const std::string kHeader =
    "# Generated by etcd-sidecar from the registry entries of \"order-service\". Do not edit: it is rewritten.\n";

TEST(ShippedTemplates, NginxUpstreamListsServers) {
  auto r = render(spec_of(core::OutputFormat::kTemplate, "nginx-upstream.mustache"), "order-service", 5,
                  ptrs(kThree), shipped_template("nginx-upstream.mustache"));
  ASSERT_TRUE(r.ok()) << *r.error;
  EXPECT_EQ(r.bytes, kHeader +
                         "upstream order-service {\n"
                         "    server 10.0.0.1:8080;\n"
                         "    server 10.0.0.2:8080;\n"
                         "    server [::1]:9090;\n"
                         "}\n");
}

TEST(ShippedTemplates, NginxUpstreamWithoutInstancesHasADownPlaceholder) {
  auto r = render(spec_of(core::OutputFormat::kTemplate), "order-service", 5, {},
                  shipped_template("nginx-upstream.mustache"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.bytes, kHeader +
                         "upstream order-service {\n"
                         "    # No instance is registered. An upstream without servers fails `nginx -t`, so keep a "
                         "placeholder\n"
                         "    # that is marked down: requests get 502 until an instance appears.\n"
                         "    server 127.0.0.1:65535 down;\n"
                         "}\n");
}

TEST(ShippedTemplates, NginxUpstreamIsByteStableAcrossRevisions) {
  auto a = render(spec_of(core::OutputFormat::kTemplate), "s", 5, ptrs(kThree), shipped_template("nginx-upstream.mustache"));
  auto b = render(spec_of(core::OutputFormat::kTemplate), "s", 6, ptrs(kThree), shipped_template("nginx-upstream.mustache"));
  EXPECT_EQ(a.bytes, b.bytes);  // a new revision alone must not trigger an nginx reload
}

TEST(ShippedTemplates, HaproxyBackendListsServersWithSafeNames) {
  std::vector<Instance> v = {make("order 1", "10.0.0.1", 8080), make("order-2", "::1", 8081)};
  auto r = render(spec_of(core::OutputFormat::kTemplate), "order-service", 5, ptrs(v),
                  shipped_template("haproxy-backend.mustache"));
  ASSERT_TRUE(r.ok()) << *r.error;
  EXPECT_EQ(r.bytes, kHeader +
                         "backend order-service\n"
                         "    balance roundrobin\n"
                         "    server order_1 10.0.0.1:8080 check\n"
                         "    server order-2 [::1]:8081 check\n");
}

TEST(ShippedTemplates, HaproxyBackendWithoutInstancesHasNoBlankLine) {
  auto r = render(spec_of(core::OutputFormat::kTemplate), "order-service", 5, {},
                  shipped_template("haproxy-backend.mustache"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.bytes, kHeader +
                         "backend order-service\n"
                         "    balance roundrobin\n"
                         "    # No instance is registered: HAProxy answers 503 until one appears.\n");
}

TEST(ShippedTemplates, EnvJoinsEndpointsWithCommas) {
  std::vector<Instance> v = {make("a", "10.0.0.1", 1), make("b", "10.0.0.2", 2)};
  auto r = render(spec_of(core::OutputFormat::kTemplate), "order-service", 5, ptrs(v), shipped_template("env.mustache"));
  ASSERT_TRUE(r.ok()) << *r.error;
  EXPECT_EQ(r.bytes, kHeader + "ORDER_SERVICE_ENDPOINTS=10.0.0.1:1,10.0.0.2:2\nORDER_SERVICE_COUNT=2\n");
}

TEST(ShippedTemplates, EnvWithoutInstancesHasEmptyList) {
  auto r = render(spec_of(core::OutputFormat::kTemplate), "order-service", 5, {}, shipped_template("env.mustache"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.bytes, kHeader + "ORDER_SERVICE_ENDPOINTS=\nORDER_SERVICE_COUNT=0\n");
}

TEST(RenderConfigPrefixJson, RelativeKeysSortedStringValues) {
  std::string out = render_config_prefix_json(
      {{"/config/app/b", "2"}, {"/config/app/a/x", "{\"j\":1}"}, {"/config/other", "no"}, {"/config/app/", "self"}},
      "/config/app/");
  EXPECT_EQ(out, "{\"a/x\":\"{\\\"j\\\":1}\",\"b\":\"2\"}\n");
}

TEST(RenderConfigPrefixJson, InvalidUtf8IsReplacedNotThrown) {
  std::string out;
  ASSERT_NO_THROW(out = render_config_prefix_json({{"/c/k", std::string("v\xff")}, {std::string("/c/\xfe"), "x"}}, "/c/"));
  auto doc = nlohmann::json::parse(out);
  EXPECT_EQ(doc["k"], "v\xEF\xBF\xBD");
  EXPECT_EQ(doc["\xEF\xBF\xBD"], "x");
}

TEST(RenderConfigPrefixJson, EmptyPrefixIsAnEmptyObject) {
  EXPECT_EQ(render_config_prefix_json({}, "/c/"), "{}\n");
}

}  // namespace
}  // namespace sidecar::output
