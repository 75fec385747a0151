#include "agent/frontend/xds/xds_server.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace sidecar::frontend::xds {

namespace {

bool read_file(const std::string& path, std::string* out, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = "cannot read " + path;
    return false;
  }
  std::ostringstream text;
  text << in.rdbuf();
  *out = text.str();
  return true;
}

std::shared_ptr<grpc::ServerCredentials> credentials(const XdsServerOptions& o, std::string* error) {
  if (o.tls_cert.empty()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions ssl;
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  if (!read_file(o.tls_key, &pair.private_key, error) || !read_file(o.tls_cert, &pair.cert_chain, error)) return nullptr;
  ssl.pem_key_cert_pairs.push_back(std::move(pair));
  if (!o.tls_ca.empty()) {
    if (!read_file(o.tls_ca, &ssl.pem_root_certs, error)) return nullptr;
    ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(ssl);
}

}  // namespace

XdsServer::XdsServer(asio::io_context& io, runtime::Catalog& catalog, XdsServerOptions options)
    : io_(io),
      options_(std::move(options)),
      cache_(io, catalog, options_.cache),
      shut_down_(io, asio::steady_timer::time_point::max()),
      scope_(io, "xds") {}

std::unique_ptr<XdsServer> XdsServer::start(asio::io_context& io, runtime::Catalog& catalog, XdsServerOptions options,
                                            std::string* error) {
  std::unique_ptr<XdsServer> s(new XdsServer(io, catalog, std::move(options)));
  const auto creds = credentials(s->options_, error);
  if (!creds) return nullptr;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(s->options_.listen, creds, &port);
  builder.RegisterService(&s->service_);
  // An ADS stream is long-lived and mostly idle: keepalive pings find clients that vanished without a FIN.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 60000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  std::unique_ptr<grpc::ServerCompletionQueue> cq = builder.AddCompletionQueue();
  s->cq_ = cq.get();
  s->bridge_ = std::make_unique<etcd::CompletionBridge>(io, std::move(cq));
  s->server_ = builder.BuildAndStart();
  if (!s->server_ || port == 0) {
    *error = "cannot listen on " + s->options_.listen;
    if (s->server_) s->server_->Shutdown();
    s->bridge_->shutdown();
    s->server_.reset();
    return nullptr;
  }
  const size_t colon = s->options_.listen.rfind(':');
  s->address_ = s->options_.listen.substr(0, colon) + ":" + std::to_string(port);
  s->scope_.spawn("xds accept", s->accept_loop());
  spdlog::info("xds: serving ADS on {}{}", s->address_,
               s->options_.tls_cert.empty() ? " (plaintext)" : s->options_.tls_ca.empty() ? " (TLS)" : " (mTLS)");
  return s;
}

XdsServer::~XdsServer() {
  if (shutdown_thread_.joinable()) shutdown_thread_.join();
  if (bridge_) bridge_->shutdown();
}

asio::awaitable<void> XdsServer::accept_loop() {
  while (!stopping_) {
    auto stream = std::make_shared<AdsStream>(
        io_,
        StreamHost{cache_, stats_,
                   [this](core::xds::ResourceType t, const std::string& node, const std::string& e) { log_nack(t, node, e); }},
        ++next_stream_id_);
    auto op = asio::async_initiate<decltype(asio::use_awaitable), void(bool)>(
        [this, stream](auto handler) {
          service_.RequestStreamAggregatedResources(
              &stream->context(), &stream->reader_writer(), cq_, cq_,
              etcd::make_tag([handler = std::move(handler), work = asio::make_work_guard(io_)](bool ok) mutable {
                std::move(handler)(ok);
              }));
        },
        asio::use_awaitable);
    const bool ok = co_await std::move(op);
    if (!ok) break;  // the server is shutting down
    if (stopping_) stream->cancel();
    scope_.spawn("xds stream", serve(std::move(stream)));
  }
}

asio::awaitable<void> XdsServer::serve(std::shared_ptr<AdsStream> stream) {
  live_.insert(stream.get());
  co_await stream->run();
  live_.erase(stream.get());
}

void XdsServer::log_nack(core::xds::ResourceType type, const std::string& node, const std::string& error) {
  std::string& last = last_nack_[type];
  if (last == error) return;
  last = error;
  spdlog::warn("xds: client {} rejected a {} update (it keeps the last one it accepted): {}", node.empty() ? "?" : node,
               core::xds::to_string(type), error);
}

void XdsServer::stop() {
  if (stopping_) return;
  stopping_ = true;
  for (AdsStream* s : live_) s->cancel();
  cache_.stop();
  // Shutdown returns once every call is gone, and the calls end on this thread: it cannot block here.
  shutdown_thread_ = std::thread([this] {
    server_->Shutdown(std::chrono::system_clock::now());
    asio::post(io_, [this] { shut_down_.cancel(); });
  });
}

asio::awaitable<void> XdsServer::join() {
  co_await scope_.join();
  co_await cache_.join();
  if (shutdown_thread_.joinable()) {
    boost::system::error_code ec;
    co_await shut_down_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    shutdown_thread_.join();
  }
  bridge_->shutdown();
}

void XdsServer::collect_metrics(std::vector<core::MetricFamily>& out) const {
  const auto per_type = [](const std::array<uint64_t, core::xds::kResourceTypes>& counts) {
    std::vector<core::Sample> samples;
    for (auto t : core::xds::kAllResourceTypes) {
      samples.push_back({{{"type", std::string(core::xds::to_string(t))}}, static_cast<double>(counts[static_cast<size_t>(t)])});
    }
    return samples;
  };
  out.push_back({"etcd_sidecar_xds_streams_open", "ADS streams open now", core::MetricType::kGauge,
                 {{{}, static_cast<double>(stats_.streams_open)}}, {}});
  out.push_back({"etcd_sidecar_xds_streams_total", "ADS streams accepted", core::MetricType::kCounter,
                 {{{}, static_cast<double>(stats_.streams_total)}}, {}});
  out.push_back({"etcd_sidecar_xds_responses_total", "xDS responses sent, by resource type",
                 core::MetricType::kCounter, per_type(stats_.responses), {}});
  out.push_back({"etcd_sidecar_xds_acks_total", "xDS responses clients accepted, by resource type",
                 core::MetricType::kCounter, per_type(stats_.acks), {}});
  out.push_back({"etcd_sidecar_xds_nacks_total", "xDS responses clients rejected, by resource type",
                 core::MetricType::kCounter, per_type(stats_.nacks), {}});
  out.push_back({"etcd_sidecar_xds_resources", "Resource names some stream wants", core::MetricType::kGauge,
                 {{{}, static_cast<double>(cache_.size())}}, {}});
}

nlohmann::json XdsServer::status() const {
  nlohmann::json doc = {{"listen", address_},
                        {"tls", !options_.tls_cert.empty()},
                        {"streams_open", stats_.streams_open},
                        {"streams_total", stats_.streams_total},
                        {"resources", cache_.size()}};
  for (auto t : core::xds::kAllResourceTypes) {
    const auto i = static_cast<size_t>(t);
    doc["by_type"][std::string(core::xds::to_string(t))] = {
        {"responses", stats_.responses[i]}, {"acks", stats_.acks[i]}, {"nacks", stats_.nacks[i]}};
  }
  return doc;
}

}  // namespace sidecar::frontend::xds
