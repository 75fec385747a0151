#include "agent/daemon/snapshot.hpp"

#include <sys/stat.h>

#include <fstream>
#include <iterator>

namespace sidecar::daemon {

namespace {

const char* lease_state_name(core::Registration::LeaseState state) {
  switch (state) {
    case core::Registration::LeaseState::kNone: return "none";
    case core::Registration::LeaseState::kGranting: return "granting";
    case core::Registration::LeaseState::kAlive: return "alive";
  }
  return "none";
}

void add_output(core::WatchSnapshot& w, const runtime::PrefixWatcherStats& watch,
                const runtime::FileOutputStats& out) {
  w.synced = watch.synced;
  w.revision = watch.revision;
  w.watch_starts = watch.watch_starts;
  w.resyncs = watch.resyncs;
  w.writes = out.writes;
  w.write_failures = out.write_failures;
  w.check_failures = out.check_failures;
  w.on_change_runs = out.on_change_runs;
  w.on_change_failures = out.on_change_failures;
  w.writing_seconds = std::chrono::duration<double>(out.writing).count();
  w.on_change_seconds = std::chrono::duration<double>(out.on_change_running).count();
  w.last_error = out.last_error;
}

}  // namespace

core::AgentSnapshot collect_snapshot(const SnapshotSources& src) {
  core::AgentSnapshot s;
  s.version = src.version;
  s.start_time_unix = src.start_time_unix;
  s.shutting_down = src.shutting_down != nullptr && *src.shutting_down;
  s.config = src.config;
  const core::Manifest& m = *src.manifest;
  s.lease.ttl_seconds = std::chrono::duration_cast<std::chrono::seconds>(m.lease_ttl).count();

  if (src.registrar != nullptr) {
    const core::Registration& reg = src.registrar->state();
    s.lease.id = reg.lease();
    s.lease.state = lease_state_name(reg.lease_state());
    s.lease.grants = reg.leases_granted();
    s.lease.losses = reg.leases_lost();
    s.lease.keys_restored = reg.keys_restored();
    if (const auto deadline = reg.lease_deadline(); deadline && reg.lease_state() == core::Registration::LeaseState::kAlive) {
      const double left = std::chrono::duration<double>(*deadline - core::SteadyClock::now()).count();
      s.lease.remaining_seconds = left > 0 ? left : 0;
    }
    s.lease.keepalive_rtt = src.registrar->keepalive_rtt().sample();
    for (size_t i = 0; i < m.services.size() && i < src.services.size(); ++i) {
      const size_t k = src.services[i].key_index;
      if (k >= reg.key_count()) continue;
      core::ServiceSnapshot svc;
      svc.name = m.services[i].name;
      svc.id = m.services[i].id;
      svc.key = reg.desired(k).key;
      svc.state = core::to_string(reg.key_state(k));
      svc.conflict_lease = reg.conflict_lease(k);
      // Withdrawn on purpose (failing checks, drained): not counted against readiness.
      svc.wanted = reg.published(k);
      const runtime::HealthMonitor* health = src.services[i].health;
      if (health != nullptr && !health->view().empty()) {
        for (const auto& c : health->view().front().checks) {
          nlohmann::json check{{"name", c.name},
                               {"type", core::to_string(c.type)},
                               {"status", core::to_string(c.status)},
                               {"runs", c.runs},
                               {"consecutive_passes", c.consecutive_passes},
                               {"consecutive_failures", c.consecutive_failures},
                               {"output", c.last_output}};
          if (c.last_passed) check["last_passed"] = *c.last_passed;
          if (c.type == core::CheckType::kTtl) {
            // The app's side: what it last said, when (wall clock), and how long until silence is critical.
            check["ttl_seconds"] = std::chrono::duration<double>(c.ttl).count();
            check["last_report"] = c.last_report ? nlohmann::json(core::to_string(*c.last_report)) : nlohmann::json();
            check["last_report_unix_ms"] = c.last_report_unix_ms ? nlohmann::json(*c.last_report_unix_ms) : nlohmann::json();
            check["note"] = c.note;
            check["expired"] = c.expired;
            if (c.deadline) {
              const double left = std::chrono::duration<double>(*c.deadline - std::chrono::steady_clock::now()).count();
              check["expires_in_seconds"] = left > 0 ? left : 0;
            }
          }
          svc.checks.push_back(std::move(check));
        }
      }
      s.services.push_back(std::move(svc));
    }
  } else {
    s.lease.keepalive_rtt = core::Histogram(core::latency_buckets_seconds()).sample();
  }

  if (src.discoveries != nullptr) {
    for (const auto& d : *src.discoveries) {
      core::WatchSnapshot w;
      w.kind = "discover";
      w.name = d->spec().service;
      w.prefix = m.etcd.prefix + "/" + d->spec().service + "/";
      w.output = d->spec().output;
      add_output(w, d->watch_stats(), d->output_stats());
      w.count = d->stats().instances;
      w.invalid = d->stats().invalid;
      w.invalid_values_total = d->stats().invalid_values_total;
      s.watches.push_back(std::move(w));
    }
  }
  if (src.mirrors != nullptr) {
    for (const auto& c : *src.mirrors) {
      core::WatchSnapshot w;
      w.kind = "config";
      w.name = c->spec().key.empty() ? c->spec().prefix : c->spec().key;
      w.prefix = w.name;
      w.output = c->spec().output;
      add_output(w, c->watch_stats(), c->output_stats());
      if (c->spec().key.empty() && c->spec().format == "dir") {
        // One file per key: the directory writer keeps its own counts.
        w.writes = c->dir_writes();
        w.write_failures = c->dir_failures();
      }
      w.count = c->keys();
      s.watches.push_back(std::move(w));
    }
  }
  return s;
}

core::ConfigVersion read_config_version(const std::string& path) {
  core::ConfigVersion v;
  v.path = path;
  std::ifstream in(path, std::ios::binary);
  if (in) {
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    v.hash = core::content_hash(bytes);
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) v.mtime_unix = static_cast<int64_t>(st.st_mtime);
  return v;
}

}  // namespace sidecar::daemon

