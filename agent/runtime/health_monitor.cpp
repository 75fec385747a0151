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

  for (size_t si = 0; si < manifest.services.size(); ++si) {
    const core::ServiceSpec& s = manifest.services[si];
    const auto initial = initially_healthy(s) ? core::HealthStatus::kPassing : core::HealthStatus::kCritical;
    std::vector<core::CheckThresholds> thresholds;
    ServiceHealthView view{s.name, s.id, manifest.key_of(s), true, {}};
    for (size_t ci = 0; ci < s.checks.size(); ++ci) {
      const core::CheckSpec& c = s.checks[ci];
      thresholds.push_back({c.rise, c.fall});
      CheckView cv;
      cv.name = c.name;
      cv.type = c.type;
      cv.status = initial;
      view.checks.push_back(std::move(cv));
      auto check = std::make_unique<Check>();
      check->service = si;
      check->index = ci;
      check->runner = std::make_unique<CheckRunner>(io_, c, bridge);
      check->timer = std::make_unique<asio::steady_timer>(io_);
      checks_.push_back(std::move(check));
    }
    health_.emplace_back(thresholds, initial);
    view.healthy = health_.back().healthy();
    view_.push_back(std::move(view));
  }
}

HealthMonitor::~HealthMonitor() { stop(); }

void HealthMonitor::start() {
  for (auto& check : checks_) {
    scope_.spawn("check " + check->runner->spec().name, check_loop(check.get()));
  }
}

void HealthMonitor::stop() {
  if (stopping_) return;
  stopping_ = true;
  for (auto& check : checks_) {
    check->timer->cancel();
    check->runner->abort();
  }
}

asio::awaitable<void> HealthMonitor::check_loop(Check* check) {
  const core::CheckSpec& spec = check->runner->spec();
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

void HealthMonitor::record(const Check& check, const ProbeResult& result) {
  core::ServiceHealth& health = health_[check.service];
  const auto now = std::chrono::steady_clock::now();
  const core::ServiceHealth::Update update = health.record(check.index, result.passed, result.output, now);

  const core::CheckHealth& state = health.check(check.index);
  ServiceHealthView& service = view_[check.service];
  CheckView& view = service.checks[check.index];
  view.status = state.status();
  view.last_output = state.last_output();
  view.last_passed = state.last_passed();
  view.last_run = state.last_run();
  view.last_change = state.last_change();
  view.runs = state.runs();
  view.consecutive_passes = state.consecutive_passes();
  view.consecutive_failures = state.consecutive_failures();
  service.healthy = health.healthy();

  const std::string& name = check.runner->spec().name;
  if (update.check) {
    const bool passing = update.check->to == core::HealthStatus::kPassing;
    const std::string line = "check '" + name + "' of " + service.key + " is now " + core::to_string(update.check->to) +
                             " after " + std::to_string(update.check->streak) + (passing ? " pass(es)" : " failure(s)") +
                             ": " + loggable(update.check->output);
    if (passing) {
      spdlog::info("{}", line);
    } else {
      spdlog::warn("{}", line);
    }
  } else if (!result.passed && state.consecutive_failures() == 1 && state.passing()) {
    // The first failure of a passing check, below `fall`: worth a debug line, not a warning.
    spdlog::debug("check '{}' of {} failed ({}/{}): {}", name, service.key, 1, state.fall(), loggable(result.output));
  }
  if (update.service_healthy && on_change_) {
    on_change_(check.service, *update.service_healthy,
               "check '" + name + "' " + (*update.service_healthy ? "passing" : "critical"));
  }
}

}  // namespace sidecar::runtime
