// Fuzz target: output rendering. Input: a format byte, a Mustache template, then instance values, one
// per line. Checks that rendering never throws, JSON output is JSON listing every instance, lines output
// has one line per instance, and the load-time template check agrees with rendering.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/core/instance.hpp"
#include "agent/output/render.hpp"
#include "tests/fuzz/fuzz_check.hpp"

namespace core = sidecar::core;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  core::DiscoverSpec spec;
  spec.format = static_cast<core::OutputFormat>(data[0] % 3);
  spec.template_path = "fuzz.mustache";

  // Template up to the first "\n--\n", then values.
  std::string template_text;
  if (const auto cut = rest.find("\n--\n"); cut != std::string_view::npos) {
    template_text = std::string(rest.substr(0, cut));
    rest.remove_prefix(cut + 4);
  }
  std::vector<core::Instance> owned;
  std::vector<std::pair<std::string, std::string>> kvs;
  while (!rest.empty() && owned.size() < 64) {
    const auto nl = rest.find('\n');
    const std::string_view line = rest.substr(0, nl);
    rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
    const std::string id = "i" + std::to_string(owned.size());
    kvs.emplace_back("/config/p/" + std::string(line.substr(0, line.size() / 2)), std::string(line));
    auto parsed = core::parse_instance_value(id, line);
    if (parsed.kind == core::ParsedValue::Kind::kInstance) owned.push_back(std::move(parsed.instance));
  }
  std::vector<const core::Instance*> instances;
  for (const auto& i : owned) instances.push_back(&i);

  const auto r = sidecar::output::render(spec, "fuzz-svc", 42, instances, template_text);
  switch (spec.format) {
    case core::OutputFormat::kJson: {
      FUZZ_CHECK(r.ok());
      const auto doc = nlohmann::json::parse(r.bytes, nullptr, false);
      FUZZ_CHECK(!doc.is_discarded());
      FUZZ_CHECK(doc["instances"].size() == instances.size());
      break;
    }
    case core::OutputFormat::kLines: {
      FUZZ_CHECK(r.ok());
      std::size_t lines = 0;
      for (const char c : r.bytes) lines += c == '\n';
      FUZZ_CHECK(lines == instances.size());
      break;
    }
    case core::OutputFormat::kTemplate:
      FUZZ_CHECK(r.ok() == !sidecar::output::validate_template(template_text).has_value());
      if (!r.ok()) FUZZ_CHECK(r.bytes.empty());
      break;
  }

  const std::string config = sidecar::output::render_config_prefix_json(kvs, "/config/p/");
  const auto doc = nlohmann::json::parse(config, nullptr, false);
  FUZZ_CHECK(!doc.is_discarded() && doc.is_object());
  return 0;
}
