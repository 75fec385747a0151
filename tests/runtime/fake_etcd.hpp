// Owns: an in-memory, revisioned etcd for runtime unit tests: keys, an event history, and the watch streams
//       opened on it, which the test can end, cancel (refusal or compaction) or keep from opening.
// Thread: the test's io_context thread only. Every answer is posted, never given inline, as gRPC's would be.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/runtime/etcd_port.hpp"

namespace sidecar::runtime::testing {

class FakeEtcd;

// One watch stream on the fake. Waits on a timer that never expires; wake() cancels it, which is how the
// fake (or cancel()) tells a parked open() or read() that something changed. No time passes in here.
class FakeWatch final : public WatchSession, public std::enable_shared_from_this<FakeWatch> {
 public:
  FakeWatch(FakeEtcd& etcd, asio::io_context& io);
  asio::awaitable<bool> open(WatchCreate create) override;
  asio::awaitable<std::optional<WatchMessage>> read() override;
  void cancel() override;
  asio::awaitable<EtcdStatus> finish() override;

  const WatchCreate& request() const { return create_; }
  bool cancelled() const { return cancelled_; }
  bool opened() const { return opened_; }
  bool ended() const { return end_.has_value(); }

 private:
  friend class FakeEtcd;
  void push(WatchMessage m);
  void end(EtcdStatus status);
  void wake() { signal_.cancel(); }
  asio::awaitable<void> wait();

  FakeEtcd& etcd_;
  asio::steady_timer signal_;
  WatchCreate create_;
  std::deque<WatchMessage> queue_;
  std::optional<EtcdStatus> end_;  // the server ended the stream with this
  bool cancelled_ = false;
  bool opened_ = false;
};

class FakeEtcd final : public EtcdPort {
 public:
  static constexpr uint64_t kClusterId = 0xE7CD;

  explicit FakeEtcd(asio::io_context& io) : io_(io) {}

  // EtcdPort.
  asio::awaitable<RangeResult> range(RangeQuery query) override;
  std::shared_ptr<WatchSession> new_watch() override;

  // The store. Each change is one revision and is delivered to every open watch whose range holds it.
  int64_t put(const std::string& key, const std::string& value, int64_t lease = 0);
  int64_t erase(const std::string& key);
  int64_t revision() const { return revision_; }
  // Forgets history before `revision`: a watch asked to start below it is cancelled with
  // compact_revision, as etcd does.
  void compact(int64_t revision) { compacted_ = revision; }

  // Faults. The server ends every open stream with `status` (a member restarting, a lost connection).
  void end_watches(EtcdStatus status);
  // Every open watch gets canceled{compact_revision} (a lagging watcher fell behind a compaction).
  void cancel_watches_compacted(int64_t compact_revision);
  // While set, every watch is created and at once canceled with this reason (a member that refuses).
  void refuse_watches(std::optional<std::string> reason) { refuse_ = std::move(reason); }
  // While set, open() waits until the stream is cancelled (a member that never answers the open).
  void hold_opens(bool hold);
  // The next `n` Range calls fail with UNAVAILABLE.
  void fail_ranges(int n) { failing_ranges_ = n; }
  // Another cluster answers from now on (etcd replaced): every header carries this id.
  void set_cluster_id(uint64_t id) { cluster_id_ = id; }

  // What the component did.
  const std::vector<std::shared_ptr<FakeWatch>>& watches() const { return watches_; }
  size_t opening() const;  // streams inside open() right now
  size_t open_watches() const;
  int ranges() const { return ranges_; }

 private:
  friend class FakeWatch;
  void record(core::EventInput ev);
  static bool in_range(const std::string& key, const WatchCreate& c);
  WatchMessage header() const {
    WatchMessage m;
    m.revision = revision_;
    m.cluster_id = cluster_id_;
    return m;
  }

  asio::io_context& io_;
  std::map<std::string, core::KvInput> kvs_;
  std::vector<core::EventInput> history_;
  int64_t revision_ = 1;  // etcd starts at 1 with an empty store
  int64_t compacted_ = 0;
  uint64_t cluster_id_ = kClusterId;
  std::optional<std::string> refuse_;
  bool hold_opens_ = false;
  int failing_ranges_ = 0;
  int ranges_ = 0;
  size_t opening_ = 0;
  std::vector<std::shared_ptr<FakeWatch>> watches_;
};

}  // namespace sidecar::runtime::testing
