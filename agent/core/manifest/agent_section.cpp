#include "agent/core/manifest/sections.hpp"

namespace sidecar::core::manifest {

namespace {

constexpr std::string_view kLeaseKeys[] = {"ttl"};
constexpr std::string_view kAdminKeys[] = {"listen", "enabled", "token_file"};
constexpr std::string_view kShutdownKeys[] = {"drain_delay"};
constexpr std::string_view kAgentKeys[] = {"zone", "region"};
constexpr Duration kMinLeaseTtl{1000};
constexpr Duration kMaxLeaseTtl{60 * 60 * 1000};

}  // namespace

void read_lease(Reader& r, const Entry& section, Duration& lease_ttl) {
  const std::string path = "lease";
  const std::optional<MapView> map = r.open_map(section.value, path, kLeaseKeys);
  if (!map) return;
  const Entry* e = map->get("ttl");
  if (e == nullptr) return;
  const std::string field = join_path(path, "ttl");
  const std::optional<Duration> ttl = r.duration(*e, field);
  if (!ttl) return;
  if (*ttl < kMinLeaseTtl) {
    r.error(e->value, field, "must be at least 1s, got " + format_duration(*ttl));
  } else if (*ttl > kMaxLeaseTtl) {
    r.error(e->value, field, "must be at most 1h, got " + format_duration(*ttl));
  } else if (ttl->count() % 1000 != 0) {
    r.error(e->value, field,
            "must be a whole number of seconds (etcd lease TTLs have second granularity), got " + e->value.Scalar());
  } else {
    lease_ttl = *ttl;
  }
}

std::optional<ListenAddress> read_listen(Reader& r, const Entry& e, const std::string& field) {
  if (e.value.IsNull()) return ListenAddress{};
  const std::optional<std::string> value = r.text(e, field, Need::kOptional, "an address");
  if (!value) return std::nullopt;
  if (value->empty()) return ListenAddress{};
  ListenAddress listen = parse_listen_address(*value);
  if (!listen.error.empty()) {
    r.error(e.value, field, listen.error);
    return std::nullopt;
  }
  return listen;
}

void read_admin(Reader& r, const Entry& section, AdminSpec& admin) {
  const std::string path = "admin";
  const std::optional<MapView> map = r.open_map(section.value, path, kAdminKeys);
  if (!map) return;
  admin.where = r.location(section.value);
  if (const Entry* e = map->find("listen"); e != nullptr) {
    // `listen: ""` (or `listen:` with nothing) is the short way to switch the endpoint off.
    if (const std::optional<ListenAddress> listen = read_listen(r, *e, join_path(path, "listen"))) {
      if (listen->host.empty()) {
        admin.enabled = false;
      } else {
        admin.host = listen->host;
        admin.port = listen->port;
      }
    }
  }
  if (const Entry* e = map->get("enabled")) {
    if (const auto on = r.boolean(*e, join_path(path, "enabled")); on && !*on) admin.enabled = false;
  }
  if (const Entry* e = map->get("token_file")) {
    if (auto v = r.text(*e, join_path(path, "token_file"), Need::kNonEmpty, "a file path")) admin.token_file = std::move(*v);
  }
}

void read_agent(Reader& r, const Entry& section, AgentSpec& agent) {
  const std::string path = "agent";
  const std::optional<MapView> map = r.open_map(section.value, path, kAgentKeys);
  if (!map) return;
  if (const Entry* e = map->get("zone")) {
    if (auto v = read_locality(r, *e, join_path(path, "zone"))) agent.zone = std::move(*v);
  }
  if (const Entry* e = map->get("region")) {
    if (auto v = read_locality(r, *e, join_path(path, "region"))) agent.region = std::move(*v);
  }
}

void read_shutdown(Reader& r, const Entry& section, Duration& drain_delay) {
  const std::string path = "shutdown";
  const std::optional<MapView> map = r.open_map(section.value, path, kShutdownKeys);
  if (!map) return;
  if (const Entry* e = map->get("drain_delay")) {
    if (auto d = r.duration(*e, join_path(path, "drain_delay"))) drain_delay = *d;
  }
}

}  // namespace sidecar::core::manifest
