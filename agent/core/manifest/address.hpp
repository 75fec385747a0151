// Owns: the address grammars of the manifest: etcd endpoint URLs, host:port of tcp/grpc checks, the http
// check URL (parse_listen_address, used by the daemon too, is public in manifest.hpp).
// Thread: pure functions; any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace sidecar::core::manifest {

// "1".."65535" exactly (no sign, no spaces).
std::optional<int> parse_port_number(std::string_view text);

struct Endpoint {
  std::string url;
  std::string error;
};
// "host:port", "http://host:port", "https://[::1]:2379/" -> "<scheme>://<host>:<port>".
Endpoint normalise_endpoint(std::string_view text);

struct HostPort {
  std::string host;  // IPv6 without brackets
  int port = 0;
  std::string error;
};
// "host:port" or "[v6]:port". `default_port` > 0 makes the port optional.
HostPort split_host_port(std::string_view text, int default_port);

struct HttpUrl {
  std::string host;
  int port = 80;
  std::string path = "/";
  std::string error;
};
// http://host[:port][/path][?query]; the fragment is dropped (never sent).
HttpUrl parse_http_url(std::string_view text);

}  // namespace sidecar::core::manifest
