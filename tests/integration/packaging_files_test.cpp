// The deployment files shipped in packaging/ say what the README promises: the Kubernetes example is a native
// sidecar with downward-API identity, probes on the admin endpoint, a preStop drain and a shared emptyDir, and
// its ConfigMap holds a manifest the agent accepts, and its podman variant runs the same agent the same way;
// both Dockerfiles run as uid 10001. (The images themselves are built and run by the `container` label.)
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <sstream>

#include "agent/core/manifest.hpp"
#include "tests/support/process.hpp"

namespace sidecar::test {
namespace {

using ::testing::HasSubstr;

const std::string kDir = SIDECAR_SOURCE_DIR "/packaging/kubernetes/";

YAML::Node named(const YAML::Node& list, const std::string& name) {
  for (const auto& item : list) {
    if (item["name"] && item["name"].as<std::string>() == name) return item;
  }
  return YAML::Node();
}

// The container port a probe's httpGet.port names (a number or a named port).
int probe_port(const YAML::Node& container, const YAML::Node& probe) {
  const YAML::Node port = probe["httpGet"]["port"];
  if (const YAML::Node p = named(container["ports"], port.as<std::string>())) return p["containerPort"].as<int>();
  return port.as<int>();
}

class KubernetesExample : public ::testing::Test {
 protected:
  void SetUp() override {
    pod_ = YAML::LoadFile(kDir + "pod.yaml");
    configmap_ = YAML::LoadFile(kDir + "configmap.yaml");
    ASSERT_EQ(pod_["kind"].as<std::string>(), "Pod");
    ASSERT_EQ(configmap_["kind"].as<std::string>(), "ConfigMap");
    sidecar_ = named(pod_["spec"]["initContainers"], "etcd-sidecar");
    ASSERT_TRUE(sidecar_) << "no initContainer named etcd-sidecar";
    app_ = pod_["spec"]["containers"][0];
    ASSERT_TRUE(app_);
  }

  core::ParseResult parse_configmap_manifest() const {
    const std::string text = configmap_["data"]["manifest.yaml"].as<std::string>();
    const core::EnvLookup env = [](const std::string& name) -> std::optional<std::string> {
      if (name == "POD_IP") return "10.1.2.3";
      if (name == "POD_NAME") return "web-7f9c";
      return std::nullopt;
    };
    return core::parse_manifest(text, "configmap.yaml:manifest.yaml", env);
  }

