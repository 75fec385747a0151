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
  asio::awaitable<LeaseGrant> lease_grant(std::chrono::seconds ttl) override;
  asio::awaitable<EtcdStatus> lease_revoke(int64_t lease, std::chrono::milliseconds timeout) override;
  asio::awaitable<LeaseTimeToLive> lease_time_to_live(int64_t lease) override;
  std::shared_ptr<KeepaliveSession> new_keepalive() override;
  asio::awaitable<GuardedPutResult> put_if_mod_revision(GuardedPut put) override;
  asio::awaitable<GuardedDeleteResult> delete_if_lease(std::string key, int64_t lease) override;
  asio::awaitable<KeysRead> read_keys(std::vector<std::string> keys) override;

  etcd::Client& client() { return client_; }

 private:
  etcd::Client& client_;
};

// A gRPC status in the port's plain terms.
EtcdStatus to_etcd_status(const grpc::Status& status);

}  // namespace sidecar::runtime
