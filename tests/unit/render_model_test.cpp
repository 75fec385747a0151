// Rendering the richer instance model: the JSON file's optional fields, the caller's sort order, and the
// template context (weights, tags, named ports, zones, groups by zone and by tag, total weight).
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/core/instance.hpp"
#include "agent/core/selection.hpp"
#include "agent/output/render.hpp"

namespace sidecar::output {
namespace {

using core::Instance;

Instance from_value(const std::string& id, const std::string& value) {
  const auto p = core::parse_instance_value(id, value);
  EXPECT_EQ(p.kind, core::ParsedValue::Kind::kInstance) << p.instance.error();
  return p.instance;
}

std::vector<const Instance*> ptrs(const std::vector<Instance>& v) {
  std::vector<const Instance*> out;
  for (const auto& i : v) out.push_back(&i);
  return out;
}

core::DiscoverSpec spec_of(core::OutputFormat format, core::SortOrder sort = core::SortOrder::kId) {
  core::DiscoverSpec s;
  s.service = "order-service";
  s.output = "/tmp/unused";
  s.format = format;
  s.sort = sort;
  return s;
}

std::string render_template(const std::vector<Instance>& v, const std::string& tmpl,
                            core::SortOrder sort = core::SortOrder::kId) {
  auto r = render(spec_of(core::OutputFormat::kTemplate, sort), "order-service", 3, ptrs(v), tmpl);
  EXPECT_TRUE(r.ok()) << r.error.value_or("");
  return r.bytes;
}

std::string shipped_template(const std::string& name) {
  std::string here = __FILE__;
  std::ifstream in(here.substr(0, here.rfind('/')) + "/../../config/templates/" + name);
  EXPECT_TRUE(in.good()) << name;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const std::vector<Instance> kZoned = {
    from_value("a", R"({"address":"10.0.0.1","port":80,"weight":5,"zone":"z1","tags":["v2","canary"],)"
                    R"("ports":{"grpc":9090,"http":80}})"),
    from_value("b", R"({"address":"10.0.0.2","port":80,"zone":"z2","tags":["v2"],"state":"warning"})"),
    from_value("c", R"({"address":"10.0.0.3","port":80,"weight":3,"zone":"z1"})"),
    from_value("d", R"({"address":"10.0.0.4","port":80})"),
};

TEST(RenderModelJson, OptionalFieldsAppearOnlyWhenSet) {
  auto r = render(spec_of(core::OutputFormat::kJson), "s", 1, ptrs(kZoned), "");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.bytes,
            R"({"service":"s","revision":1,"instances":[)"
            R"({"id":"a","address":"10.0.0.1","port":80,"metadata":{},"ports":{"grpc":9090,"http":80},)"
            R"("tags":["canary","v2"],"weight":5,"zone":"z1"},)"
            R"({"id":"b","address":"10.0.0.2","port":80,"metadata":{},"tags":["v2"],"zone":"z2","state":"warning"},)"
            R"({"id":"c","address":"10.0.0.3","port":80,"metadata":{},"weight":3,"zone":"z1"},)"
            R"({"id":"d","address":"10.0.0.4","port":80,"metadata":{}}]})"
            "\n");
  EXPECT_NO_THROW(nlohmann::json::parse(r.bytes));
}

TEST(RenderModelJson, KeepsTheCallersOrderWhenSortedOtherwiseThanById) {
  const auto selected = core::select_instances(ptrs(kZoned), {}, "", core::SortOrder::kWeight, "");
  auto r = render(spec_of(core::OutputFormat::kLines, core::SortOrder::kWeight), "s", 1, selected, "");
  EXPECT_EQ(r.bytes, "10.0.0.1:80\n10.0.0.3:80\n10.0.0.2:80\n10.0.0.4:80\n");
}

TEST(RenderModelTemplate, InstancesCarryWeightStateZoneTagsAndPorts) {
  const std::string out = render_template(
      kZoned,
      "{{#instances}}{{id}} w={{weight}} s={{state}} z={{#zone}}{{zone}}{{/zone}}{{^zone}}-{{/zone}} "
      "t={{#tags}}{{.}},{{/tags}} grpc={{ports.grpc}} [{{#port_list}}{{name}}:{{port}};{{/port_list}}]\n"
      "{{/instances}}total={{total_weight}}\n");
  EXPECT_EQ(out,
            "a w=5 s=passing z=z1 t=canary,v2, grpc=9090 [grpc:9090;http:80;]\n"
            "b w=1 s=warning z=z2 t=v2, grpc= []\n"
            "c w=3 s=passing z=z1 t= grpc= []\n"
            "d w=1 s=passing z=- t= grpc= []\n"
            "total=10\n");
}

TEST(RenderModelTemplate, GroupsByZoneWithCountsAndWeights) {
  const std::string out = render_template(
      kZoned,
      "{{#zones}}[{{zone}}] n={{count}} w={{total_weight}}:{{#instances}} {{id}}/{{index}}{{/instances}}\n{{/zones}}");
  EXPECT_EQ(out,
            "[] n=1 w=1: d/0\n"
            "[z1] n=2 w=8: a/0 c/1\n"
            "[z2] n=1 w=1: b/0\n");
}

TEST(RenderModelTemplate, GroupsByTagSortedByName) {
  const std::string out =
      render_template(kZoned, "{{#tags}}{{tag}}({{count}}):{{#instances}} {{id}}{{^last}},{{/last}}{{/instances}}\n{{/tags}}");
  EXPECT_EQ(out, "canary(1): a\nv2(2): a, b\n");
}

TEST(RenderModelTemplate, GroupsFollowTheSelectionOrder) {
  const auto selected = core::select_instances(ptrs(kZoned), {}, "", core::SortOrder::kWeight, "");
  auto r = render(spec_of(core::OutputFormat::kTemplate, core::SortOrder::kWeight), "s", 1, selected,
                  "{{#zones}}{{#instances}}{{id}}{{/instances}}|{{/zones}}");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.bytes, "d|ac|b|");
}

TEST(RenderModelTemplate, ShippedWeightedNginxUpstream) {
  const std::string out = render_template(kZoned, shipped_template("nginx-upstream-weighted.mustache"));
  EXPECT_EQ(out,
            "# Generated by etcd-sidecar from the registry entries of \"order-service\". Do not edit: it is rewritten.\n"
            "# 4 instance(s), total weight 10; each server gets its registered `weight:` (default 1).\n"
            "upstream order-service {\n"
            "    server 10.0.0.1:80 weight=5; # zone z1\n"
            "    server 10.0.0.2:80 weight=1; # zone z2\n"
            "    server 10.0.0.3:80 weight=3; # zone z1\n"
            "    server 10.0.0.4:80 weight=1;\n"
            "}\n");
}

TEST(RenderModelTemplate, ShippedWeightedNginxUpstreamWithoutInstancesHasADownPlaceholder) {
  const std::string out = render_template({}, shipped_template("nginx-upstream-weighted.mustache"));
  EXPECT_NE(out.find("server 127.0.0.1:65535 down;"), std::string::npos) << out;
  EXPECT_NE(out.find("total weight 0"), std::string::npos) << out;
}

}  // namespace
}  // namespace sidecar::output
