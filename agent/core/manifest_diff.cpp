#include "agent/core/manifest_diff.hpp"

#include <map>
#include <tuple>

#include "agent/core/instance.hpp"

namespace sidecar::core {

namespace {

// Everything that describes a check; `where` is left out: moving a block in the file changes nothing.
auto check_tie(const CheckSpec& c) {
  return std::tie(c.type, c.name, c.target, c.host, c.port, c.path, c.expect_body, c.headers, c.argv,
                  c.grpc_service, c.interval, c.timeout, c.rise, c.fall, c.ttl);
}

auto discovery_tie(const DiscoverSpec& d) {
  return std::tie(d.service, d.output, d.format, d.template_path, d.mode, d.include_self, d.min_instances,
                  d.wait_min, d.wait_max, d.wait_holdoff, d.check_command, d.on_change, d.command_timeout,
                  d.select, d.sort);
}

auto config_tie(const ConfigSpec& c) {
  return std::tie(c.key, c.prefix, c.output, c.format, c.default_value, c.mode, c.on_change, c.command_timeout);
}

const std::string& template_at(const std::vector<std::string>& templates, size_t i) {
  static const std::string kNone;
  return i < templates.size() ? templates[i] : kNone;
}

template <typename Spec, typename Same>
void diff_entries(const std::vector<Spec>& olds, const std::vector<Spec>& news, Same same,
                  std::vector<size_t>& removed, std::vector<size_t>& added, std::vector<KeptEntry>& kept) {
  std::vector<bool> matched(news.size(), false);
  for (size_t o = 0; o < olds.size(); ++o) {
    bool found = false;
    for (size_t n = 0; n < news.size() && !found; ++n) {
      if (!matched[n] && same(o, n)) {
        matched[n] = true;
        kept.push_back({o, n});
        found = true;
      }
    }
    if (!found) removed.push_back(o);
  }
  for (size_t n = 0; n < news.size(); ++n) {
    if (!matched[n]) added.push_back(n);
  }
}

}  // namespace

bool same_checks(const ServiceSpec& a, const ServiceSpec& b) {
  if (a.initial_status != b.initial_status || a.checks.size() != b.checks.size()) return false;
  for (size_t i = 0; i < a.checks.size(); ++i) {
    if (check_tie(a.checks[i]) != check_tie(b.checks[i])) return false;
  }
  return true;
}

bool same_discovery(const DiscoverSpec& a, const DiscoverSpec& b) { return discovery_tie(a) == discovery_tie(b); }

bool same_config(const ConfigSpec& a, const ConfigSpec& b) { return config_tie(a) == config_tie(b); }

std::set<std::string> self_ids(const Manifest& manifest, const std::string& service) {
  std::set<std::string> ids;
  for (const auto& s : manifest.services) {
    if (s.name == service) ids.insert(s.id);
  }
  return ids;
}

std::vector<std::string> restart_only_changes(const Manifest& running, const Manifest& next) {
  std::vector<std::string> out;
  const EtcdSpec& a = running.etcd;
  const EtcdSpec& b = next.etcd;
  if (a.endpoints != b.endpoints) out.push_back("etcd.endpoints");
  if (a.prefix != b.prefix) out.push_back("etcd.prefix");
  if (a.dial_timeout != b.dial_timeout) out.push_back("etcd.dial_timeout");
  if (a.request_timeout != b.request_timeout) out.push_back("etcd.request_timeout");
  if (std::tie(a.username, a.password_file, a.password_env, a.password) !=
      std::tie(b.username, b.password_file, b.password_env, b.password)) {
    out.push_back("etcd auth");
  }
  if (std::tie(a.tls_ca, a.tls_cert, a.tls_key) != std::tie(b.tls_ca, b.tls_cert, b.tls_key)) out.push_back("etcd.tls");
  if (running.lease_ttl != next.lease_ttl) out.push_back("lease.ttl");
  if (std::tie(running.admin.enabled, running.admin.host, running.admin.port) !=
      std::tie(next.admin.enabled, next.admin.host, next.admin.port)) {
    out.push_back("admin");
  }
  const XdsSpec& x = running.xds;
  const XdsSpec& y = next.xds;
  if (std::tie(x.enabled, x.host, x.port, x.tls_cert, x.tls_key, x.tls_ca, x.local_zone_first) !=
      std::tie(y.enabled, y.host, y.port, y.tls_cert, y.tls_key, y.tls_ca, y.local_zone_first)) {
    out.push_back("xds");
  }
  return out;
}

void keep_restart_only_settings(const Manifest& running, Manifest& next) {
  next.etcd = running.etcd;
  next.lease_ttl = running.lease_ttl;
  next.xds = running.xds;
  // The token file is re-read at every reload (a rotated token applies without a restart).
  std::string token_file = std::move(next.admin.token_file);
  next.admin = running.admin;
  next.admin.token_file = std::move(token_file);
}

ManifestDiff diff_manifests(const Manifest& old_m, const Manifest& new_m, const std::vector<std::string>& old_templates,
                            const std::vector<std::string>& new_templates) {
  ManifestDiff d;
  std::map<std::string, size_t> old_by_key;
  for (size_t i = 0; i < old_m.services.size(); ++i) old_by_key.emplace(old_m.key_of(old_m.services[i]), i);
  std::set<size_t> old_matched;
  for (size_t n = 0; n < new_m.services.size(); ++n) {
    const ServiceSpec& s = new_m.services[n];
    auto it = old_by_key.find(new_m.key_of(s));
    if (it == old_by_key.end() || old_matched.count(it->second) > 0) {
      d.services_added.push_back(n);
      continue;
    }
    old_matched.insert(it->second);
    const ServiceSpec& o = old_m.services[it->second];
    d.services_kept.push_back({it->second, n, encode_registration(o) != encode_registration(s), !same_checks(o, s)});
  }
  for (size_t o = 0; o < old_m.services.size(); ++o) {
    if (old_matched.count(o) == 0) d.services_removed.push_back(o);
  }

  diff_entries(
      old_m.discover, new_m.discover,
      [&](size_t o, size_t n) {
        const DiscoverSpec& a = old_m.discover[o];
        const DiscoverSpec& b = new_m.discover[n];
        if (!same_discovery(a, b) || template_at(old_templates, o) != template_at(new_templates, n)) return false;
        // `zone: local` means the agent's zone: when that moves, so does the selection.
        if (b.select.zone && *b.select.zone == kLocalZone && old_m.agent.zone != new_m.agent.zone) return false;
        // Without include_self the discovery filters our own ids: a changed set of them is a changed discovery.
        return a.include_self || self_ids(old_m, a.service) == self_ids(new_m, b.service);
      },
      d.discover_removed, d.discover_added, d.discover_kept);
  diff_entries(
      old_m.config, new_m.config, [&](size_t o, size_t n) { return same_config(old_m.config[o], new_m.config[n]); },
      d.config_removed, d.config_added, d.config_kept);
  d.drain_delay_changed = old_m.drain_delay != new_m.drain_delay;
  return d;
}

size_t ManifestDiff::services_changed() const {
  size_t n = 0;
  for (const auto& k : services_kept) n += (k.value_changed || k.checks_changed) ? 1 : 0;
  return n;
}

bool ManifestDiff::empty() const {
  return services_removed.empty() && services_added.empty() && services_changed() == 0 && discover_removed.empty() &&
         discover_added.empty() && config_removed.empty() && config_added.empty() && !drain_delay_changed;
}

std::string ManifestDiff::summary() const {
  const size_t changed = services_changed();
  return "services +" + std::to_string(services_added.size()) + " -" + std::to_string(services_removed.size()) + " ~" +
         std::to_string(changed) + " =" + std::to_string(services_kept.size() - changed) + ", discover +" +
         std::to_string(discover_added.size()) + " -" + std::to_string(discover_removed.size()) + " =" +
         std::to_string(discover_kept.size()) + ", config +" + std::to_string(config_added.size()) + " -" +
         std::to_string(config_removed.size()) + " =" + std::to_string(config_kept.size());
}

}  // namespace sidecar::core
