// Owns: which services the catalog watches and for how long: held by subscribers (discover entries and other
//       long-lived consumers), started on demand by lookups, stopped after the idle timeout, bounded in number.
// Thread: pure; the time is passed in. The runtime catalog calls it on the io_context thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sidecar::core {

struct CatalogLimits {
  std::chrono::milliseconds idle_timeout{std::chrono::minutes(10)};
  // Bounds what LOOKUPS can start; subscribers (the manifest's own entries) are always admitted, so a
  // manifest with many discover entries never fails on this bound.
  size_t max_services = 1000;
};

class CatalogPolicy {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  enum class Admit {
    kExisting,  // already watched: share its watch
    kStart,     // start a watch for it now
    kRefused,   // a lookup past max_services: answer with an error, start nothing
  };

  explicit CatalogPolicy(CatalogLimits limits = {}) : limits_(limits) {}
  // A reload may change the limits; services already watched stay (the bound applies to the next start).
  void set_limits(CatalogLimits limits) { limits_ = limits; }
  const CatalogLimits& limits() const { return limits_; }

  // A subscriber holds `service` until unsubscribe(). Never refused.
  Admit subscribe(std::string_view service, TimePoint now);
  // The last holder left: true when the watch should stop now (no lookup read it within the idle timeout);
  // false while holders remain or a recent lookup keeps it until the idle timeout.
  bool unsubscribe(std::string_view service, TimePoint now);
  // A lookup reads `service`: starts it when new and the bound allows, and restarts its idle clock.
  Admit lookup(std::string_view service, TimePoint now);
  // Services without holders that no lookup read for idle_timeout: forgotten here, to be stopped by the
  // caller. In name order.
  std::vector<std::string> expire(TimePoint now);
  // When expire() next has something to do; nullopt when nothing can expire.
  std::optional<TimePoint> next_expiry() const;

  bool watched(std::string_view service) const { return entries_.find(service) != entries_.end(); }
  size_t size() const { return entries_.size(); }
  // Watched with no holder: only lookups keep them.
  size_t on_demand() const;
  size_t holders(std::string_view service) const;
  uint64_t refused_total() const { return refused_total_; }

 private:
  struct Entry {
    size_t holders = 0;
    std::optional<TimePoint> last_lookup;
  };
  bool idle(const Entry& e, TimePoint now) const;

  CatalogLimits limits_;
  std::map<std::string, Entry, std::less<>> entries_;
  uint64_t refused_total_ = 0;
};

}  // namespace sidecar::core
