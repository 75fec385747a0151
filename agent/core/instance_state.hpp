// Owns: the publication state an instance carries in its stored value ("state"), shared by the registrar
//       (what it writes), the catalog (what it reads) and every view (what they show by default).
// Thread: pure; constants and conversions only.
#pragma once

#include <optional>
#include <string_view>

namespace sidecar::core {

// passing, warning: published and shown by default. maintenance, draining: the key stays in etcd so
// consumers can see why the instance is out, but the file, DNS and xDS views leave it out unless a
// selector asks for it (xDS reports draining as DRAINING).
enum class InstanceState : unsigned char { kPassing, kWarning, kMaintenance, kDraining };

inline constexpr std::string_view to_string(InstanceState state) {
  switch (state) {
    case InstanceState::kPassing: return "passing";
    case InstanceState::kWarning: return "warning";
    case InstanceState::kMaintenance: return "maintenance";
    case InstanceState::kDraining: return "draining";
  }
  return "passing";
}

// Exact, lower-case names; nullopt for anything else (the caller decides whether that is an error).
inline constexpr std::optional<InstanceState> parse_instance_state(std::string_view text) {
  if (text == "passing") return InstanceState::kPassing;
  if (text == "warning") return InstanceState::kWarning;
  if (text == "maintenance") return InstanceState::kMaintenance;
  if (text == "draining") return InstanceState::kDraining;
  return std::nullopt;
}

// What a view shows when its selector names no states: passing and warning.
inline constexpr bool shown_by_default(InstanceState state) {
  return state == InstanceState::kPassing || state == InstanceState::kWarning;
}

}  // namespace sidecar::core
