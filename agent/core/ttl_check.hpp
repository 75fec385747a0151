// Owns: the state of one TTL check: the app's last report (pass, warn, fail, with a note) and the deadline
//       after which silence makes the check critical.
// Thread: pure; reports and the current time come in, transitions go out. The runtime arms the timer.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "agent/core/health.hpp"

namespace sidecar::core {

// What the app says: PUT /v1/checks/<id>/pass|warn|fail.
enum class TtlReport { kPass, kWarn, kFail };
const char* to_string(TtlReport report);  // "pass" | "warn" | "fail"
std::optional<TtlReport> parse_ttl_report(std::string_view text);

class TtlCheck {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  // `initial` passing: the app has one TTL from `now` for its first report; critical: no deadline until one.
  TtlCheck(std::chrono::milliseconds ttl, HealthStatus initial, TimePoint now);

  // pass -> passing, warn -> warning (both until now + ttl), fail -> critical (no deadline). The note is
  // bounded like a probe's output. A transition when the status changed.
  std::optional<CheckTransition> report(TtlReport report, std::string note, TimePoint now);
  // A report a previous process recorded `age` ago (state file): as if made then. An age of a TTL or more
  // leaves the check critical (expired), so a restart never revives a report the app stopped sending.
  std::optional<CheckTransition> restore(TtlReport report, std::string note, std::chrono::milliseconds age,
                                         TimePoint now);
  // Critical once the deadline has passed without a report; a transition exactly once per expiry.
  std::optional<CheckTransition> on_time(TimePoint now);

  HealthStatus status() const { return status_; }
  std::chrono::milliseconds ttl() const { return ttl_; }
  // When silence turns the check critical; nullopt while critical.
  std::optional<TimePoint> deadline() const { return deadline_; }
  std::optional<TtlReport> last_report() const { return last_report_; }
  std::optional<TimePoint> last_report_at() const { return last_report_at_; }
  const std::string& note() const { return note_; }
  // What the status shows: the last note, or why the check expired.
  const std::string& output() const { return output_; }
  bool expired() const { return expired_; }
  uint64_t reports() const { return reports_; }
  std::optional<TimePoint> last_change() const { return last_change_; }

 private:
  std::optional<CheckTransition> move_to(HealthStatus next, TimePoint now);

  std::chrono::milliseconds ttl_;
  HealthStatus status_;
  std::optional<TimePoint> deadline_;
  std::optional<TtlReport> last_report_;
  std::optional<TimePoint> last_report_at_;
  std::string note_;
  std::string output_;
  bool expired_ = false;
  uint64_t reports_ = 0;
  std::optional<TimePoint> last_change_;
};

}  // namespace sidecar::core
