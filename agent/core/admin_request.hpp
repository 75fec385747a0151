// Owns: the parts of an admin request the write routes need: query parameters, the bearer token check, and
//       naming a service by id (or <name>/<id>) with the answers for an unknown or ambiguous one.
// Thread: pure.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace sidecar::core {

// A registered service as the write routes name it.
struct ServiceRef {
  std::string name;
  std::string id;
  bool has_ttl = false;  // it has a ttl check: the app may report for it
};

// The value of `name` in the target's query ("/v1/maintenance?service=a&reason=disk%20swap"),
// percent-decoded ('+' is a space); nullopt when absent.
std::optional<std::string> query_param(std::string_view target, std::string_view name);

// True iff `authorization` is "Bearer <token>" with exactly `token`. The comparison takes the same time
// whatever the bytes are, so a caller cannot find the token a byte at a time.
bool bearer_matches(std::string_view authorization, std::string_view token);

// `ref` is "<id>" or "<name>/<id>". Found: `index`. Not: `status` 404 (unknown, the body lists the known
// ids) or 409 (an id several services share; the body lists "<name>/<id>" for each), `body` the JSON.
struct ServiceLookup {
  std::optional<size_t> index;
  int status = 0;
  nlohmann::json body;
};
ServiceLookup find_service(const std::vector<ServiceRef>& services, std::string_view ref);

// How a service is named in answers and lists: its id, or "<name>/<id>" when another service has that id.
std::string display_ref(const std::vector<ServiceRef>& services, size_t index);

}  // namespace sidecar::core
