#include "agent/runtime/health_monitor.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "agent/etcd/completion_bridge.hpp"

namespace sidecar::runtime {

namespace {

// One log line per transition: the output is cut and its line breaks made visible.
std::string loggable(const std::string& output) {
  constexpr size_t kMaxLogged = 512;
  std::string out;
  for (const char c : output.substr(0, kMaxLogged)) {
    if (c == '\n') {
      out += "\\n";
    } else if (c != '\r') {
      out += c;
    }
  }
  if (output.size() > kMaxLogged) out += "...";
  return out;
}

}  // namespace

bool HealthMonitor::initially_healthy(const core::ServiceSpec& service) {
  return service.checks.empty() || service.initial_status == core::InitialStatus::kPassing;
}

HealthMonitor::HealthMonitor(asio::io_context& io, const core::Manifest& manifest, OnChange on_change,
                             etcd::CompletionBridge* shared_bridge)
    : io_(io), on_change_(std::move(on_change)), scope_(io, "health") {
  bool any_grpc = false;
  for (const auto& s : manifest.services) {
    for (const auto& c : s.checks) any_grpc |= c.type == core::CheckType::kGrpc;
  }
  if (any_grpc && shared_bridge == nullptr) bridge_ = std::make_unique<etcd::CompletionBridge>(io_);
  etcd::CompletionBridge* bridge = bridge_ ? bridge_.get() : shared_bridge;

  const auto now = std::chrono::steady_clock::now();
  for (size_t si = 0; si < manifest.services.size(); ++si) {
    const core::ServiceSpec& s = manifest.services[si];
    const auto initial = initially_healthy(s) ? core::HealthStatus::kPassing : core::HealthStatus::kCritical;
    std::vector<core::CheckThresholds> thresholds;
    ServiceHealthView view{s.name, s.id, manifest.key_of(s), true, core::HealthStatus::kPassing, {}};
    for (size_t ci = 0; ci < s.checks.size(); ++ci) {
      const core::CheckSpec& c = s.checks[ci];
      const bool ttl = c.type == core::CheckType::kTtl;
      thresholds.push_back({c.rise, c.fall, ttl ? std::optional<std::chrono::milliseconds>(c.ttl) : std::nullopt});
      CheckView cv;
      cv.name = c.name;
      cv.type = c.type;
      cv.status = initial;
      if (ttl) cv.ttl = c.ttl;
      view.checks.push_back(std::move(cv));
      auto check = std::make_unique<Check>();
      check->service = si;
      check->index = ci;
      check->spec = c;
      if (!ttl) check->runner = std::make_unique<CheckRunner>(io_, c, bridge);
      check->timer = std::make_unique<asio::steady_timer>(io_);
      checks_.push_back(std::move(check));
    }
    health_.emplace_back(thresholds, initial, now);
    view.healthy = health_.back().healthy();
    view.status = health_.back().status();
    view_.push_back(std::move(view));
  }
  for (const auto& check : checks_) {
    if (!check->runner) refresh_view(*check);  // the first deadline of a ttl check that starts passing
  }
}

HealthMonitor::~HealthMonitor() { stop(); }

void HealthMonitor::start() {
  for (auto& check : checks_) {
    if (check->runner) {
      scope_.spawn("check " + check->spec.name, check_loop(check.get()));
    } else {
      scope_.spawn("ttl check " + check->spec.name, ttl_loop(check.get()));
    }
  }
}

void HealthMonitor::stop() {
  if (stopping_) return;
  stopping_ = true;
  for (auto& check : checks_) {
    check->timer->cancel();
    if (check->runner) check->runner->abort();
  }
}

asio::awaitable<void> HealthMonitor::check_loop(Check* check) {
  const core::CheckSpec& spec = check->spec;
  while (!stopping_) {
    // Runs start `interval` apart; a run that took longer than that is followed at once, never overlapped.
    const auto started = std::chrono::steady_clock::now();
    const ProbeResult result = co_await check->runner->run();
    if (stopping_) break;
    record(*check, result);
    check->timer->expires_at(started + spec.interval);
    boost::system::error_code ec;
    co_await check->timer->async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

// A ttl check waits for its deadline; a report moves the deadline (and cancels the wait, so it is read
// again). Expiry is decided by the core check from the time, so a late timer never expires a fresh report.
asio::awaitable<void> HealthMonitor::ttl_loop(Check* check) {
  while (!stopping_) {
    const auto deadline = health_[check->service].ttl_check(check->index).deadline();
    check->timer->expires_at(deadline ? *deadline : std::chrono::steady_clock::time_point::max());
    boost::system::error_code ec;
    co_await check->timer->async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (stopping_) break;
    const auto update = health_[check->service].on_time(check->index, std::chrono::steady_clock::now());
    refresh_view(*check);
    announce(*check, update);
  }
}

HealthMonitor::Check* HealthMonitor::find(size_t service, size_t index) const {
  for (const auto& c : checks_) {
    if (c->service == service && c->index == index) return c.get();
  }
  return nullptr;
}

std::optional<size_t> HealthMonitor::ttl_check(size_t service) const {
  const core::ServiceHealth& health = health_.at(service);
  for (size_t i = 0; i < health.check_count(); ++i) {
    if (health.is_ttl(i)) return i;
  }
  return std::nullopt;
}

core::HealthStatus HealthMonitor::report(size_t service, core::TtlReport report, std::string note, int64_t unix_ms) {
  const size_t index = ttl_check(service).value();
  Check* check = find(service, index);
  const auto update = health_[service].report(index, report, std::move(note), std::chrono::steady_clock::now());
  view_[service].checks[index].last_report_unix_ms = unix_ms;
  refresh_view(*check);
  announce(*check, update);
  check->timer->cancel();  // the loop waits for the new deadline
  return health_[service].check_status(index);
}

void HealthMonitor::restore(size_t service, core::TtlReport report, std::string note, int64_t unix_ms,
                            std::chrono::milliseconds age) {
  const auto index = ttl_check(service);
  if (!index) return;
  Check* check = find(service, *index);
  const auto update =
      health_[service].restore(*index, report, std::move(note), age, std::chrono::steady_clock::now());
  view_[service].checks[*index].last_report_unix_ms = unix_ms;
  refresh_view(*check);
  announce(*check, update);
  check->timer->cancel();
}

void HealthMonitor::refresh_view(const Check& check) {
  const core::ServiceHealth& health = health_[check.service];
  ServiceHealthView& service = view_[check.service];
  CheckView& view = service.checks[check.index];
  if (health.is_ttl(check.index)) {
    const core::TtlCheck& state = health.ttl_check(check.index);
    view.status = state.status();
    view.last_output = state.output();
    view.last_report = state.last_report();
    view.note = state.note();
    view.deadline = state.deadline();
    view.expired = state.expired();
    view.last_change = state.last_change();
    view.last_run = state.last_report_at();
    view.runs = state.reports();
    if (view.last_report) view.last_passed = *view.last_report != core::TtlReport::kFail;
  } else {
    const core::CheckHealth& state = health.check(check.index);
    view.status = state.status();
    view.last_output = state.last_output();
    view.last_passed = state.last_passed();
    view.last_run = state.last_run();
    view.last_change = state.last_change();
    view.runs = state.runs();
    view.consecutive_passes = state.consecutive_passes();
    view.consecutive_failures = state.consecutive_failures();
  }
  service.healthy = health.healthy();
  service.status = health.status();
}

void HealthMonitor::announce(const Check& check, const core::ServiceHealth::Update& update) {
  const ServiceHealthView& service = view_[check.service];
  const std::string& name = check.spec.name;
  if (update.check) {
    const bool ttl = check.spec.type == core::CheckType::kTtl;
    const bool good = update.check->to != core::HealthStatus::kCritical;
    std::string line = "check '" + name + "' of " + service.key + " is now " + core::to_string(update.check->to);
    if (ttl) {
      line += ": " + (update.check->output.empty() ? std::string("(no note)") : loggable(update.check->output));
    } else {
      line += " after " + std::to_string(update.check->streak) + (good ? " pass(es)" : " failure(s)") + ": " +
              loggable(update.check->output);
    }
    if (good) {
      spdlog::info("{}", line);
    } else {
      spdlog::warn("{}", line);
    }
  }
  // After stop() (shutdown, handover) a report is still recorded and shown, but nothing is published.
  if (update.service_status && on_change_ && !stopping_) {
    on_change_(check.service, *update.service_status,
               "check '" + name + "' " + core::to_string(health_[check.service].check_status(check.index)));
  }
}

void HealthMonitor::record(const Check& check, const ProbeResult& result) {
  core::ServiceHealth& health = health_[check.service];
  const auto now = std::chrono::steady_clock::now();
  const core::ServiceHealth::Update update = health.record(check.index, result.passed, result.output, now);
  refresh_view(check);
  const core::CheckHealth& state = health.check(check.index);
  if (!update.check && !result.passed && state.consecutive_failures() == 1 && state.passing()) {
    // The first failure of a passing check, below `fall`: worth a debug line, not a warning.
    spdlog::debug("check '{}' of {} failed ({}/{}): {}", check.spec.name, view_[check.service].key, 1, state.fall(),
                  loggable(result.output));
  }
  announce(check, update);
}

}  // namespace sidecar::runtime
