#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <chrono>

#include "agent/core/instance.hpp"
#include "agent/daemon/agent_internal.hpp"

// Health driven by the app (TTL check reports on the admin endpoint) and maintenance, both kept in the
// health state file so that a restart neither flaps a registration nor ends a maintenance.
namespace sidecar::daemon {

namespace {

int64_t unix_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string record_key(const core::ServiceSpec& s) { return s.name + "/" + s.id; }

}  // namespace

bool Agent::load_admin_token(const core::Manifest& m, std::string* token) {
  token->clear();
  if (m.admin.token_file.empty()) return true;
  std::string error;
  if (!read_admin_token(m.source, m.admin.token_file, token, &error)) {
    spdlog::error("{}", error);
    return false;
  }
  return true;
}

void Agent::load_health_state() {
  if (!options_.state_dir.empty()) {
    health_file_.emplace(options_.state_dir, manifest_.source);
    health_state_ = health_file_->load();
    if (!health_state_.services.empty()) {
      spdlog::info("{}: restoring the last check reports and maintenance of {} service(s)", health_file_->path(),
                   health_state_.services.size());
    }
  }
  if (options_.maintenance) {
    // For a node being repaired: every service, until DELETE /v1/maintenance (kept across restarts).
    for (const auto& s : manifest_.services) {
      auto& record = health_state_.services[record_key(s)];
      if (!record.maintenance) record.maintenance = core::MaintenanceRecord{*options_.maintenance, unix_now_ms()};
    }
  }
  for (const auto& s : manifest_.services) {
    const auto it = health_state_.services.find(record_key(s));
    if (it == health_state_.services.end() || !it->second.maintenance) continue;
    const std::string& reason = it->second.maintenance->reason;
    spdlog::info("{}: in maintenance ({}); registered with state maintenance until DELETE /v1/maintenance",
                 manifest_.key_of(s), reason.empty() ? "no reason given" : reason);
  }
  prune_health_state();
}

bool Agent::in_maintenance(const core::ServiceSpec& spec) const {
  const auto it = health_state_.services.find(record_key(spec));
  return it != health_state_.services.end() && it->second.maintenance.has_value();
}

core::DesiredKey Agent::desired_key(const core::ServiceSpec& spec) const {
  const bool maintenance = in_maintenance(spec);
  return {manifest_.key_of(spec),
          core::encode_registration(spec, maintenance ? core::InstanceState::kMaintenance : core::InstanceState::kPassing),
          runtime::HealthMonitor::initially_healthy(spec)};
}

runtime::Registrar::ValueOf Agent::value_source(const core::ServiceSpec& spec) const {
  return [spec](core::InstanceState state) { return core::encode_registration(spec, state); };
}

void Agent::restore_ttl_into(runtime::HealthMonitor& health, const core::ServiceSpec& spec) {
  runtime::HealthMonitor* monitor = &health;
  if (!monitor->ttl_check(0)) return;
  const auto it = health_state_.services.find(record_key(spec));
  if (it == health_state_.services.end() || !it->second.ttl) return;
  const core::TtlRecord& r = *it->second.ttl;
  const auto age = std::chrono::milliseconds(core::record_age_ms(r.at_unix_ms, unix_now_ms()));
  monitor->restore(0, r.report, r.note, r.at_unix_ms, age);
  spdlog::info("{}: last ttl report '{}' {} ms ago restored: check {}", manifest_.key_of(spec), core::to_string(r.report),
               age.count(), core::to_string(monitor->status(0)));
}

std::vector<core::ServiceRef> Agent::service_refs() const {
  std::vector<core::ServiceRef> refs;
  for (size_t i = 0; i < manifest_.services.size(); ++i) {
    const auto& s = manifest_.services[i];
    const bool ttl = i < services_.size() && services_[i].health && services_[i].health->ttl_check(0).has_value();
    refs.push_back({s.name, s.id, ttl});
  }
  return refs;
}

nlohmann::json Agent::on_check_report(size_t service, core::TtlReport report, std::string note) {
  const core::ServiceSpec& spec = manifest_.services.at(service);
  runtime::HealthMonitor& monitor = *services_.at(service).health;
  const int64_t now = unix_now_ms();
  auto& record = health_state_.services[record_key(spec)];
  record.ttl = core::TtlRecord{report, core::bound_output(note), now};
  const core::HealthStatus check = monitor.report(0, report, std::move(note), now);
  save_health_state();
  const size_t index = *monitor.ttl_check(0);
  const auto& view = monitor.view().front().checks[index];
  nlohmann::json body = {{"service", spec.name + "/" + spec.id},
                         {"check", view.name},
                         {"status", core::to_string(check)},
                         {"service_status", core::to_string(monitor.status(0))},
                         {"ttl_seconds", std::chrono::duration<double>(view.ttl).count()}};
  if (registrar_) body["state"] = std::string(core::to_string(registrar_->instance_state(services_[service].key_index)));
  return body;
}

nlohmann::json Agent::on_maintenance(const core::MaintenanceRequest& request) {
  const int64_t now = unix_now_ms();
  nlohmann::json changed = nlohmann::json::array();
  for (size_t i : request.services) {
    const core::ServiceSpec& spec = manifest_.services.at(i);
    auto& record = health_state_.services[record_key(spec)];
    const std::string key = manifest_.key_of(spec);
    if (request.on) {
      const bool was = record.maintenance.has_value();
      // A second POST updates the reason but keeps when the maintenance began.
      record.maintenance = core::MaintenanceRecord{request.reason, was ? record.maintenance->since_unix_ms : now};
      if (!was) spdlog::info("{}: maintenance on ({})", key, request.reason.empty() ? "no reason given" : request.reason);
    } else if (record.maintenance) {
      record.maintenance.reset();
      spdlog::info("{}: maintenance off", key);
    }
    // While shutting down the keys are withdrawn (or handed over) for good: the record is kept for the next
    // process, the registration is left alone.
    if (registrar_ && !shutting_down_) {
      registrar_->set_maintenance(services_.at(i).key_index, request.on,
                                  request.on ? "maintenance: " + request.reason : "maintenance ended");
    }
    changed.push_back(spec.name + "/" + spec.id);
  }
  save_health_state();
  nlohmann::json body = {{"maintenance", request.on}, {"services", changed}};
  if (request.on) body["reason"] = request.reason;
  return body;
}

void Agent::prune_health_state() {
  for (auto it = health_state_.services.begin(); it != health_state_.services.end();) {
    bool known = !it->second.empty();
    if (known) {
      known = false;
      for (const auto& s : manifest_.services) known |= record_key(s) == it->first;
    }
    it = known ? std::next(it) : health_state_.services.erase(it);
  }
  save_health_state();
}

// One write at a time on the writer pool (FIFO with the other files); changes while it runs are written
// once more after it, with the state as it is then: the file never lags the last change for long, and a
// burst of reports is one or two writes rather than one each.
void Agent::save_health_state() {
  if (!health_file_) return;
  if (health_write_in_flight_) {
    health_write_again_ = true;
    return;
  }
  health_write_in_flight_ = true;
  health_write_again_ = false;
  bool keep = false;
  for (const auto& [key, record] : health_state_.services) keep |= !record.empty();
  // Nothing to keep: no file at all, so a clean stop leaves the state directory as it found it.
  asio::post(writer_, [this, keep, bytes = core::encode_health_state(health_state_)] {
    if (keep) {
      health_file_->save(bytes);
    } else {
      health_file_->remove();
    }
    asio::post(io_, [this] {
      health_write_in_flight_ = false;
      if (health_write_again_) save_health_state();
    });
  });
}

void Agent::write_health_state_now() {
  bool keep = false;
  for (const auto& [key, record] : health_state_.services) keep |= !record.empty();
  if (keep) {
    health_file_->save(core::encode_health_state(health_state_));
  } else {
    health_file_->remove();
  }
}

}  // namespace sidecar::daemon
