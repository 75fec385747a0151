#include "agent/core/manifest/sections.hpp"

namespace sidecar::core::manifest {

// Called where each entry used to read `output:`, so a missing output is reported in the same order against
// the entry's other item-level errors ("service is required", "needs either key or prefix").
void read_output(Reader& r, const MapView& map, const std::string& path, const OutputFields& out) {
  if (const Entry* e = r.require(map, "output", path)) {
    const std::string field = join_path(path, "output");
    if (auto v = r.text(*e, field, Need::kNonEmpty)) {
      r.claim_output(*v, field, e->value);
      out.output = std::move(*v);
    }
  }
  if (const Entry* e = map.get("mode")) {
    if (auto v = r.mode(*e, join_path(path, "mode"))) out.mode = *v;
  }
  if (const Entry* e = map.get("on_change")) {
    if (auto v = r.text(*e, join_path(path, "on_change"), Need::kOptional)) out.on_change = std::move(*v);
  }
  if (const Entry* e = map.get("command_timeout")) {
    if (auto d = r.positive_duration(*e, join_path(path, "command_timeout"))) out.command_timeout = *d;
  }
}

}  // namespace sidecar::core::manifest
