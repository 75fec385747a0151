// Owns: the xDS resources of every name some stream wants: the catalog watch behind each (a lookup, then a
//       subscription while wanted), the resources built once per change and shared by every stream, and the
//       streams to wake when one changes.
// Thread: io_context thread.
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without including it
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "agent/core/xds_stream.hpp"
#include "agent/frontend/xds/resources.hpp"
#include "agent/runtime/catalog.hpp"
#include "agent/runtime/task_scope.hpp"

namespace sidecar::frontend::xds {

namespace asio = boost::asio;

// A stream: told when a resource it wants changed (or its first lookup ended).
class ResourceWatcher {
 public:
  virtual ~ResourceWatcher() = default;
  virtual void on_resource_change() = 0;
};

struct ResourceCacheOptions {
  // How long a name's first lookup waits for its watch to sync before the name counts as absent for now
  // (a later sync still makes it present: the subscription stays).
  std::chrono::milliseconds lookup_timeout{2000};
  EndpointOptions endpoints;
};

struct ResourceCacheStats {
  uint64_t builds_total = 0;  // ClusterLoadAssignments built (once per change, whatever the stream count)
  uint64_t refused_total = 0; // names refused a watch by catalog.max_services
};

class ResourceCache {
 public:
  ResourceCache(asio::io_context& io, runtime::Catalog& catalog, ResourceCacheOptions options);
  ResourceCache(const ResourceCache&) = delete;
  ResourceCache& operator=(const ResourceCache&) = delete;
  ~ResourceCache();

  // A stream wants `name` (on any type) / no longer does. A name nobody wants is dropped with its watch.
  void want(const std::string& name, ResourceWatcher* watcher);
  void release(const std::string& name, ResourceWatcher* watcher);

  core::xds::ResourceState state(core::xds::ResourceType type, const std::string& name) const;
  // Present resources only; nullptr otherwise. Valid until the next change of that name.
  std::shared_ptr<const wkt::Any> resource(core::xds::ResourceType type, const std::string& name) const;

  size_t size() const { return entries_.size(); }
  const ResourceCacheStats& stats() const { return stats_; }

  void stop();
  asio::awaitable<void> join();

 private:
  struct Entry;
  asio::awaitable<void> resolve(std::string name, uint64_t generation);
  void rebuild(Entry& entry, const runtime::CatalogService& service);
  void notify(Entry& entry);

  asio::io_context& io_;
  runtime::Catalog& catalog_;
  ResourceCacheOptions options_;
  std::map<std::string, std::unique_ptr<Entry>, std::less<>> entries_;
  uint64_t generations_ = 0;
  ResourceCacheStats stats_;
  bool stopping_ = false;
  runtime::TaskScope scope_;  // last: the lookups use the members above
};

}  // namespace sidecar::frontend::xds
