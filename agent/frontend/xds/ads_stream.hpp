// Owns: one ADS call (StreamAggregatedResources): its gRPC context and reader-writer, the requests read and
//       not yet handled, the protocol state (core::xds::XdsStream) and the names it holds in the cache.
// Thread: io_context thread; gRPC completions arrive through the server's CompletionBridge, on that thread.
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without including it
#include <grpcpp/grpcpp.h>
#include <grpcpp/support/async_stream.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <deque>
#include <memory>
#include <string>

#include "agent/core/xds_stream.hpp"
#include "agent/frontend/xds/resource_cache.hpp"
#include "envoy/service/discovery/v3/discovery.grpc.pb.h"

namespace sidecar::frontend::xds {

namespace discovery = envoy::service::discovery::v3;

// Counters by resource type (index: core::xds::ResourceType), kept by the server for /metrics.
struct XdsStats {
  uint64_t streams_open = 0;
  uint64_t streams_total = 0;
  std::array<uint64_t, core::xds::kResourceTypes> responses{};
  std::array<uint64_t, core::xds::kResourceTypes> acks{};
  std::array<uint64_t, core::xds::kResourceTypes> nacks{};
};

// What a stream needs of its server.
struct StreamHost {
  ResourceCache& cache;
  XdsStats& stats;
  // A client rejected a response: logged once per distinct error and type, whatever the stream count.
  std::function<void(core::xds::ResourceType, const std::string& node, const std::string& error)> on_nack;
};

class AdsStream final : public ResourceWatcher, public std::enable_shared_from_this<AdsStream> {
 public:
  using ReaderWriter = grpc::ServerAsyncReaderWriter<discovery::DiscoveryResponse, discovery::DiscoveryRequest>;

  AdsStream(asio::io_context& io, StreamHost host, uint64_t id);
  ~AdsStream() override;

  grpc::ServerContext& context() { return ctx_; }
  ReaderWriter& reader_writer() { return rw_; }

  // The call's whole life, from its first read to Finish; returns once no operation of it is outstanding.
  asio::awaitable<void> run();
  // Ends the call (server stop): its read fails, and run() finishes it.
  void cancel();
  void on_resource_change() override { wake(); }

 private:
  void start_read();
  void wake();
  void handle(const discovery::DiscoveryRequest& request);
  // Sends every response now due; false when a write failed (the call is gone).
  asio::awaitable<bool> send_due();
  asio::awaitable<bool> write(const discovery::DiscoveryResponse& response);
  asio::awaitable<void> finish();
  void release_all();

  asio::io_context& io_;
  StreamHost host_;
  uint64_t id_;
  grpc::ServerContext ctx_;
  ReaderWriter rw_{&ctx_};
  discovery::DiscoveryRequest read_buf_;
  std::deque<discovery::DiscoveryRequest> inbox_;
  bool read_done_ = false;
  bool woken_ = false;
  asio::steady_timer wake_;
  std::string node_;  // the client's node id, for log lines
  core::xds::XdsStream protocol_;
  std::set<std::string> held_;  // names this stream holds in the cache
};

}  // namespace sidecar::frontend::xds
