#include "agent/core/coalescer.hpp"

#include <algorithm>

namespace sidecar::core {

Coalescer::Coalescer(Duration min, Duration max)
    : min_(std::max(min, Duration::zero())),
      max_(std::max(max, Duration::zero())),
      // Debt the cap (max) keeps the budget from collecting is forgiven, but never the stream allowance:
      // a stream that used it must pay it back before it may use it again.
      budget_(max_ + kStreamAllowance * kCostFactor) {
  min_ = std::min(min_, max_);
}

Coalescer::Coalescer(Duration min, Duration max, Duration holdoff) : Coalescer(min, max) {
  fixed_holdoff_ = std::clamp(holdoff, Duration::zero(), max_);
}

void Coalescer::on_change(TimePoint now, std::size_t changes) {
  if (!first_unflushed_) first_unflushed_ = now;
  last_change_ = std::max(last_change_, now);
  pending_changes_ += std::max<std::size_t>(changes, 1);
}

void Coalescer::on_flushed(TimePoint now) {
  first_unflushed_.reset();
  pending_changes_ = 0;
  last_flush_ = now;
  cycle_spent_ = Duration::zero();
}

void Coalescer::on_cost(Duration spent) {
  if (!last_flush_) return;
  // Parts of one write (a check_command after it) end one after the other from the capture. A day bounds
  // what one part may add, so that summing parts cannot overflow the clock (the budget clamps likewise).
  spent = std::clamp(spent, Duration::zero(), Duration{std::chrono::hours(24)});
  cycle_spent_ += spent;
  budget_.charge(*last_flush_ + cycle_spent_, spent);
}

void Coalescer::on_command_cost(TimePoint ended, Duration spent) { budget_.charge(ended, spent); }

void Coalescer::clear_pending() {
  first_unflushed_.reset();
  pending_changes_ = 0;
}

Coalescer::TimePoint Coalescer::spaced_at() const {
  if (fixed_holdoff_) return last_flush_ ? *last_flush_ + *fixed_holdoff_ : TimePoint::min();
  // One change pending: waiting would merge it with nothing, so it may draw on the stream allowance.
  if (pending_changes_ <= 1) return budget_.next_start(kStreamAllowance);
  // A burst: on pace, or once it has settled, a little ahead of it.
  return std::min(budget_.next_start(Duration::zero()),
                  std::max(last_change_ + kSettle, budget_.next_start(kSettledAllowance)));
}

std::optional<Coalescer::TimePoint> Coalescer::due() const {
  if (!first_unflushed_) return std::nullopt;
  const TimePoint at = std::max(last_change_ + min_, spaced_at());
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
