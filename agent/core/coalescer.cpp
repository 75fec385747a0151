#include "agent/core/coalescer.hpp"

#include <algorithm>

namespace sidecar::core {

namespace {
constexpr Coalescer::Duration kMaxDefaultHoldoff = std::chrono::milliseconds(100);
}

Coalescer::Duration Coalescer::default_holdoff(Duration max) {
  if (max <= Duration::zero()) return Duration::zero();
  return std::min(max / 10, kMaxDefaultHoldoff);
}

Coalescer::Coalescer(Duration min, Duration max) : Coalescer(min, max, default_holdoff(max)) {}

Coalescer::Coalescer(Duration min, Duration max, Duration holdoff)
    : min_(std::max(min, Duration::zero())),
      max_(std::max(max, Duration::zero())),
      holdoff_(std::clamp(holdoff, Duration::zero(), std::max(max, Duration::zero()))) {
  min_ = std::min(min_, max_);
}

void Coalescer::on_change(TimePoint now) {
  if (!first_unflushed_) first_unflushed_ = now;
  last_change_ = std::max(last_change_, now);
}

void Coalescer::on_flushed(TimePoint now) {
  first_unflushed_.reset();
  last_flush_ = now;
}

void Coalescer::clear_pending() { first_unflushed_.reset(); }

std::optional<Coalescer::TimePoint> Coalescer::due() const {
  if (!first_unflushed_) return std::nullopt;
  TimePoint at = last_change_ + min_;
  if (last_flush_) at = std::max(at, *last_flush_ + holdoff_);
  return std::min(at, *first_unflushed_ + max_);
}

bool Coalescer::should_flush(TimePoint now) const {
  auto when = due();
  return when && now >= *when;
}

}  // namespace sidecar::core
