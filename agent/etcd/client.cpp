#include "agent/etcd/client.hpp"

#include <spdlog/spdlog.h>

namespace sidecar::etcd {

std::optional<std::string> grpc_target(const std::string& endpoint, std::string* error) {
  std::string rest = endpoint;
  if (rest.rfind("http://", 0) == 0) {
    rest = rest.substr(7);
  } else if (rest.rfind("https://", 0) == 0) {
    if (error) *error = "https endpoints are not supported yet: " + endpoint;
    return std::nullopt;
  } else if (rest.find("://") != std::string::npos) {
    if (error) *error = "unsupported scheme in endpoint " + endpoint;
    return std::nullopt;
  }
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  if (rest.empty() || rest.find(':') == std::string::npos) {
    if (error) *error = "endpoint needs host:port: " + endpoint;
    return std::nullopt;
  }
  return rest;
}

bool is_transient(const grpc::Status& status) {
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return true;
    default:
      // etcd answers "etcdserver: no leader" and "etcdserver: request timed out" as UNAVAILABLE in 3.4;
      // match the text too for members that say it otherwise.
      return status.error_message().find("no leader") != std::string::npos;
  }
}

Client::Client(asio::io_context& io, ClientOptions options) : io_(io), options_(std::move(options)), bridge_(io) {}

std::unique_ptr<Client> Client::create(asio::io_context& io, ClientOptions options, std::string* error) {
  if (options.endpoints.empty()) {
    if (error) *error = "no etcd endpoints";
    return nullptr;
  }
  std::vector<std::string> targets;
  for (const auto& ep : options.endpoints) {
    auto target = grpc_target(ep, error);
    if (!target) return nullptr;
    targets.push_back(*target);
  }
  std::unique_ptr<Client> client(new Client(io, std::move(options)));
  for (const auto& target : targets) {
    grpc::ChannelArguments args;
    // Reconnect quickly: a restarted etcd should be picked up within about a second.
    const int max_backoff = static_cast<int>(client->options_.reconnect_backoff_max.count());
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, max_backoff);
    // HTTP/2 pings find a black-holed connection; etcd refuses pings more often than every 5 s.
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 5000);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 3000);
    args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
    // One channel per endpoint, never shared with another Client through gRPC's global subchannel pool.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetMaxReceiveMessageSize(64 * 1024 * 1024);
    Endpoint ep;
    ep.target = target;
    ep.channel = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
    ep.kv = pb::KV::NewStub(ep.channel);
    ep.lease = pb::Lease::NewStub(ep.channel);
    ep.watch = pb::Watch::NewStub(ep.channel);
    ep.maintenance = pb::Maintenance::NewStub(ep.channel);
    client->endpoints_.push_back(std::move(ep));
  }
  return client;
}

Client::~Client() {
  // The io_context has stopped by now; cancel whatever a caller left behind so the queue can drain.
  for (auto* ctx : inflight_) ctx->TryCancel();
  for (auto& weak : streams_) {
    if (auto s = weak.lock()) s->cancel();
  }
  bridge_.shutdown();
}

void Client::prepare(grpc::ClientContext& ctx, milliseconds timeout) const {
  const auto t = timeout.count() > 0 ? timeout : options_.request_timeout;
  ctx.set_deadline(std::chrono::system_clock::now() + t);
  // Fail fast while the channel is down: the caller's backoff decides when to retry, not gRPC's.
  ctx.set_wait_for_ready(false);
}

void Client::track(const std::shared_ptr<StreamBase>& stream) {
  streams_.remove_if([](const std::weak_ptr<StreamBase>& w) { return w.expired(); });
  streams_.push_back(stream);
  if (stopping_) stream->cancel();
}

std::shared_ptr<WatchStream> Client::new_watch_stream() {
  Endpoint& ep = endpoints_[current_];
  auto stream = std::make_shared<WatchStream>(io_, ep.target);
  // A member cut off from the quorum must not serve the watch: it would never see new events.
  stream->context().AddMetadata("hasleader", "true");
  stream->attach(ep.watch->PrepareAsyncWatch(&stream->context(), bridge_.cq()));
  track(stream);
  return stream;
}

std::shared_ptr<KeepAliveStream> Client::new_keepalive_stream() {
  Endpoint& ep = endpoints_[current_];
  auto stream = std::make_shared<KeepAliveStream>(io_, ep.target);
  stream->context().AddMetadata("hasleader", "true");
  stream->attach(ep.lease->PrepareAsyncLeaseKeepAlive(&stream->context(), bridge_.cq()));
  track(stream);
  return stream;
}

void Client::report_failure(const std::string& endpoint, const grpc::Status& status) {
  if (endpoints_.size() < 2 || stopping_ || !is_transient(status)) return;
  if (endpoints_[current_].target != endpoint) return;  // already moved on
  current_ = (current_ + 1) % endpoints_.size();
  spdlog::info("etcd endpoint {} failed ({}); switching to {}", endpoint, status.error_message(),
               endpoints_[current_].target);
}

void Client::shutdown() {
  stopping_ = true;
  for (auto* ctx : inflight_) ctx->TryCancel();
  for (auto& weak : streams_) {
    if (auto s = weak.lock()) s->cancel();
  }
}

}  // namespace sidecar::etcd
