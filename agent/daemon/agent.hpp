// Owns: one running agent — the io_context, the etcd client, the registrar, checks, discoveries and mirrors —
//       its live reload (SIGHUP) and its orderly shutdown.
// Thread: the calling (main) thread runs the io_context; everything inside runs on it.
#pragma once

#include <boost/asio/io_context.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "agent/core/manifest.hpp"
#include "agent/runtime/etcd_port.hpp"

namespace sidecar::daemon {

struct AgentOptions {
  core::Manifest manifest;
  bool dev = false;  // print what a developer needs to look at the registration
  // Where the lease is recorded for a successor process (restart without a gap); empty: not recorded.
  std::string state_dir;
  // Live reload (SIGHUP) re-reads this file; empty: manifest.source.
  std::string manifest_path;
  // What the command line changed in the loaded manifest (--admin-listen, --dev's etcd), applied again to a
  // reloaded one so it compares like for like.
  std::function<void(core::Manifest&)> adjust;
  // --watch-manifest: reload when the manifest file changes (inotify on its directory), not only on SIGHUP.
  bool watch_manifest = false;
  // --maintenance: every service starts in maintenance with this reason (kept until DELETE /v1/maintenance).
  std::optional<std::string> maintenance;
  // Where the agent reaches etcd. Unset (the daemon): an etcd::Client on manifest.etcd. Tests pass an
  // in-memory etcd to run the whole agent (reload, drain, shutdown) without sockets. Called once, on the
  // thread that calls run_agent, with the agent's io_context.
  std::function<std::unique_ptr<runtime::EtcdPort>(boost::asio::io_context&)> etcd;
  // Runs just before a second SIGTERM/SIGINT ends the process at once (std::_Exit skips every destructor):
  // what must not outlive the agent even then, such as --dev's throwaway etcd.
  std::function<void()> before_hard_exit;
};

// SIGHUP reloads the manifest and applies the difference (see README "Live reload").
// Runs until SIGTERM/SIGINT (deregister, exit 0) or SIGQUIT (hand the lease and keys over to the next
// process, exit kExitHandover) and returns the exit code.
int run_agent(AgentOptions options);

}  // namespace sidecar::daemon
