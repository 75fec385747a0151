#include "agent/core/watch_retry.hpp"

namespace sidecar::core {

WatchRetry::WatchRetry(WatchRetryPolicy policy)
    : policy_(policy), failed_backoff_(policy.failed), canceled_backoff_(policy.canceled) {}

void WatchRetry::on_started(TimePoint now) {
  up_ = true;
  session_healthy_ = false;
  started_at_ = now;
}

bool WatchRetry::confirm() {
  session_healthy_ = true;
  failed_backoff_.reset();
  canceled_backoff_.reset();
  const bool recovered = failing_;
  failing_ = false;
  return recovered;
}

bool WatchRetry::on_delivered(TimePoint) {
  if (!up_ || session_healthy_) return false;
  return confirm();
}

bool WatchRetry::on_tick(TimePoint now) {
  if (!up_ || session_healthy_ || now - started_at_ < policy_.healthy_after) return false;
  return confirm();
}

std::optional<WatchRetry::TimePoint> WatchRetry::recovery_due() const {
  if (!up_ || session_healthy_ || !failing_) return std::nullopt;
  return started_at_ + policy_.healthy_after;
}

WatchRetry::Retry WatchRetry::on_ended(End end, TimePoint now, double random01) {
  // Healthy by having stayed up, even if nobody ticked: the backoff starts over and this is a new outage.
  if (up_ && !session_healthy_ && now - started_at_ >= policy_.healthy_after) confirm();
  if (up_ && session_healthy_) failing_ = false;
  up_ = false;
  session_healthy_ = false;
  Retry retry;
  retry.log = !failing_;
  failing_ = true;
  retry.delay = (end == End::kCanceled ? canceled_backoff_ : failed_backoff_).next(random01);
  return retry;
}

}  // namespace sidecar::core
