#include "agent/core/backoff.hpp"

#include <algorithm>
#include <climits>
#include <cmath>

namespace sidecar::core {
namespace {

// Far past any cap (2^64 x initial); bounding the exponent keeps pow() finite however long an outage lasts.
constexpr int kMaxExponent = 64;

}  // namespace

std::chrono::milliseconds Backoff::next(double random01) {
  const double base =
      static_cast<double>(policy_.initial.count()) * std::pow(policy_.multiplier, std::min(attempts_, kMaxExponent));
  const double capped = std::min(base, static_cast<double>(policy_.max.count()));
  // Counted even once capped: callers use attempts() == 0 to log only the first failure of a streak.
  if (attempts_ < INT_MAX) ++attempts_;
  const double factor = 1.0 + policy_.jitter * (2.0 * std::clamp(random01, 0.0, 1.0) - 1.0);
  return std::chrono::milliseconds(std::max<long long>(1, std::llround(capped * factor)));
}

}  // namespace sidecar::core
