#include "agent/daemon/agent.hpp"

#include <unistd.h>

#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <csignal>
#include <fstream>
#include <iostream>
#include <set>

#include "agent/core/instance.hpp"
#include "agent/output/render.hpp"
#include "agent/daemon/exit_codes.hpp"
#include "agent/daemon/sd_notify.hpp"
#include "agent/etcd/client.hpp"
#include "agent/runtime/coro.hpp"
#include "agent/runtime/config_mirror.hpp"
#include "agent/runtime/discovery.hpp"
#include "agent/runtime/registrar.hpp"

namespace sidecar::daemon {

namespace asio = boost::asio;

namespace {

// SIGTERM must end the process within 1 s even with etcd gone: the revoke gets most of it, the rest is
// cancelling and draining, which does not wait on the network.
constexpr std::chrono::milliseconds kRevokeBudget{600};
constexpr std::chrono::milliseconds kHardStop{900};

void print_dev_banner(const core::Manifest& m) {
  std::cout << "\netcd-sidecar is running (dev mode). Registered keys:\n";
  for (const auto& s : m.services) std::cout << "  " << m.key_of(s) << "\n";
  std::cout << "Look at them with:\n  ETCDCTL_API=3 etcdctl --endpoints=" << m.etcd.endpoints.front()
            << " get --prefix " << m.etcd.prefix << "/\n";
  for (const auto& d : m.discover) std::cout << "Discovered " << d.service << " instances: " << d.output << "\n";
  std::cout << "Ctrl-C deregisters and stops.\n" << std::endl;
}

// A plain function, not a lambda: a coroutine lambda's captures die with the temporary closure object.
asio::awaitable<void> shutdown_sequence(runtime::Registrar* registrar, etcd::Client* client,
                                        std::vector<std::unique_ptr<runtime::Discovery>>* discoveries,
                                        std::vector<std::unique_ptr<runtime::ConfigMirror>>* mirrors,
                                        asio::steady_timer* hard_stop, asio::signal_set* signals) {
  for (auto& d : *discoveries) d->stop();
  for (auto& m : *mirrors) m->stop();
  if (registrar) co_await registrar->stop(kRevokeBudget);
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
  // File writes (fsync) run here, off the event loop, so a slow disk never delays a keepalive.
  asio::thread_pool writer(1);

  const etcd::ClientOptions client_options = etcd::client_options_from(manifest.etcd);
  std::string error;
  auto client = etcd::Client::create(io, client_options, &error);
  if (!client) {
    spdlog::error("{}: etcd: {}", manifest.source, error);
    return kExitConfig;
  }

  std::vector<core::DesiredKey> keys;
  for (const auto& s : manifest.services) keys.push_back({manifest.key_of(s), core::encode_registration(s)});
  core::RegistrationOptions reg_options;
  reg_options.ttl = std::chrono::duration_cast<std::chrono::seconds>(manifest.lease_ttl);

  bool ready = false;
  auto on_ready = [&] {
    ready = true;
    sd_notify("READY=1\nSTATUS=registered " + std::to_string(keys.size()) + " key(s)");
    if (options.dev) print_dev_banner(manifest);
  };
  std::unique_ptr<runtime::Registrar> registrar;
  if (!keys.empty()) {
    registrar = std::make_unique<runtime::Registrar>(io, *client, keys, reg_options, runtime::RegistrarHooks{on_ready});
    registrar->start();
  } else {
    on_ready();
  }

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

  int exit_code = kExitOk;
  bool shutting_down = false;
  asio::steady_timer hard_stop(io);
  asio::signal_set signals(io, SIGINT, SIGTERM, SIGHUP);
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
    if (shutting_down) {
      spdlog::warn("second signal ({}): exiting at once", strsignal(signo));
      std::_Exit(kExitFailure);
    }
    shutting_down = true;
    signals.async_wait(on_signal);  // listen for the second one
    spdlog::info("{} received: deregistering", strsignal(signo));
    sd_notify("STOPPING=1");
    // A backstop: whatever is still running after this has had its chance.
    hard_stop.expires_after(kHardStop);
    hard_stop.async_wait([&](const boost::system::error_code& e) {
      if (e) return;
      spdlog::warn("shutdown took longer than {} ms; stopping the loop", kHardStop.count());
      io.stop();
    });
    runtime::spawn_owned(io, "shutdown", shutdown_sequence(registrar.get(), client.get(), &discoveries, &mirrors, &hard_stop, &signals));
  };
  signals.async_wait(on_signal);

  io.run();
  writer.join();
  (void)ready;
  return exit_code;
}

}  // namespace sidecar::daemon
