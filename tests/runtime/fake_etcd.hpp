// Owns: an in-memory, revisioned etcd for runtime unit tests: keys, leases, an event history, and the watch
//       and keepalive streams opened on it, which the test can end, cancel, hold, or make silent.
// Thread: the test's io_context thread only. Every answer is posted, never given inline, as gRPC's would be.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/runtime/etcd_port.hpp"

namespace sidecar::runtime::testing {

class FakeEtcd;

// Parks a coroutine on a timer that never expires; wake() cancels it. How the fake tells a parked call that
// something changed: no time passes in here.
class Signal {
 public:
  explicit Signal(asio::io_context& io) : timer_(io, asio::steady_timer::time_point::max()) {}
  asio::awaitable<void> wait();
  void wake() { timer_.cancel(); }

 private:
  asio::steady_timer timer_;
};

// One watch stream on the fake. Waits on a timer that never expires; wake() cancels it, which is how the
// fake (or cancel()) tells a parked open() or read() that something changed. No time passes in here.
class FakeWatch final : public WatchSession, public std::enable_shared_from_this<FakeWatch> {
 public:
  FakeWatch(FakeEtcd& etcd, asio::io_context& io);
  asio::awaitable<bool> open(WatchCreate create) override;
  asio::awaitable<bool> watch(WatchCreate create) override;
  asio::awaitable<std::optional<WatchMessage>> read() override;
  void cancel() override;
  asio::awaitable<EtcdStatus> finish() override;
  std::string endpoint() const override { return "fake-etcd"; }

  const WatchCreate& request() const { return creates_.front(); }
  const std::vector<WatchCreate>& creates() const { return creates_; }
  bool cancelled() const { return cancelled_; }
  bool opened() const { return opened_; }
  bool ended() const { return end_.has_value(); }

 private:
  friend class FakeEtcd;
  void push(WatchMessage m);
  void end(EtcdStatus status);
  void wake() { signal_.wake(); }
  // Answers one create: created, then a refusal, a compaction or the catch-up from its start revision.
  void add(WatchCreate create);
  bool covers(const std::string& key) const;

  FakeEtcd& etcd_;
  Signal signal_;
  std::vector<WatchCreate> creates_;
  std::deque<WatchMessage> queue_;
  std::optional<EtcdStatus> end_;  // the server ended the stream with this
  bool cancelled_ = false;
  bool opened_ = false;
};

// The lease keepalive stream: each write is answered with the lease's TTL (0 once etcd no longer has it).
class FakeKeepalive final : public KeepaliveSession {
 public:
  FakeKeepalive(FakeEtcd& etcd, asio::io_context& io);
  asio::awaitable<bool> open() override;
  asio::awaitable<bool> write(int64_t lease) override;
  asio::awaitable<std::optional<KeepaliveAck>> read() override;
  void cancel() override;
  asio::awaitable<EtcdStatus> finish() override;
  std::string endpoint() const override { return "fake-etcd"; }

  bool opened() const { return opened_; }
  bool ended() const { return end_.has_value() || cancelled_; }
  int writes() const { return writes_; }
  int writes_in_flight() const { return in_flight_; }
  int max_writes_in_flight() const { return max_in_flight_; }

 private:
  friend class FakeEtcd;
  void end(EtcdStatus status);

  FakeEtcd& etcd_;
  Signal signal_;
  std::deque<KeepaliveAck> queue_;
  std::optional<EtcdStatus> end_;
  bool cancelled_ = false;
  bool opened_ = false;
  int writes_ = 0;
  int in_flight_ = 0;
  int max_in_flight_ = 0;
};

class FakeEtcd final : public EtcdPort {
 public:
  static constexpr uint64_t kClusterId = 0xE7CD;

  explicit FakeEtcd(asio::io_context& io) : io_(io), keepalive_release_(io) {}
  ~FakeEtcd() override {
    if (on_destroy) on_destroy(*this);
  }
  // For a fake owned by the code under test (a whole agent): the test's last look at the store.
  std::function<void(const FakeEtcd&)> on_destroy;
  // Called as each Range is answered, before it reads the store (with the count of Ranges so far, this one
  // included): a test changes or compacts the store between the pages of a paged read.
  std::function<void(int range)> before_range;

