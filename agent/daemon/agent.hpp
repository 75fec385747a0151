// Owns: one running agent — the io_context, the etcd client, the registrar — and its orderly shutdown.
// Thread: the calling (main) thread runs the io_context; everything inside runs on it.
#pragma once

#include <string>

#include "agent/core/manifest.hpp"

namespace sidecar::daemon {

struct AgentOptions {
  core::Manifest manifest;
  bool dev = false;  // print what a developer needs to look at the registration
};

// Runs until SIGTERM/SIGINT, then deregisters and returns the exit code.
int run_agent(AgentOptions options);

}  // namespace sidecar::daemon
