#include <time.h>

#include <spdlog/spdlog.h>

#include "agent/core/instance.hpp"
#include "agent/core/manifest_diff.hpp"
#include "agent/daemon/agent_internal.hpp"
#include "agent/daemon/sd_notify.hpp"

// Live reload (SIGHUP, --watch-manifest): read the manifest again and apply the difference to the running
// components; what a reload removes is stopped and then freed (dispose), never kept.
namespace sidecar::daemon {

namespace {

std::string monotonic_usec() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::to_string(static_cast<uint64_t>(ts.tv_sec) * 1000000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u);
}

}  // namespace

void Agent::reload(const std::string& trigger) {
  reload_trigger_ = trigger;
  // Type=notify-reload wants MONOTONIC_USEC with RELOADING=1; older systemd ignores it.
  sd_notify("RELOADING=1\nMONOTONIC_USEC=" + monotonic_usec());
  // Certificates: new etcd connections use the files as they are now (even when the manifest is rejected).
  if (std::string tls_error; client_ && !client_->reload_tls(&tls_error)) spdlog::warn("{}: etcd TLS files: {}", reload_trigger_, tls_error);
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
  std::string admin_token;
  if (admin_ && !load_admin_token(next, &admin_token)) {
    spdlog::error("{}: reload rejected; the running configuration is unchanged", reload_trigger_);
    return false;
  }
  const core::ManifestDiff diff = core::diff_manifests(manifest_, next, templates_, templates);

  // Services. Removed ones first, so an id that moved between names never overlaps itself.
  for (size_t o : diff.services_removed) {
    dispose(std::move(services_[o].health));
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
      registrar_->set_value_source(slot.key_index, value_source(spec));
    }
    if (k.checks_changed) {
      spdlog::info("reload: {}: checks changed; restarting its checks", next.key_of(spec));
      dispose(std::move(slot.health));
      slot.health = make_health(spec, slot.key_index);
      // The app's last report carries over to the new checks (judged by the new ttl).
      restore_ttl_into(*slot.health, spec);
      registrar_->set_service_health(slot.key_index, slot.health->status(0), "checks changed by a reload");
      start_checks.push_back(k.new_index);
    }
  }
  for (size_t n : diff.services_added) {
    const core::ServiceSpec& spec = next.services[n];
    core::DesiredKey key = desired_key(spec);
    spdlog::info("reload: adding {}", key.key);
    if (!registrar_) {
      ensure_registrar({key}, {&spec});
      services[n].key_index = 0;
    } else {
      services[n].key_index = registrar_->add_key(std::move(key), in_maintenance(spec));
      registrar_->set_value_source(services[n].key_index, value_source(spec));
    }
    services[n].health = make_health(spec, services[n].key_index);
    restore_ttl_into(*services[n].health, spec);
    start_checks.push_back(n);
  }
  services_ = std::move(services);

  // Discoveries and config mirrors: an unchanged one keeps running (no resync, no rewrite); a changed one
  // is a removed one plus an added one. A removed one stops; its file stays as it was.
  std::vector<std::unique_ptr<runtime::Discovery>> discoveries(next.discover.size());
  for (size_t o : diff.discover_removed) {
    spdlog::info("reload: discover {} -> {} removed; the file is left as it is", manifest_.discover[o].service,
                 manifest_.discover[o].output);
    dispose(std::move(discoveries_[o]));
  }
  for (const auto& k : diff.discover_kept) discoveries[k.new_index] = std::move(discoveries_[k.old_index]);
  for (size_t n : diff.discover_added) {
    spdlog::info("reload: discover {} -> {} added", next.discover[n].service, next.discover[n].output);
    discoveries[n] = make_discovery(next, n, templates[n]);
  }
  std::vector<std::unique_ptr<runtime::ConfigMirror>> mirrors(next.config.size());
  for (size_t o : diff.config_removed) {
    spdlog::info("reload: config mirror -> {} removed; the file is left as it is", manifest_.config[o].output);
    dispose(std::move(mirrors_[o]));
  }
  for (const auto& k : diff.config_kept) mirrors[k.new_index] = std::move(mirrors_[k.old_index]);
  for (size_t n : diff.config_added) {
    spdlog::info("reload: config mirror -> {} added", next.config[n].output);
    mirrors[n] = make_mirror(next.config[n]);
  }

  const core::Manifest before = std::exchange(manifest_, std::move(next));
  reload_dns(before);
  catalog_->set_limits(catalog_options(manifest_).limits);
  if (admin_) admin_->set_max_parked(manifest_.http.max_waiters);
  templates_ = std::move(templates);
  discoveries_ = std::move(discoveries);
  mirrors_ = std::move(mirrors);
  for (size_t n : start_checks) services_[n].health->start();
  for (size_t n : diff.discover_added) discoveries_[n]->start();
  for (size_t n : diff.config_added) mirrors_[n]->start();
  config_ = read_config_version(options_.manifest_path);
  if (admin_) admin_->handlers().token = std::move(admin_token);
  prune_health_state();  // the records of removed services go
  ++reloads_;
  spdlog::info("{}: reload applied ({}{}); config {}", reload_trigger_, diff.summary(),
               diff.drain_delay_changed ? ", drain_delay changed" : "", config_.hash);
  return true;
}

}  // namespace sidecar::daemon