  YAML::Node pod_, configmap_, sidecar_, app_;
};

TEST_F(KubernetesExample, SidecarIsANativeSidecarInitContainer) {
  EXPECT_EQ(sidecar_["restartPolicy"].as<std::string>(), "Always");
}

TEST_F(KubernetesExample, PodIdentityComesFromTheDownwardApi) {
  const YAML::Node env = sidecar_["env"];
  EXPECT_EQ(named(env, "POD_IP")["valueFrom"]["fieldRef"]["fieldPath"].as<std::string>(), "status.podIP");
  EXPECT_EQ(named(env, "POD_NAME")["valueFrom"]["fieldRef"]["fieldPath"].as<std::string>(), "metadata.name");
}

TEST_F(KubernetesExample, ConfigMapManifestIsValidAndUsesThePodIdentity) {
  const core::ParseResult parsed = parse_configmap_manifest();
  ASSERT_TRUE(parsed.ok()) << parsed.errors.front().to_string();
  const core::Manifest& m = *parsed.manifest;
  ASSERT_EQ(m.services.size(), 1u);
  EXPECT_EQ(m.services[0].address, "10.1.2.3");
  EXPECT_EQ(m.services[0].id, "web-7f9c");
  EXPECT_TRUE(m.admin.enabled);
  EXPECT_EQ(m.admin.host, "0.0.0.0") << "kubelet probes do not come from the pod's loopback";
}

TEST_F(KubernetesExample, ConfigMapIsMountedWhereTheSidecarReadsItsManifest) {
  const YAML::Node volume = named(pod_["spec"]["volumes"], "sidecar-manifest");
  ASSERT_TRUE(volume);
  EXPECT_EQ(volume["configMap"]["name"].as<std::string>(), configmap_["metadata"]["name"].as<std::string>());
  const YAML::Node mount = named(sidecar_["volumeMounts"], "sidecar-manifest");
  ASSERT_TRUE(mount);
  const std::string manifest_path = mount["mountPath"].as<std::string>() + "/manifest.yaml";
  const auto args = sidecar_["args"].as<std::vector<std::string>>();
  const auto flag = std::find(args.begin(), args.end(), "--manifest");
  ASSERT_NE(flag, args.end());
  ASSERT_NE(flag + 1, args.end());
  EXPECT_EQ(*(flag + 1), manifest_path);
  EXPECT_NE(std::find(args.begin(), args.end(), "json"), args.end()) << "--log-format json for Kubernetes";
  EXPECT_NE(std::find(args.begin(), args.end(), "--watch-manifest"), args.end())
      << "a ConfigMap update must be applied without a signal";
}

TEST_F(KubernetesExample, ProbesUseTheAdminEndpointOnTheManifestsPort) {
  const core::ParseResult parsed = parse_configmap_manifest();
  ASSERT_TRUE(parsed.ok());
  const int admin_port = parsed.manifest->admin.port;
  EXPECT_EQ(sidecar_["startupProbe"]["httpGet"]["path"].as<std::string>(), "/readyz");
  EXPECT_EQ(sidecar_["readinessProbe"]["httpGet"]["path"].as<std::string>(), "/readyz");
  EXPECT_EQ(sidecar_["livenessProbe"]["httpGet"]["path"].as<std::string>(), "/livez");
  for (const char* probe : {"startupProbe", "readinessProbe", "livenessProbe"}) {
    EXPECT_EQ(probe_port(sidecar_, sidecar_[probe]), admin_port) << probe;
  }
}

TEST_F(KubernetesExample, AppPreStopDrainsThroughTheAdminEndpoint) {
  const auto command = app_["lifecycle"]["preStop"]["exec"]["command"].as<std::vector<std::string>>();
  std::string joined;
  for (const auto& part : command) joined += part + " ";
  EXPECT_THAT(joined, HasSubstr("-X POST"));
  EXPECT_THAT(joined, HasSubstr("http://127.0.0.1:9464/v1/drain"));
}

TEST_F(KubernetesExample, DiscoveredFileIsOnAnEmptyDirSharedWithTheApp) {
  const YAML::Node shared = named(pod_["spec"]["volumes"], "shared");
  ASSERT_TRUE(shared);
  EXPECT_TRUE(shared["emptyDir"].IsDefined());
  const std::string sidecar_mount = named(sidecar_["volumeMounts"], "shared")["mountPath"].as<std::string>();
  const std::string app_mount = named(app_["volumeMounts"], "shared")["mountPath"].as<std::string>();
  EXPECT_EQ(sidecar_mount, app_mount);
  const core::ParseResult parsed = parse_configmap_manifest();
  ASSERT_TRUE(parsed.ok());
  ASSERT_FALSE(parsed.manifest->discover.empty());
  for (const auto& d : parsed.manifest->discover) {
    EXPECT_EQ(d.output.rfind(sidecar_mount + "/", 0), 0u) << d.output << " is not on the shared volume";
  }
}

TEST_F(KubernetesExample, RunsAsNonRootWithoutPrivileges) {
  EXPECT_TRUE(pod_["spec"]["securityContext"]["runAsNonRoot"].as<bool>());
  EXPECT_FALSE(sidecar_["securityContext"]["allowPrivilegeEscalation"].as<bool>());
  EXPECT_TRUE(sidecar_["securityContext"]["readOnlyRootFilesystem"].as<bool>());
}

// pod-podman.yaml (what `podman kube play` can run, tests/container/kube_play_test.sh) differs from pod.yaml
// only where its header says: the agent gets the same arguments, mounts, security context and ConfigMap.
TEST_F(KubernetesExample, PodmanVariantRunsTheSameAgent) {
  const YAML::Node podman = YAML::LoadFile(kDir + "pod-podman.yaml");
  const YAML::Node agent = named(podman["spec"]["containers"], "etcd-sidecar");
  ASSERT_TRUE(agent) << "no container named etcd-sidecar in pod-podman.yaml";
  EXPECT_TRUE(podman["spec"]["hostNetwork"].as<bool>());
  EXPECT_EQ(YAML::Dump(agent["args"]), YAML::Dump(sidecar_["args"]));
  EXPECT_EQ(YAML::Dump(agent["volumeMounts"]), YAML::Dump(sidecar_["volumeMounts"]));
  EXPECT_EQ(YAML::Dump(agent["securityContext"]), YAML::Dump(sidecar_["securityContext"]));
  EXPECT_EQ(YAML::Dump(podman["spec"]["securityContext"]), YAML::Dump(pod_["spec"]["securityContext"]));
  EXPECT_EQ(YAML::Dump(podman["spec"]["volumes"]), YAML::Dump(pod_["spec"]["volumes"]));
  EXPECT_EQ(named(podman["spec"]["containers"], "app")["env"][0]["value"].as<std::string>(),
            app_["env"][0]["value"].as<std::string>());
}

// The full image (the .deb on the debootstrapped Debian 12 base) and the minimal one (static binary FROM
// scratch) both end as the numeric, non-root user 10001 that pod.yaml's runAsUser names.
TEST(Dockerfile, BothImagesRunAsUid10001) {
  for (const std::string name : {"Dockerfile", "Dockerfile.minimal"}) {
    const auto text = read_file(SIDECAR_SOURCE_DIR "/packaging/" + name);
    ASSERT_TRUE(text.has_value()) << name;
    std::vector<std::string> from;
    std::string user;
    std::istringstream in(*text);
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("FROM ", 0) == 0) from.push_back(line);
      if (line.rfind("USER ", 0) == 0) user = line.substr(5);
    }
    ASSERT_FALSE(from.empty()) << name;
    EXPECT_EQ(from.back(), name == "Dockerfile" ? "FROM ${BASE}" : "FROM scratch") << name;
    EXPECT_EQ(user, "10001:10001") << name;
    EXPECT_THAT(*text, HasSubstr("ARG BASE=localhost/etcd-sidecar-base:bookworm")) << name;
  }
}

}  // namespace
}  // namespace sidecar::test
