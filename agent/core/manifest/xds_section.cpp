#include <arpa/inet.h>

#include "agent/core/manifest/sections.hpp"
#include "agent/core/selection.hpp"

namespace sidecar::core::manifest {

namespace {

constexpr std::string_view kXdsKeys[] = {"listen", "tls", "select"};
constexpr std::string_view kTlsKeys[] = {"cert", "key", "ca"};
constexpr std::string_view kSelectKeys[] = {"zone"};

bool loopback(const std::string& host) {
  in_addr v4{};
  if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  return ::inet_pton(AF_INET6, host.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

void read_tls(Reader& r, const Entry& section, XdsSpec& xds) {
  const std::string path = "xds.tls";
  const std::optional<MapView> map = r.open_map(section.value, path, kTlsKeys);
  if (!map) return;
  const auto file = [&](std::string_view key, std::string& out) {
    if (const Entry* e = map->get(key)) {
      if (auto v = r.text(*e, join_path(path, key), Need::kNonEmpty, "a file path")) out = std::move(*v);
    }
  };
  file("cert", xds.tls_cert);
  file("key", xds.tls_key);
  file("ca", xds.tls_ca);
  if (xds.tls_cert.empty() != xds.tls_key.empty()) {
    r.error(section.value, path, "cert and key go together (the server's certificate and its private key)");
  } else if (xds.tls_cert.empty() && !xds.tls_ca.empty()) {
    r.error(section.value, path, "ca (clients must present a certificate it signed) needs cert and key too");
  }
}

void read_select(Reader& r, const Entry& section, XdsSpec& xds) {
  const std::string path = "xds.select";
  const std::optional<MapView> map = r.open_map(section.value, path, kSelectKeys);
  if (!map) return;
  if (const Entry* e = map->get("zone")) {
    const std::string field = join_path(path, "zone");
    if (auto v = r.text(*e, field, Need::kNonEmpty, "\"local\"")) {
      if (*v != kLocalZone) {
        r.error(e->value, field, "only \"local\" is supported (the agent's zone first, the others as failover), got '" +
                                     *v + "'");
      } else {
        xds.local_zone_first = true;
      }
    }
  }
}

}  // namespace

// Plaintext is for loopback only: an ADS listener tells every client where every instance is, so one on a
// routable address without TLS is refused rather than warned about.
void read_xds(Reader& r, const Entry& section, XdsSpec& xds) {
  const std::string path = "xds";
  const std::optional<MapView> map = r.open_map(section.value, path, kXdsKeys);
  if (!map) return;
  xds.where = r.location(section.value);
  const Entry* listen = r.require(*map, "listen", path);
  if (listen != nullptr) {
    const std::string field = join_path(path, "listen");
    if (auto value = r.text(*listen, field, Need::kNonEmpty, "an address")) {
      ListenAddress parsed = parse_listen_address(*value);
      if (!parsed.error.empty()) {
        r.error(listen->value, field, parsed.error);
      } else {
        xds.enabled = true;
        xds.host = std::move(parsed.host);
        xds.port = parsed.port;
      }
    }
  }
  if (const Entry* e = map->get("tls")) read_tls(r, *e, xds);
  if (const Entry* e = map->get("select")) read_select(r, *e, xds);
  if (xds.enabled && xds.tls_cert.empty() && !loopback(xds.host)) {
    r.error(listen->value, join_path(path, "listen"),
            xds.host + " is not a loopback address: plaintext xDS is only served on loopback; set xds.tls "
                       "{cert, key} (and ca for mTLS), or listen on 127.0.0.1");
  }
}

}  // namespace sidecar::core::manifest
