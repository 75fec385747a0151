// Owns: when a watch that ended may start again (backoff), and which of its ups and downs get a log line.
// Thread: pure; the caller passes the time and the random draw, so the decisions are deterministic.
#pragma once

#include <chrono>
#include <optional>

#include "agent/core/backoff.hpp"

namespace sidecar::core {

struct WatchRetryPolicy {
  // The stream failed (etcd down, restarting, unreachable): capped near 1 s so a restarted etcd is picked
  // up quickly.
  BackoffPolicy failed{};
  // etcd answered and cancelled the watch for a reason other than compaction (no leader, permission
  // denied, ...): restarting at once only spins Range+Watch against a member that keeps refusing.
  BackoffPolicy canceled{std::chrono::milliseconds(100), std::chrono::milliseconds(10000), 2.0, 0.2};
  // A watch counts as healthy (backoff reset, recovery logged) once it delivered an event or progress
  // notification, or stayed up this long. Being created is not enough: a refusing member creates and
  // cancels in one breath.
  std::chrono::milliseconds healthy_after{std::chrono::seconds(10)};
};

class WatchRetry {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  enum class End { kFailed, kCanceled };
  struct Retry {
    std::chrono::milliseconds delay{0};
    // The first end since the watch was last healthy: log it. Later ends of the same outage are silent.
    bool log = false;
  };

  explicit WatchRetry(WatchRetryPolicy policy = {});

  // etcd confirmed the watch (created) at `now`.
  void on_started(TimePoint now);
  // The watch delivered events or a progress notification. True once per recovery: the outage logged
  // earlier is over, say so.
  bool on_delivered(TimePoint now);
  // For a caller with a timer: the running watch has been up since on_started. True once per recovery,
  // as for on_delivered, once it has stayed up for healthy_after.
  bool on_tick(TimePoint now);
  // When on_tick would report a recovery; nullopt when there is none to report (no outage, or not up).
  std::optional<TimePoint> recovery_due() const;
  // The watch ended (or could not be set up). Returns when to try again and whether to log.
  Retry on_ended(End end, TimePoint now, double random01);

  bool failing() const { return failing_; }

 private:
  bool confirm();  // the running watch is healthy; true if that ends a logged outage

  WatchRetryPolicy policy_;
  Backoff failed_backoff_;
  Backoff canceled_backoff_;
  bool up_ = false;
  bool session_healthy_ = false;  // the running watch has been confirmed healthy
  TimePoint started_at_{};
  bool failing_ = false;  // an outage was logged and no healthy watch has followed yet
};

}  // namespace sidecar::core
