#include "agent/runtime/command.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <cstring>
#include <set>

extern char** environ;

namespace sidecar::runtime {

namespace asio = boost::asio;

std::string CommandResult::describe() const {
  switch (kind) {
    case Kind::kExited: return "exit " + std::to_string(code);
    case Kind::kSignaled: return "killed by signal " + std::to_string(code);
    case Kind::kTimedOut: return "timed out after " + std::to_string(took.count()) + " ms";
    case Kind::kSpawnFailed: return "could not start: " + error;
  }
  return "unknown";
}

namespace {

std::string read_tail(int fd, size_t max_output) {
  struct stat st {};
  if (::fstat(fd, &st) != 0 || st.st_size <= 0) return {};
  const auto size = static_cast<size_t>(st.st_size);
  const size_t len = std::min(size, max_output);
  std::string out(len, '\0');
  const ssize_t n = ::pread(fd, out.data(), len, static_cast<off_t>(size - len));
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return out;
}

// Kept out of the coroutine: GCC 12 cannot put the sigset_t arrays into a coroutine frame.
int spawn_child(std::vector<std::string>& argv, int out_fd, pid_t* pid) {
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_fd, STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out_fd, STDERR_FILENO);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // Own process group, so a timeout kills the command's children too; default signal mask and handlers.
  sigset_t empty_mask;
  sigemptyset(&empty_mask);
  sigset_t default_signals;
  sigfillset(&default_signals);
  posix_spawnattr_setsigmask(&attr, &empty_mask);
  posix_spawnattr_setsigdefault(&attr, &default_signals);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attr, 0);
  const int rc = ::posix_spawnp(pid, args[0], &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  return rc;
}

// Process groups of the commands running now (leaders not yet reaped, so no pid can have been reused).
std::set<pid_t>& running_groups() {
  static std::set<pid_t> groups;
  return groups;
}

}  // namespace

size_t kill_running_commands() {
  for (pid_t pid : running_groups()) ::kill(-pid, SIGKILL);
  return running_groups().size();
}

void CommandControl::kill_group() const {
  // Before the reap the group still exists (at worst as a zombie leader), so the pid cannot be reused yet.
  if (pid > 0) ::kill(-pid, SIGKILL);
}

asio::awaitable<CommandResult> run_command(std::vector<std::string> argv, std::chrono::milliseconds timeout,
                                           size_t max_output, CommandControl* control) {
  CommandResult result;
  const auto started = std::chrono::steady_clock::now();
  if (argv.empty()) {
    result.error = "empty command";
    co_return result;
  }
  const int out_fd = ::memfd_create("etcd-sidecar-cmd", MFD_CLOEXEC);
  if (out_fd < 0) {
    result.error = std::string("memfd_create: ") + std::strerror(errno);
    co_return result;
  }
  pid_t pid = -1;
  const int rc = spawn_child(argv, out_fd, &pid);
  if (rc != 0) {
    ::close(out_fd);
    result.error = argv[0] + ": " + std::strerror(rc);
    co_return result;
  }

  if (control != nullptr) control->pid = pid;
  running_groups().insert(pid);
  auto executor = co_await asio::this_coro::executor;
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  bool timed_out = false;
  int status = 0;
  if (pidfd >= 0) {
    asio::posix::stream_descriptor exit_watch(executor, pidfd);  // readable once the child has exited
    asio::steady_timer deadline(executor);
    deadline.expires_after(timeout);
    deadline.async_wait([&timed_out, pid](const boost::system::error_code& ec) {
      if (ec) return;
      timed_out = true;
      ::kill(-pid, SIGKILL);
    });
    boost::system::error_code ec;
    co_await exit_watch.async_wait(asio::posix::stream_descriptor::wait_read, asio::redirect_error(asio::use_awaitable, ec));
    deadline.cancel();
    if (control != nullptr) control->pid = -1;
    running_groups().erase(pid);
    ::waitpid(pid, &status, 0);
  } else {
    // No pidfd (kernel < 5.3): poll the child on a short timer rather than block the loop.
    asio::steady_timer tick(executor);
    const auto deadline = started + timeout;
    while (::waitpid(pid, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() >= deadline && !timed_out) {
        timed_out = true;
        ::kill(-pid, SIGKILL);
      }
      tick.expires_after(std::chrono::milliseconds(10));
      co_await tick.async_wait(asio::use_awaitable);
    }
    if (control != nullptr) control->pid = -1;
    running_groups().erase(pid);
  }
  result.took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
  result.output = read_tail(out_fd, max_output);
  ::close(out_fd);
  if (timed_out) {
    result.kind = CommandResult::Kind::kTimedOut;
  } else if (WIFEXITED(status)) {
    result.kind = CommandResult::Kind::kExited;
    result.code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.kind = CommandResult::Kind::kSignaled;
    result.code = WTERMSIG(status);
  }
  co_return result;
}

asio::awaitable<CommandResult> run_shell(std::string command, std::chrono::milliseconds timeout, size_t max_output,
                                         CommandControl* control) {
  // Built outside the co_await expression: GCC 12 miscompiles string literals in a braced list there.
  std::vector<std::string> argv;
  argv.emplace_back("/bin/sh");
  argv.emplace_back("-c");
  argv.push_back(std::move(command));
  co_return co_await run_command(std::move(argv), timeout, max_output, control);
}

}  // namespace sidecar::runtime
