// Owns: the state file format that lets a restarted agent adopt the lease its previous process held.
// Thread: pure; the daemon reads and writes the file.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sidecar::core {

// What a running agent records about its lease, for the next process of the same agent: after a crash,
// kill -9 or a SIGQUIT handover, the successor finds the lease here and, if etcd still holds it, keeps it
// alive instead of granting a new one, so its keys never disappear.
struct LeaseRecord {
  int64_t lease = 0;
  int64_t pid = 0;                     // the process that wrote it, for the log
  std::string manifest;                // absolute path, for the log and for a human reading the file
  std::vector<std::string> endpoints;  // for a human; adoption trusts etcd's LeaseTimeToLive, not this
};

// One line of JSON: {"lease":"694d...","lease_id":7587...,"pid":123,"manifest":"...","endpoints":[...]}
std::string encode_lease_record(const LeaseRecord& record);
// nullopt with `*error` set when the text is not a record (a truncated or foreign file).
std::optional<LeaseRecord> decode_lease_record(std::string_view text, std::string* error);

// "<manifest stem>-<16 hex digits of a hash of the absolute manifest path>.lease": agents with different
// manifests (one per app, etcd-sidecar@.service) share a state directory without sharing a lease.
std::string lease_record_file_name(std::string_view manifest_absolute_path);

}  // namespace sidecar::core
