#include "agent/core/manifest/sections.hpp"

namespace sidecar::core::manifest {

namespace {

constexpr std::string_view kCatalogKeys[] = {"idle_timeout", "max_services"};
constexpr Duration kMinIdleTimeout{1000};
constexpr long long kMaxServices = 100000;
constexpr std::string_view kHttpKeys[] = {"max_waiters"};
constexpr long long kMaxWaiters = 1000000;

}  // namespace

void read_catalog(Reader& r, const Entry& section, CatalogSpec& catalog) {
  const std::string path = "catalog";
  const std::optional<MapView> map = r.open_map(section.value, path, kCatalogKeys);
  if (!map) return;
  if (const Entry* e = map->get("idle_timeout")) {
    const std::string field = join_path(path, "idle_timeout");
    if (const auto d = r.duration(*e, field)) {
      if (*d < kMinIdleTimeout) {
        r.error(e->value, field, "must be at least 1s, got " + format_duration(*d));
      } else {
        catalog.idle_timeout = *d;
      }
    }
  }
  if (const Entry* e = map->get("max_services")) {
    if (const auto n = r.integer(*e, join_path(path, "max_services"), 1, kMaxServices)) {
      catalog.max_services = static_cast<size_t>(*n);
    }
  }
}

// The HTTP view of the catalog (on the admin endpoint): its one bound lives next to the catalog's.
void read_http(Reader& r, const Entry& section, HttpSpec& http) {
  const std::string path = "http";
  const std::optional<MapView> map = r.open_map(section.value, path, kHttpKeys);
  if (!map) return;
  if (const Entry* e = map->get("max_waiters")) {
    if (const auto n = r.integer(*e, join_path(path, "max_waiters"), 1, kMaxWaiters)) {
      http.max_waiters = static_cast<size_t>(*n);
    }
  }
}

}  // namespace sidecar::core::manifest
