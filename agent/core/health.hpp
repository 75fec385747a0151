// Owns: the health of one check (rise/fall counting, status, bounded last output) and of one service (all
//       of its checks must pass).
// Thread: pure; results in (with the time they happened), transitions out. The runtime runs the probes.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sidecar::core {

enum class HealthStatus { kCritical, kPassing };
const char* to_string(HealthStatus status);

// The last output kept per check: enough for an HTTP error page's first lines or a script's message,
// bounded so a chatty check cannot grow the agent.
constexpr size_t kMaxCheckOutput = 4096;

// Keeps at most `max` bytes: the head of a long text plus a marker saying how much was cut.
std::string bound_output(std::string text, size_t max = kMaxCheckOutput);

struct CheckTransition {
  HealthStatus from = HealthStatus::kCritical;
  HealthStatus to = HealthStatus::kCritical;
  int streak = 0;        // the consecutive results that made it flip (== rise or fall)
  std::string output;    // the output of the result that flipped it
};

class CheckHealth {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  // `rise`/`fall` >= 1. A check that starts passing needs `fall` failures to go critical, and vice versa.
  CheckHealth(int rise, int fall, HealthStatus initial);

  // One probe result. Returns the transition when this result flips the status, exactly once per flip.
  std::optional<CheckTransition> record(bool passed, std::string output, TimePoint now);

  HealthStatus status() const { return status_; }
  bool passing() const { return status_ == HealthStatus::kPassing; }
  const std::string& last_output() const { return last_output_; }
  std::optional<bool> last_passed() const { return last_passed_; }
  std::optional<TimePoint> last_run() const { return last_run_; }
  std::optional<TimePoint> last_change() const { return last_change_; }
  int consecutive_passes() const { return passes_; }
  int consecutive_failures() const { return failures_; }
  uint64_t runs() const { return runs_; }
  int rise() const { return rise_; }
  int fall() const { return fall_; }

 private:
  int rise_;
  int fall_;
  HealthStatus status_;
  int passes_ = 0;
  int failures_ = 0;
  uint64_t runs_ = 0;
  std::string last_output_;
  std::optional<bool> last_passed_;
  std::optional<TimePoint> last_run_;
  std::optional<TimePoint> last_change_;
};

struct CheckThresholds {
  int rise = 1;
  int fall = 1;
};

// A service is healthy iff every one of its checks is passing; a service without checks always is.
class ServiceHealth {
 public:
  using TimePoint = CheckHealth::TimePoint;

  struct Update {
    std::optional<CheckTransition> check;  // the check flipped
    std::optional<bool> service_healthy;   // the service flipped: its new health
  };

  ServiceHealth(const std::vector<CheckThresholds>& checks, HealthStatus initial);

  Update record(size_t check, bool passed, std::string output, TimePoint now);

  bool healthy() const { return healthy_; }
  size_t check_count() const { return checks_.size(); }
  const CheckHealth& check(size_t index) const { return checks_[index]; }

 private:
  bool all_passing() const;

  std::vector<CheckHealth> checks_;
  bool healthy_;
};

}  // namespace sidecar::core
