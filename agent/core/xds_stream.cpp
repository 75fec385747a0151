#include "agent/core/xds_stream.hpp"

#include <algorithm>

namespace sidecar::core::xds {

namespace {

constexpr std::string_view kListenerUrl = "type.googleapis.com/envoy.config.listener.v3.Listener";
constexpr std::string_view kClusterUrl = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
constexpr std::string_view kEndpointsUrl = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";

}  // namespace

std::string_view type_url(ResourceType type) {
  switch (type) {
    case ResourceType::kListener: return kListenerUrl;
    case ResourceType::kCluster: return kClusterUrl;
    case ResourceType::kEndpoints: return kEndpointsUrl;
  }
  return {};
}

std::optional<ResourceType> resource_type_of(std::string_view url) {
  for (ResourceType t : kAllResourceTypes) {
    if (type_url(t) == url) return t;
  }
  return std::nullopt;
}

std::string_view to_string(ResourceType type) {
  switch (type) {
    case ResourceType::kListener: return "listener";
    case ResourceType::kCluster: return "cluster";
    case ResourceType::kEndpoints: return "endpoints";
  }
  return "unknown";
}

RequestResult XdsStream::on_request(const Request& request) {
  TypeState& t = at(request.type);
  RequestResult result;
  if (request.response_nonce.empty()) {
    result.kind = RequestResult::Kind::kInitial;
    t.due = true;
  } else if (request.response_nonce != t.last_nonce) {
    // An answer to an older response: the names in it may be older than what the client has now, so they
    // are not applied either (the protocol's rule for stale nonces).
    result.kind = RequestResult::Kind::kStale;
    return result;
  } else if (request.nack) {
    result.kind = RequestResult::Kind::kNack;
    result.first_nack = t.nacked_nonce != request.response_nonce;
    t.nacked_nonce = request.response_nonce;
  } else {
    result.kind = RequestResult::Kind::kAck;
    t.accepted_version = request.version_info;
  }
  t.requested = true;

  std::set<std::string> wanted(request.names.begin(), request.names.end());
  std::set_difference(wanted.begin(), wanted.end(), t.names.begin(), t.names.end(),
                      std::back_inserter(result.subscribed));
  std::set_difference(t.names.begin(), t.names.end(), wanted.begin(), wanted.end(),
                      std::back_inserter(result.unsubscribed));
  // New names want an answer (an unknown one too: its absence is the answer). Dropped names need none.
  if (!result.subscribed.empty()) t.due = true;
  t.names = std::move(wanted);
  for (const auto& name : result.unsubscribed) t.sent.erase(name);
  return result;
}

std::optional<Response> XdsStream::next_response(ResourceType type, const Lookup& lookup) {
  TypeState& t = at(type);
  if (!t.requested) return std::nullopt;
  std::map<std::string, uint64_t, std::less<>> now;
  for (const auto& name : t.names) {
    const ResourceState state = lookup(name);
    if (state.kind == ResourceState::Kind::kPending) return std::nullopt;
    if (state.kind == ResourceState::Kind::kPresent) now.emplace(name, state.version);
  }
  if (!t.due && now == t.sent) return std::nullopt;

  Response response;
  response.type = type;
  response.version_info = std::to_string(stream_id_) + "." + std::to_string(++t.responses);
  response.nonce = std::to_string(++nonces_);
  for (const auto& [name, version] : now) response.names.push_back(name);
  t.sent = std::move(now);
  t.due = false;
  t.last_nonce = response.nonce;
  t.last_version = response.version_info;
  return response;
}

std::set<std::string> XdsStream::all_names() const {
  std::set<std::string> out;
  for (const auto& t : types_) out.insert(t.names.begin(), t.names.end());
  return out;
}

}  // namespace sidecar::core::xds
