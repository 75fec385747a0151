#include "tests/support/ads_client.hpp"

#include <algorithm>
#include <utility>

namespace sidecar::test {

std::optional<std::vector<std::string>> endpoints_of(const sidecar::wkt::Any& any) {
  if (any.type_url() != kEndpointsType) return std::nullopt;
  envoy::config::endpoint::v3::ClusterLoadAssignment cla;
  if (!cla.ParseFromString(any.value())) return std::nullopt;
  std::vector<std::string> out;
  for (const auto& locality : cla.endpoints()) {
    for (const auto& lb : locality.lb_endpoints()) {
      const auto& socket = lb.endpoint().address().socket_address();
      out.push_back(socket.address() + ":" + std::to_string(socket.port_value()));
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------- AdsClient

AdsClient::AdsClient(const std::shared_ptr<grpc::Channel>& channel, std::string node_id)
    : node_id_(std::move(node_id)), stub_(discovery::AggregatedDiscoveryService::NewStub(channel)) {
  stream_ = stub_->StreamAggregatedResources(&ctx_);
  reader_ = std::thread([this] { read_loop(); });
}

AdsClient::~AdsClient() { close(); }

void AdsClient::read_loop() {
  discovery::DiscoveryResponse response;
  while (stream_->Read(&response)) {
    std::lock_guard lock(mu_);
    inbox_.push_back(std::move(response));
    response.Clear();
    cv_.notify_all();
  }
  std::lock_guard lock(mu_);
  read_done_ = true;
  cv_.notify_all();
}

bool AdsClient::send(std::string_view type_url, const std::vector<std::string>& names, const std::string& version,
                     const std::string& nonce, const std::string& error) {
  discovery::DiscoveryRequest request;
  request.mutable_node()->set_id(node_id_);
  request.set_type_url(std::string(type_url));
  for (const auto& name : names) request.add_resource_names(name);
  request.set_version_info(version);
  request.set_response_nonce(nonce);
  if (!error.empty()) {
    request.mutable_error_detail()->set_code(3);  // INVALID_ARGUMENT, what Envoy and gRPC send
    request.mutable_error_detail()->set_message(error);
  }
  std::lock_guard lock(write_mu_);
  if (status_) return false;
  return stream_->Write(request);
}

bool AdsClient::ack(const discovery::DiscoveryResponse& response, const std::vector<std::string>& names) {
  return send(response.type_url(), names, response.version_info(), response.nonce());
}

std::optional<discovery::DiscoveryResponse> AdsClient::next(std::string_view type_url,
                                                            std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  const auto match = [&] {
    return std::find_if(inbox_.begin(), inbox_.end(), [&](const auto& r) { return r.type_url() == type_url; });
  };
  cv_.wait_for(lock, timeout, [&] { return read_done_ || match() != inbox_.end(); });
  const auto it = match();
  if (it == inbox_.end()) return std::nullopt;
  discovery::DiscoveryResponse out = std::move(*it);
  inbox_.erase(it);
  return out;
}

size_t AdsClient::pending() const {
  std::lock_guard lock(mu_);
  return inbox_.size();
}

bool AdsClient::closed() const {
  std::lock_guard lock(mu_);
  return read_done_;
}

grpc::Status AdsClient::close() {
  std::lock_guard write_lock(write_mu_);
  if (status_) return *status_;
  ctx_.TryCancel();
  if (reader_.joinable()) reader_.join();
  status_ = stream_->Finish();
  return *status_;
}

// ---------------------------------------------------------------------------------------------- AdsFanout

struct AdsFanout::Op {
  enum class Kind { kStart, kRead, kWrite, kFinish };
  Stream* stream;
  Kind kind;
};

struct AdsFanout::Stream {
  size_t index = 0;
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientAsyncReaderWriter<discovery::DiscoveryRequest, discovery::DiscoveryResponse>> rw;
  discovery::DiscoveryResponse read_buf;
  std::deque<discovery::DiscoveryRequest> to_write;
  discovery::DiscoveryRequest writing_buf;
  bool writing = false;
  bool reading_done = false;
  bool finishing = false;
  grpc::Status status;
  Op start{this, Op::Kind::kStart};
  Op read{this, Op::Kind::kRead};
  Op write{this, Op::Kind::kWrite};
  Op finish{this, Op::Kind::kFinish};
};

AdsFanout::AdsFanout(const std::string& target, size_t channels, size_t streams, std::string type_url,
                     std::function<std::string(size_t)> names, OnResponse on_response)
    : type_url_(std::move(type_url)), names_(std::move(names)), on_response_(std::move(on_response)) {
  for (size_t i = 0; i < channels; ++i) {
    grpc::ChannelArguments args;
    // Channels with different arguments get different subchannels: one connection each.
    args.SetInt("sidecar.test.connection", static_cast<int>(i));
    channels_.push_back(grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args));
    stubs_.push_back(discovery::AggregatedDiscoveryService::NewStub(channels_.back()));
  }
  for (size_t i = 0; i < streams; ++i) {
    streams_.push_back(std::make_unique<Stream>());
    streams_.back()->index = i;
  }
  poller_ = std::thread([this] { poll(); });
}

AdsFanout::~AdsFanout() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  for (auto& s : streams_) s->ctx.TryCancel();
  {
    std::unique_lock lock(mu_);
    drained_.wait(lock, [this] { return outstanding_ == 0; });
  }
  cq_.Shutdown();
  poller_.join();
}

void AdsFanout::start() {
  for (auto& s : streams_) {
    s->rw = stubs_[s->index % stubs_.size()]->PrepareAsyncStreamAggregatedResources(&s->ctx, &cq_);
    discovery::DiscoveryRequest request;
    request.mutable_node()->set_id("fanout-" + std::to_string(s->index));
    request.set_type_url(type_url_);
    request.add_resource_names(names_(s->index));
    {
      std::lock_guard lock(mu_);
      s->to_write.push_back(std::move(request));
      ++outstanding_;
    }
    s->rw->StartCall(&s->start);
  }
}

size_t AdsFanout::failed() const {
  std::lock_guard lock(mu_);
  return failed_;
}

void AdsFanout::poll() {
  void* tag = nullptr;
  bool ok = false;
  while (cq_.Next(&tag, &ok)) on_op(static_cast<Op*>(tag), ok);
}

// On the poller thread. Each stream has at most one read and one write outstanding; Finish comes once both
// are done, so no operation of a call is in flight when its status arrives.
void AdsFanout::on_op(Op* op, bool ok) {
  Stream& s = *op->stream;
  std::unique_lock lock(mu_);
  --outstanding_;
  switch (op->kind) {
    case Op::Kind::kStart:
      if (!ok) {
        s.reading_done = true;
        if (!stopping_) ++failed_;
        break;
      }
      ++outstanding_;
      s.rw->Read(&s.read_buf, &s.read);
      write_next(s);
      break;
    case Op::Kind::kRead: {
      if (!ok) {
        s.reading_done = true;
        if (!stopping_) ++failed_;
        break;
      }
      discovery::DiscoveryResponse response = std::move(s.read_buf);
      s.read_buf.Clear();
      discovery::DiscoveryRequest ack;
      ack.set_type_url(response.type_url());
      ack.set_version_info(response.version_info());
      ack.set_response_nonce(response.nonce());
      ack.add_resource_names(names_(s.index));
      s.to_write.push_back(std::move(ack));
      ++outstanding_;
      s.rw->Read(&s.read_buf, &s.read);
      write_next(s);
      lock.unlock();
      on_response_(s.index, response, std::chrono::steady_clock::now());
      lock.lock();
      break;
    }
    case Op::Kind::kWrite:
      s.writing = false;
      if (ok) write_next(s);
      else s.to_write.clear();
      break;
    case Op::Kind::kFinish:
      break;
  }
  if (s.reading_done && !s.writing && !s.finishing) {
    s.finishing = true;
    ++outstanding_;
    s.rw->Finish(&s.status, &s.finish);
  }
  if (outstanding_ == 0) drained_.notify_all();
}

void AdsFanout::write_next(Stream& s) {
  if (s.writing || s.to_write.empty() || s.reading_done) return;
  s.writing_buf = std::move(s.to_write.front());
  s.to_write.pop_front();
  s.writing = true;
  ++outstanding_;
  s.rw->Write(s.writing_buf, &s.write);
}

}  // namespace sidecar::test
