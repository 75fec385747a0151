#include <algorithm>

#include "agent/core/dns_query.hpp"
#include "agent/core/manifest/sections.hpp"
#include "agent/core/manifest/text.hpp"

namespace sidecar::core::manifest {

namespace {

constexpr std::string_view kDnsKeys[] = {"listen", "domain", "ttl", "max_stale"};
// A day: a longer TTL only makes resolvers keep instances that are long gone.
constexpr Duration kMaxTtl{24 * 3600 * 1000};

// TTLs are whole seconds on the wire; a fraction would be silently rounded, so it is an error instead.
std::optional<Duration> whole_seconds(Reader& r, const Entry& e, const std::string& field, Duration max) {
  const auto d = r.duration(e, field);
  if (!d) return std::nullopt;
  if (d->count() % 1000 != 0) {
    r.error(e.value, field, "must be whole seconds, got " + format_duration(*d));
    return std::nullopt;
  }
  if (*d > max) {
    r.error(e.value, field, "must be at most " + format_duration(max) + ", got " + format_duration(*d));
    return std::nullopt;
  }
  return d;
}

}  // namespace

void read_dns(Reader& r, const Entry& section, DnsSpec& dns) {
  const std::string path = "dns";
  const std::optional<MapView> map = r.open_map(section.value, path, kDnsKeys);
  if (!map) return;
  dns.where = r.location(section.value);
  if (const Entry* e = map->find("listen"); e != nullptr) {
    // `listen: ""` (or nothing) keeps the DNS server off, as when the key is not written.
    if (const std::optional<ListenAddress> listen = read_listen(r, *e, join_path(path, "listen"))) {
      dns.enabled = !listen->host.empty();
      dns.host = listen->host;
      dns.port = listen->port;
    }
  }
  if (const Entry* e = map->get("domain")) {
    const std::string field = join_path(path, "domain");
    if (const auto v = r.text(*e, field, Need::kNonEmpty, "a domain name")) {
      const auto labels = dns::domain_labels(*v);
      const bool plain = std::all_of(labels.begin(), labels.end(), [](const std::string& l) { return dns::plain_label(l); });
      if (labels.empty() || !plain || v->find("..") != std::string::npos || v->front() == '.') {
        r.error(e->value, field, "'" + *v + "' is not a domain name (labels of [a-z0-9_-], e.g. sidecar. or sidecar.internal.)");
      } else {
        dns.domain = dns::domain_text(labels);
      }
    }
  }
  if (const Entry* e = map->get("ttl")) {
    if (const auto d = whole_seconds(r, *e, join_path(path, "ttl"), kMaxTtl)) dns.ttl = *d;
  }
  if (const Entry* e = map->get("max_stale")) {
    if (const auto d = whole_seconds(r, *e, join_path(path, "max_stale"), Duration::max())) dns.max_stale = *d;
  }
}

}  // namespace sidecar::core::manifest
