// Owns: one `discover:` entry — its watcher, its in-memory endpoint set and its output file.
// Thread: io_context thread.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <unordered_map>

#include "agent/core/endpoint_set.hpp"
#include "agent/core/manifest.hpp"
#include "agent/runtime/file_output.hpp"
#include "agent/runtime/prefix_watcher.hpp"

namespace sidecar::runtime {

struct DiscoveryStats {
  size_t instances = 0;
  size_t invalid = 0;
  uint64_t invalid_values_total = 0;  // unusable values seen (each put counts once)
  uint64_t below_min_total = 0;       // renders held back by min_instances
};

class Discovery final : public PrefixSink {
 public:
  // `self_ids`: ids this agent registers under the same service, left out when include_self is false.
  // `local_zone`: the agent's zone (`select: {zone: local}`); `seed`: per-host text for sort: random-stable.
  Discovery(asio::io_context& io, EtcdPort& etcd, asio::thread_pool& writer, const core::DiscoverSpec& spec,
            const std::string& etcd_prefix, std::string template_text, std::set<std::string> self_ids,
            std::string local_zone = {}, std::string seed = {});
  void start();
  void stop();
  // Completes once the watch and the output loop have ended (after stop()); then this may be destroyed.
  asio::awaitable<void> join();

  void on_snapshot(std::vector<core::KvInput> kvs, int64_t revision) override;
  void on_events(const std::vector<core::EventInput>& events) override;

  const core::DiscoverSpec& spec() const { return spec_; }
  const core::EndpointSet& set() const { return set_; }
  const PrefixWatcherStats& watch_stats() const { return watcher_.stats(); }
  const FileOutputStats& output_stats() const { return output_.stats(); }
  const DiscoveryStats& stats() const { return stats_; }

 private:
  bool render(std::string& out);
  bool excluded(const std::string& id) const { return !spec_.include_self && self_ids_.count(id) > 0; }
  void note_invalid(const std::string& id, const std::string& reason);

  core::DiscoverSpec spec_;
  std::string template_text_;
  std::set<std::string> self_ids_;
  core::EndpointSet set_;
  std::string local_zone_;
  std::string seed_;
  PrefixWatcher watcher_;
  FileOutput output_;
  std::unordered_map<std::string, std::string> warned_invalid_;  // id -> reason already logged
  bool warned_below_min_ = false;
  DiscoveryStats stats_;
};

}  // namespace sidecar::runtime
