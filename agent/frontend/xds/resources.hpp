// Owns: how one xDS resource name maps to a catalog service, and the Envoy v3 resources built for it: the
//       Listener (api_listener with an inline route to the cluster), the Cluster (EDS over ADS, round robin)
//       and the ClusterLoadAssignment (endpoints grouped by locality).
// Thread: pure functions; called on the io_context thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/core/instance.hpp"
#include "envoy/wkt_lite.pb.h"

namespace sidecar::frontend::xds {

// "order-service" or "order-service:grpc" (the instances' named port "grpc" instead of their port).
struct ResourceName {
  std::string service;
  std::string port;  // empty: the instance's port
};
// nullopt when the name cannot be a service (bad characters, an empty or bad port name): such a resource
// does not exist, and no watch is started for it.
std::optional<ResourceName> parse_resource_name(std::string_view name);

struct EndpointOptions {
  // `xds: {select: {zone: local}}`: endpoints in `local_zone` get priority 0 and the rest priority 1, so a
  // client fails over to other zones only when the local one has nothing healthy. Empty: one priority.
  std::string local_zone;
};

wkt::Any build_listener(const std::string& name);
wkt::Any build_cluster(const std::string& name);
// `instances`: the service's valid instances (CatalogService::set().sorted()). Instances without the named
// port, in maintenance, or whose address is not an IP literal (an xDS client does not resolve names) are
// left out. Passing and warning instances are HEALTHY, draining ones DRAINING.
wkt::Any build_endpoints(const std::string& name, const ResourceName& parsed,
                         const std::vector<const core::Instance*>& instances, const EndpointOptions& options);

}  // namespace sidecar::frontend::xds
