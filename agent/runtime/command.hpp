// Owns: running one external command (on_change, check_command, exec checks) without blocking the loop:
// spawn without a shell unless asked, reap through a pidfd, kill its process group at the timeout.
// Thread: io_context thread.
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without including it
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <string>
#include <vector>

namespace sidecar::runtime {

struct CommandResult {
  enum class Kind { kExited, kSignaled, kTimedOut, kSpawnFailed };
  Kind kind = Kind::kSpawnFailed;
  int code = 0;         // exit status for kExited, signal number for kSignaled
  std::string output;   // stdout+stderr, the last `max_output` bytes
  std::string error;    // kSpawnFailed: why
  std::chrono::milliseconds took{0};
  bool ok() const { return kind == Kind::kExited && code == 0; }
  std::string describe() const;  // "exit 0", "exit 3", "killed by signal 9", "timed out after 2000 ms"
};

// Lets the owner of a running command kill it early (e.g. a health check at shutdown). `pid` is the
// process group leader while the child runs (not yet reaped), -1 otherwise.
struct CommandControl {
  int pid = -1;
  void kill_group() const;
};

// Runs argv[0] (looked up in PATH) with argv. Output goes to an in-memory file, so a chatty command never
// blocks on a full pipe and a daemonizing one that keeps the descriptor open never hangs us.
boost::asio::awaitable<CommandResult> run_command(std::vector<std::string> argv, std::chrono::milliseconds timeout,
                                                  size_t max_output = 16 * 1024, CommandControl* control = nullptr);

// Kills every command of this process that is still running (each whole process group) and returns how
// many: the shutdown and handover deadlines use it, so an `on_change` that hangs cannot hold the exit (or
// outlive the lease). Their run_command calls then complete as killed.
size_t kill_running_commands();

// `/bin/sh -c command`: for manifest strings like "nginx -s reload" or "kill -HUP $(cat pidfile)".
boost::asio::awaitable<CommandResult> run_shell(std::string command, std::chrono::milliseconds timeout,
                                                size_t max_output = 16 * 1024, CommandControl* control = nullptr);

}  // namespace sidecar::runtime