namespace sidecar::daemon {

void collect_check_metrics(const SnapshotSources& src, std::vector<core::MetricFamily>& out) {
  core::MetricFamily status{"etcd_sidecar_check_passing", "1 while a health check's status is passing, else 0",
                            core::MetricType::kGauge, {}, {}};
  core::MetricFamily runs{"etcd_sidecar_check_runs_total", "Health check runs", core::MetricType::kCounter, {}, {}};
  core::MetricFamily drained{"etcd_sidecar_drained", "1 while the agent is drained (SIGUSR1, POST /v1/drain)",
                             core::MetricType::kGauge, {}, {}};
  core::MetricFamily by_status{"etcd_sidecar_checks", "Health checks by status (passing, warning, critical)",
                               core::MetricType::kGauge, {}, {}};
  core::MetricFamily maintenance{"etcd_sidecar_maintenance",
                                 "1 while a service is in maintenance (POST /v1/maintenance, --maintenance)",
                                 core::MetricType::kGauge, {}, {}};
  double counts[3] = {0, 0, 0};  // indexed by core::HealthStatus
  for (size_t i = 0; i < src.services.size(); ++i) {
    const auto& service = src.services[i];
    if (service.health == nullptr) continue;
    for (const auto& svc : service.health->view()) {
      for (const auto& c : svc.checks) {
        core::Labels labels{{"service", svc.name}, {"id", svc.id}, {"check", c.name}};
        status.samples.push_back({labels, c.status == core::HealthStatus::kPassing ? 1.0 : 0.0});
        runs.samples.push_back({labels, static_cast<double>(c.runs)});
        counts[static_cast<int>(c.status)] += 1;
      }
      const bool in_maintenance = src.registrar != nullptr && service.key_index < src.registrar->state().key_count() &&
                                  src.registrar->maintenance(service.key_index);
      maintenance.samples.push_back({{{"service", svc.name}, {"id", svc.id}}, in_maintenance ? 1.0 : 0.0});
    }
  }
  for (const auto s : {core::HealthStatus::kPassing, core::HealthStatus::kWarning, core::HealthStatus::kCritical}) {
    by_status.samples.push_back({{{"status", core::to_string(s)}}, counts[static_cast<int>(s)]});
  }
  drained.samples.push_back({{}, src.registrar != nullptr && src.registrar->drained() ? 1.0 : 0.0});
  out.push_back(std::move(status));
  out.push_back(std::move(runs));
  out.push_back(std::move(by_status));
  out.push_back(std::move(maintenance));
  out.push_back(std::move(drained));
}

}  // namespace sidecar::daemon
