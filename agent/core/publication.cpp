#include "agent/core/publication.hpp"

namespace sidecar::core {

bool Publication::published(size_t index) const {
  if (index >= keys_.size()) return false;
  return keys_[index].publishable() && !drained_ && !shutting_down_;
}

InstanceState Publication::state(size_t index) const {
  if (index >= keys_.size()) return InstanceState::kPassing;
  const Key& k = keys_[index];
  if (k.maintenance) return InstanceState::kMaintenance;
  return k.health == HealthStatus::kWarning ? InstanceState::kWarning : InstanceState::kPassing;
}

size_t Publication::healthy_count() const {
  size_t n = 0;
  for (const Key& k : keys_) n += k.publishable() ? 1 : 0;
  return n;
}

std::vector<bool> Publication::snapshot() const {
  std::vector<bool> out(keys_.size());
  for (size_t i = 0; i < keys_.size(); ++i) out[i] = published(i);
  return out;
}

std::vector<size_t> Publication::changed_since(const std::vector<bool>& before) const {
  std::vector<size_t> changed;
  for (size_t i = 0; i < keys_.size(); ++i) {
    const bool was = i < before.size() && before[i];
    if (was != published(i)) changed.push_back(i);
  }
  return changed;
}

bool Publication::add(size_t index, bool healthy, bool maintenance) {
  if (index >= keys_.size()) keys_.resize(index + 1);
  keys_[index] = Key{healthy ? HealthStatus::kPassing : HealthStatus::kCritical, maintenance, false};
  return published(index);
}

bool Publication::remove(size_t index) {
  if (index >= keys_.size()) return false;
  const bool was = published(index);
  keys_[index] = Key{};
  return was;
}

std::vector<size_t> Publication::set_healthy(size_t index, bool healthy) {
  if (!set_health(index, healthy ? HealthStatus::kPassing : HealthStatus::kCritical).published) return {};
  return {index};
}

Publication::KeyChange Publication::set_health(size_t index, HealthStatus health) {
  if (index >= keys_.size() || keys_[index].removed) return {};
  // Only this key can change: no need to compare every key as the agent-wide inputs do.
  const bool was = published(index);
  const InstanceState was_state = state(index);
  keys_[index].health = health;
  return {published(index) != was, state(index) != was_state};
}

Publication::KeyChange Publication::set_maintenance(size_t index, bool maintenance) {
  if (index >= keys_.size() || keys_[index].removed) return {};
  const bool was = published(index);
  const InstanceState was_state = state(index);
  keys_[index].maintenance = maintenance;
  return {published(index) != was, state(index) != was_state};
}

Publication::DrainResult Publication::set_drained(bool drained) {
  if (shutting_down_) return {DrainOutcome::kShuttingDown, {}};
  if (drained_ == drained) return {DrainOutcome::kAlready, {}};
  const auto before = snapshot();
  drained_ = drained;
  return {DrainOutcome::kApplied, changed_since(before)};
}

std::vector<size_t> Publication::begin_shutdown() {
  const auto before = snapshot();
  shutting_down_ = true;
  return changed_since(before);
}

}  // namespace sidecar::core
