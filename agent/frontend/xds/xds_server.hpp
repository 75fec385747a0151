// Owns: the xDS gRPC server (ADS, state of the world): its listener, its completion queue and poller, the
//       accept loop, every stream (a coroutine each, in one TaskScope), the shared resource cache and the
//       counters behind /metrics.
// Thread: io_context thread; the completion queue's poller only posts back onto it. Server::Shutdown, which
//         blocks until every call is gone, runs on a thread of its own so the loop can finish the calls.
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without including it
#include <grpcpp/grpcpp.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "agent/core/metrics.hpp"
#include "agent/etcd/completion_bridge.hpp"
#include "agent/frontend/xds/ads_stream.hpp"
#include "agent/frontend/xds/resource_cache.hpp"
#include "envoy/service/discovery/v3/discovery.grpc.pb.h"

namespace sidecar::frontend::xds {

struct XdsServerOptions {
  std::string listen = "127.0.0.1:18000";  // host:port ([v6]:port); port 0 picks a free one
  // TLS when cert and key are set; with ca, clients must present a certificate it signed (mTLS).
  std::string tls_cert;
  std::string tls_key;
  std::string tls_ca;
  ResourceCacheOptions cache;
};

class XdsServer {
 public:
  // Binds the listener; nullptr (and *error) when it cannot (port taken, unreadable certificate).
  static std::unique_ptr<XdsServer> start(asio::io_context& io, runtime::Catalog& catalog, XdsServerOptions options,
                                          std::string* error);
  ~XdsServer();
  XdsServer(const XdsServer&) = delete;
  XdsServer& operator=(const XdsServer&) = delete;

  // The bound address ("127.0.0.1:18000"), with the port gRPC picked when 0 was asked for.
  const std::string& address() const { return address_; }
  const XdsStats& stats() const { return stats_; }
  const ResourceCache& cache() const { return cache_; }

  // Cancels every stream and starts the server's shutdown; join() then waits for all of it.
  void stop();
  asio::awaitable<void> join();

  void collect_metrics(std::vector<core::MetricFamily>& out) const;
  nlohmann::json status() const;

 private:
  XdsServer(asio::io_context& io, runtime::Catalog& catalog, XdsServerOptions options);
  asio::awaitable<void> accept_loop();
  asio::awaitable<void> serve(std::shared_ptr<AdsStream> stream);
  void log_nack(core::xds::ResourceType type, const std::string& node, const std::string& error);

  asio::io_context& io_;
  XdsServerOptions options_;
  std::string address_;
  ResourceCache cache_;
  XdsStats stats_;
  envoy::service::discovery::v3::AggregatedDiscoveryService::AsyncService service_;
  std::unique_ptr<grpc::Server> server_;
  grpc::ServerCompletionQueue* cq_ = nullptr;  // owned by bridge_
  std::unique_ptr<etcd::CompletionBridge> bridge_;
  std::set<AdsStream*> live_;
  std::map<core::xds::ResourceType, std::string> last_nack_;  // the last error logged per type
  uint64_t next_stream_id_ = 0;
  bool stopping_ = false;
  std::thread shutdown_thread_;
  asio::steady_timer shut_down_;  // cancelled (posted from shutdown_thread_) once Server::Shutdown returned
  runtime::TaskScope scope_;      // last: the streams use the members above
};

}  // namespace sidecar::frontend::xds
