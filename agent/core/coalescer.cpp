#include "agent/core/coalescer.hpp"

#include <algorithm>

namespace sidecar::core {

Coalescer::Coalescer(Duration min, Duration max)
    : min_(std::max(min, Duration::zero())), max_(std::max(max, Duration::zero())) {
  min_ = std::min(min_, max_);
}

Coalescer::Coalescer(Duration min, Duration max, Duration holdoff) : Coalescer(min, max) {
  fixed_holdoff_ = std::clamp(holdoff, Duration::zero(), max_);
}

Coalescer::Duration Coalescer::holdoff() const {
  if (fixed_holdoff_) return *fixed_holdoff_;
  // Compared before multiplying: a cost near Duration::max() must not overflow into a negative holdoff.
  if (cycle_cost_ >= max_ / kCostFactor) return max_;
  return std::clamp(cycle_cost_ * kCostFactor, Duration::zero(), max_);
}

void Coalescer::on_change(TimePoint now) {
  if (!first_unflushed_) first_unflushed_ = now;
  last_change_ = std::max(last_change_, now);
}

void Coalescer::on_flushed(TimePoint now) {
  first_unflushed_.reset();
  last_flush_ = now;
  cycle_cost_ = Duration::zero();
}

void Coalescer::on_cost(Duration spent) { cycle_cost_ += std::max(spent, Duration::zero()); }

void Coalescer::clear_pending() { first_unflushed_.reset(); }

std::optional<Coalescer::TimePoint> Coalescer::due() const {
  if (!first_unflushed_) return std::nullopt;
  TimePoint at = last_change_ + min_;
  if (last_flush_) at = std::max(at, *last_flush_ + holdoff());
  return std::min(at, *first_unflushed_ + max_);
}

bool Coalescer::should_flush(TimePoint now) const {
  auto when = due();
  return when && now >= *when;
}

void CommandPacer::on_started(TimePoint now) {
  running_ = true;
  last_start_ = now;
}

void CommandPacer::on_finished(TimePoint now) {
  running_ = false;
  last_took_ = std::max(now - last_start_, Duration::zero());
}

std::optional<CommandPacer::TimePoint> CommandPacer::next_start() const {
  if (running_) return std::nullopt;
  return last_start_ + last_took_ * Coalescer::kCostFactor;
}

bool CommandPacer::may_start(TimePoint now) const {
  const auto at = next_start();
  return at && now >= *at;
}

}  // namespace sidecar::core
