#include "agent/core/agent_status.hpp"

#include <cinttypes>
#include <cstdio>

#include "agent/core/registration.hpp"

namespace sidecar::core {

namespace {

MetricFamily family(std::string name, std::string help, MetricType type) {
  MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

Labels watch_labels(const WatchSnapshot& w) { return {{"kind", w.kind}, {"name", w.name}}; }

}  // namespace

Readiness evaluate_readiness(const AgentSnapshot& s) {
  nlohmann::json missing = nlohmann::json::array();
  if (s.shutting_down) missing.push_back({{"kind", "agent"}, {"name", "agent"}, {"reason", "shutting down"}});
  for (const ServiceSnapshot& svc : s.services) {
    if (!svc.wanted || svc.state == "registered") continue;
    std::string reason = "not registered (" + svc.state + ")";
    if (svc.state == "conflict") reason = "key held by another agent's lease " + lease_to_hex(svc.conflict_lease);
    missing.push_back({{"kind", "service"}, {"name", svc.name + "/" + svc.id}, {"key", svc.key}, {"reason", reason}});
  }
  for (const WatchSnapshot& w : s.watches) {
    if (w.kind != "discover" || w.synced) continue;
    missing.push_back({{"kind", "discover"}, {"name", w.name}, {"reason", "not synced with etcd yet"}});
  }
  Readiness r;
  r.ready = missing.empty();
  r.body = {{"ready", r.ready}, {"missing", std::move(missing)}};
  return r;
}

nlohmann::json status_json(const AgentSnapshot& s) {
  nlohmann::json lease = {{"id", s.lease.id},
                          {"id_hex", s.lease.id != 0 ? lease_to_hex(s.lease.id) : ""},
                          {"state", s.lease.state},
                          {"ttl_seconds", s.lease.ttl_seconds},
                          {"remaining_ttl_seconds", nullptr},
                          {"grants", s.lease.grants},
                          {"losses", s.lease.losses},
                          {"keys_restored", s.lease.keys_restored}};
  if (s.lease.remaining_seconds) lease["remaining_ttl_seconds"] = *s.lease.remaining_seconds;
  nlohmann::json services = nlohmann::json::array();
  for (const ServiceSnapshot& svc : s.services) {
    nlohmann::json j = {{"name", svc.name}, {"id", svc.id},           {"key", svc.key},
                        {"status", svc.state}, {"wanted", svc.wanted}, {"checks", svc.checks}};
    if (svc.conflict_lease != 0) j["conflict_lease"] = lease_to_hex(svc.conflict_lease);
    services.push_back(std::move(j));
  }
  nlohmann::json discover = nlohmann::json::array();
  nlohmann::json config = nlohmann::json::array();
  for (const WatchSnapshot& w : s.watches) {
    nlohmann::json j = {{"prefix", w.prefix},       {"output", w.output},     {"synced", w.synced},
                        {"revision", w.revision},   {"count", w.count},       {"writes", w.writes},
                        {"write_failures", w.write_failures}, {"resyncs", w.resyncs}};
    if (!w.last_error.empty()) j["last_error"] = w.last_error;
    if (w.kind == "discover") {
      j["service"] = w.name;
      j["invalid"] = w.invalid;
      discover.push_back(std::move(j));
    } else {
      j["source"] = w.name;
      config.push_back(std::move(j));
    }
  }
  const Readiness ready = evaluate_readiness(s);
  return {{"version", s.version},
          {"ready", ready.ready},
          {"shutting_down", s.shutting_down},
          {"lease", std::move(lease)},
          {"services", std::move(services)},
          {"discover", std::move(discover)},
          {"config", std::move(config)},
          {"config_version", {{"path", s.config.path}, {"hash", s.config.hash}, {"mtime_unix", s.config.mtime_unix}}}};
}

std::vector<MetricFamily> agent_metrics(const AgentSnapshot& s) {
  std::vector<MetricFamily> out;

  auto build = family("etcd_sidecar_build_info", "Build information; the value is always 1.", MetricType::kGauge);
  build.samples.push_back({{{"version", s.version}}, 1});
  out.push_back(std::move(build));
  auto start = family("etcd_sidecar_start_time_seconds", "Start time of the agent since the Unix epoch.",
                      MetricType::kGauge);
  start.samples.push_back({{}, s.start_time_unix});
  out.push_back(std::move(start));
  auto ready = family("etcd_sidecar_ready", "1 when /readyz answers 200.", MetricType::kGauge);
  ready.samples.push_back({{}, evaluate_readiness(s).ready ? 1.0 : 0.0});
  out.push_back(std::move(ready));

  // ---- lease
  auto alive = family("etcd_sidecar_lease_alive", "1 while the agent holds a live lease.", MetricType::kGauge);
  alive.samples.push_back({{}, s.lease.state == "alive" ? 1.0 : 0.0});
  out.push_back(std::move(alive));
  auto remaining = family("etcd_sidecar_lease_remaining_seconds",
                          "Seconds until the lease expires unless renewed (conservative: from the send time).",
                          MetricType::kGauge);
  remaining.samples.push_back({{}, s.lease.remaining_seconds.value_or(0)});
  out.push_back(std::move(remaining));
  auto grants = family("etcd_sidecar_lease_grants_total", "Leases granted to this agent.", MetricType::kCounter);
  grants.samples.push_back({{}, static_cast<double>(s.lease.grants)});
  out.push_back(std::move(grants));
  auto losses = family("etcd_sidecar_lease_losses_total", "Leases lost (expired, revoked or etcd wiped) and replaced.",
                       MetricType::kCounter);
  losses.samples.push_back({{}, static_cast<double>(s.lease.losses)});
  out.push_back(std::move(losses));
  auto restored = family("etcd_sidecar_key_restorations_total",
                         "Registered keys written back after another client deleted or overwrote them, or after "
                         "a lost lease.",
                         MetricType::kCounter);
  restored.samples.push_back({{}, static_cast<double>(s.lease.keys_restored)});
  out.push_back(std::move(restored));
  auto rtt = family("etcd_sidecar_keepalive_rtt_seconds", "Round trip of lease keepalive requests.",
                    MetricType::kHistogram);
  rtt.histograms.push_back(s.lease.keepalive_rtt);
  out.push_back(std::move(rtt));

  // ---- registration
  auto registered = family("etcd_sidecar_service_registered", "1 while the service's key is registered in etcd.",
                           MetricType::kGauge);
  auto state = family("etcd_sidecar_registration_state",
                      "Registration state per service; exactly one state is 1.", MetricType::kGauge);
  for (const ServiceSnapshot& svc : s.services) {
    registered.samples.push_back({{{"service", svc.name}, {"id", svc.id}}, svc.state == "registered" ? 1.0 : 0.0});
    for (const char* name : {"pending", "writing", "registered", "conflict"}) {
      state.samples.push_back(
          {{{"service", svc.name}, {"id", svc.id}, {"state", name}}, svc.state == name ? 1.0 : 0.0});
    }
  }
  out.push_back(std::move(registered));
  out.push_back(std::move(state));

  // ---- watches, files, commands
  auto starts = family("etcd_sidecar_watch_starts_total", "Watch streams started (the first one included).",
                       MetricType::kCounter);
  auto resyncs = family("etcd_sidecar_watch_resyncs_total",
                        "Full re-reads of a watched prefix after compaction, a wiped or a replaced etcd.",
                        MetricType::kCounter);
  auto revision = family("etcd_sidecar_watch_revision", "Last etcd revision applied.", MetricType::kGauge);
  auto synced = family("etcd_sidecar_watch_synced", "1 once the prefix has been read for the first time.",
                       MetricType::kGauge);
  auto instances = family("etcd_sidecar_discovered_instances", "Usable instances per discovered service.",
                          MetricType::kGauge);
  auto invalid = family("etcd_sidecar_invalid_values_total",
                        "Values under a discovered service that could not be understood (each put once).",
                        MetricType::kCounter);
  auto config_keys = family("etcd_sidecar_config_keys", "Keys mirrored per config entry.", MetricType::kGauge);
  auto writes = family("etcd_sidecar_file_writes_total", "Output files replaced.", MetricType::kCounter);
  auto failures = family("etcd_sidecar_file_write_failures_total", "Output file writes that failed.",
                         MetricType::kCounter);
  auto check_failures = family("etcd_sidecar_check_command_failures_total",
                               "Rendered files rejected by check_command.", MetricType::kCounter);
  auto runs = family("etcd_sidecar_on_change_runs_total", "on_change commands run.", MetricType::kCounter);
  auto run_failures = family("etcd_sidecar_on_change_failures_total",
                             "on_change commands that failed or timed out.", MetricType::kCounter);
  for (const WatchSnapshot& w : s.watches) {
    const Labels l = watch_labels(w);
    starts.samples.push_back({l, static_cast<double>(w.watch_starts)});
    resyncs.samples.push_back({l, static_cast<double>(w.resyncs)});
    revision.samples.push_back({l, static_cast<double>(w.revision)});
    synced.samples.push_back({l, w.synced ? 1.0 : 0.0});
    if (w.kind == "discover") {
      instances.samples.push_back({{{"service", w.name}}, static_cast<double>(w.count)});
      invalid.samples.push_back({{{"service", w.name}}, static_cast<double>(w.invalid_values_total)});
    } else {
      config_keys.samples.push_back({{{"source", w.name}}, static_cast<double>(w.count)});
    }
    const Labels o = {{"kind", w.kind}, {"output", w.output}};
    writes.samples.push_back({o, static_cast<double>(w.writes)});
    failures.samples.push_back({o, static_cast<double>(w.write_failures)});
    check_failures.samples.push_back({o, static_cast<double>(w.check_failures)});
    runs.samples.push_back({o, static_cast<double>(w.on_change_runs)});
    run_failures.samples.push_back({o, static_cast<double>(w.on_change_failures)});
  }
  for (auto* f : {&starts, &resyncs, &revision, &synced, &instances, &invalid, &config_keys, &writes, &failures,
                  &check_failures, &runs, &run_failures}) {
    out.push_back(std::move(*f));
  }
  return out;
}

std::string content_hash(std::string_view bytes) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const char c : bytes) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016" PRIx64, h);
  return buf;
}

}  // namespace sidecar::core
