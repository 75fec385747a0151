#include "agent/frontend/freshness.hpp"

#include "agent/runtime/clock.hpp"

namespace sidecar::frontend {

Freshness freshness(const runtime::CatalogService& service) {
  const auto& stats = service.watch_stats();
  Freshness f;
  if (stats.live || !stats.synced) return f;
  f.stale = true;
  const auto down = runtime::RuntimeClock::now() - stats.down_since;
  f.seconds_since_contact = std::chrono::duration_cast<std::chrono::seconds>(down).count();
  if (f.seconds_since_contact < 0) f.seconds_since_contact = 0;
  return f;
}

bool within_max_stale(const Freshness& f, std::chrono::seconds max_stale) {
  return !f.stale || max_stale.count() == 0 || f.seconds_since_contact <= max_stale.count();
}

}  // namespace sidecar::frontend
