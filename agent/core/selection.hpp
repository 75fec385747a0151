// Owns: which instances of a service a consumer sees and in what order (the `select:`/`sort:` of a discover
//       entry, and the same selector written as query parameters for the DNS and HTTP views).
// Thread: pure; no state, never throws.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/core/instance_state.hpp"

namespace sidecar::core {

struct Instance;

// All conditions must hold. Empty tags/metadata match everything.
struct Selector {
  std::vector<std::string> tags;                  // every one of them (an unknown tag simply matches nothing)
  std::map<std::string, std::string> metadata;    // key = value; strings compared as text, numbers and
                                                  // booleans by their JSON text ("1.2", "true")
  std::optional<std::string> zone;                // "local": prefer the agent's zone; a name: only that zone
  int min_local = 1;                              // zone local: below this many local matches, use all zones
  std::vector<InstanceState> states;              // empty: passing and warning (shown_by_default)
  bool operator==(const Selector&) const = default;
};

inline constexpr std::string_view kLocalZone = "local";

enum class SortOrder {
  kId,            // by id (the default; byte-stable files)
  kWeight,        // weight descending, then id
  kRandomStable,  // by a hash of (seed, id): the same order on one host, a different one on the next
};
std::string_view to_string(SortOrder order);
std::optional<SortOrder> parse_sort_order(std::string_view text);  // "id" | "weight" | "random-stable"

// `instances`: the valid instances, in id order (EndpointSet::sorted()). `local_zone`: the agent's zone
// ("" when unknown: then `zone: local` matches nothing locally and always falls back to all zones).
// `seed`: per-host text for kRandomStable (the host name). Returns the selected instances, sorted.
std::vector<const Instance*> select_instances(const std::vector<const Instance*>& instances, const Selector& selector,
                                              std::string_view local_zone, SortOrder order, std::string_view seed);

// Whether one instance passes the tag, metadata and state conditions (not the zone: that one depends on
// the whole set).
bool matches(const Instance& instance, const Selector& selector);

// The selector as query parameters: "tag=v2&tag=canary&zone=local&min_local=2&state=passing&meta.version=1.2.0".
// Percent-encoding (%XX, '+' as space) is decoded. Unknown parameters are errors, not ignored: a typo
// ("tags=") would otherwise silently select everything. `sort=` is accepted too.
struct SelectorQuery {
  Selector selector;
  std::optional<SortOrder> sort;
  std::string error;  // non-empty: the query is unusable and this says why (selector/sort unspecified)
  bool ok() const { return error.empty(); }
};
SelectorQuery parse_selector_query(std::string_view query);

}  // namespace sidecar::core
