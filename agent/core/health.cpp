#include "agent/core/health.hpp"

#include <algorithm>
#include <cassert>

namespace sidecar::core {

const char* to_string(HealthStatus status) {
  return status == HealthStatus::kPassing ? "passing" : "critical";
}

std::string bound_output(std::string text, size_t max) {
  if (text.size() <= max) return text;
  const std::string marker = "... (" + std::to_string(text.size() - max) + " more bytes)";
  const size_t keep = max > marker.size() ? max - marker.size() : 0;
  text.resize(keep);
  text += marker;
  if (text.size() > max) text.resize(max);
  return text;
}

CheckHealth::CheckHealth(int rise, int fall, HealthStatus initial)
    : rise_(std::max(1, rise)), fall_(std::max(1, fall)), status_(initial) {
  assert(rise >= 1 && fall >= 1);
}

std::optional<CheckTransition> CheckHealth::record(bool passed, std::string output, TimePoint now) {
  ++runs_;
  last_run_ = now;
  last_passed_ = passed;
  last_output_ = bound_output(std::move(output));
  if (passed) {
    ++passes_;
    failures_ = 0;
  } else {
    ++failures_;
    passes_ = 0;
  }
  // Counting continues past the threshold; the status flips only on the result that reaches it, so a
  // transition is reported once however long the streak goes on.
  if (status_ == HealthStatus::kCritical && passed && passes_ >= rise_) {
    status_ = HealthStatus::kPassing;
    last_change_ = now;
    return CheckTransition{HealthStatus::kCritical, HealthStatus::kPassing, passes_, last_output_};
  }
  if (status_ == HealthStatus::kPassing && !passed && failures_ >= fall_) {
    status_ = HealthStatus::kCritical;
    last_change_ = now;
    return CheckTransition{HealthStatus::kPassing, HealthStatus::kCritical, failures_, last_output_};
  }
  return std::nullopt;
}

ServiceHealth::ServiceHealth(const std::vector<CheckThresholds>& checks, HealthStatus initial) {
  checks_.reserve(checks.size());
  for (const auto& t : checks) checks_.emplace_back(t.rise, t.fall, initial);
  healthy_ = all_passing();
}

bool ServiceHealth::all_passing() const {
  return std::all_of(checks_.begin(), checks_.end(), [](const CheckHealth& c) { return c.passing(); });
}

ServiceHealth::Update ServiceHealth::record(size_t check, bool passed, std::string output, TimePoint now) {
  Update update;
  update.check = checks_.at(check).record(passed, std::move(output), now);
  const bool healthy = all_passing();
  if (healthy != healthy_) {
    healthy_ = healthy;
    update.service_healthy = healthy;
  }
  return update;
}

}  // namespace sidecar::core
