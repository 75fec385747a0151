#include "agent/daemon/agent.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <csignal>
#include <fstream>
#include <iostream>
#include <unistd.h>

#include "agent/core/instance.hpp"
#include "agent/core/manifest_diff.hpp"
#include "agent/daemon/agent_internal.hpp"
#include "agent/daemon/sd_notify.hpp"
#include "agent/daemon/startup_pages.hpp"
#include "agent/output/render.hpp"

namespace sidecar::daemon {

namespace {

void print_dev_banner(const core::Manifest& m) {
  std::cout << "\netcd-sidecar is running (dev mode). Registered keys:\n";
  for (const auto& s : m.services) std::cout << "  " << m.key_of(s) << "\n";
  std::cout << "Look at them with:\n  ETCDCTL_API=3 etcdctl --endpoints=" << m.etcd.endpoints.front()
            << " get --prefix " << m.etcd.prefix << "/\n";
  for (const auto& d : m.discover) std::cout << "Discovered " << d.service << " instances: " << d.output << "\n";
  std::cout << "Ctrl-C deregisters and stops.\n" << std::endl;
}

}  // namespace

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return {};
  return name;
}

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

Agent::Agent(AgentOptions options)
    : options_(std::move(options)),
      manifest_(options_.manifest),
      io_(1),
      writer_(1),
      exit_deadline_(io_),
      drain_delay_(io_),
      release_pages_(io_),
      signals_(io_, SIGINT, SIGTERM, SIGHUP),
      scope_(io_, "agent") {
  if (options_.manifest_path.empty()) options_.manifest_path = manifest_.source;
  // A loop that fails is a bug: the agent deregisters and exits kExitSoftware, and systemd's
  // Restart=on-failure starts it afresh, rather than running on with a dead loop.
  runtime::TaskScope::set_failure_handler(
      [this](const std::string& task, const std::string&) { asio::post(io_, [this, task] { on_loop_failure(task); }); });
}

Agent::~Agent() { runtime::TaskScope::set_failure_handler(nullptr); }

void Agent::on_ready() {
  if (ready_) return;
  ready_ = true;
  sd_notify("READY=1\nSTATUS=registered " + std::to_string(manifest_.services.size()) + " key(s)");
  if (options_.dev) print_dev_banner(manifest_);
  // 2 s: the first discovery syncs and file writes that follow registration are done by then.
  release_pages_.expires_after(std::chrono::seconds(2));
  release_pages_.async_wait([this](const boost::system::error_code& e) {
    if (e || shutting_down_) return;
    const ReleasedPages r = release_clean_file_pages();
    spdlog::debug("released {} kB of start-up pages from {} file mappings", r.resident_kb, r.mappings);
  });
}

// Restart without a gap: the lease is recorded per manifest; a process started after a crash, kill -9 or
// SIGQUIT adopts it. The file is only touched on the writer thread (FIFO), so a late record cannot follow
// the removal after a clean stop. Without services there is no registrar (and no lease) until a reload
// adds the first one.
void Agent::ensure_registrar(std::vector<core::DesiredKey> keys, const std::vector<const core::ServiceSpec*>& specs) {
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
  registrar_ = std::make_unique<runtime::Registrar>(io_, *port_, std::move(keys), reg_options,
                                                    runtime::RegistrarHooks{[this] { on_ready(); }, on_lease});
  // Before the first write: the value follows the state, and a service in maintenance is published as such.
  for (size_t i = 0; i < specs.size(); ++i) {
    registrar_->set_value_source(i, value_source(*specs[i]));
    if (in_maintenance(*specs[i])) registrar_->set_maintenance(i, true, "maintenance kept from before the start");
  }
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
      [this, key_index](size_t, core::HealthStatus status, const std::string& reason) {
        if (registrar_) registrar_->set_service_health(key_index, status, reason);
      },
      check_bridge_.get());
}

std::unique_ptr<runtime::Discovery> Agent::make_discovery(const core::Manifest& m, size_t i, const std::string& tmpl) {
  const auto& spec = m.discover[i];
  return std::make_unique<runtime::Discovery>(io_, *catalog_, writer_, spec, tmpl, core::self_ids(m, spec.service),
                                              m.agent.zone, host_name());
}

