// Owns: one `config:` entry — a key or a prefix mirrored from etcd into a local file (or directory).
// Thread: io_context thread.
#pragma once

#include <map>
#include <string>

#include "agent/core/manifest.hpp"
#include "agent/runtime/file_output.hpp"
#include "agent/runtime/prefix_watcher.hpp"

namespace sidecar::runtime {

class ConfigMirror final : public PrefixSink {
 public:
  ConfigMirror(asio::io_context& io, etcd::Client& client, asio::thread_pool& writer, const core::ConfigSpec& spec);
  void start();
  void stop();

  void on_snapshot(std::vector<core::KvInput> kvs, int64_t revision) override;
  void on_events(const std::vector<core::EventInput>& events) override;

  const core::ConfigSpec& spec() const { return spec_; }
  const PrefixWatcherStats& watch_stats() const { return watcher_.stats(); }
  const FileOutputStats& output_stats() const { return output_.stats(); }
  size_t keys() const { return values_.size(); }

 private:
  std::optional<std::string> render();
  bool single_key() const { return !spec_.key.empty(); }

  core::ConfigSpec spec_;
  std::map<std::string, std::string> values_;  // full key -> value
  std::map<std::string, int64_t> mod_revisions_;
  PrefixWatcher watcher_;
  FileOutput output_;
  bool warned_missing_ = false;
};

}  // namespace sidecar::runtime
