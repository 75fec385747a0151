#include "agent/core/manifest/address.hpp"

#include <arpa/inet.h>

#include <charconv>

#include "agent/core/manifest.hpp"
#include "agent/core/manifest/text.hpp"

namespace sidecar::core::manifest {

std::optional<int> parse_port_number(std::string_view text) {
  if (text.empty() || text.size() > 5) return std::nullopt;
  int port = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
  if (ec != std::errc() || end != text.data() + text.size() || port < 1 || port > 65535) return std::nullopt;
  return port;
}

// "host:port", "http://host:port", "https://[::1]:2379/" -> "<scheme>://<host>:<port>".
Endpoint normalise_endpoint(std::string_view text) {
  std::string scheme = "http";
  std::string_view rest = text;
  if (const std::size_t at = text.find("://"); at != std::string_view::npos) {
    scheme.clear();
    for (const char c : text.substr(0, at)) scheme += lower(c);
    if (scheme != "http" && scheme != "https") {
      return {"", "unsupported scheme '" + std::string(text.substr(0, at)) + "' in endpoint '" + std::string(text) +
                      "' (use http:// or https://)"};
    }
    rest = text.substr(at + 3);
  }
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  const auto bad = [&](const std::string& why) {
    return Endpoint{"", "invalid endpoint '" + std::string(text) + "': " + why + " (expected http(s)://host:port)"};
  };
  if (rest.find_first_of("/?#") != std::string_view::npos) return bad("paths are not allowed");
  if (rest.find('@') != std::string_view::npos) return bad("credentials in the URL are not supported");
  if (has_space(rest)) return bad("contains whitespace");

  std::string_view host;
  std::string_view port;
  if (!rest.empty() && rest.front() == '[') {
    const std::size_t close = rest.find(']');
    if (close == std::string_view::npos) return bad("unterminated '[' in IPv6 address");
    host = rest.substr(0, close + 1);
    const std::string_view after = rest.substr(close + 1);
    if (after.empty()) return bad("missing port");
    if (after.front() != ':') return bad("unexpected text after ']'");
    port = after.substr(1);
    if (host.size() == 2) return bad("missing host");
  } else {
    const std::size_t colon = rest.rfind(':');
    if (colon == std::string_view::npos) return bad("missing port");
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
    if (host.empty()) return bad("missing host");
    if (host.find(':') != std::string_view::npos) return bad("IPv6 addresses must be written in brackets");
  }
  if (!parse_port_number(port)) return bad("port must be a number between 1 and 65535");
  return {scheme + "://" + std::string(host) + ":" + std::string(port), ""};
}

// "host:port" or "[v6]:port". `default_port` > 0 makes the port optional.
HostPort split_host_port(std::string_view text, int default_port) {
  if (text.empty()) return {"", 0, "missing host"};
  if (has_space(text)) return {"", 0, "contains whitespace"};
  std::string_view host;
  std::optional<std::string_view> port;
  if (text.front() == '[') {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos) return {"", 0, "unterminated '[' in IPv6 address"};
    host = text.substr(1, close - 1);
    const std::string_view after = text.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return {"", 0, "unexpected text after ']'"};
      port = after.substr(1);
    }
  } else {
    const std::size_t colon = text.rfind(':');
    if (colon != std::string_view::npos) {
      host = text.substr(0, colon);
      port = text.substr(colon + 1);
      if (host.find(':') != std::string_view::npos) return {"", 0, "IPv6 addresses must be written in brackets"};
    } else {
      host = text;
    }
  }
  if (host.empty()) return {"", 0, "missing host"};
  if (!port) {
    if (default_port > 0) return {std::string(host), default_port, ""};
    return {"", 0, "missing port"};
  }
  const std::optional<int> number = parse_port_number(*port);
  if (!number) return {"", 0, "port must be a number between 1 and 65535"};
  return {std::string(host), *number, ""};
}

HttpUrl parse_http_url(std::string_view text) {
  const auto bad = [&](const std::string& why) {
    HttpUrl url;
    url.error = "invalid URL '" + std::string(text) + "': " + why + " (expected http://host[:port]/path)";
    return url;
  };
  const std::size_t at = text.find("://");
  if (at == std::string_view::npos) return bad("missing http://");
  std::string scheme;
  for (const char c : text.substr(0, at)) scheme += lower(c);
  if (scheme == "https") return bad("https is not supported by checks yet");
  if (scheme != "http") return bad("unsupported scheme '" + std::string(text.substr(0, at)) + "'");
  std::string_view rest = text.substr(at + 3);
  if (has_space(rest)) return bad("contains whitespace");
  if (const std::size_t hash = rest.find('#'); hash != std::string_view::npos) rest = rest.substr(0, hash);
  const std::size_t path_at = rest.find_first_of("/?");
  const std::string_view authority = rest.substr(0, path_at);
  if (authority.find('@') != std::string_view::npos) return bad("credentials in the URL are not supported");
  HostPort hp = split_host_port(authority, 80);
  if (!hp.error.empty()) return bad(hp.error);
  HttpUrl url;
  url.host = std::move(hp.host);
  url.port = hp.port;
  if (path_at != std::string_view::npos) {
    url.path = std::string(rest.substr(path_at));
    if (url.path.front() == '?') url.path.insert(url.path.begin(), '/');
  }
  return url;
}

}  // namespace sidecar::core::manifest

namespace sidecar::core {

ListenAddress parse_listen_address(std::string_view text) {
  const auto bad = [&](const std::string& why) {
    return ListenAddress{"", 0, "invalid listen address '" + std::string(text) + "': " + why +
                                    " (expected ip:port, e.g. 127.0.0.1:9464 or [::1]:9464)"};
  };
  std::string host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos) return bad("unterminated '[' in IPv6 address");
    host = std::string(text.substr(1, close - 1));
    const std::string_view after = text.substr(close + 1);
    if (after.empty() || after.front() != ':') return bad("missing port");
    port = after.substr(1);
    in6_addr v6{};
    if (::inet_pton(AF_INET6, host.c_str(), &v6) != 1) return bad("'" + host + "' is not an IPv6 address");
  } else {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad("missing port");
    host = std::string(text.substr(0, colon));
    port = text.substr(colon + 1);
    if (host.empty()) return bad("missing host (use 0.0.0.0 to listen on every interface)");
    if (host.find(':') != std::string::npos) return bad("IPv6 addresses must be written in brackets");
    // An IP literal only: resolving a name at start would make the bind depend on DNS.
    in_addr v4{};
    if (::inet_pton(AF_INET, host.c_str(), &v4) != 1) return bad("'" + host + "' is not an IPv4 address");
  }
  unsigned number = 0;
  const auto [stop, ec] = std::from_chars(port.data(), port.data() + port.size(), number);
  if (port.empty() || ec != std::errc() || stop != port.data() + port.size() || number > 65535) {
    return bad("port must be a number between 0 and 65535");
  }
  return ListenAddress{std::move(host), static_cast<uint16_t>(number), ""};
}

}  // namespace sidecar::core
