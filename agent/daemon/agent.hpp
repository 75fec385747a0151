// Owns: one running agent — the io_context, the etcd client, the registrar — and its orderly shutdown.
// Thread: the calling (main) thread runs the io_context; everything inside runs on it.
#pragma once

#include <string>

#include "agent/core/manifest.hpp"

namespace sidecar::daemon {

struct AgentOptions {
  core::Manifest manifest;
  bool dev = false;  // print what a developer needs to look at the registration
  // Where the lease is recorded for a successor process (restart without a gap); empty: not recorded.
  std::string state_dir;
};

// Runs until SIGTERM/SIGINT (deregister, exit 0) or SIGQUIT (hand the lease and keys over to the next
// process, exit kExitHandover) and returns the exit code.
int run_agent(AgentOptions options);

}  // namespace sidecar::daemon
