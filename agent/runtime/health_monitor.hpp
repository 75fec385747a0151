// Owns: every service's health checks (their runners and loops, the TTL checks' timers), the per-service
//       health, and the status view the admin endpoint reports.
// Thread: io_context thread only: the check loops, the callbacks and view() all run there.
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without including it
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/core/health.hpp"
#include "agent/core/manifest.hpp"
#include "agent/core/ttl_check.hpp"
#include "agent/runtime/health_check.hpp"
#include "agent/runtime/task_scope.hpp"

namespace sidecar::etcd {
class CompletionBridge;
}

namespace sidecar::runtime {

struct CheckView {
  std::string name;                     // `name:` or "<type> <target>"
  core::CheckType type = core::CheckType::kTcp;
  core::HealthStatus status = core::HealthStatus::kCritical;
  std::string last_output;              // bounded (core::kMaxCheckOutput); empty before the first run
  std::optional<bool> last_passed;      // the last run's own result (status moves only after rise/fall)
  std::optional<std::chrono::steady_clock::time_point> last_run;
  std::optional<std::chrono::steady_clock::time_point> last_change;
  uint64_t runs = 0;
  int consecutive_passes = 0;
  int consecutive_failures = 0;
  // TTL checks only (type kTtl): the app's last report, its note, when (wall clock), and when silence
  // makes the check critical. `runs` counts reports.
  std::chrono::milliseconds ttl{0};
  std::optional<core::TtlReport> last_report;
  std::optional<int64_t> last_report_unix_ms;
  std::string note;
  std::optional<std::chrono::steady_clock::time_point> deadline;
  bool expired = false;
};

struct ServiceHealthView {
  std::string name;
  std::string id;
  std::string key;                      // "/services/<name>/<id>"
  bool healthy = true;                  // no check critical (a service without checks always is healthy)
  core::HealthStatus status = core::HealthStatus::kPassing;  // the worst check's (warning: a ttl check's warn)
  std::vector<CheckView> checks;
};

class HealthMonitor {
 public:
  // Called once per service status transition (not per check run), with e.g. "check http ... critical".
  using OnChange = std::function<void(size_t service, core::HealthStatus status, const std::string& reason)>;

  // `shared_bridge`: a completion queue for gRPC checks owned by the caller (who keeps it alive longer
  // than this monitor); null: the monitor makes its own when a gRPC check needs one.
  HealthMonitor(asio::io_context& io, const core::Manifest& manifest, OnChange on_change,
                etcd::CompletionBridge* shared_bridge = nullptr);
  ~HealthMonitor();
  HealthMonitor(const HealthMonitor&) = delete;
  HealthMonitor& operator=(const HealthMonitor&) = delete;

  // Spawns one loop per check; the first run of each starts at once.
  void start();
  // Ends the loops and any run in flight (idempotent); no callback is made afterwards.
  void stop();
  // Completes once every check loop has ended (after stop()); then the monitor may be destroyed.
  asio::awaitable<void> join() { return scope_.join(); }

  // One entry per manifest service, in manifest order; kept current after every run.
  const std::vector<ServiceHealthView>& view() const { return view_; }
  bool healthy(size_t service) const { return health_[service].healthy(); }
  core::HealthStatus status(size_t service) const { return health_[service].status(); }
  // The service's ttl check (at most one), if it has one.
  std::optional<size_t> ttl_check(size_t service) const;
  // The app's report for the service's ttl check (which must exist); `unix_ms`: when, on the wall clock
  // (for the view and the state file). Returns the check's status after it. Calls on_change if the
  // service's status moved.
  core::HealthStatus report(size_t service, core::TtlReport report, std::string note, int64_t unix_ms);
  // Before start(): a report a previous process recorded `age` ago (expired if age >= ttl).
  void restore(size_t service, core::TtlReport report, std::string note, int64_t unix_ms,
               std::chrono::milliseconds age);
  // The health a service starts with: initial_status, or healthy when it has no checks.
  static bool initially_healthy(const core::ServiceSpec& service);

 private:
  struct Check {
    size_t service = 0;
    size_t index = 0;  // within the service
    core::CheckSpec spec;
    std::unique_ptr<CheckRunner> runner;  // null for a ttl check
    std::unique_ptr<asio::steady_timer> timer;  // probes: the next run; ttl: the deadline
  };

  asio::awaitable<void> check_loop(Check* check);
  asio::awaitable<void> ttl_loop(Check* check);
  void record(const Check& check, const ProbeResult& result);
  Check* find(size_t service, size_t index) const;
  void refresh_view(const Check& check);
  void announce(const Check& check, const core::ServiceHealth::Update& update);

  asio::io_context& io_;
  OnChange on_change_;
  std::unique_ptr<etcd::CompletionBridge> bridge_;  // gRPC checks only; outlives the runners (declared first)
  std::vector<core::ServiceHealth> health_;
  std::vector<ServiceHealthView> view_;
  std::vector<std::unique_ptr<Check>> checks_;
  bool stopping_ = false;
  TaskScope scope_;  // last: the check loops use the members above
};

}  // namespace sidecar::runtime
