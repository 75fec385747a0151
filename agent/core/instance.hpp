// Owns: the wire format of one service instance in etcd — encoding our registrations and decoding anyone's.
// Thread: pure (no observable state: a small per-thread table only lets equal extras blocks be shared);
//         never throws (malformed values become Instance::error(), not exceptions).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "agent/core/instance_state.hpp"
#include "agent/core/manifest.hpp"

namespace sidecar::core {

// Values larger than this are not parsed: a registry entry is a few hundred bytes, anything bigger is
// a foreign key or an accident, and parsing it for every event would cost more than it is worth.
inline constexpr size_t kMaxInstanceValueBytes = 64 * 1024;
// Deeper JSON is refused before parsing: later dumps and template conversions recurse per level.
inline constexpr int kMaxInstanceValueDepth = 32;

// Value of a key we register, in the shape the manifest asked for:
//   kSidecarJson:   {"name":…,"id":…,"address":…,"port":…,"metadata":{…}[,"ports":{…}][,"tags":[…]]
//                    [,"weight":N][,"zone":…][,"region":…][,"state":…]}
//   kEtcdEndpoints: {"Op":0,"Addr":"host:port","Metadata":{…}[, the same optional fields]}
// The optional fields are written only when they differ from their default (no named ports, no tags,
// weight 1, no zone/region, state passing): absent means default, so a plain service writes the same bytes
// as before and old readers see extra fields only. Go's encoding/json ignores unknown top-level fields,
// so etcd's naming resolver keeps reading kEtcdEndpoints values. Compact, byte-stable: this key order,
// metadata and ports sorted by name, tags sorted. Invalid UTF-8 in metadata is replaced (U+FFFD).
std::string encode_registration(const ServiceSpec& s, InstanceState state = InstanceState::kPassing);

inline constexpr int kMinWeight = 1;
inline constexpr int kMaxWeight = 10000;
inline constexpr int kDefaultWeight = 1;

// The rarely present parts of an instance, allocated only when one of them is: a plain instance pays one
// pointer for all of them (100,000 instances must fit in a few tens of MB).
struct InstanceExtras {
  std::vector<std::pair<std::string, int>> ports;  // named ports, sorted by name, unique
  std::vector<std::string> tags;                   // sorted, unique
  std::string zone;
  std::string region;
  std::string error;  // non-empty: the value is unusable and this says why
  bool empty() const { return ports.empty() && tags.empty() && zone.empty() && region.empty() && error.empty(); }
  bool operator==(const InstanceExtras&) const = default;
};

// One discovered instance. Kept small on purpose: metadata is held as its compact serialized JSON text
// and only parsed when a template needs it; the rich fields live in one shared, immutable extras block.
struct Instance {
  std::string id;                      // key remainder after "<prefix>/<service>/"
  std::string address;                 // host or IP, IPv6 without brackets; empty when invalid
  int port = 0;                        // 1..65535; 0 when invalid (the default port)
  uint16_t weight = kDefaultWeight;    // kMinWeight..kMaxWeight
  InstanceState state = InstanceState::kPassing;
  std::string metadata_json = "{}";    // compact JSON object, keys sorted (nlohmann's default order)
  int64_t mod_revision = 0;
  int64_t create_revision = 0;
  int64_t lease = 0;
  // Null when the instance has none of the extras (the common case). Shared and never modified once
  // attached: copies of an instance point at one block, and parse_instance_value gives instances with
  // equal extras (same tags, zone, ports) one block where it can.
  std::shared_ptr<const InstanceExtras> extras;

  bool valid() const { return extras == nullptr || extras->error.empty(); }
  // Why the value is unusable; empty when valid.
  const std::string& error() const;
  // Marks the instance unusable (keeps the other extras).
  void set_error(std::string reason);
  // Empty when absent.
  const std::vector<std::string>& tags() const;
  const std::vector<std::pair<std::string, int>>& ports() const;
  const std::string& zone() const;
  const std::string& region() const;
  bool has_tag(std::string_view tag) const;
  // The named port, or 0 when there is no port of that name.
  int port_named(std::string_view name) const;

  // "host:port", IPv6 bracketed.
  std::string endpoint() const;
  // Parses metadata_json; an empty object if it somehow does not parse.
  nlohmann::json metadata() const;
  // Fields that reach rendered output (revisions and lease do not).
  bool same_rendering(const Instance& other) const;
};

struct ParsedValue {
  enum class Kind {
    kInstance,      // usable: address, port, metadata set
    kInvalid,       // kept so it is counted and reported once; instance.error() says why
    kDeleteMarker,  // etcd endpoints {"Op":1,…}: that package's way of saying "removed"; instance.error() says so
  };
  Kind kind = Kind::kInvalid;
  Instance instance;  // id always set; structured fields only for kInstance
};

// Accepts our values and other writers':
//   JSON object:
//     address: "address" | "host" | "ip" | "Address", else "Addr" (etcd endpoints); may carry ":port".
//     port:    "port" | "Port", a number or a numeric string; else the port inside the address.
//     metadata: the "metadata" | "Metadata" | "Attributes" object (first present). When none is an object,
//             the other top-level fields become the metadata: the seed-style NestJS app stores
//             JSON.stringify({address, port, version, …}) and its "version" is metadata to a selector.
//             Fields this format defines (address/port/name/id/Op/ports/tags/…) are never copied.
//             Non-object metadata (a string, a list) is otherwise ignored, not fatal.
//     ports:   {"name": port}: entries with a bad name ([a-z0-9-]{1,15}) or port are dropped.
//     tags:    [strings]: entries that are not strings of [A-Za-z0-9._-]{1,64} are dropped.
//     weight:  a number or numeric string, clamped to 1..10000; anything else: the default 1.
//     zone, region: strings of [A-Za-z0-9._-]{1,64}; anything else is dropped.
//     state:   "passing" | "warning" | "maintenance" | "draining"; absent: passing. Any other text, or a
//             non-string, makes the value kInvalid: an instance whose writer says something we do not
//             understand is not routed to (fail closed), and the warning names the state.
//   Plain text "host:port" (not JSON; surrounding whitespace ignored): an instance with that address.
// Oversized, non-JSON non-host:port text, non-object JSON, missing/odd address or port -> kInvalid.
// Never throws. The address must be a hostname or IP literal ([A-Za-z0-9._:%-]): it is pasted into proxy
// configs, and a value like "x; include /etc/passwd" must not get there.
ParsedValue parse_instance_value(std::string_view id, std::string_view value,
                                 size_t max_bytes = kMaxInstanceValueBytes);

// "[::1]:80" -> {"::1", 80}; "10.0.0.1:80" -> {"10.0.0.1", 80}; nullopt when there is no valid port
// (including a bare IPv6 literal such as "::1", whose colons are not a port separator).
std::optional<std::pair<std::string, int>> split_host_port(std::string_view text);
// An address as parse_instance_value accepts it: host name, IPv4, or IPv6 (brackets optional). The
// manifest checks registered addresses with this, so what the agent writes every reader can read back.
bool valid_address(std::string_view address);
// {"::1", 80} -> "[::1]:80"; an already bracketed host is left alone.
std::string join_host_port(std::string_view host, int port);
// A named port's name as the manifest and values accept it: [a-z0-9-]{1,15} (RFC 6335 service names).
bool valid_port_name(std::string_view name);
// A tag, zone or region: [A-Za-z0-9._-]{1,64}. They reach templates and file names, hence the charset.
bool valid_label(std::string_view text);

}  // namespace sidecar::core
