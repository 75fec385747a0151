// Owns: jittered exponential backoff arithmetic (no timers, no randomness source of its own).
// Thread: pure; the caller passes the random draw in, so tests are deterministic.
#pragma once

#include <chrono>

namespace sidecar::core {

struct BackoffPolicy {
  std::chrono::milliseconds initial{50};
  std::chrono::milliseconds max{1000};  // capped near 1 s so a restarted etcd is picked up quickly
  double multiplier = 2.0;
  double jitter = 0.2;  // +/- fraction of the delay, spreads a fleet's retries apart
};

class Backoff {
 public:
  explicit Backoff(BackoffPolicy policy = {}) : policy_(policy) {}

  // Delay before the next attempt; `random01` is a uniform draw from [0, 1).
  std::chrono::milliseconds next(double random01);
  void reset() { attempts_ = 0; }
  // Delays handed out since construction or reset(), including those at the cap.
  int attempts() const { return attempts_; }

 private:
  BackoffPolicy policy_;
  int attempts_ = 0;
};

}  // namespace sidecar::core
