#include "agent/frontend/xds/resource_cache.hpp"

#include <spdlog/spdlog.h>

#include <vector>

namespace sidecar::frontend::xds {

using core::xds::ResourceState;
using core::xds::ResourceType;

// One wanted name. Listener and Cluster depend only on the name: built once, when the service turns out to
// exist. The ClusterLoadAssignment is rebuilt per catalog change and its version moves only when its bytes do.
struct ResourceCache::Entry final : runtime::CatalogListener {
  Entry(ResourceCache& c, std::string n, std::optional<ResourceName> p, uint64_t g)
      : cache(c), name(std::move(n)), parsed(std::move(p)), generation(g) {}
  void on_catalog_change(const runtime::CatalogService& service, const runtime::CatalogChange&) override {
    cache.rebuild(*this, service);
  }

  ResourceCache& cache;
  std::string name;
  std::optional<ResourceName> parsed;
  uint64_t generation;
  bool resolved = false;  // the first lookup has ended
  bool exists = false;    // the service has had instances since it was first wanted
  uint64_t version = 0;   // of the ClusterLoadAssignment
  std::array<std::shared_ptr<const wkt::Any>, core::xds::kResourceTypes> resources;
  std::set<ResourceWatcher*> watchers;
  runtime::Catalog::Subscription subscription;
};

ResourceCache::ResourceCache(asio::io_context& io, runtime::Catalog& catalog, ResourceCacheOptions options)
    : io_(io), catalog_(catalog), options_(std::move(options)), scope_(io, "xds resources") {}

ResourceCache::~ResourceCache() = default;

void ResourceCache::want(const std::string& name, ResourceWatcher* watcher) {
  auto it = entries_.find(name);
  if (it == entries_.end()) {
    auto entry = std::make_unique<Entry>(*this, name, parse_resource_name(name), ++generations_);
    Entry& e = *entry;
    it = entries_.emplace(name, std::move(entry)).first;
    if (!e.parsed || stopping_) {
      e.resolved = true;  // never a service: absent, and nothing to watch
    } else {
      scope_.spawn("xds lookup", resolve(name, e.generation));
    }
  }
  it->second->watchers.insert(watcher);
}

void ResourceCache::release(const std::string& name, ResourceWatcher* watcher) {
  const auto it = entries_.find(name);
  if (it == entries_.end()) return;
  it->second->watchers.erase(watcher);
  // The subscription goes with the entry; the catalog's idle expiry then ends the watch in its own time.
  if (it->second->watchers.empty()) entries_.erase(it);
}

// lookup() is what max_services bounds and what waits for the first sync; the subscription then keeps the
// service watched, and this entry called per change, for as long as some stream wants the name.
asio::awaitable<void> ResourceCache::resolve(std::string name, uint64_t generation) {
  const std::string service = entries_.at(name)->parsed->service;
  const runtime::Catalog::Lookup lookup = co_await catalog_.lookup(service, options_.lookup_timeout);
  const auto it = entries_.find(name);
  if (stopping_ || it == entries_.end() || it->second->generation != generation) co_return;  // released meanwhile
  Entry& e = *it->second;
  e.resolved = true;
  if (lookup.status == runtime::Catalog::Lookup::Status::kRefused) {
    ++stats_.refused_total;
    spdlog::warn("xds {}: {}; the resource is reported as absent", name, lookup.error);
  } else if (lookup.status != runtime::Catalog::Lookup::Status::kStopping) {
    // Not synced yet (etcd slow or away): absent for now, and present at the first sync of the watch.
    if (lookup.status == runtime::Catalog::Lookup::Status::kNotSynced) spdlog::warn("xds {}: {}", name, lookup.error);
    e.subscription = catalog_.subscribe(service, e);
    if (e.subscription.service().synced()) {
      rebuild(e, e.subscription.service());
      co_return;  // rebuild notified
    }
  }
  notify(e);
}

void ResourceCache::rebuild(Entry& e, const runtime::CatalogService& service) {
  const std::vector<const core::Instance*> instances = service.set().sorted();
  if (!e.exists && instances.empty()) {
    if (!e.resolved) return;
    notify(e);
    return;
  }
  if (!e.exists) {
    e.exists = true;
    e.resources[static_cast<size_t>(ResourceType::kListener)] = std::make_shared<const wkt::Any>(build_listener(e.name));
    e.resources[static_cast<size_t>(ResourceType::kCluster)] = std::make_shared<const wkt::Any>(build_cluster(e.name));
  }
  ++stats_.builds_total;
  auto endpoints = std::make_shared<const wkt::Any>(build_endpoints(e.name, *e.parsed, instances, options_.endpoints));
  auto& current = e.resources[static_cast<size_t>(ResourceType::kEndpoints)];
  if (current && current->value() == endpoints->value()) return;  // nothing a client would see changed
  current = std::move(endpoints);
  ++e.version;
  notify(e);
}

void ResourceCache::notify(Entry& e) {
  // A watcher may release names from inside the call: iterate over a copy.
  const std::vector<ResourceWatcher*> watchers(e.watchers.begin(), e.watchers.end());
  for (ResourceWatcher* w : watchers) w->on_resource_change();
}

ResourceState ResourceCache::state(ResourceType type, const std::string& name) const {
  const auto it = entries_.find(name);
  if (it == entries_.end() || !it->second->resolved) return {ResourceState::Kind::kPending, 0};
  const Entry& e = *it->second;
  if (!e.exists) return {ResourceState::Kind::kAbsent, 0};
  // Listener and Cluster never change while the entry lives: version 1.
  return {ResourceState::Kind::kPresent, type == ResourceType::kEndpoints ? e.version : 1};
}

std::shared_ptr<const wkt::Any> ResourceCache::resource(ResourceType type, const std::string& name) const {
  const auto it = entries_.find(name);
  if (it == entries_.end() || !it->second->exists) return nullptr;
  return it->second->resources[static_cast<size_t>(type)];
}

void ResourceCache::stop() {
  stopping_ = true;
  // Subscriptions end before the catalog stops; streams have released their names by then or do it now.
  for (auto& [name, entry] : entries_) entry->subscription.reset();
}

asio::awaitable<void> ResourceCache::join() { co_await scope_.join(); }

}  // namespace sidecar::frontend::xds
