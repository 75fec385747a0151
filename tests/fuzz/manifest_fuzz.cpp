// Fuzz target: the manifest parser (YAML -> Manifest or errors), env expansion and durations.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "agent/core/instance.hpp"
#include "agent/core/manifest.hpp"
#include "tests/fuzz/fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const sidecar::core::EnvLookup env = [](const std::string& name) -> std::optional<std::string> {
    if (name == "HOSTNAME") return std::string("fuzz-host");
    if (name == "PORT") return std::string("8080");
    if (name == "EMPTY") return std::string();
    return std::nullopt;
  };

  const auto result = sidecar::core::parse_manifest(text, "fuzz.yaml", env);
  FUZZ_CHECK(result.ok() == result.errors.empty());
  for (const auto& e : result.errors) FUZZ_CHECK(!e.to_string().empty());
  if (result.ok()) {
    const auto& m = *result.manifest;
    // What the rest of the agent relies on once a manifest is accepted.
    FUZZ_CHECK(m.lease_ttl >= std::chrono::seconds(1) && m.lease_ttl <= std::chrono::hours(1));
    FUZZ_CHECK(!m.etcd.endpoints.empty());
    FUZZ_CHECK(!m.etcd.prefix.empty() && m.etcd.prefix.front() == '/');
    for (const auto& s : m.services) {
      FUZZ_CHECK(!s.name.empty() && !s.id.empty());
      FUZZ_CHECK(s.port >= 1 && s.port <= 65535);
      FUZZ_CHECK(s.name.find('/') == std::string::npos && s.id.find('/') == std::string::npos);
      // What this agent registers, every reader (including its own discovery) reads back as the same
      // endpoint: an accepted address must be one the value parser accepts too.
      for (const auto format : {sidecar::core::ValueFormat::kSidecarJson, sidecar::core::ValueFormat::kEtcdEndpoints}) {
        auto spec = s;
        spec.value_format = format;
        const auto back = sidecar::core::parse_instance_value(s.id, sidecar::core::encode_registration(spec));
        FUZZ_CHECK(back.kind == sidecar::core::ParsedValue::Kind::kInstance);
        FUZZ_CHECK(back.instance.port == s.port);
        FUZZ_CHECK("[" + back.instance.address + "]" == s.address || back.instance.address == s.address);
      }
    }
    for (const auto& d : m.discover) {
      FUZZ_CHECK(!d.output.empty() && !d.service.empty());
      FUZZ_CHECK(d.wait_min <= d.wait_max);
      FUZZ_CHECK((d.format == sidecar::core::OutputFormat::kTemplate) == !d.template_path.empty());
    }
    for (const auto& c : m.config) {
      FUZZ_CHECK(c.key.empty() != c.prefix.empty());
      FUZZ_CHECK(!c.output.empty());
    }
  }

  const auto expanded = sidecar::core::expand_env(text, env);
  if (!expanded.error) FUZZ_CHECK(expanded.value.size() <= text.size() * 9 + 16);  // ${X} -> at most "fuzz-host"
  if (const auto d = sidecar::core::parse_duration(text)) FUZZ_CHECK(d->count() >= 0);
  return 0;
}
