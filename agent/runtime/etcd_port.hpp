// Owns: nothing; the seam between runtime components and etcd, in core and plain C++ types (no protobuf, no
// gRPC), so a component can run against etcd::Client (etcd_client_port.hpp) or an in-memory fake in tests.
// Thread: io_context thread only, like everything behind it; every awaitable completes on that thread.
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without including it
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/core/endpoint_set.hpp"
#include "agent/core/registration.hpp"

namespace sidecar::runtime {

namespace asio = boost::asio;

// How a call or stream ended. `code` is the gRPC status code (0 = OK), kept as a number so this header
// stays free of gRPC; components only log it and tell success from failure.
struct EtcdStatus {
  bool ok = true;
  int code = 0;
  std::string message;
  static EtcdStatus failure(int code, std::string message) { return {false, code, std::move(message)}; }
  // etcd no longer knows the lease (expired, revoked, or its data was wiped).
  bool lease_not_found() const {
    return !ok && (code == kNotFound || message.find("lease not found") != std::string::npos);
  }
  static constexpr int kNotFound = 5;  // grpc::StatusCode::NOT_FOUND
};

// A Range over [key, range_end); an empty range_end reads `key` alone. revision 0: the latest; limit 0: all.
struct RangeQuery {
  std::string key;
  std::string range_end;
  int64_t revision = 0;
  int64_t limit = 0;
  std::chrono::milliseconds timeout{0};  // zero: the client's default request deadline
};

struct RangeResult {
  EtcdStatus status;
  std::vector<core::KvInput> kvs;
  int64_t revision = 0;     // the store's current revision (response header); a read at a past revision
                            // was taken there, not at this one
  uint64_t cluster_id = 0;  // which cluster answered; 0 if unknown
  bool more = false;        // a limited read left keys of the range unread
  // etcd refused the revision asked for: it was compacted away (a paged read restarts from the latest).
  bool compacted() const { return !status.ok && status.message.find("compacted") != std::string::npos; }
};

// What a watch is asked for: [key, range_end) from start_revision, with progress notifications (a quiet
// prefix still moves the resume revision forward, so a resume does not start from a compacted revision).
struct WatchCreate {
  std::string key;
  std::string range_end;
  int64_t start_revision = 0;
  bool progress_notify = true;
};

// One watch response. Exactly one of: created, canceled, events (non-empty), or a progress notification
// (none of these: every event up to `revision` has been delivered).
struct WatchMessage {
  int64_t revision = 0;      // header revision
  uint64_t cluster_id = 0;   // header cluster id
  bool created = false;
  bool canceled = false;
  int64_t compact_revision = 0;  // canceled because the start revision was compacted; the oldest kept
  std::string cancel_reason;     // canceled for another reason (no leader, permission denied, ...)
  std::vector<core::EventInput> events;
};

// One watch stream. Usage, by one coroutine: open(), optionally more watch() creates on the same stream,
// then read() until nullopt (or cancel() and stop reading), then finish() exactly once. cancel() may be called at any time, from any coroutine on the
// thread, also before or while open() runs: the stream must then not stay open (a stop() that could not
// reach an opening stream would leave its owner's join() waiting forever).
class WatchSession {
 public:
  virtual ~WatchSession() = default;
  // Opens the stream and sends the create request. False: it never opened (finish() says why).
  virtual asio::awaitable<bool> open(WatchCreate create) = 0;
  // One more watch on the open stream (etcd multiplexes them); its `created` answer comes through read().
  // False: the stream broke.
  virtual asio::awaitable<bool> watch(WatchCreate create) = 0;
  // The next response, or nullopt once the stream is over.
  virtual asio::awaitable<std::optional<WatchMessage>> read() = 0;
  virtual void cancel() = 0;
  // Why the stream ended. A failure has already been reported to the client (endpoint failover).
  virtual asio::awaitable<EtcdStatus> finish() = 0;
  // The member the stream went to, for log lines.
  virtual std::string endpoint() const = 0;
};

// ---- leases and the registrar's guarded writes

struct LeaseGrant {
  EtcdStatus status;
  int64_t id = 0;
  std::chrono::seconds ttl{0};  // what etcd granted
};

struct LeaseTimeToLive {
  EtcdStatus status;
  std::chrono::seconds ttl{0};          // remaining; <= 0: expired
  std::chrono::seconds granted_ttl{0};
};

// Put `value` on `lease` only while the key's mod_revision is `expect_mod_revision` (0: only if absent).
struct GuardedPut {
  std::string key;
  std::string value;
  int64_t lease = 0;
  int64_t expect_mod_revision = 0;
};

struct GuardedPutResult {
  EtcdStatus status;
  bool succeeded = false;
  int64_t revision = 0;                  // the store revision after the Txn
  std::optional<core::Observed> current;  // refused: what the key holds now (nullopt: absent)
};

struct GuardedDeleteResult {
  EtcdStatus status;
  bool succeeded = false;  // false: the key is not on that lease (absent, or someone else's)
  int64_t revision = 0;
};

// A read of single keys in one Txn (so at one revision): one entry per key, in order.
struct KeysRead {
  EtcdStatus status;
  int64_t revision = 0;
  std::vector<std::optional<core::Observed>> values;
};

struct KeepaliveAck {
  int64_t id = 0;
  int64_t ttl = 0;  // remaining seconds; <= 0: the lease is gone
};

// The lease keepalive stream. Usage: open(); then one coroutine read()s until nullopt while write()s go out
// one at a time (gRPC allows one outstanding write); cancel() at any time; finish() exactly once at the end.
class KeepaliveSession {
 public:
  virtual ~KeepaliveSession() = default;
  virtual asio::awaitable<bool> open() = 0;
  virtual asio::awaitable<bool> write(int64_t lease) = 0;
  virtual asio::awaitable<std::optional<KeepaliveAck>> read() = 0;
  virtual void cancel() = 0;
  virtual asio::awaitable<EtcdStatus> finish() = 0;
  virtual std::string endpoint() const = 0;
};

class EtcdPort {
 public:
  virtual ~EtcdPort() = default;
  virtual asio::awaitable<RangeResult> range(RangeQuery query) = 0;
  // Created at once and not yet opened, so the caller can make it reachable by its stop() first.
  virtual std::shared_ptr<WatchSession> new_watch() = 0;

  virtual asio::awaitable<LeaseGrant> lease_grant(std::chrono::seconds ttl) = 0;
  // `timeout` zero: the client's default request deadline.
  virtual asio::awaitable<EtcdStatus> lease_revoke(int64_t lease, std::chrono::milliseconds timeout) = 0;
  virtual asio::awaitable<LeaseTimeToLive> lease_time_to_live(int64_t lease) = 0;
  virtual std::shared_ptr<KeepaliveSession> new_keepalive() = 0;

  virtual asio::awaitable<GuardedPutResult> put_if_mod_revision(GuardedPut put) = 0;
  // Deletes `key` only while it is attached to `lease`.
  virtual asio::awaitable<GuardedDeleteResult> delete_if_lease(std::string key, int64_t lease) = 0;
  // At most the server's --max-txn-ops keys (128 by default) per call.
  virtual asio::awaitable<KeysRead> read_keys(std::vector<std::string> keys) = 0;
};

}  // namespace sidecar::runtime
