// Owns: the Agent class behind run_agent(): every component of one running agent. Its members are defined
//       by concern: agent.cpp (start and wiring), agent_reload.cpp, agent_shutdown.cpp, agent_admin.cpp.
// Thread: the main thread runs the io_context; every member function runs on it (the writer pool only
//         writes files and the lease state file).
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without including it
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/core/manifest.hpp"
#include "agent/daemon/agent.hpp"
#include "agent/core/admin_routes.hpp"
#include "agent/core/health_state.hpp"
#include "agent/daemon/exit_codes.hpp"
#include "agent/daemon/health_state_file.hpp"
#include "agent/daemon/lease_state_file.hpp"
#include "agent/daemon/snapshot.hpp"
#include "agent/daemon/watchdog.hpp"
#include "agent/etcd/client.hpp"
#include "agent/etcd/completion_bridge.hpp"
#include "agent/frontend/http/catalog_http.hpp"
#include "agent/frontend/dns/dns_server.hpp"
#include "agent/frontend/xds/xds_server.hpp"
#include "agent/runtime/admin_server.hpp"
#include "agent/runtime/catalog.hpp"
#include "agent/runtime/config_mirror.hpp"
#include "agent/runtime/discovery.hpp"
#include "agent/runtime/etcd_client_port.hpp"
#include "agent/runtime/file_watch.hpp"
#include "agent/runtime/health_monitor.hpp"
#include "agent/runtime/registrar.hpp"
#include "agent/runtime/task_scope.hpp"

namespace sidecar::daemon {

namespace asio = boost::asio;

// Templates are read at start and at every reload: a missing or broken one is a config error, not a
// runtime surprise. One entry per discovery (empty for the other formats).
bool load_templates(const core::Manifest& manifest, std::vector<std::string>* templates);
// This host's name: the seed of `sort: random-stable` (stable across restarts here, different on the next host).
std::string host_name();

class Agent {
 public:
  explicit Agent(AgentOptions options);
  ~Agent();
  int run();

 private:
  // One manifest service: its key in the registrar (stable across reloads) and its checks.
  struct ServiceSlot {
    size_t key_index = 0;
    std::unique_ptr<runtime::HealthMonitor> health;
  };
  enum class Exit { kDeregister, kHandover };

  // agent.cpp: building the components.
  // `specs[i]` is the service of `keys[i]`: its value in each state, and its maintenance.
  void ensure_registrar(std::vector<core::DesiredKey> keys, const std::vector<const core::ServiceSpec*>& specs);
  std::unique_ptr<runtime::HealthMonitor> make_health(const core::ServiceSpec& spec, size_t key_index);
  std::unique_ptr<runtime::Discovery> make_discovery(const core::Manifest& m, size_t i, const std::string& tmpl);
  static runtime::CatalogOptions catalog_options(const core::Manifest& m);
  std::unique_ptr<runtime::ConfigMirror> make_mirror(const core::ConfigSpec& spec);
  void on_ready();
  void watch_manifest_file();

  // agent_admin.cpp
  SnapshotSources sources() const;
  void setup_admin();
  // agent_catalog_http.cpp
  void setup_catalog_http();

  // agent_xds.cpp: false (error logged) when the xds listener cannot start.
  bool start_xds();
  void add_xds_admin();

  // agent_app_health.cpp: TTL reports, maintenance, the health state file and the admin token.
  void load_health_state();
  // The key of `spec` as registered at first: its value (maintenance or passing) and its maintenance.
  core::DesiredKey desired_key(const core::ServiceSpec& spec) const;
  bool in_maintenance(const core::ServiceSpec& spec) const;
  runtime::Registrar::ValueOf value_source(const core::ServiceSpec& spec) const;
  // Restores the service's last TTL report (before its monitor starts).
  void restore_ttl_into(runtime::HealthMonitor& health, const core::ServiceSpec& spec);
  std::vector<core::ServiceRef> service_refs() const;
  nlohmann::json on_check_report(size_t service, core::TtlReport report, std::string note);
  nlohmann::json on_maintenance(const core::MaintenanceRequest& request);
  // Drops the records of services no longer in the manifest, then saves.
  void prune_health_state();
  void save_health_state();
  void write_health_state_now();  // blocking: on the writer pool, or after it has been joined
  // admin.token_file of `m` read into *token; false (error logged) when it cannot be.
  bool load_admin_token(const core::Manifest& m, std::string* token);

