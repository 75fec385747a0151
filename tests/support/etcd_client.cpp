#include "tests/support/etcd_client.hpp"

#include <grpcpp/grpcpp.h>

#include "etcd/kv.pb.h"
#include "etcd/rpc.grpc.pb.h"
#include "etcd/rpc.pb.h"

namespace sidecar::test {
namespace {

std::shared_ptr<grpc::Channel> make_channel(const std::string& endpoint,
                                           std::shared_ptr<grpc::ChannelCredentials> creds = nullptr) {
  grpc::ChannelArguments args;
  // Tests kill and restart etcd on purpose; the default reconnect backoff (1 s, growing) would make every
  // call after a restart fail fast for seconds. Keep reconnects quick instead.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 50);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 50);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 250);
  return grpc::CreateCustomChannel(endpoint, creds ? creds : grpc::InsecureChannelCredentials(), args);
}

Kv to_kv(const mvccpb::KeyValue& kv) {
  return Kv{kv.key(), kv.value(), kv.lease(), kv.create_revision(), kv.mod_revision(), kv.version()};
}

using KvStub = etcdserverpb::KV::Stub;
using LeaseStub = etcdserverpb::Lease::Stub;
using MaintenanceStub = etcdserverpb::Maintenance::Stub;

}  // namespace

std::string prefix_range_end(const std::string& prefix) {
  std::string end = prefix;
  while (!end.empty()) {
    auto& last = reinterpret_cast<unsigned char&>(end.back());
    if (last < 0xff) {
      ++last;
      return end;
    }
    end.pop_back();
  }
  // Empty prefix, or all 0xff bytes: etcd reads "\0" as "to the end of the keyspace".
  return std::string(1, '\0');
}

// ------------------------------------------------------------------------------------------------ EtcdSyncClient

struct EtcdSyncClient::Stubs {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<KvStub> kv;
  std::unique_ptr<LeaseStub> lease;
  std::unique_ptr<MaintenanceStub> maintenance;
};

EtcdSyncClient::EtcdSyncClient(std::string endpoint, std::chrono::milliseconds deadline)
    : endpoint_(std::move(endpoint)), deadline_(deadline), stubs_(std::make_unique<Stubs>()) {
  stubs_->channel = make_channel(endpoint_);
  stubs_->kv = etcdserverpb::KV::NewStub(stubs_->channel);
  stubs_->lease = etcdserverpb::Lease::NewStub(stubs_->channel);
  stubs_->maintenance = etcdserverpb::Maintenance::NewStub(stubs_->channel);
}

EtcdSyncClient::EtcdSyncClient(std::string endpoint, const ClientTls& tls, std::chrono::milliseconds deadline)
    : endpoint_(std::move(endpoint)), deadline_(deadline), stubs_(std::make_unique<Stubs>()) {
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = tls.ca_pem;
  ssl.pem_cert_chain = tls.cert_pem;
  ssl.pem_private_key = tls.key_pem;
  stubs_->channel = make_channel(endpoint_, grpc::SslCredentials(ssl));
  stubs_->kv = etcdserverpb::KV::NewStub(stubs_->channel);
  stubs_->lease = etcdserverpb::Lease::NewStub(stubs_->channel);
  stubs_->maintenance = etcdserverpb::Maintenance::NewStub(stubs_->channel);
}

EtcdSyncClient::~EtcdSyncClient() = default;

bool EtcdSyncClient::authenticate(const std::string& user, const std::string& password) {
  auto stub = etcdserverpb::Auth::NewStub(stubs_->channel);
  etcdserverpb::AuthenticateRequest request;
  request.set_name(user);
  request.set_password(password);
  etcdserverpb::AuthenticateResponse response;
  token_.clear();  // an expired token on Authenticate itself would be refused
  if (!call(*stub, &etcdserverpb::Auth::Stub::Authenticate, request, response)) return false;
  token_ = response.token();
  return true;
}

std::shared_ptr<grpc::Channel> EtcdSyncClient::channel() const { return stubs_->channel; }

template <typename Stub, typename Method, typename Request, typename Response>
bool EtcdSyncClient::call(Stub& stub, Method method, const Request& request, Response& response) {
  last_error_.clear();
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + deadline_);
  if (!token_.empty()) context.AddMetadata("token", token_);
  const grpc::Status status = (stub.*method)(&context, request, &response);
  if (!status.ok()) {
    last_error_ =
        "grpc code " + std::to_string(static_cast<int>(status.error_code())) + ": " + status.error_message();
  }
  return status.ok();
}

