// Owns: every service's health checks (their runners and loops), the per-service health, and the status
//       view the admin endpoint reports.
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
};

struct ServiceHealthView {
  std::string name;
  std::string id;
  std::string key;                      // "/services/<name>/<id>"
  bool healthy = true;                  // every check passing (a service without checks always is)
  std::vector<CheckView> checks;
};

class HealthMonitor {
 public:
  // Called once per service health transition (not per check run), with e.g. "check http ... critical".
  using OnChange = std::function<void(size_t service, bool healthy, const std::string& reason)>;

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
  // The health a service starts with: initial_status, or healthy when it has no checks.
  static bool initially_healthy(const core::ServiceSpec& service);

 private:
  struct Check {
    size_t service = 0;
    size_t index = 0;  // within the service
    std::unique_ptr<CheckRunner> runner;
    std::unique_ptr<asio::steady_timer> timer;
  };

  asio::awaitable<void> check_loop(Check* check);
  void record(const Check& check, const ProbeResult& result);

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
