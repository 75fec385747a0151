#include "agent/daemon/agent.hpp"

#include <time.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <csignal>
#include <fstream>
#include <functional>
#include <iostream>
#include <optional>
#include <set>

#include "agent/core/instance.hpp"
#include "agent/core/manifest_diff.hpp"
#include "agent/output/render.hpp"
#include "agent/daemon/exit_codes.hpp"
#include "agent/daemon/lease_state_file.hpp"
#include "agent/daemon/sd_notify.hpp"
#include "agent/daemon/snapshot.hpp"
#include "agent/daemon/watchdog.hpp"
#include "agent/etcd/client.hpp"
#include "agent/etcd/completion_bridge.hpp"
#include "agent/runtime/admin_server.hpp"
#include "agent/runtime/coro.hpp"
#include "agent/runtime/file_watch.hpp"
#include "agent/runtime/config_mirror.hpp"
#include "agent/runtime/discovery.hpp"
#include "agent/runtime/health_monitor.hpp"
#include "agent/runtime/registrar.hpp"

namespace sidecar::daemon {

namespace asio = boost::asio;

namespace {

// SIGTERM must end the process within 1 s even with etcd gone: the revoke gets most of it, the rest is
// cancelling and draining, which does not wait on the network.
constexpr std::chrono::milliseconds kRevokeBudget{600};
constexpr std::chrono::milliseconds kHardStop{900};
// With a drain delay, how long to wait for etcd to confirm the deletes before the delay starts anyway.
constexpr std::chrono::milliseconds kWithdrawBudget{1000};

void print_dev_banner(const core::Manifest& m) {
  std::cout << "\netcd-sidecar is running (dev mode). Registered keys:\n";
  for (const auto& s : m.services) std::cout << "  " << m.key_of(s) << "\n";
  std::cout << "Look at them with:\n  ETCDCTL_API=3 etcdctl --endpoints=" << m.etcd.endpoints.front()
            << " get --prefix " << m.etcd.prefix << "/\n";
  for (const auto& d : m.discover) std::cout << "Discovered " << d.service << " instances: " << d.output << "\n";
  std::cout << "Ctrl-C deregisters and stops.\n" << std::endl;
}


// Templates are read at start and at every reload: a missing or broken one is a config error, not a
// runtime surprise. One entry per discovery (empty for the other formats).
bool load_templates(const core::Manifest& manifest, std::vector<std::string>* templates) {
  templates->clear();
  for (const auto& d : manifest.discover) {
    std::string text;
    if (d.format == core::OutputFormat::kTemplate) {
      std::ifstream in(d.template_path, std::ios::binary);
      if (!in) {
        spdlog::error("{}:{}: discover {}: template: cannot read {}", manifest.source, d.where.line, d.service,
                      d.template_path);
        return false;
      }
      text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      if (auto err = output::validate_template(text)) {
        spdlog::error("{}:{}: discover {}: template {}: {}", manifest.source, d.where.line, d.service,
                      d.template_path, *err);
        return false;
      }
    }
    templates->push_back(std::move(text));
  }
  return true;
}

std::string monotonic_usec() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::to_string(static_cast<uint64_t>(ts.tv_sec) * 1000000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u);
}

// Owns every component of one running agent, so a reload can add and remove them while the shutdown and
// handover paths see the current set.
class Agent {
 public:
  explicit Agent(AgentOptions options)
      : options_(std::move(options)), manifest_(options_.manifest), io_(1), writer_(1), hard_stop_(io_),
        drain_delay_(io_), signals_(io_, SIGINT, SIGTERM, SIGHUP) {
    if (options_.manifest_path.empty()) options_.manifest_path = manifest_.source;
  }
  int run();

 private:
  // One manifest service: its key in the registrar (stable across reloads) and its checks.
  struct ServiceSlot {
    size_t key_index = 0;
    std::unique_ptr<runtime::HealthMonitor> health;
  };

