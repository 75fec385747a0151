// Entry point: parses the command line, loads the manifest, and hands over to run_agent.
// Exit codes: 0 ok, 64 usage, 69 --dev etcd unavailable, 71 admin endpoint cannot listen, 75 SIGQUIT
// handover, 78 invalid manifest.
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <functional>
#include <iostream>
#include <optional>

#include "agent/core/manifest.hpp"
#include "agent/daemon/agent.hpp"
#include "agent/daemon/dev_etcd.hpp"
#include "agent/daemon/exit_codes.hpp"
#include "agent/daemon/health_state_file.hpp"
#include "agent/daemon/lease_state_file.hpp"
#include "agent/daemon/logging.hpp"

#ifndef SIDECAR_VERSION
#define SIDECAR_VERSION "0.0.0"
#endif

using namespace sidecar;

namespace {

// Every blocking query, event stream and xDS stream holds a socket, so the agent raises its soft limit on
// open files to the hard one (as Go's runtime does): 1024, a common default, would cap http.max_waiters at
// a tenth of its default. A hard limit still too low is said once, with the setting it bounds.
void raise_open_file_limit(const core::Manifest& manifest) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  if (limit.rlim_cur < limit.rlim_max) {
    const rlim_t previous = limit.rlim_cur;
    limit.rlim_cur = limit.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) limit.rlim_cur = previous;
  }
  // Sockets beyond the waiters: etcd, the admin endpoint's short requests, DNS, xDS, checks, files.
  constexpr rlim_t kHeadroom = 256;
  const rlim_t wanted = static_cast<rlim_t>(manifest.http.max_waiters) + kHeadroom;
  if (manifest.admin.enabled && limit.rlim_cur < wanted) {
    spdlog::warn("open files limited to {} (RLIMIT_NOFILE); http.max_waiters {} needs about {}: raise LimitNOFILE "
                 "or lower http.max_waiters",
                 static_cast<uint64_t>(limit.rlim_cur), manifest.http.max_waiters, static_cast<uint64_t>(wanted));
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"etcd-sidecar: registers services in etcd, discovers peers and mirrors config into files"};
  std::string manifest_path;
  bool check = false;
  bool dev = false;
  bool version = false;
  std::string log_level = "info";
  std::string state_dir;
  bool watch_manifest = false;
  std::string log_format = "text";
  std::string admin_listen_text;
  bool maintenance = false;
  std::string maintenance_reason = "started with --maintenance";
  app.add_option("-m,--manifest", manifest_path, "service manifest (YAML)");
  app.add_flag("--check", check, "validate the manifest and exit without touching etcd");
  app.add_flag("--dev", dev, "when no configured etcd answers, start a throwaway local one on loopback");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  app.add_option("--state-dir", state_dir,
                 "where the lease is recorded for a restart without a gap (default: $STATE_DIRECTORY, "
                 "else /var/lib/etcd-sidecar; with --dev and no etcd: not recorded)");
  app.add_option("--log-format", log_format,
                 "text (journald priority prefixes when JOURNAL_STREAM is set) or json (one object per line)")
      ->check(CLI::IsMember({"text", "json"}));
  CLI::Option* admin_listen_opt = app.add_option("--admin-listen", admin_listen_text,
                 "admin endpoint address, overriding the manifest's admin.listen (\"\" switches it off)");
  app.add_flag("--watch-manifest", watch_manifest,
               "reload when the manifest file changes (e.g. a Kubernetes ConfigMap update), not only on SIGHUP");
  app.add_flag("--maintenance", maintenance,
               "start with every service in maintenance (registered with state maintenance) until "
               "DELETE /v1/maintenance; kept across restarts (state file)")
      ->envname("ETCD_SIDECAR_MAINTENANCE");
  app.add_option("--maintenance-reason", maintenance_reason, "the reason --maintenance records (shown in /v1/status)");
  app.add_flag("-V,--version", version, "print the version and exit");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return daemon::kExitUsage;
  }
  if (version) {
    std::cout << "etcd-sidecar " << SIDECAR_VERSION << std::endl;
    return daemon::kExitOk;
  }
  if (manifest_path.empty()) {
    std::cerr << "etcd-sidecar: --manifest is required (see --help)" << std::endl;
    return daemon::kExitUsage;
  }

  std::optional<std::string> admin_listen;
  if (admin_listen_opt->count() > 0) admin_listen = admin_listen_text;
  core::ListenAddress admin_override;
  if (admin_listen && !admin_listen->empty()) {
    admin_override = core::parse_listen_address(*admin_listen);
    if (!admin_override.error.empty()) {
      std::cerr << "etcd-sidecar: --admin-listen: " << admin_override.error << std::endl;
      return daemon::kExitUsage;
    }
  }
  daemon::setup_logging(log_format == "json" ? daemon::LogFormat::kJson : daemon::LogFormat::kText, log_level);

  auto parsed = core::load_manifest(manifest_path, core::process_env());
  for (const auto& w : parsed.warnings) spdlog::warn("{}", w);
  if (!parsed.ok()) {
    for (const auto& e : parsed.errors) std::cerr << e.to_string() << std::endl;
    std::cerr << "etcd-sidecar: " << parsed.errors.size() << " error(s) in " << manifest_path << std::endl;
    return daemon::kExitConfig;
  }
  core::Manifest manifest = std::move(*parsed.manifest);
  // The command line's overrides, applied again to a manifest reloaded by SIGHUP.
  std::function<void(core::Manifest&)> adjust = [admin_listen, admin_override](core::Manifest& m) {
    if (!admin_listen) return;
    m.admin.enabled = !admin_listen->empty();
    if (m.admin.enabled) {
      m.admin.host = admin_override.host;
      m.admin.port = admin_override.port;
    }
  };
  adjust(manifest);
  if (manifest.admin.enabled && !manifest.admin.token_file.empty()) {
    std::string token;
    std::string error;
    if (!daemon::read_admin_token(manifest.source, manifest.admin.token_file, &token, &error)) {
      std::cerr << error << std::endl;
      return daemon::kExitConfig;
    }
  }
  if (check) {
    std::cout << manifest_path << ": OK (" << manifest.services.size() << " service(s), " << manifest.discover.size()
              << " discovery(ies), " << manifest.config.size() << " config mirror(s))" << std::endl;
    return daemon::kExitOk;
  }

  std::unique_ptr<daemon::DevEtcd> dev_etcd;
  if (dev && !daemon::any_endpoint_answers(manifest.etcd.endpoints, std::chrono::milliseconds(300))) {
    const int preferred = daemon::loopback_port(manifest.etcd.endpoints.front()).value_or(0);
    std::string error;
    dev_etcd = daemon::DevEtcd::start(preferred, &error);
    if (!dev_etcd) {
      spdlog::error("--dev: {}", error);
      return daemon::kExitUnavailable;
    }
    spdlog::info("--dev: no configured etcd answered; started a throwaway etcd at {} (pid {}, data {})",
                 dev_etcd->client_url(), dev_etcd->pid(), dev_etcd->data_dir());
    manifest.etcd.endpoints = {dev_etcd->client_url()};
    adjust = [adjust, url = dev_etcd->client_url()](core::Manifest& m) {
      adjust(m);
      m.etcd.endpoints = {url};
    };
  }

  raise_open_file_limit(manifest);
  if (state_dir.empty() && !dev_etcd) state_dir = daemon::default_state_dir();
  daemon::AgentOptions options;
  options.manifest = std::move(manifest);
  options.dev = dev;
  options.state_dir = state_dir;
  options.manifest_path = manifest_path;
  options.adjust = adjust;
  options.watch_manifest = watch_manifest;
  if (maintenance) options.maintenance = maintenance_reason;
  if (dev_etcd) options.before_hard_exit = [&dev_etcd] { dev_etcd->kill_now(); };
  const int rc = daemon::run_agent(std::move(options));
  dev_etcd.reset();
  return rc;
}