std::int64_t EtcdSyncClient::put(const std::string& key, const std::string& value, std::int64_t lease) {
  etcdserverpb::PutRequest request;
  request.set_key(key);
  request.set_value(value);
  request.set_lease(lease);
  etcdserverpb::PutResponse response;
  if (!call(*stubs_->kv, &KvStub::Put, request, response)) return 0;
  return response.header().revision();
}

std::optional<Kv> EtcdSyncClient::get(const std::string& key) {
  etcdserverpb::RangeRequest request;
  request.set_key(key);
  etcdserverpb::RangeResponse response;
  if (!call(*stubs_->kv, &KvStub::Range, request, response)) return std::nullopt;
  if (response.kvs_size() == 0) return std::nullopt;
  return to_kv(response.kvs(0));
}

std::vector<Kv> EtcdSyncClient::get_prefix(const std::string& prefix) {
  etcdserverpb::RangeRequest request;
  request.set_key(prefix.empty() ? std::string(1, '\0') : prefix);
  request.set_range_end(prefix_range_end(prefix));
  request.set_sort_order(etcdserverpb::RangeRequest::ASCEND);
  request.set_sort_target(etcdserverpb::RangeRequest::KEY);
  etcdserverpb::RangeResponse response;
  std::vector<Kv> out;
  if (!call(*stubs_->kv, &KvStub::Range, request, response)) return out;
  out.reserve(static_cast<std::size_t>(response.kvs_size()));
  for (const auto& kv : response.kvs()) out.push_back(to_kv(kv));
  return out;
}

std::int64_t EtcdSyncClient::del(const std::string& key) {
  etcdserverpb::DeleteRangeRequest request;
  request.set_key(key);
  etcdserverpb::DeleteRangeResponse response;
  if (!call(*stubs_->kv, &KvStub::DeleteRange, request, response)) return -1;
  return response.deleted();
}

std::int64_t EtcdSyncClient::del_prefix(const std::string& prefix) {
  etcdserverpb::DeleteRangeRequest request;
  request.set_key(prefix.empty() ? std::string(1, '\0') : prefix);
  request.set_range_end(prefix_range_end(prefix));
  etcdserverpb::DeleteRangeResponse response;
  if (!call(*stubs_->kv, &KvStub::DeleteRange, request, response)) return -1;
  return response.deleted();
}

std::int64_t EtcdSyncClient::lease_grant(std::int64_t ttl_seconds) {
  etcdserverpb::LeaseGrantRequest request;
  request.set_ttl(ttl_seconds);
  etcdserverpb::LeaseGrantResponse response;
  if (!call(*stubs_->lease, &LeaseStub::LeaseGrant, request, response)) return 0;
  if (!response.error().empty()) {
    last_error_ = "LeaseGrant: " + response.error();
    return 0;
  }
  return response.id();
}

bool EtcdSyncClient::lease_revoke(std::int64_t id) {
  etcdserverpb::LeaseRevokeRequest request;
  request.set_id(id);
  etcdserverpb::LeaseRevokeResponse response;
  return call(*stubs_->lease, &LeaseStub::LeaseRevoke, request, response);
}

LeaseTtl EtcdSyncClient::lease_ttl(std::int64_t id) {
  etcdserverpb::LeaseTimeToLiveRequest request;
  request.set_id(id);
  etcdserverpb::LeaseTimeToLiveResponse response;
  if (!call(*stubs_->lease, &LeaseStub::LeaseTimeToLive, request, response)) {
    return LeaseTtl{-2, 0};
  }
  // etcd answers an unknown lease with TTL -1 rather than an error.
  return LeaseTtl{response.ttl(), response.grantedttl()};
}

bool EtcdSyncClient::compact(std::int64_t revision) {
  etcdserverpb::CompactionRequest request;
  request.set_revision(revision);
  request.set_physical(true);  // return only once the old revisions are really gone
  etcdserverpb::CompactionResponse response;
  return call(*stubs_->kv, &KvStub::Compact, request, response);
}

