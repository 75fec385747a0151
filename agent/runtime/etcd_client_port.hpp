// Owns: nothing but the translation: EtcdPort implemented with etcd::Client, protobuf in and core types out.
// Thread: io_context thread only (the client's).
#pragma once

#include "agent/etcd/client.hpp"
#include "agent/runtime/etcd_port.hpp"

namespace sidecar::runtime {

class EtcdClientPort final : public EtcdPort {
 public:
  explicit EtcdClientPort(etcd::Client& client) : client_(client) {}
  asio::awaitable<RangeResult> range(RangeQuery query) override;
  std::shared_ptr<WatchSession> new_watch() override;

  etcd::Client& client() { return client_; }

 private:
  etcd::Client& client_;
};

// A gRPC status in the port's plain terms.
EtcdStatus to_etcd_status(const grpc::Status& status);

}  // namespace sidecar::runtime
