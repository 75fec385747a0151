// Fuzz target: the selector query parser (tag=, zone=, min_local=, state=, sort=, meta.<key>=, with
// percent-encoding), and selecting over a small fixed set with whatever selector it yields.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "agent/core/instance.hpp"
#include "agent/core/selection.hpp"
#include "tests/fuzz/fuzz_check.hpp"

namespace core = sidecar::core;

namespace {

const std::vector<core::Instance>& instances() {
  static const std::vector<core::Instance> list = [] {
    std::vector<core::Instance> out;
    const char* values[] = {
        R"({"address":"10.0.0.1","port":80,"zone":"z1","tags":["v2","canary"],"weight":5,"metadata":{"version":"1.2.0"}})",
        R"({"address":"10.0.0.2","port":80,"zone":"z2","tags":["v2"],"state":"warning"})",
        R"({"address":"10.0.0.3","port":80,"zone":"z1","state":"draining","build":7})",
        R"({"address":"10.0.0.4","port":80})",
    };
    int n = 0;
    for (const char* v : values) out.push_back(core::parse_instance_value("i" + std::to_string(n++), v).instance);
    return out;
  }();
  return list;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const core::SelectorQuery q = core::parse_selector_query(input);
  if (!q.ok()) return 0;
  FUZZ_CHECK(q.selector.min_local >= 1);
  FUZZ_CHECK(q.selector.states.size() <= 4);
  std::vector<const core::Instance*> all;
  for (const auto& i : instances()) all.push_back(&i);
  for (const auto order : {core::SortOrder::kId, core::SortOrder::kWeight, core::SortOrder::kRandomStable}) {
    const auto selected = core::select_instances(all, q.selector, "z1", q.sort.value_or(order), "seed");
    FUZZ_CHECK(selected.size() <= all.size());
    for (const core::Instance* i : selected) {
      // Everything selected passes the per-instance conditions; the zone only narrows further.
      FUZZ_CHECK(core::matches(*i, q.selector));
      if (q.selector.zone && *q.selector.zone != core::kLocalZone) FUZZ_CHECK(i->zone() == *q.selector.zone);
    }
    // Deterministic: the same query selects the same list.
    FUZZ_CHECK(selected == core::select_instances(all, q.selector, "z1", q.sort.value_or(order), "seed"));
  }
  return 0;
}
