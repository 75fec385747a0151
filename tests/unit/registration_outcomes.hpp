// Owns: the write answers the registration tests feed core::Registration, shared by its test files.
// Thread: pure test helpers.
#pragma once

#include <optional>
#include <utility>

#include "agent/core/registration.hpp"

namespace sidecar::core::outcomes {

// etcd accepted the write for `w` at `revision`.
inline WriteOutcome written(const WriteKey& w, int64_t revision) {
  WriteOutcome o;
  o.kind = WriteOutcome::Kind::kWritten;
  o.revision = revision;
  o.attempt = w.attempt;
  return o;
}

// The Txn's compare failed; `current` is what the key holds (nullopt: absent) at `header_revision`.
inline WriteOutcome rejected(const WriteKey& w, std::optional<Observed> current, int64_t header_revision) {
  WriteOutcome o;
  o.kind = WriteOutcome::Kind::kRejected;
  o.revision = header_revision;
  o.current = std::move(current);
  o.attempt = w.attempt;
  return o;
}

}  // namespace sidecar::core::outcomes
