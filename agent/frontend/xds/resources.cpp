#include "agent/frontend/xds/resources.hpp"

#include <arpa/inet.h>

#include <map>
#include <utility>

#include "agent/core/manifest/text.hpp"
#include "agent/core/xds_stream.hpp"
#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/endpoint/v3/endpoint.pb.h"
#include "envoy/config/listener/v3/listener.pb.h"
#include "envoy/extensions/filters/http/router/v3/router.pb.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb.h"

namespace sidecar::frontend::xds {

namespace {

namespace core_v3 = envoy::config::core::v3;
namespace endpoint_v3 = envoy::config::endpoint::v3;
namespace hcm_v3 = envoy::extensions::filters::network::http_connection_manager::v3;
using core::xds::ResourceType;

constexpr std::string_view kHcmUrl =
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
constexpr std::string_view kRouterUrl = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";

template <class Message>
wkt::Any pack(std::string_view url, const Message& message) {
  wkt::Any any;
  any.set_type_url(std::string(url));
  message.SerializeToString(any.mutable_value());
  return any;
}

bool ip_literal(const std::string& address) {
  unsigned char buf[16];
  return ::inet_pton(AF_INET, address.c_str(), buf) == 1 || ::inet_pton(AF_INET6, address.c_str(), buf) == 1;
}

}  // namespace

std::optional<ResourceName> parse_resource_name(std::string_view name) {
  ResourceName out;
  const size_t colon = name.find(':');
  out.service = std::string(name.substr(0, colon));
  if (colon != std::string_view::npos) {
    out.port = std::string(name.substr(colon + 1));
    if (!core::valid_port_name(out.port)) return std::nullopt;
  }
  if (core::manifest::identifier_problem(out.service)) return std::nullopt;
  return out;
}

// What a proxyless gRPC client asks for first. gRPC (1.51) requires an HttpConnectionManager api_listener
// whose last HTTP filter is the router; the route configuration is inline, so no RDS round trip follows.
wkt::Any build_listener(const std::string& name) {
  hcm_v3::HttpConnectionManager hcm;
  hcm.set_stat_prefix(name);
  auto* route_config = hcm.mutable_route_config();
  route_config->set_name(name);
  auto* vhost = route_config->add_virtual_hosts();
  vhost->set_name(name);
  vhost->add_domains("*");
  auto* route = vhost->add_routes();
  route->mutable_match()->set_prefix("/");
  route->mutable_route()->set_cluster(name);
  auto* router = hcm.add_http_filters();
  router->set_name("envoy.filters.http.router");
  *router->mutable_typed_config() = pack(kRouterUrl, envoy::extensions::filters::http::router::v3::Router());

  envoy::config::listener::v3::Listener listener;
  listener.set_name(name);
  *listener.mutable_api_listener()->mutable_api_listener() = pack(kHcmUrl, hcm);
  return pack(core::xds::type_url(ResourceType::kListener), listener);
}

wkt::Any build_cluster(const std::string& name) {
  envoy::config::cluster::v3::Cluster cluster;
  cluster.set_name(name);
  cluster.set_type(envoy::config::cluster::v3::Cluster::EDS);
  auto* eds = cluster.mutable_eds_cluster_config();
  eds->mutable_eds_config()->mutable_ads();
  eds->mutable_eds_config()->set_resource_api_version(core_v3::V3);
  eds->set_service_name(name);
  cluster.set_lb_policy(envoy::config::cluster::v3::Cluster::ROUND_ROBIN);
  return pack(core::xds::type_url(ResourceType::kCluster), cluster);
}

wkt::Any build_endpoints(const std::string& name, const ResourceName& parsed,
                         const std::vector<const core::Instance*>& instances, const EndpointOptions& options) {
  // (region, zone) -> its endpoints, in instance id order: the same set always gives the same bytes.
  std::map<std::pair<std::string, std::string>, endpoint_v3::LocalityLbEndpoints> localities;
  for (const core::Instance* inst : instances) {
    if (!inst->valid() || inst->state == core::InstanceState::kMaintenance) continue;
    const int port = parsed.port.empty() ? inst->port : inst->port_named(parsed.port);
    if (port <= 0 || !ip_literal(inst->address)) continue;
    auto& group = localities[{inst->region(), inst->zone()}];
    auto* lb = group.add_lb_endpoints();
    auto* socket = lb->mutable_endpoint()->mutable_address()->mutable_socket_address();
    socket->set_address(inst->address);
    socket->set_port_value(static_cast<uint32_t>(port));
    lb->set_health_status(inst->state == core::InstanceState::kDraining ? core_v3::DRAINING : core_v3::HEALTHY);
    lb->mutable_load_balancing_weight()->set_value(inst->weight);
    group.mutable_load_balancing_weight()->set_value(group.load_balancing_weight().value() + inst->weight);
  }
  // Priorities must be contiguous from 0: the local zone is 0 only when it has endpoints.
  bool local_present = false;
  for (const auto& [key, group] : localities) local_present |= !options.local_zone.empty() && key.second == options.local_zone;

  endpoint_v3::ClusterLoadAssignment cla;
  cla.set_cluster_name(name);
  for (auto& [key, group] : localities) {
    group.mutable_locality()->set_region(key.first);
    group.mutable_locality()->set_zone(key.second);
    if (local_present && key.second != options.local_zone) group.set_priority(1);
    *cla.add_endpoints() = std::move(group);
  }
  return pack(core::xds::type_url(ResourceType::kEndpoints), cla);
}

}  // namespace sidecar::frontend::xds
