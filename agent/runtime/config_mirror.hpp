// Owns: one `config:` entry — a key or a prefix mirrored from etcd into a local file (or directory).
// Thread: io_context thread.
#pragma once

#include <map>
#include <set>
#include <string>

#include "agent/core/manifest.hpp"
#include "agent/runtime/file_output.hpp"
#include "agent/runtime/prefix_watcher.hpp"

namespace sidecar::runtime {

class ConfigMirror final : public WholeSnapshotSink {
 public:
  ConfigMirror(asio::io_context& io, EtcdPort& etcd, asio::thread_pool& writer, const core::ConfigSpec& spec);
  void start();
  void stop();
  asio::awaitable<void> join();

  void on_snapshot(std::vector<core::KvInput> kvs, int64_t revision) override;
  void on_events(const std::vector<core::EventInput>& events) override;

  const core::ConfigSpec& spec() const { return spec_; }
  const PrefixWatcherStats& watch_stats() const { return watcher_.stats(); }
  const FileOutputStats& output_stats() const { return output_.stats(); }
  size_t keys() const { return values_.size(); }
  uint64_t dir_writes() const { return dir_writes_; }
  uint64_t dir_failures() const { return dir_failures_; }

 private:
  bool render(std::string& out);
  bool single_key() const { return !spec_.key.empty(); }
  bool directory() const { return !single_key() && spec_.format == "dir"; }
  void changed();
  // format: dir — one file per key under `output`; keys that are not safe relative paths are skipped.
  asio::awaitable<void> run_directory();

  core::ConfigSpec spec_;
  std::map<std::string, std::string> values_;  // full key -> value
  std::map<std::string, int64_t> mod_revisions_;
  PrefixWatcher watcher_;
  FileOutput output_;
  bool warned_missing_ = false;
  asio::io_context& io_;
  asio::thread_pool& writer_;
  asio::steady_timer dir_wake_;
  bool dir_dirty_ = false;
  bool stopping_ = false;
  TaskScope scope_;  // the directory loop; the watcher and the output have their own
  std::map<std::string, std::string> dir_written_;  // relative path -> bytes on disk
  std::set<std::string> warned_paths_;
  uint64_t dir_writes_ = 0;
  uint64_t dir_failures_ = 0;
};

}  // namespace sidecar::runtime
