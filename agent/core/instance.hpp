// Owns: the wire format of one service instance in etcd — encoding our registrations and decoding anyone's.
// Thread: pure; no state, never throws (malformed values become Instance::error, not exceptions).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

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
//   kSidecarJson:   {"name":…,"id":…,"address":…,"port":…,"metadata":{…}}   (this key order; metadata sorted)
//   kEtcdEndpoints: {"Op":0,"Addr":"host:port","Metadata":{…}}   (what etcd's Go naming/endpoints reads)
// Compact, byte-stable. Invalid UTF-8 in metadata is replaced (U+FFFD) rather than failing.
// `state` is written as "state" (sidecar JSON only) so consumers see why an instance is out.
std::string encode_registration(const ServiceSpec& s, InstanceState state = InstanceState::kPassing);

// One discovered instance. Kept small on purpose (100k of them must fit well under 100 MB): metadata is
// held as its compact serialized JSON text and only parsed when a template needs it.
struct Instance {
  std::string id;                      // key remainder after "<prefix>/<service>/"
  std::string address;                 // host or IP, IPv6 without brackets; empty when invalid
  int port = 0;                        // 1..65535; 0 when invalid
  std::string metadata_json = "{}";    // compact JSON object, keys sorted (nlohmann's default order)
  std::string error;                   // non-empty: the value is unusable and this says why
  int64_t mod_revision = 0;
  int64_t create_revision = 0;
  int64_t lease = 0;

  bool valid() const { return error.empty(); }
  // "host:port", IPv6 bracketed.
  std::string endpoint() const;
  // Parses metadata_json; an empty object if it somehow does not parse.
  nlohmann::json metadata() const;
  // Fields that reach rendered output (revisions and lease do not).
  bool same_rendering(const Instance& other) const {
    return error.empty() == other.error.empty() && address == other.address && port == other.port &&
           metadata_json == other.metadata_json;
  }
};

struct ParsedValue {
  enum class Kind {
    kInstance,      // usable: address, port, metadata set
    kInvalid,       // kept so it is counted and reported once; instance.error says why
    kDeleteMarker,  // etcd endpoints {"Op":1,…}: that package's way of saying "removed"; instance.error says so
  };
  Kind kind = Kind::kInvalid;
  Instance instance;  // id always set; structured fields only for kInstance
};

// Accepts any JSON object, not only ours:
//   address: "address" | "host" | "ip" | "Address", else "Addr" (etcd endpoints); may carry ":port".
//   port:    "port" | "Port", a number or a numeric string; else the port inside the address.
//   metadata: the "metadata" | "Metadata" object; other top-level fields are ignored. Non-object
//             metadata (a string, a list) is ignored rather than making the instance unusable.
// Oversized, non-JSON, non-object, missing/odd address or port -> kInvalid. Never throws.
// The address must be a hostname or IP literal ([A-Za-z0-9._:%-]): it is pasted into proxy configs,
// and a value like "x; include /etc/passwd" must not get there.
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

}  // namespace sidecar::core
