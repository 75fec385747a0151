// Owns: one watched service of the catalog: its instance set kept from etcd (paged first read, then the
//       watch), its index (the etcd revision of its last change), whether it is synced, and its listeners.
// Thread: io_context thread.
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without including it
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <algorithm>
#include <chrono>
#include <memory>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "agent/core/endpoint_set.hpp"
#include "agent/runtime/prefix_watcher.hpp"

namespace sidecar::runtime {

class CatalogService;

// What changed, handed to listeners after the set was updated.
struct CatalogChange {
  bool snapshot = false;  // the whole set was (re)read: first sync or resync
  size_t changed = 0;     // instances whose published fields changed (on a snapshot: 0 or 1)
  // The ids an event batch touched, changed or not (empty on a snapshot): for views that update per id.
  const std::vector<std::string>* ids = nullptr;
};

class CatalogListener {
 public:
  virtual ~CatalogListener() = default;
  // Called on the io_context thread, after every snapshot and every event batch that changed something.
  // Must not subscribe or unsubscribe from inside the call.
  virtual void on_catalog_change(const CatalogService& service, const CatalogChange& change) = 0;
};

struct CatalogServiceStats {
  uint64_t invalid_values_total = 0;  // unusable values seen (each put counts once)
  uint64_t changes_total = 0;         // snapshots and event batches that changed the set
};

class CatalogService final : public PrefixSink {
 public:
  CatalogService(asio::io_context& io, EtcdPort& etcd, std::string name, const std::string& etcd_prefix,
                 PrefixWatcherOptions options = {});
  void start() { watcher_.start(); }
  void stop();
  // Completes once the watch has ended (after stop()); then this may be destroyed.
  asio::awaitable<void> join() { return watcher_.join(); }

  const std::string& name() const { return name_; }
  const core::EndpointSet& set() const { return set_; }
  // The etcd revision of the last change to the set; 0 before the first sync. A first sync sets it to the
  // newest mod_revision it read (the read's revision when the prefix is empty); a resync that changed the
  // set, to the read's revision (a delete it missed left no key to date it, so the read is the bound). It
  // grows with every change, except after etcd came back wiped with lower revisions: then it follows them
  // down.
  int64_t index() const { return index_; }
  bool synced() const { return watcher_.stats().synced; }
  const PrefixWatcherStats& watch_stats() const { return watcher_.stats(); }
  const CatalogServiceStats& stats() const { return stats_; }

  void add_listener(CatalogListener* listener);
  void remove_listener(CatalogListener* listener);
  size_t listeners() const { return listeners_.size(); }

  // Completes when the service is synced (at once if it is), or false after `timeout` or at stop().
  asio::awaitable<bool> wait_synced(std::chrono::milliseconds timeout);

  void snapshot_page(std::vector<core::KvInput> kvs) override {
    for (const auto& kv : kvs) snapshot_last_change_ = std::max(snapshot_last_change_, kv.mod_revision);
    set_.add_to_reset(std::move(kvs));
  }
  void snapshot_done(int64_t revision) override;
  void snapshot_abandoned() override {
    snapshot_last_change_ = 0;
    set_.abandon_reset();
  }
  void on_events(const std::vector<core::EventInput>& events) override;

 private:
  void note_invalid(const std::string& id, const std::string& reason);
  void notify(const CatalogChange& change);
  void wake_sync_waiters();

  asio::io_context& io_;
  std::string name_;
  core::EndpointSet set_;
  int64_t index_ = 0;
  int64_t snapshot_last_change_ = 0;  // the newest mod_revision of the read in progress
  std::vector<CatalogListener*> listeners_;
  // Shared with the wait_synced() frames: one resumed after this service was stopped and destroyed reads
  // only this state, never the service.
  struct SyncState {
    std::vector<asio::steady_timer*> waiters;  // each lives in a waiting wait_synced() frame
    bool synced = false;
  };
  std::shared_ptr<SyncState> sync_ = std::make_shared<SyncState>();
  std::unordered_map<std::string, std::string> warned_invalid_;  // id -> reason already logged
  std::vector<std::string> batch_ids_;  // reused per event batch
  CatalogServiceStats stats_;
  bool stopping_ = false;
  PrefixWatcher watcher_;  // last: its loop feeds the members above
};

}  // namespace sidecar::runtime
