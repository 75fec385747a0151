#include "agent/core/write_budget.hpp"

#include <algorithm>

namespace sidecar::core {

namespace {

// A cost beyond this is charged as this: kDutyFactor × Duration::max() would overflow into the past.
constexpr WriteBudget::Duration kLargestCost = std::chrono::hours(24);

}  // namespace

WriteBudget::WriteBudget(Duration forgive) : forgive_(std::clamp(forgive, Duration::zero(), kLargestCost)) {}

void WriteBudget::charge(TimePoint started, Duration spent) {
  spent = std::clamp(spent, Duration::zero(), kLargestCost);
  // Idle time before this write is not banked beyond a full bucket: pace restarts from the write's start.
  paid_until_ = std::max(paid_until_, started) + spent * kDutyFactor;
  paid_until_ = std::min(paid_until_, started + spent + forgive_);
}

WriteBudget::TimePoint WriteBudget::next_start(Duration allowance) const {
  allowance = std::clamp(allowance, Duration::zero(), kLargestCost);
  return paid_until_ - allowance * kDutyFactor;
}

WriteBudget::Duration WriteBudget::ahead(TimePoint now) const {
  return std::max(paid_until_ - now, Duration::zero()) / kDutyFactor;
}

}  // namespace sidecar::core
