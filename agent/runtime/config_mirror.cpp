#include "agent/runtime/config_mirror.hpp"

#include <spdlog/spdlog.h>

#include "agent/output/render.hpp"

namespace sidecar::runtime {

ConfigMirror::ConfigMirror(asio::io_context& io, etcd::Client& client, asio::thread_pool& writer,
                           const core::ConfigSpec& spec)
    : spec_(spec),
      watcher_(spec.key.empty() ? PrefixWatcher(io, client, spec.prefix, *this)
                                : PrefixWatcher(io, client, spec.key, spec.key + std::string(1, '\0'), *this)),
      output_(io, writer,
              FileOutputOptions{.name = "config " + (spec.key.empty() ? spec.prefix : spec.key),
                                .path = spec.output,
                                .mode = spec.mode,
                                .wait_min = std::chrono::milliseconds(0),
                                .wait_max = std::chrono::milliseconds(100),
                                .check_command = {},
                                .on_change = spec.on_change,
                                .command_timeout = spec.command_timeout},
              [this] { return render(); }) {}

void ConfigMirror::start() {
  output_.start();
  watcher_.start();
}

void ConfigMirror::stop() {
  watcher_.stop();
  output_.stop();
}

void ConfigMirror::on_snapshot(std::vector<core::KvInput> kvs, int64_t) {
  values_.clear();
  mod_revisions_.clear();
  for (auto& kv : kvs) {
    mod_revisions_[kv.key] = kv.mod_revision;
    values_[std::move(kv.key)] = std::move(kv.value);
  }
  output_.changed();
}

void ConfigMirror::on_events(const std::vector<core::EventInput>& events) {
  bool changed = false;
  for (const auto& ev : events) {
    auto rev = mod_revisions_.find(ev.kv.key);
    if (rev != mod_revisions_.end() && ev.kv.mod_revision <= rev->second) continue;  // already applied
    if (ev.type == core::EventInput::Type::kDelete) {
      changed = values_.erase(ev.kv.key) > 0 || changed;
      mod_revisions_.erase(ev.kv.key);
    } else {
      auto& value = values_[ev.kv.key];
      changed = changed || value != ev.kv.value;
      value = ev.kv.value;
      mod_revisions_[ev.kv.key] = ev.kv.mod_revision;
    }
  }
  if (changed) output_.changed();
}

std::optional<std::string> ConfigMirror::render() {
  if (single_key()) {
    auto it = values_.find(spec_.key);
    if (it != values_.end()) {
      if (warned_missing_) spdlog::info("config {}: key is back", spec_.key);
      warned_missing_ = false;
      return it->second;
    }
    if (!warned_missing_) {
      spdlog::warn("config {}: key is missing in etcd; {}", spec_.key,
                   spec_.default_value ? "writing the manifest's default" : "keeping the existing " + spec_.output);
      warned_missing_ = true;
    }
    if (spec_.default_value) return *spec_.default_value;
    return std::nullopt;
  }
  std::vector<std::pair<std::string, std::string>> kvs(values_.begin(), values_.end());
  return output::render_config_prefix_json(std::move(kvs), spec_.prefix);
}

}  // namespace sidecar::runtime