  // agent_dns.cpp
  bool bind_dns();  // false (error logged, naming dns.listen) when the address cannot be bound
  void start_dns();
  void setup_dns_admin();
  void reload_dns(const core::Manifest& before);

  // agent_reload.cpp
  void reload(const std::string& trigger);
  bool apply_reload(core::Manifest next);
  // A component a reload removed or replaced: stopped now, destroyed once its loops have ended.
  template <class Component>
  void dispose(std::unique_ptr<Component> component) {
    component->stop();
    scope_.spawn("dispose", runtime::join_and_destroy(std::move(component)));
  }

  // agent_shutdown.cpp
  void on_signal(const boost::system::error_code& ec, int signo);
  void begin_exit(Exit how, std::chrono::milliseconds deadline);
  void on_exit_deadline();
  void deregister();
  void stop_health();
  void stop_consumers();
  asio::awaitable<void> join_consumers();
  asio::awaitable<void> shutdown_sequence();
  asio::awaitable<void> drain_then(std::chrono::milliseconds delay);
  asio::awaitable<void> handover_sequence();
  asio::awaitable<void> flush_writer();
  void finish_handover();
  void on_loop_failure(const std::string& task);

  AgentOptions options_;
  core::Manifest manifest_;  // what is running now: replaced by a successful reload
  std::vector<std::string> templates_;
  asio::io_context io_;
  // File writes (fsync) run here, off the event loop, so a slow disk never delays a keepalive.
  asio::thread_pool writer_;
  double start_time_unix_ = 0;
  bool shutting_down_ = false;
  bool handed_over_ = false;
  bool ready_ = false;
  std::string reload_trigger_ = "SIGHUP";
  std::unique_ptr<runtime::FileWatch> manifest_watch_;
  // Null when AgentOptions::etcd gave the port (tests); then only port_ reaches etcd.
  std::unique_ptr<etcd::Client> client_;
  // How every component reaches etcd: client_ behind runtime::EtcdPort; made with it, destroyed before it.
  std::unique_ptr<runtime::EtcdPort> port_;
  std::unique_ptr<runtime::AdminServer> admin_;
  std::optional<LeaseStateFile> state_file_;
  // The app's last reports and the maintenance per "<name>/<id>", as kept in health_file_.
  core::HealthState health_state_;
  std::optional<HealthStateFile> health_file_;
  bool health_write_in_flight_ = false;
  bool health_write_again_ = false;  // changed while a write was in flight: write once more after it
  bool lease_recorded_ = false;
  std::unique_ptr<runtime::Registrar> registrar_;
  // One completion queue (and poller thread) for every service's gRPC checks; outlives the monitors.
  std::unique_ptr<etcd::CompletionBridge> check_bridge_;
  std::vector<ServiceSlot> services_;  // in manifest order
  // Every watched service, shared by its consumers: made after port_, destroyed before it and after them.
  std::unique_ptr<runtime::Catalog> catalog_;
  // The catalog on the admin endpoint (/v1/catalog/..): made with the admin server, before it starts.
  std::unique_ptr<frontend::CatalogHttp> catalog_http_;
  // The DNS view of the catalog (manifest `dns:`); null when off. Destroyed before the catalog.
  std::unique_ptr<frontend::dns::DnsServer> dns_;
  std::vector<std::unique_ptr<runtime::Discovery>> discoveries_;
  std::vector<std::unique_ptr<runtime::ConfigMirror>> mirrors_;
  // The xDS server (`xds:`), a view of catalog_: destroyed before it.
  std::unique_ptr<frontend::xds::XdsServer> xds_;
  core::ConfigVersion config_;
  uint64_t reloads_ = 0;
  uint64_t reload_failures_ = 0;
  std::unique_ptr<Watchdog> watchdog_;
  int exit_code_ = kExitOk;
  // The one hard deadline of every exit path (see begin_exit); armed once.
  asio::steady_timer exit_deadline_;
  Exit exit_how_ = Exit::kDeregister;
  std::chrono::milliseconds exit_budget_{0};
  asio::steady_timer drain_delay_;
  // Fires once, a little after the agent is first ready: unmaps the pages only start-up used
  // (startup_pages.hpp). Cancelled when an exit begins, so it never holds the loop open.
  asio::steady_timer release_pages_;
  asio::signal_set signals_;
  // The agent's own coroutines: the shutdown and handover sequences and the disposal of replaced
  // components. Last, so it is destroyed first (it only checks that nothing of it is still running).
  runtime::TaskScope scope_;
};

}  // namespace sidecar::daemon
