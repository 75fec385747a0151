#include "agent/core/publication.hpp"

namespace sidecar::core {

bool Publication::published(size_t index) const {
  if (index >= keys_.size()) return false;
  const Key& k = keys_[index];
  return k.healthy && !k.removed && !drained_ && !shutting_down_;
}

size_t Publication::healthy_count() const {
  size_t n = 0;
  for (const Key& k : keys_) n += (k.healthy && !k.removed) ? 1 : 0;
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

bool Publication::add(size_t index, bool healthy) {
  if (index >= keys_.size()) keys_.resize(index + 1);
  keys_[index] = Key{healthy, false};
  return published(index);
}

bool Publication::remove(size_t index) {
  if (index >= keys_.size()) return false;
  const bool was = published(index);
  keys_[index] = Key{};
  return was;
}

std::vector<size_t> Publication::set_healthy(size_t index, bool healthy) {
  if (index >= keys_.size() || keys_[index].removed) return {};
  // Only this key can change: no need to compare every key as the agent-wide inputs do.
  const bool was = published(index);
  keys_[index].healthy = healthy;
  if (published(index) == was) return {};
  return {index};
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
