// Owns: a blocking gRPC KV stub for writing many keys per request (load and churn in fault/soak tests).
// Thread: one thread per BulkWriter.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace sidecar::test {

// One change of a batch: a put of `value`, or (del = true) a delete of `key`.
struct BulkOp {
  std::string key;
  std::string value;
  bool del = false;
};

// Applies ops in transactions of at most kOpsPerTxn (etcd's default --max-txn-ops is 128), so 10,000
// keys are ~80 requests instead of 10,000. Keys within one batch must be distinct (etcd rejects a txn
// that touches a key twice).
class BulkWriter {
 public:
  static constexpr std::size_t kOpsPerTxn = 128;

  explicit BulkWriter(const std::string& endpoint, std::chrono::milliseconds deadline = std::chrono::seconds(10));
  ~BulkWriter();
  BulkWriter(const BulkWriter&) = delete;
  BulkWriter& operator=(const BulkWriter&) = delete;

  // The revision after the last transaction, 0 when any transaction failed (last_error() says why).
  std::int64_t apply(const std::vector<BulkOp>& ops);
  const std::string& last_error() const { return last_error_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::chrono::milliseconds deadline_;
  std::string last_error_;
};

}  // namespace sidecar::test
