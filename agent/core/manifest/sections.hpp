// Owns: one reader per manifest section, each filling its part of the Manifest from the section's YAML.
// Thread: pure; called by parse_manifest on the caller's thread, with that parse's Reader.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agent/core/manifest.hpp"
#include "agent/core/manifest/reader.hpp"

namespace sidecar::core::manifest {

void read_etcd(Reader& r, const Entry& section, EtcdSpec& etcd);           // etcd_section.cpp
void read_lease(Reader& r, const Entry& section, Duration& ttl);           // agent_section.cpp
void read_admin(Reader& r, const Entry& section, AdminSpec& admin);        // agent_section.cpp
void read_shutdown(Reader& r, const Entry& section, Duration& drain_delay);  // agent_section.cpp
void read_catalog(Reader& r, const Entry& section, CatalogSpec& catalog);  // catalog_section.cpp
void read_http(Reader& r, const Entry& section, HttpSpec& http);              // catalog_section.cpp
// `listen:` of admin and dns: an address; one with an empty host for `""` or nothing (off); nullopt after
// reporting a bad one.                                                       agent_section.cpp
std::optional<ListenAddress> read_listen(Reader& r, const Entry& e, const std::string& field);
void read_dns(Reader& r, const Entry& section, DnsSpec& dns);              // dns_section.cpp
void read_xds(Reader& r, const Entry& section, XdsSpec& xds);              // xds_section.cpp
void read_services(Reader& r, const Entry& section, std::vector<ServiceSpec>& out);  // services_section.cpp
// A map of scalar values (`metadata:` of a service or a selector), stringified.  services_section.cpp
void read_metadata(Reader& r, const Entry& section, const std::string& path, std::map<std::string, std::string>& out);
// `zone:`/`region:` text (services and agent): nullopt after reporting a bad one.     services_section.cpp
std::optional<std::string> read_locality(Reader& r, const Entry& e, const std::string& field);
void read_agent(Reader& r, const Entry& section, AgentSpec& agent);         // agent_section.cpp
// `services[i].checks`                                                       health_section.cpp
void read_checks(Reader& r, const Entry& section, const std::string& path, std::vector<CheckSpec>& out);
void read_discover(Reader& r, const Entry& section, std::vector<DiscoverSpec>& out);  // discover_section.cpp
void read_config(Reader& r, const Entry& section, std::vector<ConfigSpec>& out);      // config_section.cpp

// Each item of the list section `section`, handed to `each(item_entry, "<path>[i]")`; anything but a list is
// reported ("expected a list of <noun>").
template <typename Each>
void read_list(Reader& r, const Entry& section, const std::string& path, std::string_view noun, Each&& each) {
  if (!section.value.IsSequence()) {
    r.error(section.value, path, "expected a list of " + std::string(noun) + ", got " + describe(section.value));
    return;
  }
  for (std::size_t i = 0; i < section.value.size(); ++i) {
    const YAML::Node item = section.value[i];
    each(Entry{"", item, item}, index_path(path, i));
  }
}

// The file a discover or config entry writes and what happens around each write: `output:` (required, one
// writer per file), `mode:`, `on_change:` and `command_timeout:`. The two specs keep their own fields (the
// public structs stay as they are), so this points at them.
struct OutputFields {
  std::string& output;
  unsigned& mode;
  std::string& on_change;
  Duration& command_timeout;
};
void read_output(Reader& r, const MapView& map, const std::string& path, const OutputFields& out);  // output_spec.cpp

}  // namespace sidecar::core::manifest