  // EtcdPort: reads and watches (fake_etcd.cpp).
  asio::awaitable<RangeResult> range(RangeQuery query) override;
  std::shared_ptr<WatchSession> new_watch() override;
  asio::awaitable<KeysRead> read_keys(std::vector<std::string> keys) override;
  // EtcdPort: guarded writes (fake_leases.cpp). A write on an unknown lease fails with "lease not found".
  asio::awaitable<GuardedPutResult> put_if_mod_revision(GuardedPut put) override;
  asio::awaitable<GuardedDeleteResult> delete_if_lease(std::string key, int64_t lease) override;
  // EtcdPort: leases (fake_leases.cpp).
  asio::awaitable<LeaseGrant> lease_grant(std::chrono::seconds ttl) override;
  asio::awaitable<LeaseTimeToLive> lease_time_to_live(int64_t lease) override;
  asio::awaitable<EtcdStatus> lease_revoke(int64_t lease, std::chrono::milliseconds timeout) override;
  std::shared_ptr<KeepaliveSession> new_keepalive() override;

  // The store. Each change is one revision and is delivered to every open watch whose range holds it.
  int64_t put(const std::string& key, const std::string& value, int64_t lease = 0);
  int64_t erase(const std::string& key);
  int64_t revision() const { return revision_; }
  std::optional<core::KvInput> get(const std::string& key) const;
  size_t key_count() const { return kvs_.size(); }

  // Leases. A lease is granted with its TTL and keeps it (the fake has no clock): a test ends one with
  // expire_lease, which deletes its keys as etcd does.
  int64_t grant_lease(std::chrono::seconds ttl);
  void expire_lease(int64_t lease);
  bool has_lease(int64_t lease) const { return leases_.count(lease) != 0; }
  size_t lease_count() const { return leases_.size(); }
  // Forgets every key and lease, as an etcd restarted with its data wiped (revisions continue).
  void wipe();
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
  // While set, etcd is silent (SIGSTOPped): every unary call fails after its timeout (or silent_timeout()
  // when it has none), streams do not open, keepalive writes go unanswered.
  void set_silent(bool silent, std::chrono::milliseconds silent_timeout = std::chrono::milliseconds(20));
  // While set, read_keys answers are held back; each is taken when the call is made, so a held read returns
  // what etcd held then (a linearizable Range that waited for its read index while a write went through).
  void hold_reads(bool hold);
  int reads() const { return reads_; }
  // While set, keepalive writes stay in flight (a slow connection) until released.
  void hold_keepalive_writes(bool hold);
  // The server ends every keepalive stream with `status`.
  void end_keepalives(EtcdStatus status);

  // What the component did.
  const std::vector<std::shared_ptr<FakeWatch>>& watches() const { return watches_; }
  size_t opening() const;  // streams inside open() right now
  size_t open_watches() const;
  int ranges() const { return ranges_; }
  int range_pages() const { return range_pages_; }  // Range calls answered
  const std::vector<std::shared_ptr<FakeKeepalive>>& keepalives() const { return keepalives_; }
  int grants() const { return grants_; }
  int guarded_puts() const { return guarded_puts_; }
  int revokes() const { return revokes_; }
  int time_to_live_calls() const { return ttl_calls_; }

 private:
  friend class FakeWatch;
  friend class FakeKeepalive;
  // A unary call's turn; false, with `status` set to the deadline's failure, when etcd is silent (the call
  // then failed after its timeout).
  asio::awaitable<bool> answer(EtcdStatus& status, std::chrono::milliseconds timeout = {});
  void record(core::EventInput ev);
  void erase_on_lease(int64_t lease);
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
  int range_pages_ = 0;
  size_t opening_ = 0;
  std::vector<std::shared_ptr<FakeWatch>> watches_;

  std::map<int64_t, std::chrono::seconds> leases_;  // id -> granted TTL
  int64_t next_lease_ = 0x694d7a0000000001;
  bool silent_ = false;
  std::chrono::milliseconds silent_timeout_{20};
  bool hold_keepalive_writes_ = false;
  Signal keepalive_release_;
  std::vector<std::shared_ptr<FakeKeepalive>> keepalives_;
  int grants_ = 0;
  int guarded_puts_ = 0;
  int revokes_ = 0;
  int ttl_calls_ = 0;
  int reads_ = 0;
  bool hold_reads_ = false;
  Signal read_release_{io_};
};

}  // namespace sidecar::runtime::testing
