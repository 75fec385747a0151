#include "tests/support/bulk_writer.hpp"

#include <grpcpp/grpcpp.h>

#include <algorithm>

#include "etcd/rpc.grpc.pb.h"
#include "etcd/rpc.pb.h"

namespace sidecar::test {

struct BulkWriter::Impl {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<etcdserverpb::KV::Stub> kv;
};

BulkWriter::BulkWriter(const std::string& endpoint, std::chrono::milliseconds deadline)
    : impl_(std::make_unique<Impl>()), deadline_(deadline) {
  grpc::ChannelArguments args;
  // etcd is restarted under this writer in the soak test; reconnect quickly like EtcdSyncClient does.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 50);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 50);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 250);
  impl_->channel = grpc::CreateCustomChannel(endpoint, grpc::InsecureChannelCredentials(), args);
  impl_->kv = etcdserverpb::KV::NewStub(impl_->channel);
}

BulkWriter::~BulkWriter() = default;

std::int64_t BulkWriter::apply(const std::vector<BulkOp>& ops) {
  last_error_.clear();
  std::int64_t revision = 0;
  for (std::size_t begin = 0; begin < ops.size(); begin += kOpsPerTxn) {
    etcdserverpb::TxnRequest request;
    const std::size_t end = std::min(ops.size(), begin + kOpsPerTxn);
    for (std::size_t i = begin; i < end; ++i) {
      auto* op = request.add_success();
      if (ops[i].del) {
        op->mutable_request_delete_range()->set_key(ops[i].key);
      } else {
        auto* put = op->mutable_request_put();
        put->set_key(ops[i].key);
        put->set_value(ops[i].value);
      }
    }
    etcdserverpb::TxnResponse response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + deadline_);
    const grpc::Status status = impl_->kv->Txn(&context, request, &response);
    if (!status.ok()) {
      last_error_ = "Txn: " + status.error_message();
      return 0;
    }
    revision = response.header().revision();
  }
  return revision;
}

}  // namespace sidecar::test
