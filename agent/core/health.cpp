#include "agent/core/health.hpp"

#include <algorithm>
#include <cassert>

#include "agent/core/ttl_check.hpp"

namespace sidecar::core {

const char* to_string(HealthStatus status) {
  switch (status) {
    case HealthStatus::kPassing: return "passing";
    case HealthStatus::kWarning: return "warning";
    case HealthStatus::kCritical: return "critical";
  }
  return "critical";
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

struct ServiceHealth::Slot {
  std::optional<CheckHealth> probe;
  std::optional<TtlCheck> ttl;
  HealthStatus status() const { return probe ? probe->status() : ttl->status(); }
};

ServiceHealth::ServiceHealth(const std::vector<CheckThresholds>& checks, HealthStatus initial, TimePoint now) {
  checks_.reserve(checks.size());
  for (const auto& t : checks) {
    Slot slot;
    if (t.ttl) {
      slot.ttl.emplace(*t.ttl, initial, now);
    } else {
      slot.probe.emplace(t.rise, t.fall, initial);
    }
    checks_.push_back(std::move(slot));
  }
  status_ = worst();
}

ServiceHealth::~ServiceHealth() = default;
ServiceHealth::ServiceHealth(ServiceHealth&&) noexcept = default;
ServiceHealth& ServiceHealth::operator=(ServiceHealth&&) noexcept = default;

size_t ServiceHealth::check_count() const { return checks_.size(); }
bool ServiceHealth::is_ttl(size_t index) const { return checks_.at(index).ttl.has_value(); }
const CheckHealth& ServiceHealth::check(size_t index) const { return *checks_.at(index).probe; }
const TtlCheck& ServiceHealth::ttl_check(size_t index) const { return *checks_.at(index).ttl; }
HealthStatus ServiceHealth::check_status(size_t index) const { return checks_.at(index).status(); }

HealthStatus ServiceHealth::worst() const {
  HealthStatus out = HealthStatus::kPassing;
  for (const Slot& c : checks_) {
    const HealthStatus s = c.status();
    if (s == HealthStatus::kCritical) return s;
    if (s == HealthStatus::kWarning) out = s;
  }
  return out;
}

ServiceHealth::Update ServiceHealth::finish(std::optional<CheckTransition> transition) {
  Update update;
  update.check = std::move(transition);
  const HealthStatus next = worst();
  if (next != status_) {
    const bool was_healthy = healthy();
    status_ = next;
    update.service_status = next;
    if (healthy() != was_healthy) update.service_healthy = healthy();
  }
  return update;
}

ServiceHealth::Update ServiceHealth::record(size_t check, bool passed, std::string output, TimePoint now) {
  assert(checks_.at(check).probe);
  return finish(checks_.at(check).probe->record(passed, std::move(output), now));
}

ServiceHealth::Update ServiceHealth::report(size_t check, TtlReport report, std::string note, TimePoint now) {
  assert(checks_.at(check).ttl);
  return finish(checks_.at(check).ttl->report(report, std::move(note), now));
}

ServiceHealth::Update ServiceHealth::restore(size_t check, TtlReport report, std::string note,
                                             std::chrono::milliseconds age, TimePoint now) {
  assert(checks_.at(check).ttl);
  return finish(checks_.at(check).ttl->restore(report, std::move(note), age, now));
}

ServiceHealth::Update ServiceHealth::on_time(size_t check, TimePoint now) {
  assert(checks_.at(check).ttl);
  return finish(checks_.at(check).ttl->on_time(now));
}

}  // namespace sidecar::core
