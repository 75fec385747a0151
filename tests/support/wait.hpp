// Owns: nothing; a bounded polling wait for state that has no event to wait on (e.g. a key in a real etcd).
// Thread: runs on the caller's thread.
#pragma once

#include <algorithm>
#include <chrono>
#include <functional>
#include <thread>

namespace sidecar::test {

// Returns true as soon as `condition` holds, false if it still does not after `timeout`. The condition is
// checked one last time at the deadline so a slow final poll cannot turn a success into a failure.
// Use only against external processes (etcd, the agent's files); unit tests wait on nothing.
inline bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
                       std::chrono::milliseconds poll = std::chrono::milliseconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (condition()) return true;
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return false;
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(poll, deadline - now));
  }
}

}  // namespace sidecar::test