runtime::CatalogOptions Agent::catalog_options(const core::Manifest& m) {
  runtime::CatalogOptions options;
  options.etcd_prefix = m.etcd.prefix;
  options.limits = core::CatalogLimits{.idle_timeout = m.catalog.idle_timeout, .max_services = m.catalog.max_services};
  return options;
}

std::unique_ptr<runtime::ConfigMirror> Agent::make_mirror(const core::ConfigSpec& spec) {
  return std::make_unique<runtime::ConfigMirror>(io_, *port_, writer_, spec);
}

// Reload without a signal (a Kubernetes ConfigMap update, an edit in place): the same path as SIGHUP.
void Agent::watch_manifest_file() {
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

int Agent::run() {
  set_large_allocations_unmapped_on_free();
  if (!load_templates(manifest_, &templates_)) return kExitConfig;
  start_time_unix_ = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();

  std::string error;
  if (options_.etcd) {
    port_ = options_.etcd(io_);
  } else {
    client_ = etcd::Client::create(io_, etcd::client_options_from(manifest_.etcd), &error);
    if (!client_) {
      spdlog::error("{}: etcd: {}", manifest_.source, error);
      return kExitConfig;
    }
    port_ = std::make_unique<runtime::EtcdClientPort>(*client_);
  }

  // Made here (started below) so the xds and DNS listeners, bound before anything touches etcd (a taken port
  // fails the start cleanly), can serve from it.
  catalog_ = std::make_unique<runtime::Catalog>(io_, *port_, catalog_options(manifest_));

  std::string admin_token;
  if (manifest_.admin.enabled && !load_admin_token(manifest_, &admin_token)) return kExitConfig;
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
  if (!start_xds()) return kExitAdminBind;

  if (!bind_dns()) return kExitConfig;

  load_health_state();
  std::vector<core::DesiredKey> keys;
  std::vector<const core::ServiceSpec*> specs;
  for (const auto& s : manifest_.services) {
    keys.push_back(desired_key(s));
    specs.push_back(&s);
  }
  // The registrar's first keys are the manifest's services, in order.
  for (size_t i = 0; i < manifest_.services.size(); ++i) services_.push_back({i, nullptr});
  if (!keys.empty()) {
    ensure_registrar(std::move(keys), specs);
  } else {
    on_ready();
  }
  for (size_t i = 0; i < manifest_.services.size(); ++i) {
    services_[i].health = make_health(manifest_.services[i], i);
    restore_ttl_into(*services_[i].health, manifest_.services[i]);  // before the first write: a restart does not flap the key
    services_[i].health->start();
  }

  catalog_->start();
  for (size_t i = 0; i < manifest_.discover.size(); ++i) {
    discoveries_.push_back(make_discovery(manifest_, i, templates_[i]));
    discoveries_.back()->start();
  }
  for (const auto& spec : manifest_.config) {
    mirrors_.push_back(make_mirror(spec));
    mirrors_.back()->start();
  }
  start_dns();

  config_ = read_config_version(options_.manifest_path);
  if (admin_) {
    admin_->handlers().token = std::move(admin_token);
    setup_admin();
    setup_dns_admin();
  }
  if (const auto interval = Watchdog::interval_from_env()) {
    watchdog_ = std::make_unique<Watchdog>(io_, *interval);
    watchdog_->start();
  }

  signals_.add(SIGQUIT);
  signals_.add(SIGUSR1);
  signals_.add(SIGUSR2);
  signals_.async_wait([this](const boost::system::error_code& e, int s) { on_signal(e, s); });
  if (options_.watch_manifest) watch_manifest_file();

  io_.run();
  // After a clean deregistration the recorded lease is revoked: nothing for a successor to adopt.
  if (state_file_ && exit_code_ == kExitOk) asio::post(writer_, [this] { state_file_->remove(); });
  writer_.join();
  // A change that came while the last write ran, after the loop stopped: written now, the pool is idle.
  if (health_file_ && health_write_again_) write_health_state_now();
  return exit_code_;
}

int run_agent(AgentOptions options) {
  Agent agent(std::move(options));
  return agent.run();
}

}  // namespace sidecar::daemon
