#include "agent/core/keepalive_gate.hpp"

namespace sidecar::core {

bool KeepaliveGate::request(int64_t lease) {
  if (!stream_up_ || write_pending_) {
    owed_ = lease;  // a newer request replaces an older one: only the current lease matters
    return false;
  }
  write_pending_ = true;
  owed_.reset();
  return true;
}

std::optional<int64_t> KeepaliveGate::on_write_done() {
  write_pending_ = false;
  if (!stream_up_ || !owed_) return std::nullopt;
  const int64_t lease = *owed_;
  owed_.reset();
  write_pending_ = true;
  return lease;
}

void KeepaliveGate::on_stream_up() {
  stream_up_ = true;
  write_pending_ = false;
  owed_.reset();
}

void KeepaliveGate::on_stream_down() {
  stream_up_ = false;
  write_pending_ = false;
}

}  // namespace sidecar::core
