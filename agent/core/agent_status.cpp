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

// A family with one unlabelled sample: the agent-wide figures.
MetricFamily single(std::string name, std::string help, MetricType type, double value) {
  MetricFamily f = family(std::move(name), std::move(help), type);
  f.samples.push_back({{}, value});
  return f;
}

enum class LabelSet { kWatch, kOutput, kService, kSource };
enum class Only { kAll, kDiscover, kConfig };

Labels labels_of(LabelSet set, const WatchSnapshot& w) {
  switch (set) {
    case LabelSet::kWatch: return {{"kind", w.kind}, {"name", w.name}};
    case LabelSet::kOutput: return {{"kind", w.kind}, {"output", w.output}};
    case LabelSet::kService: return {{"service", w.name}};
    case LabelSet::kSource: return {{"source", w.name}};
  }
  return {};
}

// The families with a sample per watch, in the order they are exposed: a table, so that adding one is a row.
struct PerWatch {
  const char* name;
  const char* help;
  MetricType type;
  LabelSet labels;
  Only only;
  double (*value)(const WatchSnapshot&);
};
constexpr MetricType kCounter = MetricType::kCounter;
constexpr MetricType kGauge = MetricType::kGauge;
const PerWatch kPerWatch[] = {
    {"etcd_sidecar_watch_starts_total", "Watch streams started (the first one included).", kCounter,
     LabelSet::kWatch, Only::kAll, [](const WatchSnapshot& w) { return static_cast<double>(w.watch_starts); }},
    {"etcd_sidecar_watch_resyncs_total",
     "Full re-reads of a watched prefix after compaction, a wiped or a replaced etcd.", kCounter, LabelSet::kWatch,
     Only::kAll, [](const WatchSnapshot& w) { return static_cast<double>(w.resyncs); }},
    {"etcd_sidecar_watch_revision", "Last etcd revision applied.", kGauge, LabelSet::kWatch, Only::kAll,
     [](const WatchSnapshot& w) { return static_cast<double>(w.revision); }},
    {"etcd_sidecar_watch_synced", "1 once the prefix has been read for the first time.", kGauge, LabelSet::kWatch,
     Only::kAll, [](const WatchSnapshot& w) { return w.synced ? 1.0 : 0.0; }},
    {"etcd_sidecar_discovered_instances", "Usable instances per discovered service.", kGauge, LabelSet::kService,
     Only::kDiscover, [](const WatchSnapshot& w) { return static_cast<double>(w.count); }},
    {"etcd_sidecar_invalid_values_total",
     "Values under a discovered service that could not be understood (each put once).", kCounter,
     LabelSet::kService, Only::kDiscover,
     [](const WatchSnapshot& w) { return static_cast<double>(w.invalid_values_total); }},
    {"etcd_sidecar_config_keys", "Keys mirrored per config entry.", kGauge, LabelSet::kSource, Only::kConfig,
     [](const WatchSnapshot& w) { return static_cast<double>(w.count); }},
    {"etcd_sidecar_file_writes_total", "Output files replaced.", kCounter, LabelSet::kOutput, Only::kAll,
     [](const WatchSnapshot& w) { return static_cast<double>(w.writes); }},
    {"etcd_sidecar_file_writing_seconds_total",
     "Time spent producing output files (render, write, fsync, rename, check_command); paced to about a tenth "
     "of wall time.",
     kCounter, LabelSet::kOutput, Only::kAll, [](const WatchSnapshot& w) { return w.writing_seconds; }},
    {"etcd_sidecar_file_write_failures_total", "Output file writes that failed.", kCounter, LabelSet::kOutput,
     Only::kAll, [](const WatchSnapshot& w) { return static_cast<double>(w.write_failures); }},
    {"etcd_sidecar_check_command_failures_total", "Rendered files rejected by check_command.", kCounter,
     LabelSet::kOutput, Only::kAll, [](const WatchSnapshot& w) { return static_cast<double>(w.check_failures); }},
    {"etcd_sidecar_on_change_runs_total", "on_change commands run.", kCounter, LabelSet::kOutput, Only::kAll,
     [](const WatchSnapshot& w) { return static_cast<double>(w.on_change_runs); }},
    {"etcd_sidecar_on_change_seconds_total", "Time spent running on_change commands.", kCounter,
     LabelSet::kOutput, Only::kAll, [](const WatchSnapshot& w) { return w.on_change_seconds; }},
    {"etcd_sidecar_on_change_failures_total", "on_change commands that failed or timed out.", kCounter,
     LabelSet::kOutput, Only::kAll, [](const WatchSnapshot& w) { return static_cast<double>(w.on_change_failures); }},
};

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
  out.push_back(single("etcd_sidecar_start_time_seconds", "Start time of the agent since the Unix epoch.", kGauge,
                       s.start_time_unix));
  out.push_back(single("etcd_sidecar_ready", "1 when /readyz answers 200.", kGauge,
                       evaluate_readiness(s).ready ? 1.0 : 0.0));

  // ---- lease
  out.push_back(single("etcd_sidecar_lease_alive", "1 while the agent holds a live lease.", kGauge,
                       s.lease.state == "alive" ? 1.0 : 0.0));
  out.push_back(single("etcd_sidecar_lease_remaining_seconds",
                       "Seconds until the lease expires unless renewed (conservative: from the send time).", kGauge,
                       s.lease.remaining_seconds.value_or(0)));
  out.push_back(single("etcd_sidecar_lease_grants_total", "Leases granted to this agent.", kCounter,
                       static_cast<double>(s.lease.grants)));
  out.push_back(single("etcd_sidecar_lease_losses_total",
                       "Leases lost (expired, revoked or etcd wiped) and replaced.", kCounter,
                       static_cast<double>(s.lease.losses)));
  out.push_back(single("etcd_sidecar_key_restorations_total",
                       "Registered keys written back after another client deleted or overwrote them, or after "
                       "a lost lease.",
                       kCounter, static_cast<double>(s.lease.keys_restored)));
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

  // ---- watches, files, commands: one sample per watch (or per discover / config watch)
  for (const PerWatch& m : kPerWatch) {
    MetricFamily f = family(m.name, m.help, m.type);
    for (const WatchSnapshot& w : s.watches) {
      if (m.only != Only::kAll && (w.kind == "discover") != (m.only == Only::kDiscover)) continue;
      f.samples.push_back({labels_of(m.labels, w), m.value(w)});
    }
    out.push_back(std::move(f));
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
