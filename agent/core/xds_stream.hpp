// Owns: the state-of-the-world xDS protocol of one ADS stream, per resource type: the names the client
//       subscribed, what was last sent (version, nonce, resource versions), what it accepted, and whether a
//       response is due.
// Thread: pure (no I/O, no clock); owned by the stream's coroutine.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace sidecar::core::xds {

// The route configuration is sent inline in the Listener, so there is no RouteConfiguration type here.
enum class ResourceType : unsigned char { kListener, kCluster, kEndpoints };
inline constexpr size_t kResourceTypes = 3;
inline constexpr std::array<ResourceType, kResourceTypes> kAllResourceTypes = {
    ResourceType::kListener, ResourceType::kCluster, ResourceType::kEndpoints};

// "type.googleapis.com/envoy.config.listener.v3.Listener" and so on.
std::string_view type_url(ResourceType type);
std::optional<ResourceType> resource_type_of(std::string_view type_url);
// "listener", "cluster", "endpoints": metric labels and log lines.
std::string_view to_string(ResourceType type);

// What the resource cache knows of one name.
struct ResourceState {
  enum class Kind { kPending, kAbsent, kPresent };
  Kind kind = Kind::kPending;
  uint64_t version = 0;  // kPresent: changes whenever the resource's bytes change
};

struct Request {
  ResourceType type = ResourceType::kListener;
  std::string version_info;
  std::string response_nonce;
  std::vector<std::string> names;
  bool nack = false;   // error_detail was set
  std::string error;   // its message
};

struct RequestResult {
  enum class Kind {
    kInitial,  // no nonce: the first request of this type on this stream (or a client starting over)
    kAck,      // the latest response accepted
    kNack,     // the latest response rejected: the client keeps what it accepted before
    kStale,    // answers an older response: ignored, the client sends the current names with its next ACK
  };
  Kind kind = Kind::kInitial;
  std::vector<std::string> subscribed;    // names wanted now that were not before
  std::vector<std::string> unsubscribed;  // names no longer wanted
  bool first_nack = false;                // kNack of a response not NACKed before
};

struct Response {
  ResourceType type = ResourceType::kListener;
  std::string version_info;
  std::string nonce;
  std::vector<std::string> names;  // the present resources to send, in name order
};

class XdsStream {
 public:
  // `stream_id` makes version strings unique across streams (and reconnects) of one server.
  explicit XdsStream(uint64_t stream_id) : stream_id_(stream_id) {}

  RequestResult on_request(const Request& request);

  using Lookup = std::function<ResourceState(const std::string& name)>;
  // The response to send for `type` now, or nullopt: not requested yet, a name is still pending (its first
  // lookup has not finished: absent and present are not known yet), or nothing differs from the last one
  // and no request asks for an answer. Sending is recorded: call it only when the response goes out.
  std::optional<Response> next_response(ResourceType type, const Lookup& lookup);

  const std::set<std::string>& names(ResourceType type) const { return at(type).names; }
  // The version the client last ACKed; empty before the first ACK.
  const std::string& accepted_version(ResourceType type) const { return at(type).accepted_version; }
  // Every name subscribed on any type, each once.
  std::set<std::string> all_names() const;

 private:
  struct TypeState {
    bool requested = false;
    bool due = false;  // a request (first, or new names) wants an answer even if nothing changed
    std::set<std::string> names;
    std::map<std::string, uint64_t, std::less<>> sent;  // present resources last sent -> their version
    uint64_t responses = 0;
    std::string last_nonce;
    std::string last_version;
    std::string accepted_version;
    std::string nacked_nonce;
  };
  TypeState& at(ResourceType type) { return types_[static_cast<size_t>(type)]; }
  const TypeState& at(ResourceType type) const { return types_[static_cast<size_t>(type)]; }

  uint64_t stream_id_;
  uint64_t nonces_ = 0;
  std::array<TypeState, kResourceTypes> types_{};
};

}  // namespace sidecar::core::xds
