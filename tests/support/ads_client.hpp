// Owns: raw ADS clients for protocol tests: AdsClient, one StreamAggregatedResources call driven by hand
//       (requests, ACKs and NACKs written as given), and AdsFanout, many calls on one completion queue.
// Thread: AdsClient: any one test thread, plus its own reader thread; AdsFanout: its own poller thread, which
//         runs the response callback; public methods of both are thread-safe.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "envoy/config/endpoint/v3/endpoint.pb.h"
#include "envoy/service/discovery/v3/discovery.grpc.pb.h"

namespace sidecar::test {

namespace discovery = envoy::service::discovery::v3;

inline constexpr std::string_view kListenerType = "type.googleapis.com/envoy.config.listener.v3.Listener";
inline constexpr std::string_view kClusterType = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
inline constexpr std::string_view kEndpointsType = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";

// Every endpoint of a ClusterLoadAssignment as "address:port", in order; nullopt when `any` is not one.
std::optional<std::vector<std::string>> endpoints_of(const sidecar::wkt::Any& any);

class AdsClient {
 public:
  // Opens the call at once (the request goes out with the first send()). `node_id` is sent in every request.
  AdsClient(const std::shared_ptr<grpc::Channel>& channel, std::string node_id);
  ~AdsClient();
  AdsClient(const AdsClient&) = delete;
  AdsClient& operator=(const AdsClient&) = delete;

  // One DiscoveryRequest as given; a non-empty `error` sets error_detail (a NACK). False once the call is gone.
  bool send(std::string_view type_url, const std::vector<std::string>& names, const std::string& version = "",
            const std::string& nonce = "", const std::string& error = "");
  // Accepts `response` (its version and nonce) with `names` subscribed.
  bool ack(const discovery::DiscoveryResponse& response, const std::vector<std::string>& names);

  // The next response not yet returned, of `type_url` (earlier ones of other types are kept for later calls);
  // nullopt after `timeout`.
  std::optional<discovery::DiscoveryResponse> next(std::string_view type_url, std::chrono::milliseconds timeout);
  // Responses received and not yet returned by next().
  size_t pending() const;
  // True once the server ended the call (or close() did).
  bool closed() const;

  // Cancels the call and joins the reader; the status the call ended with.
  grpc::Status close();

 private:
  void read_loop();

  std::string node_id_;
  std::unique_ptr<discovery::AggregatedDiscoveryService::Stub> stub_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<discovery::DiscoveryRequest, discovery::DiscoveryResponse>> stream_;
  std::mutex write_mu_;  // gRPC allows one writer and one reader at a time
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<discovery::DiscoveryResponse> inbox_;
  bool read_done_ = false;
  std::optional<grpc::Status> status_;
  std::thread reader_;
};

// `streams` ADS calls spread over `channels` connections, all on one completion queue and one poller thread.
// Stream i sends one request (type_url, {names(i)}) at start(), then ACKs every response it gets.
class AdsFanout {
 public:
  using OnResponse =
      std::function<void(size_t stream, const discovery::DiscoveryResponse& response, std::chrono::steady_clock::time_point at)>;

  AdsFanout(const std::string& target, size_t channels, size_t streams, std::string type_url,
            std::function<std::string(size_t)> names, OnResponse on_response);
  // Cancels every call, drains the queue and joins the poller.
  ~AdsFanout();
  AdsFanout(const AdsFanout&) = delete;
  AdsFanout& operator=(const AdsFanout&) = delete;

  void start();
  size_t failed() const;  // calls that ended (their start or a read failed) before the destructor

 private:
  struct Stream;
  struct Op;
  void poll();
  void on_op(Op* op, bool ok);
  void write_next(Stream& s);

  std::string type_url_;
  std::function<std::string(size_t)> names_;
  OnResponse on_response_;
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  std::vector<std::unique_ptr<discovery::AggregatedDiscoveryService::Stub>> stubs_;
  std::vector<std::unique_ptr<Stream>> streams_;
  grpc::CompletionQueue cq_;
  mutable std::mutex mu_;  // Stream state: the poller writes, failed() and the destructor read
  bool stopping_ = false;  // the destructor cancelled the calls: their ends are not failures
  size_t failed_ = 0;
  size_t outstanding_ = 0;  // operations started and not yet completed
  std::condition_variable drained_;
  std::thread poller_;
};

}  // namespace sidecar::test
