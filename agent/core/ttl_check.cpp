#include "agent/core/ttl_check.hpp"

namespace sidecar::core {

namespace {

HealthStatus status_of(TtlReport report) {
  switch (report) {
    case TtlReport::kPass: return HealthStatus::kPassing;
    case TtlReport::kWarn: return HealthStatus::kWarning;
    case TtlReport::kFail: return HealthStatus::kCritical;
  }
  return HealthStatus::kCritical;
}

std::string format_ttl(std::chrono::milliseconds ttl) {
  if (ttl.count() % 1000 == 0) return std::to_string(ttl.count() / 1000) + "s";
  return std::to_string(ttl.count()) + "ms";
}

}  // namespace

const char* to_string(TtlReport report) {
  switch (report) {
    case TtlReport::kPass: return "pass";
    case TtlReport::kWarn: return "warn";
    case TtlReport::kFail: return "fail";
  }
  return "fail";
}

std::optional<TtlReport> parse_ttl_report(std::string_view text) {
  if (text == "pass") return TtlReport::kPass;
  if (text == "warn") return TtlReport::kWarn;
  if (text == "fail") return TtlReport::kFail;
  return std::nullopt;
}

TtlCheck::TtlCheck(std::chrono::milliseconds ttl, HealthStatus initial, TimePoint now) : ttl_(ttl), status_(initial) {
  if (status_ != HealthStatus::kCritical) deadline_ = now + ttl_;
}

std::optional<CheckTransition> TtlCheck::move_to(HealthStatus next, TimePoint now) {
  if (next == status_) return std::nullopt;
  CheckTransition t{status_, next, 1, output_};
  status_ = next;
  last_change_ = now;
  return t;
}

std::optional<CheckTransition> TtlCheck::report(TtlReport report, std::string note, TimePoint now) {
  ++reports_;
  last_report_ = report;
  last_report_at_ = now;
  note_ = bound_output(std::move(note));
  output_ = note_;
  expired_ = false;
  const HealthStatus next = status_of(report);
  deadline_.reset();
  if (next != HealthStatus::kCritical) deadline_ = now + ttl_;
  return move_to(next, now);
}

std::optional<CheckTransition> TtlCheck::restore(TtlReport report, std::string note, std::chrono::milliseconds age,
                                                 TimePoint now) {
  if (age.count() < 0) age = std::chrono::milliseconds(0);  // a clock stepped back: take the report as fresh
  const TimePoint made = now - age;
  auto t = this->report(report, std::move(note), made);
  if (status_ != HealthStatus::kCritical && deadline_ && *deadline_ <= now) {
    auto expiry = on_time(now);
    if (expiry) {
      // From the state before the restore: one transition for the caller, whatever happened in between.
      if (t) expiry->from = t->from;
      t = std::move(expiry);
      if (t->from == t->to) t.reset();
    }
  }
  if (t) last_change_ = now;
  return t;
}

std::optional<CheckTransition> TtlCheck::on_time(TimePoint now) {
  if (!deadline_ || now < *deadline_) return std::nullopt;
  deadline_.reset();
  expired_ = true;
  output_ = "TTL " + format_ttl(ttl_) + " expired without a report" +
            (note_.empty() ? std::string() : " (last note: " + note_ + ")");
  output_ = bound_output(std::move(output_));
  auto t = move_to(HealthStatus::kCritical, now);
  if (t) t->output = output_;
  return t;
}

}  // namespace sidecar::core
