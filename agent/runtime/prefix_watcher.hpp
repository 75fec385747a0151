// Owns: one prefix's Range-then-Watch session with etcd: initial sync, resume after disconnects, resync
// after compaction or when etcd came back wiped or replaced.
// Thread: io_context thread. Feeds a PrefixSink; never re-reads the prefix per event. Talks to etcd only
// through an EtcdPort, so it runs against an in-memory fake in tests.
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without including it
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <string>
#include <vector>

#include "agent/core/endpoint_set.hpp"
#include "agent/core/watch_retry.hpp"
#include "agent/runtime/clock.hpp"
#include "agent/runtime/etcd_port.hpp"
#include "agent/runtime/task_scope.hpp"

namespace sidecar::runtime {

namespace asio = boost::asio;

// A snapshot arrives in pages, all read at one revision, so a prefix of a million keys never needs one
// response of hundreds of megabytes: snapshot_page() per page, then snapshot_done(revision) when the last
// page has arrived, or snapshot_abandoned() when the read failed part way (keep what you had before).
class PrefixSink {
 public:
  virtual ~PrefixSink() = default;
  virtual void snapshot_page(std::vector<core::KvInput> kvs) = 0;
  // The pages since the last done or abandoned are the whole range at `revision`: replace everything.
  // Called first, and again after every resync.
  virtual void snapshot_done(int64_t revision) = 0;
  virtual void snapshot_abandoned() = 0;
  // Events in revision order, as one watch response delivered them.
  virtual void on_events(const std::vector<core::EventInput>& events) = 0;
};

// For a sink that wants the whole snapshot in one call (small ranges: a config prefix, a test).
class WholeSnapshotSink : public PrefixSink {
 public:
  virtual void on_snapshot(std::vector<core::KvInput> kvs, int64_t revision) = 0;

  void snapshot_page(std::vector<core::KvInput> kvs) final {
    if (pending_.empty()) {
      pending_ = std::move(kvs);
    } else {
      for (auto& kv : kvs) pending_.push_back(std::move(kv));
    }
  }
  void snapshot_done(int64_t revision) final { on_snapshot(std::exchange(pending_, {}), revision); }
  void snapshot_abandoned() final { pending_.clear(); }

 private:
  std::vector<core::KvInput> pending_;
};

struct PrefixWatcherStats {
  uint64_t watch_starts = 0;  // watch streams created, first one included
  uint64_t resyncs = 0;       // snapshots after the first: compaction, wiped or replaced etcd
  int64_t revision = 0;       // last revision applied (events or progress)
  bool synced = false;        // the first snapshot has been delivered
  uint64_t retries = 0;       // restarts after a backoff (a failed or refused watch; not a resync)
  uint64_t range_pages = 0;   // Range responses read for snapshots (a paged read counts each page)
  std::chrono::milliseconds last_retry_delay{0};  // the backoff before the latest of those restarts
  // Contact with etcd: true from a successful read or watch response until a read fails or the stream ends
  // (a stopped or unreachable etcd ends it within gRPC's keepalive, 8 s). Views answering from the set say
  // they are stale while it is false; down_since (RuntimeClock) is when it last became false.
  bool live = false;
  std::chrono::steady_clock::time_point down_since{};
};

struct PrefixWatcherOptions {
  // Backoff after a failed or refused watch. Tests shrink it to keep time out of the picture.
  core::WatchRetryPolicy retry{};
  // Reading a large set takes longer than a unary call's usual deadline to read and ship.
  std::chrono::milliseconds range_timeout{std::chrono::seconds(30)};
  // Keys per page of the first read (etcd's Range limit): about 1 MB of typical registry values.
  int64_t range_page = 5000;
};

class PrefixWatcher {
 public:
  // `prefix` is watched as a range [prefix, prefix_end); pass "/services/order/" with its trailing slash.
  PrefixWatcher(asio::io_context& io, EtcdPort& etcd, std::string prefix, PrefixSink& sink,
                PrefixWatcherOptions options = {});
  // An explicit range: [key, range_end). A single key is [key, key + '\0').
  PrefixWatcher(asio::io_context& io, EtcdPort& etcd, std::string key, std::string range_end, PrefixSink& sink,
                PrefixWatcherOptions options = {});
  void start();
  void stop();
  // Completes once every loop started by start() has ended (after stop()); then this may be destroyed.
  asio::awaitable<void> join() { return scope_.join(); }
  const PrefixWatcherStats& stats() const { return stats_; }
  const std::string& prefix() const { return prefix_; }

 private:
  asio::awaitable<void> run();
  asio::awaitable<bool> snapshot();
  enum class Page { kDone, kMore, kFailed, kCompacted };
  // One page of the snapshot: from `from` (advanced past the page) at `at` (0: the latest; set by the first).
  asio::awaitable<Page> read_page(std::string& from, int64_t& at);
  // A read failed or the stream ended: no longer live, since now (kept from the first loss of an outage).
  void lost_contact();

  asio::io_context& io_;
  EtcdPort& etcd_;
  PrefixWatcherOptions options_;
  std::string prefix_;
  std::string range_end_;
  PrefixSink& sink_;
  asio::steady_timer retry_;
  std::shared_ptr<WatchSession> stream_;
  PrefixWatcherStats stats_;
  uint64_t cluster_id_ = 0;
  bool need_snapshot_ = true;
  bool snapshot_failing_ = false;
  bool stopping_ = false;
  TaskScope scope_;  // last: the loop it joins uses the members above
};

// The smallest key greater than every key starting with `prefix` (etcd's range_end for a prefix).
std::string prefix_range_end(const std::string& prefix);

}  // namespace sidecar::runtime