std::int64_t EtcdSyncClient::revision() {
  etcdserverpb::RangeRequest request;
  request.set_key(std::string(1, '\0'));
  request.set_count_only(true);
  etcdserverpb::RangeResponse response;
  if (!call(*stubs_->kv, &KvStub::Range, request, response)) return 0;
  return response.header().revision();
}

std::optional<MemberStatus> EtcdSyncClient::status() {
  etcdserverpb::StatusRequest request;
  etcdserverpb::StatusResponse response;
  if (!call(*stubs_->maintenance, &MaintenanceStub::Status, request, response)) {
    return std::nullopt;
  }
  return MemberStatus{response.header().member_id(), response.leader(), response.header().revision(),
                      response.header().raft_term(), response.version()};
}

bool EtcdSyncClient::healthy() {
  // The same probe as etcd's own /health: a linearizable read, which needs a leader and a quorum.
  etcdserverpb::RangeRequest request;
  request.set_key("health");
  etcdserverpb::RangeResponse response;
  return call(*stubs_->kv, &KvStub::Range, request, response);
}

// ------------------------------------------------------------------------------------------------ WatchRecorder

struct WatchRecorder::Stream {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<etcdserverpb::Watch::Stub> stub;
  grpc::ClientContext context;
  etcdserverpb::WatchCreateRequest create;
};

WatchRecorder::WatchRecorder(const std::string& endpoint, std::string key, Scope scope,
                             std::int64_t start_revision)
    : stream_(std::make_unique<Stream>()) {
  stream_->channel = make_channel(endpoint);
  stream_->stub = etcdserverpb::Watch::NewStub(stream_->channel);
  if (scope == Scope::kPrefix) {
    stream_->create.set_range_end(prefix_range_end(key));
    if (key.empty()) key.assign(1, '\0');
  }
  stream_->create.set_key(std::move(key));
  stream_->create.set_start_revision(start_revision);
  reader_ = std::thread([this] { run(); });
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, std::chrono::seconds(5), [this] { return created_ || ended_; });
}

WatchRecorder::~WatchRecorder() {
  // TryCancel is safe from another thread and also covers a call that has not started yet.
  stream_->context.TryCancel();
  if (reader_.joinable()) reader_.join();
}

void WatchRecorder::run() {
  auto stream = stream_->stub->Watch(&stream_->context);
  etcdserverpb::WatchRequest request;
  *request.mutable_create_request() = stream_->create;
  if (stream->Write(request)) {
    etcdserverpb::WatchResponse response;
    while (stream->Read(&response)) {
      const auto now = std::chrono::steady_clock::now();
      std::lock_guard lock(mu_);
      if (response.created()) created_ = true;
      if (response.canceled()) {
        canceled_ = true;
        compact_revision_ = response.compact_revision();
      }
      for (const auto& event : response.events()) {
        events_.push_back(WatchEvent{
            event.type() == mvccpb::Event::DELETE ? WatchEvent::Type::kDelete : WatchEvent::Type::kPut,
            event.kv().key(), event.kv().value(), event.kv().mod_revision(), now});
      }
      cv_.notify_all();
    }
  }
  stream->Finish();
  std::lock_guard lock(mu_);
  ended_ = true;
  cv_.notify_all();
}

bool WatchRecorder::wait_for(const std::function<bool(const std::vector<WatchEvent>&)>& predicate,
                             std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return predicate(events_); });
}

bool WatchRecorder::wait_for_count(std::size_t count, std::chrono::milliseconds timeout) {
  return wait_for([count](const std::vector<WatchEvent>& events) { return events.size() >= count; }, timeout);
}

std::vector<WatchEvent> WatchRecorder::events() const {
  std::lock_guard lock(mu_);
  return events_;
}

bool WatchRecorder::created() const {
  std::lock_guard lock(mu_);
  return created_;
}

bool WatchRecorder::canceled() const {
  std::lock_guard lock(mu_);
  return canceled_;
}

std::int64_t WatchRecorder::compact_revision() const {
  std::lock_guard lock(mu_);
  return compact_revision_;
}

bool WatchRecorder::ended() const {
  std::lock_guard lock(mu_);
  return ended_;
}

}  // namespace sidecar::test
