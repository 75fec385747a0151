// Owns: a blocking gRPC channel to one etcd for test setup/assertions; watch streams that record events.
// Thread: EtcdSyncClient: one test thread. WatchRecorder: reads on its own thread; accessors are thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/wait.hpp"

namespace grpc {
class Channel;
}

namespace sidecar::test {

struct Kv {
  std::string key;
  std::string value;
  std::int64_t lease = 0;
  std::int64_t create_revision = 0;
  std::int64_t mod_revision = 0;
  std::int64_t version = 0;
};

struct LeaseTtl {
  std::int64_t ttl = -1;          // seconds left; -1: etcd does not know the lease; -2: the call failed
  std::int64_t granted_ttl = 0;
};

struct MemberStatus {
  std::uint64_t member_id = 0;
  std::uint64_t leader = 0;       // 0 while the cluster has no leader
  std::int64_t revision = 0;
  std::uint64_t raft_term = 0;
  std::string version;
};

// The key just past every key that starts with `prefix` (etcd's range_end for a prefix query).
std::string prefix_range_end(const std::string& prefix);

// TLS material (PEM text, not paths) for a client of an https:// etcd; cert/key empty: no client certificate.
struct ClientTls {
  std::string ca_pem;
  std::string cert_pem;
  std::string key_pem;
};

// Failures are values, never exceptions: put/revision/lease_grant return 0, del returns -1, get returns
// nullopt; last_error() says why, and is empty after a successful call (so a get of a missing key is
// nullopt with an empty last_error()). Every call has its own deadline (5 s by default) so a stopped etcd
// (SIGSTOP) makes a test fail instead of hang.
class EtcdSyncClient {
 public:
  explicit EtcdSyncClient(std::string endpoint,
                          std::chrono::milliseconds deadline = std::chrono::seconds(5));
  // Over TLS (mTLS when `tls` has a client certificate).
  EtcdSyncClient(std::string endpoint, const ClientTls& tls,
                 std::chrono::milliseconds deadline = std::chrono::seconds(5));
  ~EtcdSyncClient();
  EtcdSyncClient(const EtcdSyncClient&) = delete;
  EtcdSyncClient& operator=(const EtcdSyncClient&) = delete;

  std::int64_t put(const std::string& key, const std::string& value, std::int64_t lease = 0);
  std::optional<Kv> get(const std::string& key);
  std::vector<Kv> get_prefix(const std::string& prefix);   // sorted by key
  std::int64_t del(const std::string& key);
  std::int64_t del_prefix(const std::string& prefix);
  std::int64_t lease_grant(std::int64_t ttl_seconds);
  bool lease_revoke(std::int64_t id);
  LeaseTtl lease_ttl(std::int64_t id);
  bool compact(std::int64_t revision);
  std::int64_t revision();                                 // the store's current revision
  std::optional<MemberStatus> status();                    // Maintenance.Status of this endpoint
  // A linearizable read succeeded: the member is up and sees a leader.
  bool healthy();
  // Auth.Authenticate; on success every later call carries the token.
  bool authenticate(const std::string& user, const std::string& password);

  const std::string& endpoint() const { return endpoint_; }
  const std::string& last_error() const { return last_error_; }
  std::shared_ptr<grpc::Channel> channel() const;

 private:
  struct Stubs;
  // One blocking unary call with this client's deadline; a failure is recorded in last_error_.
  template <typename Stub, typename Method, typename Request, typename Response>
  bool call(Stub& stub, Method method, const Request& request, Response& response);

  std::string endpoint_;
  std::chrono::milliseconds deadline_;
  std::unique_ptr<Stubs> stubs_;
  std::string last_error_;
  std::string token_;
};

struct WatchEvent {
  enum class Type { kPut, kDelete };
  Type type = Type::kPut;
  std::string key;
  std::string value;
  std::int64_t mod_revision = 0;
  std::chrono::steady_clock::time_point received_at;
};

// Records every event of one etcd watch (a key, or a prefix) from `start_revision` (0 = from now).
// The constructor returns once etcd confirmed the watch (or after 5 s; check created()), so writes made
// after construction are guaranteed to be seen. The stream is not re-established if etcd goes away.
class WatchRecorder {
 public:
  enum class Scope { kKey, kPrefix };

  WatchRecorder(const std::string& endpoint, std::string key, Scope scope = Scope::kKey,
                std::int64_t start_revision = 0);
  ~WatchRecorder();  // cancels the stream and joins the reader thread
  WatchRecorder(const WatchRecorder&) = delete;
  WatchRecorder& operator=(const WatchRecorder&) = delete;

  // Waits (on a condition variable, woken by each response) until `predicate(events)` holds.
  bool wait_for(const std::function<bool(const std::vector<WatchEvent>&)>& predicate,
                std::chrono::milliseconds timeout);
  bool wait_for_count(std::size_t count, std::chrono::milliseconds timeout);
  std::vector<WatchEvent> events() const;

  bool created() const;
  // etcd canceled the watch, e.g. because start_revision was compacted (see compact_revision()).
  bool canceled() const;
  std::int64_t compact_revision() const;
  // The stream is over (canceled, etcd gone, or the recorder is being destroyed).
  bool ended() const;

 private:
  struct Stream;
  void run();

  std::unique_ptr<Stream> stream_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<WatchEvent> events_;
  bool created_ = false;
  bool canceled_ = false;
  bool ended_ = false;
  std::int64_t compact_revision_ = 0;
  std::thread reader_;
};

}  // namespace sidecar::test