  void ensure_registrar(std::vector<core::DesiredKey> keys);
  std::unique_ptr<runtime::HealthMonitor> make_health(const core::ServiceSpec& spec, size_t key_index);
  std::unique_ptr<runtime::Discovery> make_discovery(const core::Manifest& m, size_t i, const std::string& tmpl);
  std::unique_ptr<runtime::ConfigMirror> make_mirror(const core::ConfigSpec& spec);
  void stop_health();
  void on_ready();
  SnapshotSources sources() const;
  void setup_admin();
  void on_signal(const boost::system::error_code& ec, int signo);
  void deregister();
  void reload(const std::string& trigger);
  std::string reload_trigger_ = "SIGHUP";
  std::unique_ptr<runtime::FileWatch> manifest_watch_;
  bool apply_reload(core::Manifest next);
  asio::awaitable<void> shutdown_sequence();
  asio::awaitable<void> drain_then(std::chrono::milliseconds delay);
  void handover();

  AgentOptions options_;
  core::Manifest manifest_;  // what is running now: replaced by a successful reload
  std::vector<std::string> templates_;
  asio::io_context io_;
  // File writes (fsync) run here, off the event loop, so a slow disk never delays a keepalive.
  asio::thread_pool writer_;
  double start_time_unix_ = 0;
  bool shutting_down_ = false;
  bool ready_ = false;
  std::unique_ptr<etcd::Client> client_;
  std::unique_ptr<runtime::AdminServer> admin_;
  std::optional<LeaseStateFile> state_file_;
  bool lease_recorded_ = false;
  std::unique_ptr<runtime::Registrar> registrar_;
  // One completion queue (and poller thread) for every service's gRPC checks; outlives the monitors.
  std::unique_ptr<etcd::CompletionBridge> check_bridge_;
  std::vector<ServiceSlot> services_;  // in manifest order
  std::vector<std::unique_ptr<runtime::Discovery>> discoveries_;
  std::vector<std::unique_ptr<runtime::ConfigMirror>> mirrors_;
  // Stopped by a reload; kept until the loop ends because their coroutines may still hold them.
  std::vector<std::unique_ptr<runtime::HealthMonitor>> retired_health_;
  std::vector<std::unique_ptr<runtime::Discovery>> retired_discoveries_;
  std::vector<std::unique_ptr<runtime::ConfigMirror>> retired_mirrors_;
  core::ConfigVersion config_;
  uint64_t reloads_ = 0;
  uint64_t reload_failures_ = 0;
  std::unique_ptr<Watchdog> watchdog_;
  int exit_code_ = kExitOk;
  asio::steady_timer hard_stop_;
  asio::steady_timer drain_delay_;
  asio::signal_set signals_;
};

void Agent::on_ready() {
  if (ready_) return;
  ready_ = true;
  sd_notify("READY=1\nSTATUS=registered " + std::to_string(manifest_.services.size()) + " key(s)");
  if (options_.dev) print_dev_banner(manifest_);
}

// Restart without a gap: the lease is recorded per manifest; a process started after a crash, kill -9 or
// SIGQUIT adopts it. The file is only touched on the writer thread (FIFO), so a late record cannot follow
// the removal after a clean stop. Without services there is no registrar (and no lease) until a reload
// adds the first one.
void Agent::ensure_registrar(std::vector<core::DesiredKey> keys) {
  if (registrar_) return;
  std::optional<int64_t> previous_lease;
  if (!options_.state_dir.empty()) {
    state_file_.emplace(options_.state_dir, manifest_.source, manifest_.etcd.endpoints);
    previous_lease = state_file_->read_previous();
  }
  auto on_lease = [this](int64_t lease) {
    if (!state_file_) return;
    asio::post(writer_, [this, lease] {
      const bool ok = state_file_->record(lease);
      asio::post(io_, [this, ok] { lease_recorded_ = ok; });
    });
  };
  core::RegistrationOptions reg_options;
  reg_options.ttl = std::chrono::duration_cast<std::chrono::seconds>(manifest_.lease_ttl);
  registrar_ = std::make_unique<runtime::Registrar>(io_, *client_, std::move(keys), reg_options,
                                                    runtime::RegistrarHooks{[this] { on_ready(); }, on_lease});
  registrar_->start(previous_lease);
}

// Checks gate the keys: a service's key is published only while all of its checks pass. One monitor per
// service, so a reload restarts exactly the checks of the services it changed.
std::unique_ptr<runtime::HealthMonitor> Agent::make_health(const core::ServiceSpec& spec, size_t key_index) {
  core::Manifest one;
  one.etcd.prefix = manifest_.etcd.prefix;
  one.services.push_back(spec);
  for (const auto& c : spec.checks) {
    if (c.type == core::CheckType::kGrpc && !check_bridge_) check_bridge_ = std::make_unique<etcd::CompletionBridge>(io_);
  }
  return std::make_unique<runtime::HealthMonitor>(
      io_, one,
      [this, key_index](size_t, bool healthy, const std::string& reason) {
        if (registrar_) registrar_->set_service_healthy(key_index, healthy, reason);
      },
      check_bridge_.get());
}

std::unique_ptr<runtime::Discovery> Agent::make_discovery(const core::Manifest& m, size_t i, const std::string& tmpl) {
  const auto& spec = m.discover[i];
  return std::make_unique<runtime::Discovery>(io_, *client_, writer_, spec, m.etcd.prefix, tmpl,
                                              core::self_ids(m, spec.service));
}

std::unique_ptr<runtime::ConfigMirror> Agent::make_mirror(const core::ConfigSpec& spec) {
  return std::make_unique<runtime::ConfigMirror>(io_, *client_, writer_, spec);
}

void Agent::stop_health() {
  for (auto& s : services_) s.health->stop();
}

SnapshotSources Agent::sources() const {
  SnapshotSources src;
  src.manifest = &manifest_;
  src.registrar = registrar_.get();
  for (const auto& s : services_) src.services.push_back({s.key_index, s.health.get()});
  src.discoveries = &discoveries_;
  src.mirrors = &mirrors_;
  src.shutting_down = &shutting_down_;
  src.config = config_;
  src.start_time_unix = start_time_unix_;
  src.version = SIDECAR_VERSION;
  return src;
}

void Agent::setup_admin() {
  admin_->handlers().snapshot = [this] { return collect_snapshot(sources()); };
  admin_->handlers().metric_collectors.push_back(
      [this](std::vector<core::MetricFamily>& out) { collect_check_metrics(sources(), out); });
  admin_->handlers().metric_collectors.push_back([this](std::vector<core::MetricFamily>& out) {
    out.push_back({"etcd_sidecar_reloads_total", "Manifest reloads applied (SIGHUP)", core::MetricType::kCounter,
                   {{{}, static_cast<double>(reloads_)}}, {}});
    out.push_back({"etcd_sidecar_reload_failures_total",
                   "Manifest reloads rejected (invalid or unreadable manifest); the old one kept running",
                   core::MetricType::kCounter, {{{}, static_cast<double>(reload_failures_)}}, {}});
    out.push_back({"etcd_sidecar_config_info", "The running manifest; the value is always 1",
                   core::MetricType::kGauge, {{{{"path", config_.path}, {"hash", config_.hash}}, 1.0}}, {}});
  });
  admin_->handlers().status_decorators.push_back([this](nlohmann::json& doc) {
    doc["drained"] = registrar_ != nullptr && registrar_->drained();
    doc["reloads"] = {{"applied", reloads_}, {"failed", reload_failures_}};
  });
  // POST /v1/drain and /v1/undrain: the same as SIGUSR1/SIGUSR2, for a Kubernetes preStop hook.
  admin_->handlers().drain = [this](bool drain) {
    if (shutting_down_) return false;
    if (registrar_) registrar_->set_drained(drain, drain ? "POST /v1/drain" : "POST /v1/undrain");
    return true;
  };
  admin_->start();
}

// A plain member, not a lambda: a coroutine lambda's captures die with the temporary closure object.
asio::awaitable<void> Agent::shutdown_sequence() {
  if (manifest_watch_) manifest_watch_->stop();
  stop_health();
  for (auto& d : discoveries_) d->stop();
  for (auto& m : mirrors_) m->stop();
  if (registrar_) co_await registrar_->stop(kRevokeBudget);
  // The admin endpoint answers (readyz 503) until deregistration is done, then goes with the loop.
  if (admin_) admin_->stop();
  if (watchdog_) watchdog_->stop();
  client_->shutdown();
  hard_stop_.cancel();
  signals_.cancel();
}

// SIGTERM with a drain delay: take the keys out first (the lease stays, so nothing else moves), give the
// app `delay` to finish in-flight requests while clients notice, then deregister as usual.
asio::awaitable<void> Agent::drain_then(std::chrono::milliseconds delay) {
  stop_health();  // no check result may publish a key again
  const auto started = std::chrono::steady_clock::now();
  const bool withdrawn = co_await registrar_->withdraw_for_shutdown(kWithdrawBudget);
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
  if (withdrawn) {
    spdlog::info("keys deleted in {} ms; waiting drain_delay {} ms before revoking the lease", took.count(),
                 delay.count());
  } else {
    spdlog::warn("not every key could be deleted within {} ms; waiting drain_delay {} ms anyway", took.count(),
                 delay.count());
  }
  drain_delay_.expires_after(delay);
  boost::system::error_code ec;
  co_await drain_delay_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  deregister();
}

// SIGQUIT: exit for an upgrade. Nothing is deregistered: the lease (recorded in the state file) and its keys
// stay in etcd, alive for up to one TTL, and the next process adopts them.
void Agent::handover() {
  if (manifest_watch_) manifest_watch_->stop();
  for (auto& d : discoveries_) d->stop();
  for (auto& m : mirrors_) m->stop();
  if (registrar_) {
    const int64_t lease = registrar_->abandon();
    if (lease != 0 && lease_recorded_) {
      spdlog::info("SIGQUIT: leaving lease {} and {} key(s) in etcd for the next process", core::lease_to_hex(lease),
                   registrar_->state().live_key_count());
    } else if (lease != 0) {
      spdlog::warn("SIGQUIT: lease {} is not recorded in a state file; the next process registers on a new "
                   "lease and these keys expire with this one", core::lease_to_hex(lease));
    }
  }
  if (admin_) admin_->stop();
  if (watchdog_) watchdog_->stop();
  client_->shutdown();
  hard_stop_.cancel();
  signals_.cancel();
}

// Arms the backstop and deregisters; with a drain delay this runs once the delay is over, so the revoke
// budget and the hard stop are measured from there.
void Agent::deregister() {
  hard_stop_.expires_after(kHardStop);
  hard_stop_.async_wait([this](const boost::system::error_code& e) {
    if (e) return;
    spdlog::warn("shutdown took longer than {} ms; stopping the loop", kHardStop.count());
    io_.stop();
  });
  runtime::spawn_owned(io_, "shutdown", shutdown_sequence());
}

void Agent::reload(const std::string& trigger) {
  reload_trigger_ = trigger;
  // Type=notify-reload wants MONOTONIC_USEC with RELOADING=1; older systemd ignores it.
  sd_notify("RELOADING=1\nMONOTONIC_USEC=" + monotonic_usec());
  // Certificates: new etcd connections use the files as they are now (even when the manifest is rejected).
  if (std::string tls_error; !client_->reload_tls(&tls_error)) spdlog::warn("{}: etcd TLS files: {}", reload_trigger_, tls_error);
  spdlog::info("{}: reloading {}", reload_trigger_, options_.manifest_path);
  auto parsed = core::load_manifest(options_.manifest_path, core::process_env());
  for (const auto& w : parsed.warnings) spdlog::warn("{}", w);
  bool ok = parsed.ok();
  if (!ok) {
    for (const auto& e : parsed.errors) spdlog::error("{}", e.to_string());
    spdlog::error("{}: reload rejected: {} error(s) in {}; the running configuration is unchanged", reload_trigger_,
                  parsed.errors.size(), options_.manifest_path);
  } else {
    ok = apply_reload(std::move(*parsed.manifest));
  }
  if (!ok) ++reload_failures_;
  sd_notify(std::string("READY=1\nSTATUS=") + (ok ? "reloaded " : "reload rejected, running ") +
            std::to_string(manifest_.services.size()) + " service(s)");
}

bool Agent::apply_reload(core::Manifest next) {
  if (options_.adjust) options_.adjust(next);
  // The etcd connection, the lease and the admin listener belong to the process: changing them live would
  // mean a new lease (a gap) or a dropped listener. The rest is applied; these wait for a restart.
  const auto restart_only = core::restart_only_changes(manifest_, next);
  if (!restart_only.empty()) {
    std::string fields;
    for (const auto& f : restart_only) fields += (fields.empty() ? "" : ", ") + f;
    spdlog::warn("{}: {} changed; these need a restart (systemctl restart), the running values are kept "
                 "and the rest is applied", reload_trigger_, fields);
  }
  core::keep_restart_only_settings(manifest_, next);
  std::vector<std::string> templates;
  if (!load_templates(next, &templates)) {
    spdlog::error("{}: reload rejected; the running configuration is unchanged", reload_trigger_);
    return false;
  }
  const core::ManifestDiff diff = core::diff_manifests(manifest_, next, templates_, templates);

  // Services. Removed ones first, so an id that moved between names never overlaps itself.
  for (size_t o : diff.services_removed) {
    services_[o].health->stop();
    retired_health_.push_back(std::move(services_[o].health));
    spdlog::info("reload: removing {}", manifest_.key_of(manifest_.services[o]));
    registrar_->remove_key(services_[o].key_index);
  }
  std::vector<ServiceSlot> services(next.services.size());
  std::vector<size_t> start_checks;
  for (const auto& k : diff.services_kept) {
    ServiceSlot& slot = services[k.new_index];
    slot = std::move(services_[k.old_index]);
    const core::ServiceSpec& spec = next.services[k.new_index];
    if (k.value_changed) {
      spdlog::info("reload: {} changed; rewriting it on the same lease", next.key_of(spec));
      registrar_->update_value(slot.key_index, core::encode_registration(spec));
    }
    if (k.checks_changed) {
      spdlog::info("reload: {}: checks changed; restarting its checks", next.key_of(spec));
      slot.health->stop();
      retired_health_.push_back(std::move(slot.health));
      slot.health = make_health(spec, slot.key_index);
      registrar_->set_service_healthy(slot.key_index, runtime::HealthMonitor::initially_healthy(spec),
                                      "checks changed by a reload");
      start_checks.push_back(k.new_index);
    }
  }
  for (size_t n : diff.services_added) {
    const core::ServiceSpec& spec = next.services[n];
    core::DesiredKey key{next.key_of(spec), core::encode_registration(spec),
                         runtime::HealthMonitor::initially_healthy(spec)};
    spdlog::info("reload: adding {}", key.key);
    if (!registrar_) {
      ensure_registrar({key});
      services[n].key_index = 0;
    } else {
      services[n].key_index = registrar_->add_key(std::move(key));
    }
    services[n].health = make_health(spec, services[n].key_index);
    start_checks.push_back(n);
  }
  services_ = std::move(services);

  // Discoveries and config mirrors: an unchanged one keeps running (no resync, no rewrite); a changed one
  // is a removed one plus an added one. A removed one stops; its file stays as it was.
  std::vector<std::unique_ptr<runtime::Discovery>> discoveries(next.discover.size());
  for (size_t o : diff.discover_removed) {
    spdlog::info("reload: discover {} -> {} removed; the file is left as it is", manifest_.discover[o].service,
                 manifest_.discover[o].output);
    discoveries_[o]->stop();
    retired_discoveries_.push_back(std::move(discoveries_[o]));
  }
  for (const auto& k : diff.discover_kept) discoveries[k.new_index] = std::move(discoveries_[k.old_index]);
  for (size_t n : diff.discover_added) {
    spdlog::info("reload: discover {} -> {} added", next.discover[n].service, next.discover[n].output);
    discoveries[n] = make_discovery(next, n, templates[n]);
  }
  std::vector<std::unique_ptr<runtime::ConfigMirror>> mirrors(next.config.size());
  for (size_t o : diff.config_removed) {
    spdlog::info("reload: config mirror -> {} removed; the file is left as it is", manifest_.config[o].output);
    mirrors_[o]->stop();
    retired_mirrors_.push_back(std::move(mirrors_[o]));
  }
  for (const auto& k : diff.config_kept) mirrors[k.new_index] = std::move(mirrors_[k.old_index]);
  for (size_t n : diff.config_added) {
    spdlog::info("reload: config mirror -> {} added", next.config[n].output);
    mirrors[n] = make_mirror(next.config[n]);
  }

  manifest_ = std::move(next);
  templates_ = std::move(templates);
  discoveries_ = std::move(discoveries);
  mirrors_ = std::move(mirrors);
  for (size_t n : start_checks) services_[n].health->start();
  for (size_t n : diff.discover_added) discoveries_[n]->start();
  for (size_t n : diff.config_added) mirrors_[n]->start();
  config_ = read_config_version(options_.manifest_path);
  ++reloads_;
  spdlog::info("{}: reload applied ({}{}); config {}", reload_trigger_, diff.summary(),
               diff.drain_delay_changed ? ", drain_delay changed" : "", config_.hash);
  return true;
}

void Agent::on_signal(const boost::system::error_code& ec, int signo) {
  if (ec) return;
  auto again = [this] { signals_.async_wait([this](const boost::system::error_code& e, int s) { on_signal(e, s); }); };
  if (signo == SIGHUP) {
    if (shutting_down_) {
      spdlog::info("SIGHUP: ignored, the agent is shutting down");
    } else {
      reload("SIGHUP");
    }
    again();
    return;
  }
  if (signo == SIGUSR1 || signo == SIGUSR2) {
    const bool drain = signo == SIGUSR1;
    const std::string reason = drain ? "SIGUSR1" : "SIGUSR2";
    if (registrar_) {
      registrar_->set_drained(drain, reason);
    } else {
      spdlog::info("{}: nothing to {}, no services are registered", reason, drain ? "drain" : "undrain");
    }
    again();
    return;
  }
  if (shutting_down_) {
    spdlog::warn("second signal ({}): exiting at once", strsignal(signo));
    std::_Exit(kExitFailure);
  }
  shutting_down_ = true;
  again();  // listen for the second one
  if (signo == SIGQUIT) {
    sd_notify("STOPPING=1");
    exit_code_ = kExitHandover;
    stop_health();  // its loops would keep the io_context running
    // By way of the writer thread: a lease record still queued there is written (and reports back to
    // this thread) before the handover looks at lease_recorded_.
    asio::post(writer_, [this] { asio::post(io_, [this] { handover(); }); });
    return;
  }
  sd_notify("STOPPING=1");
  if (registrar_ && manifest_.drain_delay.count() > 0) {
    spdlog::info("{} received: withdrawing keys, then deregistering after drain_delay {} ms (send it again to exit at once)",
                 strsignal(signo), manifest_.drain_delay.count());
    runtime::spawn_owned(io_, "drain before shutdown", drain_then(manifest_.drain_delay));
    return;
  }
  spdlog::info("{} received: deregistering", strsignal(signo));
  deregister();
}

int Agent::run() {
  if (!load_templates(manifest_, &templates_)) return kExitConfig;
  start_time_unix_ = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();

  const etcd::ClientOptions client_options = etcd::client_options_from(manifest_.etcd);
  std::string error;
  client_ = etcd::Client::create(io_, client_options, &error);
  if (!client_) {
    spdlog::error("{}: etcd: {}", manifest_.source, error);
    return kExitConfig;
  }

  // Bound before anything touches etcd: a taken port fails the start without registering anything.
  if (manifest_.admin.enabled) {
    runtime::AdminServerOptions admin_options;
    admin_options.host = manifest_.admin.host;
    admin_options.port = manifest_.admin.port;
    admin_ = runtime::AdminServer::bind(io_, admin_options, {}, &error);
    if (!admin_) {
      spdlog::error("admin endpoint: cannot listen on {} (set admin.listen in {}, or admin.enabled: false)", error,
                    manifest_.source);
      return kExitAdminBind;
    }
  }

  std::vector<core::DesiredKey> keys;
  for (const auto& s : manifest_.services) {
    keys.push_back({manifest_.key_of(s), core::encode_registration(s), runtime::HealthMonitor::initially_healthy(s)});
  }
  // The registrar's first keys are the manifest's services, in order.
  for (size_t i = 0; i < manifest_.services.size(); ++i) services_.push_back({i, nullptr});
  if (!keys.empty()) {
    ensure_registrar(std::move(keys));
  } else {
    on_ready();
  }
  for (size_t i = 0; i < manifest_.services.size(); ++i) {
    services_[i].health = make_health(manifest_.services[i], i);
    services_[i].health->start();
  }

  for (size_t i = 0; i < manifest_.discover.size(); ++i) {
    discoveries_.push_back(make_discovery(manifest_, i, templates_[i]));
    discoveries_.back()->start();
  }
  for (const auto& spec : manifest_.config) {
    mirrors_.push_back(make_mirror(spec));
    mirrors_.back()->start();
  }

  config_ = read_config_version(options_.manifest_path);
  if (admin_) setup_admin();
  if (const auto interval = Watchdog::interval_from_env()) {
    watchdog_ = std::make_unique<Watchdog>(io_, *interval);
    watchdog_->start();
  }

  signals_.add(SIGQUIT);
  signals_.add(SIGUSR1);
  signals_.add(SIGUSR2);
  signals_.async_wait([this](const boost::system::error_code& e, int s) { on_signal(e, s); });
  if (options_.watch_manifest) {
    // Reload without a signal (a Kubernetes ConfigMap update, an edit in place): the same path as SIGHUP.
    std::string watch_error;
    manifest_watch_ = runtime::FileWatch::create(
        io_, options_.manifest_path, std::chrono::milliseconds(500),
        [this] {
          if (!shutting_down_) reload("manifest file changed");
        },
        &watch_error);
    if (manifest_watch_) {
      manifest_watch_->start();
      spdlog::info("watching {} for changes (reload without SIGHUP)", options_.manifest_path);
    } else {
      spdlog::warn("--watch-manifest: {}; reload with SIGHUP instead", watch_error);
    }
  }

  io_.run();
  // After a clean deregistration the recorded lease is revoked: nothing for a successor to adopt.
  if (state_file_ && exit_code_ == kExitOk) asio::post(writer_, [this] { state_file_->remove(); });
  writer_.join();
  return exit_code_;
}

}  // namespace

int run_agent(AgentOptions options) {
  Agent agent(std::move(options));
  return agent.run();
}

}  // namespace sidecar::daemon
