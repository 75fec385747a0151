// Owns: the health of one check (rise/fall counting, status, bounded last output) and of one service (the
//       worst of its checks: probes and the app's TTL check).
// Thread: pure; results in (with the time they happened), transitions out. The runtime runs the probes.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sidecar::core {

// kWarning comes from a TTL check only (the app said "warn"): the key stays published, marked warning.
enum class HealthStatus { kCritical, kPassing, kWarning };
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
  // Set: a TTL check (no probe, rise and fall unused), fed by report() and on_time().
  std::optional<std::chrono::milliseconds> ttl;
};

class TtlCheck;
enum class TtlReport;

// A service's status is its worst check's: critical if any is, else warning if any is, else passing; a
// service without checks is always passing. It is healthy (its key may be published) unless critical.
class ServiceHealth {
 public:
  using TimePoint = CheckHealth::TimePoint;

  struct Update {
    std::optional<CheckTransition> check;       // the check flipped
    std::optional<bool> service_healthy;        // the service flipped between critical and not: its new health
    std::optional<HealthStatus> service_status;  // the service's status changed (e.g. passing -> warning)
  };

  // `now`: the start of a TTL check that starts passing (its first deadline is now + ttl).
  ServiceHealth(const std::vector<CheckThresholds>& checks, HealthStatus initial, TimePoint now = {});
  ~ServiceHealth();
  ServiceHealth(ServiceHealth&&) noexcept;
  ServiceHealth& operator=(ServiceHealth&&) noexcept;

  // A probe's result (the check must not be a TTL check).
  Update record(size_t check, bool passed, std::string output, TimePoint now);
  // The app's report, a report restored from the state file (made `age` ago), or the time passing (expiry),
  // for a TTL check.
  Update report(size_t check, TtlReport report, std::string note, TimePoint now);
  Update restore(size_t check, TtlReport report, std::string note, std::chrono::milliseconds age, TimePoint now);
  Update on_time(size_t check, TimePoint now);

  bool healthy() const { return status_ != HealthStatus::kCritical; }
  HealthStatus status() const { return status_; }
  size_t check_count() const;
  bool is_ttl(size_t index) const;
  const CheckHealth& check(size_t index) const;     // a probe
  const TtlCheck& ttl_check(size_t index) const;    // a TTL check
  HealthStatus check_status(size_t index) const;

 private:
  struct Slot;
  HealthStatus worst() const;
  Update finish(std::optional<CheckTransition> transition);

  std::vector<Slot> checks_;
  HealthStatus status_ = HealthStatus::kPassing;
};

}  // namespace sidecar::core
