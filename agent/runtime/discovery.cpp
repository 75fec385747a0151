#include "agent/runtime/discovery.hpp"

#include <spdlog/spdlog.h>

#include "agent/core/selection.hpp"
#include "agent/output/render.hpp"

namespace sidecar::runtime {

Discovery::Discovery(asio::io_context& io, EtcdPort& etcd, asio::thread_pool& writer,
                     const core::DiscoverSpec& spec, const std::string& etcd_prefix, std::string template_text,
                     std::set<std::string> self_ids, std::string local_zone, std::string seed)
    : spec_(spec),
      template_text_(std::move(template_text)),
      self_ids_(std::move(self_ids)),
      local_zone_(std::move(local_zone)),
      seed_(std::move(seed)),
      set_(etcd_prefix + "/" + spec.service + "/"),
      watcher_(io, etcd, set_.key_prefix(), *this),
      output_(io, writer,
              FileOutputOptions{.name = "discover " + spec.service,
                                .path = spec.output,
                                .mode = spec.mode,
                                .wait_min = spec.wait_min,
                                .wait_max = spec.wait_max,
                                .wait_holdoff = spec.wait_holdoff,
                                .check_command = spec.check_command,
                                .on_change = spec.on_change,
                                .command_timeout = spec.command_timeout},
              [this](std::string& out) { return render(out); }) {}

void Discovery::start() {
  output_.start();
  watcher_.start();
}

void Discovery::stop() {
  watcher_.stop();
  output_.stop();
}

asio::awaitable<void> Discovery::join() {
  co_await watcher_.join();
  co_await output_.join();
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
  std::size_t changed = 0;  // how many keys: one change is written at once, several are paced as a burst
  for (const auto& ev : events) {
    auto r = set_.apply(ev);
    if (r.invalid) {
      note_invalid(r.id, r.reason);
    } else if (!r.foreign && !r.duplicate) {
      warned_invalid_.erase(r.id);
    }
    if (r.changed) ++changed;
  }
  stats_.instances = set_.size();
  stats_.invalid = set_.invalid_count();
  if (changed > 0) output_.changed(changed);
}

bool Discovery::render(std::string& out) {
  // Selected and sorted per write, from the set (no per-instance cache: the file is rendered from this list
  // by render.cpp's direct encoder). min_instances applies to what the selector kept.
  std::vector<const core::Instance*> instances = set_.sorted();
  std::erase_if(instances, [this](const core::Instance* i) { return excluded(i->id); });
  instances = core::select_instances(instances, spec_.select, local_zone_, spec_.sort, seed_);
  const size_t count = instances.size();
  if (static_cast<int>(count) < spec_.min_instances) {
    ++stats_.below_min_total;
    if (!warned_below_min_) {
      spdlog::warn("discover {}: {} instance(s) is below min_instances {}; keeping the last written {}",
                   spec_.service, count, spec_.min_instances, spec_.output);
      warned_below_min_ = true;
    }
    return false;
  }
  if (warned_below_min_) {
    spdlog::info("discover {}: back to {} instance(s), at or above min_instances", spec_.service, count);
    warned_below_min_ = false;
  }
  if (auto error = output::render_into(out, spec_, spec_.service, set_.revision(), instances, template_text_)) {
    spdlog::error("discover {}: {}; keeping the last written {}", spec_.service, *error, spec_.output);
    return false;
  }
  return true;
}

}  // namespace sidecar::runtime
