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

namespace sidecar::runtime {

namespace asio = boost::asio;

// How a call or stream ended. `code` is the gRPC status code (0 = OK), kept as a number so this header
// stays free of gRPC; components only log it and tell success from failure.
struct EtcdStatus {
  bool ok = true;
  int code = 0;
  std::string message;
  static EtcdStatus failure(int code, std::string message) { return {false, code, std::move(message)}; }
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
  int64_t revision = 0;     // the store revision the read was taken at (response header)
  uint64_t cluster_id = 0;  // which cluster answered; 0 if unknown
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

// One watch stream. Usage, by one coroutine: open(), then read() until nullopt (or cancel() and stop
// reading), then finish() exactly once. cancel() may be called at any time, from any coroutine on the
// thread, also before or while open() runs: the stream must then not stay open (a stop() that could not
// reach an opening stream would leave its owner's join() waiting forever).
class WatchSession {
 public:
  virtual ~WatchSession() = default;
  // Opens the stream and sends the create request. False: it never opened (finish() says why).
  virtual asio::awaitable<bool> open(WatchCreate create) = 0;
  // The next response, or nullopt once the stream is over.
  virtual asio::awaitable<std::optional<WatchMessage>> read() = 0;
  virtual void cancel() = 0;
  // Why the stream ended. A failure has already been reported to the client (endpoint failover).
  virtual asio::awaitable<EtcdStatus> finish() = 0;
};

class EtcdPort {
 public:
  virtual ~EtcdPort() = default;
  virtual asio::awaitable<RangeResult> range(RangeQuery query) = 0;
  // Created at once and not yet opened, so the caller can make it reachable by its stop() first.
  virtual std::shared_ptr<WatchSession> new_watch() = 0;
};

}  // namespace sidecar::runtime
