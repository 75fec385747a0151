// Owns: the one decision whether each registered key is published, and with which state in its value, from
//       everything that bears on it: its service's health (passing, warning, critical), maintenance, an
//       operator's drain, the withdrawal before a shutdown, and removal by a reload.
// Thread: pure logic; no I/O, no clock. The registrar calls it on the io_context thread.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "agent/core/health.hpp"
#include "agent/core/instance_state.hpp"

namespace sidecar::core {

// A key is published iff it was not removed, the agent is not drained, no shutdown has begun, and its
// service is healthy (passing or warning) or in maintenance: maintenance keeps the key, marked, even while
// its checks fail (a node under repair stays visible with the reason instead of vanishing). Its state is
// maintenance, else warning when the service's health is, else passing; drain and shutdown withdraw the key
// and never change its state. The inputs arrive in any order (a check turning healthy while drained, a drain
// during the shutdown's withdrawal); each call returns the keys whose answer changed, and only those go to
// the registration state machine, so a repeated input is never a second write or delete.
class Publication {
 public:
  // What became of a drain or undrain request: the admin endpoint and the signal handler report it.
  enum class DrainOutcome { kApplied, kAlready, kShuttingDown };
  struct DrainResult {
    DrainOutcome outcome = DrainOutcome::kApplied;
    std::vector<size_t> changed;
  };

  // What one call changed about one key: its publication, its state (its value must be rewritten), or both.
  struct KeyChange {
    bool published = false;
    bool state = false;
    bool any() const { return published || state; }
  };

  // Key `index` (the registration's index, stable across reloads) with its service's health now. A key
  // that comes back after a removal starts afresh. Returns whether it is published.
  bool add(size_t index, bool healthy, bool maintenance = false);
  // The key is gone for good (a reload removed its service): never published again, even by an undrain.
  // True when that withdraws it.
  bool remove(size_t index);

  // healthy: passing; not: critical. The keys whose publication changed (at most `index`).
  std::vector<size_t> set_healthy(size_t index, bool healthy);
  KeyChange set_health(size_t index, HealthStatus health);
  KeyChange set_maintenance(size_t index, bool maintenance);
  DrainResult set_drained(bool drained);
  // Shutdown with a drain delay: everything is withdrawn and stays so; later drains are refused.
  std::vector<size_t> begin_shutdown();

  bool published(size_t index) const;
  bool healthy(size_t index) const { return index < keys_.size() && keys_[index].health != HealthStatus::kCritical; }
  bool maintenance(size_t index) const { return index < keys_.size() && keys_[index].maintenance; }
  // The state its value carries (whether published or not): written as soon as it is published.
  InstanceState state(size_t index) const;
  bool drained() const { return drained_; }
  bool shutting_down() const { return shutting_down_; }
  size_t healthy_count() const;  // keys not removed that an undrain publishes (healthy or in maintenance)
  size_t size() const { return keys_.size(); }

 private:
  struct Key {
    HealthStatus health = HealthStatus::kCritical;
    bool maintenance = false;
    bool removed = true;  // slots past the end and tombstones
    bool publishable() const { return !removed && (maintenance || health != HealthStatus::kCritical); }
  };
  // The keys whose answer differs from `before`, in index order.
  std::vector<size_t> changed_since(const std::vector<bool>& before) const;
  std::vector<bool> snapshot() const;

  std::vector<Key> keys_;
  bool drained_ = false;
  bool shutting_down_ = false;
};

}  // namespace sidecar::core
