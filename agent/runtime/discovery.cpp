#include "agent/runtime/discovery.hpp"

#include <spdlog/spdlog.h>

#include "agent/output/render.hpp"

namespace sidecar::runtime {

Discovery::Discovery(asio::io_context& io, etcd::Client& client, asio::thread_pool& writer,
                     const core::DiscoverSpec& spec, const std::string& etcd_prefix, std::string template_text,
                     std::set<std::string> self_ids)
    : spec_(spec),
      template_text_(std::move(template_text)),
      self_ids_(std::move(self_ids)),
      set_(etcd_prefix + "/" + spec.service + "/"),
      watcher_(io, client, set_.key_prefix(), *this),
      output_(io, writer,
              FileOutputOptions{.name = "discover " + spec.service,
                                .path = spec.output,
                                .mode = spec.mode,
                                .wait_min = spec.wait_min,
                                .wait_max = spec.wait_max,
                                .check_command = spec.check_command,
                                .on_change = spec.on_change,
                                .command_timeout = spec.command_timeout},
              [this] { return render(); }) {}

void Discovery::start() {
  output_.start();
  watcher_.start();
}

void Discovery::stop() {
  watcher_.stop();
  output_.stop();
}

void Discovery::note_invalid(const std::string& id, const std::string& reason) {
  ++stats_.invalid_values_total;
  auto [it, inserted] = warned_invalid_.try_emplace(id, reason);
  if (!inserted && it->second == reason) return;  // said already
  it->second = reason;
  spdlog::warn("discover {}: ignoring {}{}: {}", spec_.service, set_.key_prefix(), id, reason);
}

void Discovery::on_snapshot(std::vector<core::KvInput> kvs, int64_t revision) {
  auto result = set_.reset(std::move(kvs), revision);
  for (const auto& [id, reason] : result.invalid) note_invalid(id, reason);
  // Forget warnings for ids that are gone or valid now, so a later bad value is reported again.
  std::erase_if(warned_invalid_, [this](const auto& entry) {
    const auto* inst = set_.find(entry.first);
    return inst == nullptr || inst->valid();
  });
  spdlog::info("discover {}: synced {} instance(s) at revision {}", spec_.service, set_.size(), revision);
  stats_.instances = set_.size();
  stats_.invalid = set_.invalid_count();
  output_.changed();  // a first snapshot writes the file even when nothing differs from an empty set
}

void Discovery::on_events(const std::vector<core::EventInput>& events) {
  bool changed = false;
  for (const auto& ev : events) {
    auto r = set_.apply(ev);
    if (r.invalid) {
      note_invalid(r.id, r.reason);
    } else if (!r.foreign && !r.duplicate) {
      warned_invalid_.erase(r.id);
    }
    changed = changed || r.changed;
  }
  stats_.instances = set_.size();
  stats_.invalid = set_.invalid_count();
  if (changed) output_.changed();
}

std::optional<std::string> Discovery::render() {
  auto instances = set_.sorted();
  if (!spec_.include_self && !self_ids_.empty()) {
    std::erase_if(instances, [this](const core::Instance* i) { return self_ids_.count(i->id) > 0; });
  }
  if (static_cast<int>(instances.size()) < spec_.min_instances) {
    ++stats_.below_min_total;
    if (!warned_below_min_) {
      spdlog::warn("discover {}: {} instance(s) is below min_instances {}; keeping the last written {}",
                   spec_.service, instances.size(), spec_.min_instances, spec_.output);
      warned_below_min_ = true;
    }
    return std::nullopt;
  }
  if (warned_below_min_) {
    spdlog::info("discover {}: back to {} instance(s), at or above min_instances", spec_.service, instances.size());
    warned_below_min_ = false;
  }
  auto r = output::render(spec_, spec_.service, set_.revision(), instances, template_text_);
  if (!r.ok()) {
    spdlog::error("discover {}: {}; keeping the last written {}", spec_.service, *r.error, spec_.output);
    return std::nullopt;
  }
  return std::move(r.bytes);
}

}  // namespace sidecar::runtime
