#include "agent/daemon/agent.hpp"

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
#include "agent/output/render.hpp"
#include "agent/daemon/exit_codes.hpp"
#include "agent/daemon/lease_state_file.hpp"
#include "agent/daemon/sd_notify.hpp"
#include "agent/daemon/snapshot.hpp"
#include "agent/daemon/watchdog.hpp"
#include "agent/etcd/client.hpp"
#include "agent/runtime/admin_server.hpp"
#include "agent/runtime/coro.hpp"
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

// A plain function, not a lambda: a coroutine lambda's captures die with the temporary closure object.
asio::awaitable<void> shutdown_sequence(runtime::Registrar* registrar, runtime::HealthMonitor* health,
                                        etcd::Client* client,
                                        std::vector<std::unique_ptr<runtime::Discovery>>* discoveries,
                                        std::vector<std::unique_ptr<runtime::ConfigMirror>>* mirrors,
                                        asio::steady_timer* hard_stop, asio::signal_set* signals,
                                        runtime::AdminServer* admin, Watchdog* watchdog) {
  health->stop();
  for (auto& d : *discoveries) d->stop();
  for (auto& m : *mirrors) m->stop();
  if (registrar) co_await registrar->stop(kRevokeBudget);
  // The admin endpoint answers (readyz 503) until deregistration is done, then goes with the loop.
  if (admin) admin->stop();
  if (watchdog) watchdog->stop();
  client->shutdown();
  hard_stop->cancel();
  signals->cancel();
}

// SIGTERM with a drain delay: take the keys out first (the lease stays, so nothing else moves), give the
// app `delay` to finish in-flight requests while clients notice, then run `then` (the usual deregistration).
asio::awaitable<void> drain_then(runtime::Registrar* registrar, runtime::HealthMonitor* health,
                                 std::chrono::milliseconds delay, asio::steady_timer* timer,
                                 std::function<void()> then) {
  health->stop();  // no check result may publish a key again
  const auto started = std::chrono::steady_clock::now();
  const bool withdrawn = co_await registrar->withdraw_for_shutdown(kWithdrawBudget);
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
  if (withdrawn) {
    spdlog::info("keys deleted in {} ms; waiting drain_delay {} ms before revoking the lease", took.count(),
                 delay.count());
  } else {
    spdlog::warn("not every key could be deleted within {} ms; waiting drain_delay {} ms anyway", took.count(),
                 delay.count());
  }
  timer->expires_after(delay);
  boost::system::error_code ec;
  co_await timer->async_wait(asio::redirect_error(asio::use_awaitable, ec));
  then();
}

// SIGQUIT: exit for an upgrade. Nothing is deregistered: the lease (recorded in the state file) and its keys
// stay in etcd, alive for up to one TTL, and the next process adopts them.
void handover(runtime::Registrar* registrar, etcd::Client* client,
              std::vector<std::unique_ptr<runtime::Discovery>>* discoveries,
              std::vector<std::unique_ptr<runtime::ConfigMirror>>* mirrors, asio::steady_timer* hard_stop,
              asio::signal_set* signals, runtime::AdminServer* admin, Watchdog* watchdog, bool recorded) {
  for (auto& d : *discoveries) d->stop();
  for (auto& m : *mirrors) m->stop();
  if (registrar) {
    const int64_t lease = registrar->abandon();
    if (lease != 0 && recorded) {
      spdlog::info("SIGQUIT: leaving lease {} and {} key(s) in etcd for the next process", core::lease_to_hex(lease),
                   registrar->state().key_count());
    } else if (lease != 0) {
      spdlog::warn("SIGQUIT: lease {} is not recorded in a state file; the next process registers on a new "
                   "lease and these keys expire with this one", core::lease_to_hex(lease));
    }
  }
  if (admin) admin->stop();
  if (watchdog) watchdog->stop();
  client->shutdown();
  hard_stop->cancel();
  signals->cancel();
}

}  // namespace

