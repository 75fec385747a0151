#include "agent/runtime/config_mirror.hpp"

#include <spdlog/spdlog.h>

#include <unistd.h>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <cstring>

#include "agent/output/atomic_file.hpp"
#include "agent/output/render.hpp"
#include "agent/runtime/command.hpp"
#include "agent/runtime/offload.hpp"

namespace sidecar::runtime {

ConfigMirror::ConfigMirror(asio::io_context& io, EtcdPort& etcd, asio::thread_pool& writer,
                           const core::ConfigSpec& spec)
    : spec_(spec),
      watcher_(spec.key.empty() ? PrefixWatcher(io, etcd, spec.prefix, *this)
                                : PrefixWatcher(io, etcd, spec.key, spec.key + std::string(1, '\0'), *this)),
      output_(io, writer,
              FileOutputOptions{.name = "config " + (spec.key.empty() ? spec.prefix : spec.key),
                                .path = spec.output,
                                .mode = spec.mode,
                                .wait_min = std::chrono::milliseconds(0),
                                .wait_max = std::chrono::milliseconds(100),
                                .check_command = {},
                                .on_change = spec.on_change,
                                .command_timeout = spec.command_timeout},
              [this](std::string& out) { return render(out); }),
      io_(io),
      writer_(writer),
      dir_wake_(io),
      scope_(io, "config " + spec_.output) {}

void ConfigMirror::start() {
  if (directory()) {
    scope_.spawn("directory loop", run_directory());
  } else {
    output_.start();
  }
  watcher_.start();
}

void ConfigMirror::stop() {
  stopping_ = true;
  dir_wake_.cancel();
  watcher_.stop();
  output_.stop();
}

asio::awaitable<void> ConfigMirror::join() {
  co_await watcher_.join();
  co_await output_.join();
  co_await scope_.join();
}

void ConfigMirror::changed() {
  if (directory()) {
    dir_dirty_ = true;
    dir_wake_.cancel();
  } else {
    output_.changed();
  }
}

namespace {

// "a/b.yaml" is fine; "", "/x", "../x", "a//b", "a/./b" are not: a key must never write outside `output`.
bool safe_relative_path(const std::string& rel) {
  if (rel.empty() || rel.front() == '/' || rel.back() == '/') return false;
  size_t start = 0;
  while (start <= rel.size()) {
    const size_t end = std::min(rel.find('/', start), rel.size());
    const std::string part = rel.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") return false;
    start = end + 1;
  }
  return rel.find('\0') == std::string::npos;
}

}  // namespace

asio::awaitable<void> ConfigMirror::run_directory() {
  while (!stopping_) {
    if (!dir_dirty_) {
      dir_wake_.expires_at(asio::steady_timer::time_point::max());
      boost::system::error_code ec;
      co_await dir_wake_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    dir_dirty_ = false;
    std::map<std::string, std::string> desired;
    for (const auto& [key, value] : values_) {
      std::string rel = key.substr(spec_.prefix.size());
      if (!safe_relative_path(rel)) {
        if (warned_paths_.insert(key).second) {
          spdlog::warn("config {}: key {} is not a safe file name under {}; skipped", spec_.prefix, key, spec_.output);
        }
        continue;
      }
      desired.emplace(std::move(rel), value);
    }
    bool changed_any = false;
    bool failed = false;
    for (const auto& [rel, bytes] : desired) {
      auto it = dir_written_.find(rel);
      if (it != dir_written_.end() && it->second == bytes) continue;
      auto job = [path = spec_.output + "/" + rel, bytes = bytes, mode = spec_.mode] {
        return output::write_file_atomic(path, bytes, mode, true);
      };
      auto r = co_await offload(io_, writer_, std::move(job));
      if (!r.ok()) {
        ++dir_failures_;
        failed = true;
        spdlog::error("config {}: {}", spec_.prefix, r.error);
        continue;
      }
      if (r.status == output::WriteResult::Status::kWritten) {
        ++dir_writes_;
        changed_any = true;
      }
      dir_written_[rel] = bytes;
    }
    for (auto it = dir_written_.begin(); it != dir_written_.end();) {
      if (desired.count(it->first)) {
        ++it;
        continue;
      }
      auto job = [path = spec_.output + "/" + it->first] { return ::unlink(path.c_str()) == 0 || errno == ENOENT; };
      if (co_await offload(io_, writer_, std::move(job))) {
        changed_any = true;
        it = dir_written_.erase(it);
      } else {
        ++dir_failures_;
        failed = true;
        ++it;
      }
    }
    if (failed) dir_dirty_ = true;  // retried on the next change or below
    if (changed_any && !spec_.on_change.empty()) {
      auto r = co_await run_shell(spec_.on_change, spec_.command_timeout);
      if (!r.ok()) spdlog::warn("config {}: on_change failed ({})", spec_.prefix, r.describe());
    }
    if (failed && !stopping_) {
      dir_wake_.expires_after(std::chrono::seconds(1));
      boost::system::error_code ec;
      co_await dir_wake_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
  }
}

void ConfigMirror::on_snapshot(std::vector<core::KvInput> kvs, int64_t) {
  values_.clear();
  mod_revisions_.clear();
  for (auto& kv : kvs) {
    mod_revisions_[kv.key] = kv.mod_revision;
    values_[std::move(kv.key)] = std::move(kv.value);
  }
  changed();
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
  if (changed) this->changed();
}

bool ConfigMirror::render(std::string& out) {
  if (single_key()) {
    auto it = values_.find(spec_.key);
    if (it != values_.end()) {
      if (warned_missing_) spdlog::info("config {}: key is back", spec_.key);
      warned_missing_ = false;
      out = it->second;
      return true;
    }
    if (!warned_missing_) {
      spdlog::warn("config {}: key is missing in etcd; {}", spec_.key,
                   spec_.default_value ? "writing the manifest's default" : "keeping the existing " + spec_.output);
      warned_missing_ = true;
    }
    if (!spec_.default_value) return false;
    out = *spec_.default_value;
    return true;
  }
  std::vector<std::pair<std::string, std::string>> kvs(values_.begin(), values_.end());
  out = output::render_config_prefix_json(std::move(kvs), spec_.prefix);
  return true;
}

}  // namespace sidecar::runtime
