#include "agent/core/write_budget.hpp"

#include <algorithm>

namespace sidecar::core {

namespace {

// A cost beyond this is charged as this: kDutyFactor × Duration::max() would overflow into the past.
constexpr WriteBudget::Duration kLargestCost = std::chrono::hours(24);

}  // namespace

WriteBudget::WriteBudget(Duration forgive) : forgive_(std::clamp(forgive, Duration::zero(), kLargestCost)) {}

void WriteBudget::charge(TimePoint ended, Duration spent) {
  spent = std::clamp(spent, Duration::zero(), kLargestCost);
  // Idle time before this write is not banked beyond a full bucket: the pace restarts from its end.
  paid_until_ = std::max(paid_until_, ended) + spent * kDutyFactor;
  paid_until_ = std::min(paid_until_, ended + forgive_);
}

WriteBudget::TimePoint WriteBudget::next_start(Duration allowance) const {
  allowance = std::clamp(allowance, Duration::zero(), kLargestCost);
  return paid_until_ - allowance * kDutyFactor;
}

WriteBudget::Duration WriteBudget::ahead(TimePoint now) const {
  return std::max(paid_until_ - now, Duration::zero()) / kDutyFactor;
}

}  // namespace sidecar::core