int run_agent(AgentOptions options) {
  const core::Manifest& manifest = options.manifest;
  // Templates are read once at start: a missing or broken one is a config error, not a runtime surprise.
  std::vector<std::string> templates;
  for (const auto& d : manifest.discover) {
    std::string text;
    if (d.format == core::OutputFormat::kTemplate) {
      std::ifstream in(d.template_path, std::ios::binary);
      if (!in) {
        spdlog::error("{}:{}: discover {}: template: cannot read {}", manifest.source, d.where.line, d.service,
                      d.template_path);
        return kExitConfig;
      }
      text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      if (auto err = output::validate_template(text)) {
        spdlog::error("{}:{}: discover {}: template {}: {}", manifest.source, d.where.line, d.service,
                      d.template_path, *err);
        return kExitConfig;
      }
    }
    templates.push_back(std::move(text));
  }

  asio::io_context io(1);
  const double start_time_unix =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  bool shutting_down = false;
  // File writes (fsync) run here, off the event loop, so a slow disk never delays a keepalive.
  asio::thread_pool writer(1);

  const etcd::ClientOptions client_options = etcd::client_options_from(manifest.etcd);
  std::string error;
  auto client = etcd::Client::create(io, client_options, &error);
  if (!client) {
    spdlog::error("{}: etcd: {}", manifest.source, error);
    return kExitConfig;
  }

  // Bound before anything touches etcd: a taken port fails the start without registering anything.
  std::unique_ptr<runtime::AdminServer> admin;
  if (manifest.admin.enabled) {
    runtime::AdminServerOptions admin_options;
    admin_options.host = manifest.admin.host;
    admin_options.port = manifest.admin.port;
    admin = runtime::AdminServer::bind(io, admin_options, {}, &error);
    if (!admin) {
      spdlog::error("admin endpoint: cannot listen on {} (set admin.listen in {}, or admin.enabled: false)", error,
                    manifest.source);
      return kExitAdminBind;
    }
  }

  std::vector<core::DesiredKey> keys;
  for (const auto& s : manifest.services) {
    keys.push_back({manifest.key_of(s), core::encode_registration(s), runtime::HealthMonitor::initially_healthy(s)});
  }
  core::RegistrationOptions reg_options;
  reg_options.ttl = std::chrono::duration_cast<std::chrono::seconds>(manifest.lease_ttl);

  bool ready = false;
  auto on_ready = [&] {
    ready = true;
    sd_notify("READY=1\nSTATUS=registered " + std::to_string(keys.size()) + " key(s)");
    if (options.dev) print_dev_banner(manifest);
  };
  // Restart without a gap: the lease is recorded per manifest; a process started after a crash, kill -9 or
  // SIGQUIT adopts it. The file is only touched on the writer thread (FIFO), so a late record cannot follow
  // the removal after a clean stop.
  std::optional<LeaseStateFile> state_file;
  std::optional<int64_t> previous_lease;
  bool lease_recorded = false;
  if (!keys.empty() && !options.state_dir.empty()) {
    state_file.emplace(options.state_dir, manifest.source, manifest.etcd.endpoints);
    previous_lease = state_file->read_previous();
  }
  auto on_lease = [&](int64_t lease) {
    if (!state_file) return;
    asio::post(writer, [&state_file, &io, &lease_recorded, lease] {
      const bool ok = state_file->record(lease);
      asio::post(io, [&lease_recorded, ok] { lease_recorded = ok; });
    });
  };
  std::unique_ptr<runtime::Registrar> registrar;
  if (!keys.empty()) {
    registrar = std::make_unique<runtime::Registrar>(io, *client, keys, reg_options,
                                                     runtime::RegistrarHooks{on_ready, on_lease});
    registrar->start(previous_lease);
  } else {
    on_ready();
  }
  // Checks gate the keys: a service's key is published only while all of its checks pass.
  runtime::HealthMonitor health(io, manifest, [&registrar](size_t service, bool healthy, const std::string& reason) {
    if (registrar) registrar->set_service_healthy(service, healthy, reason);
  });
  health.start();

  std::vector<std::unique_ptr<runtime::Discovery>> discoveries;
  for (size_t i = 0; i < manifest.discover.size(); ++i) {
    const auto& spec = manifest.discover[i];
    std::set<std::string> self_ids;
    for (const auto& s : manifest.services) {
      if (s.name == spec.service) self_ids.insert(s.id);
    }
    discoveries.push_back(std::make_unique<runtime::Discovery>(io, *client, writer, spec, manifest.etcd.prefix,
                                                               templates[i], std::move(self_ids)));
    discoveries.back()->start();
  }
  std::vector<std::unique_ptr<runtime::ConfigMirror>> mirrors;
  for (const auto& spec : manifest.config) {
    mirrors.push_back(std::make_unique<runtime::ConfigMirror>(io, *client, writer, spec));
    mirrors.back()->start();
  }

  if (admin) {
    SnapshotSources sources;
    sources.manifest = &manifest;
    sources.registrar = registrar.get();
    sources.health = &health;
    sources.discoveries = &discoveries;
    sources.mirrors = &mirrors;
    sources.shutting_down = &shutting_down;
    sources.config = read_config_version(manifest.source);
    sources.start_time_unix = start_time_unix;
    sources.version = SIDECAR_VERSION;
    admin->handlers().snapshot = [sources] { return collect_snapshot(sources); };
    admin->handlers().metric_collectors.push_back(
        [sources](std::vector<core::MetricFamily>& out) { collect_check_metrics(sources, out); });
    admin->handlers().status_decorators.push_back([r = registrar.get()](nlohmann::json& doc) {
      doc["drained"] = r != nullptr && r->drained();
    });
    // POST /v1/drain and /v1/undrain: the same as SIGUSR1/SIGUSR2, for a Kubernetes preStop hook.
    admin->handlers().drain = [r = registrar.get(), &shutting_down](bool drain) {
      if (shutting_down) return false;
      if (r != nullptr) r->set_drained(drain, drain ? "POST /v1/drain" : "POST /v1/undrain");
      return true;
    };
    admin->start();
  }
  std::unique_ptr<Watchdog> watchdog;
  if (const auto interval = Watchdog::interval_from_env()) {
    watchdog = std::make_unique<Watchdog>(io, *interval);
    watchdog->start();
  }

  int exit_code = kExitOk;
  asio::steady_timer hard_stop(io);
  asio::steady_timer drain_delay(io);
  asio::signal_set signals(io, SIGINT, SIGTERM, SIGHUP);
  signals.add(SIGQUIT);
  signals.add(SIGUSR1);
  signals.add(SIGUSR2);
  // Arms the backstop and deregisters; with a drain delay this runs once the delay is over, so the
  // revoke budget and the hard stop are measured from there.
  auto deregister = [&] {
    hard_stop.expires_after(kHardStop);
    hard_stop.async_wait([&](const boost::system::error_code& e) {
      if (e) return;
      spdlog::warn("shutdown took longer than {} ms; stopping the loop", kHardStop.count());
      io.stop();
    });
    runtime::spawn_owned(io, "shutdown", shutdown_sequence(registrar.get(), &health, client.get(), &discoveries,
                                                           &mirrors, &hard_stop, &signals, admin.get(),
                                                           watchdog.get()));
  };
  std::function<void(const boost::system::error_code&, int)> on_signal;
  on_signal = [&](const boost::system::error_code& ec, int signo) {
    if (ec) return;
    if (signo == SIGHUP) {
      // Live reload is not implemented yet. SIGHUP's default action would kill the agent (and a unit's
      // ExecReload would take the registration down with it), so it is caught and said plainly.
      spdlog::warn("SIGHUP: live reload is not supported yet; restart the agent to apply manifest changes");
      // Certificates are the exception: new etcd connections use the files as they are now.
      if (std::string tls_error; !client->reload_tls(&tls_error)) spdlog::warn("SIGHUP: etcd TLS files: {}", tls_error);
      signals.async_wait(on_signal);
      return;
    }
    if (signo == SIGUSR1 || signo == SIGUSR2) {
      const bool drain = signo == SIGUSR1;
      const std::string reason = drain ? "SIGUSR1" : "SIGUSR2";
      if (registrar) {
        registrar->set_drained(drain, reason);
      } else {
        spdlog::info("{}: nothing to {}, no services are registered", reason, drain ? "drain" : "undrain");
      }
      signals.async_wait(on_signal);
      return;
    }
    if (shutting_down) {
      spdlog::warn("second signal ({}): exiting at once", strsignal(signo));
      std::_Exit(kExitFailure);
    }
    shutting_down = true;
    signals.async_wait(on_signal);  // listen for the second one
    if (signo == SIGQUIT) {
      sd_notify("STOPPING=1");
      exit_code = kExitHandover;
      health.stop();  // its loops would keep the io_context running
      // By way of the writer thread: a lease record still queued there is written (and reports back to
      // this thread) before the handover looks at lease_recorded.
      asio::post(writer, [&] {
        asio::post(io, [&] {
          handover(registrar.get(), client.get(), &discoveries, &mirrors, &hard_stop, &signals, admin.get(),
                   watchdog.get(), lease_recorded);
        });
      });
      return;
    }
    sd_notify("STOPPING=1");
    if (registrar && manifest.drain_delay.count() > 0) {
      spdlog::info("{} received: withdrawing keys, then deregistering after drain_delay {} ms (send it again to exit at once)",
                   strsignal(signo), manifest.drain_delay.count());
      runtime::spawn_owned(io, "drain before shutdown",
                           drain_then(registrar.get(), &health, manifest.drain_delay, &drain_delay, deregister));
      return;
    }
    spdlog::info("{} received: deregistering", strsignal(signo));
    deregister();
  };
  signals.async_wait(on_signal);

  io.run();
  // After a clean deregistration the recorded lease is revoked: nothing for a successor to adopt.
  if (state_file && exit_code == kExitOk) asio::post(writer, [&state_file] { state_file->remove(); });
  writer.join();
  (void)ready;
  return exit_code;
}

}  // namespace sidecar::daemon
