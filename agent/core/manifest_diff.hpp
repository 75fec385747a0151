// Owns: the comparison of the running manifest with a reloaded one (SIGHUP): which services, checks,
//       discoveries and config mirrors to add, remove, rewrite or leave alone, and which settings need a restart.
// Thread: pure; no I/O.
#pragma once

#include <cstddef>
#include <set>
#include <string>
#include <vector>

#include "agent/core/manifest.hpp"

namespace sidecar::core {

// A service present in both manifests (same key).
struct KeptService {
  size_t old_index = 0;
  size_t new_index = 0;
  bool value_changed = false;   // the registered value differs (address, port, metadata, value_format)
  bool checks_changed = false;  // its checks or initial_status differ: only its checks restart
};

// A discovery or config mirror present in both manifests with the same spec: it keeps running as is.
struct KeptEntry {
  size_t old_index = 0;
  size_t new_index = 0;
};

struct ManifestDiff {
  std::vector<size_t> services_removed;  // indices into the old manifest
  std::vector<size_t> services_added;    // indices into the new manifest
  std::vector<KeptService> services_kept;
  // A changed discovery or mirror (anything but its position in the file) shows up as removed + added.
  std::vector<size_t> discover_removed;
  std::vector<size_t> discover_added;
  std::vector<KeptEntry> discover_kept;
  std::vector<size_t> config_removed;
  std::vector<size_t> config_added;
  std::vector<KeptEntry> config_kept;
  bool drain_delay_changed = false;

  size_t services_changed() const;
  // Nothing to do at all.
  bool empty() const;
  // "services +1 -1 ~1 =2, discover +0 -1 =1, config +1 -0 =0" for the log line.
  std::string summary() const;
};

// Settings that cannot change in a running agent (the etcd connection, the lease, the admin listener),
// by manifest path ("etcd.endpoints", "lease.ttl", ...), where `next` differs from `running`.
std::vector<std::string> restart_only_changes(const Manifest& running, const Manifest& next);
// Copies those settings from `running` into `next`, so the rest of `next` can be applied live.
void keep_restart_only_settings(const Manifest& running, Manifest& next);

// Services are matched by key (prefix/name/id), discoveries and mirrors by their whole spec (source line
// numbers aside). `old_templates`/`new_templates` are the template texts per discovery (empty strings for
// non-template formats); a changed template replaces the discovery.
ManifestDiff diff_manifests(const Manifest& old_manifest, const Manifest& new_manifest,
                            const std::vector<std::string>& old_templates = {},
                            const std::vector<std::string>& new_templates = {});

// Ids of the manifest's own services called `service` (a discovery with include_self: false skips them).
std::set<std::string> self_ids(const Manifest& manifest, const std::string& service);

bool same_checks(const ServiceSpec& a, const ServiceSpec& b);
bool same_discovery(const DiscoverSpec& a, const DiscoverSpec& b);
bool same_config(const ConfigSpec& a, const ConfigSpec& b);

}  // namespace sidecar::core
