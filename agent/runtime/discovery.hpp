// Owns: one `discover:` entry: its subscription to the service in the catalog and its output file.
// Thread: io_context thread.
#pragma once

#include <set>
#include <string>

#include "agent/core/manifest.hpp"
#include "agent/runtime/catalog.hpp"
#include "agent/runtime/file_output.hpp"

namespace sidecar::runtime {

struct DiscoveryStats {
  size_t instances = 0;               // valid instances of the service (before this entry's selection)
  size_t invalid = 0;
  uint64_t invalid_values_total = 0;  // unusable values seen (each put counts once), for the service
  uint64_t below_min_total = 0;       // renders held back by min_instances
};

class Discovery final : public CatalogListener {
 public:
  // `self_ids`: ids this agent registers under the same service, left out when include_self is false.
  // `local_zone`: the agent's zone (`select: {zone: local}`); `seed`: per-host text for sort: random-stable.
  Discovery(asio::io_context& io, Catalog& catalog, asio::thread_pool& writer, const core::DiscoverSpec& spec,
            std::string template_text, std::set<std::string> self_ids, std::string local_zone = {},
            std::string seed = {});
  // Subscribes (sharing the service's watch with every other consumer of it) and starts the output.
  void start();
  void stop();
  // Completes once the output loop has ended (after stop()); then this may be destroyed, which releases
  // the subscription (the catalog stops the watch when no one else holds it).
  asio::awaitable<void> join() { return output_.join(); }

  void on_catalog_change(const CatalogService& service, const CatalogChange& change) override;

  const core::DiscoverSpec& spec() const { return spec_; }
  const PrefixWatcherStats& watch_stats() const;
  const FileOutputStats& output_stats() const { return output_.stats(); }
  DiscoveryStats stats() const;

 private:
  bool render(std::string& out);
  bool excluded(const std::string& id) const { return !spec_.include_self && self_ids_.count(id) > 0; }

  Catalog& catalog_;
  core::DiscoverSpec spec_;
  std::string template_text_;
  std::set<std::string> self_ids_;
  std::string local_zone_;
  std::string seed_;
  FileOutput output_;
  Catalog::Subscription subscription_;
  bool warned_below_min_ = false;
  uint64_t below_min_total_ = 0;
};

}  // namespace sidecar::runtime
