// Owns: child processes spawned by tests (by PID, never by name), temporary directories, small file helpers.
// Thread: not thread-safe per object; create, signal and destroy a ChildProcess on one thread (see spawn()).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sidecar::test {

using EnvVars = std::vector<std::pair<std::string, std::string>>;

// A directory made with mkdtemp under $TMPDIR (or /tmp), removed recursively on destruction.
// Setting SIDECAR_TEST_KEEP_DIRS=1 keeps it, so a failed run's logs and data can be inspected.
class TempDir {
 public:
  explicit TempDir(std::string_view prefix = "sidecar-test");
  ~TempDir();
  TempDir(TempDir&& other) noexcept;
  TempDir& operator=(TempDir&& other) noexcept;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(std::string_view name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// A child started from an argv with execve (no shell). stdout and stderr both go to one file so a test
// can assert on what the child printed. The destructor SIGKILLs the child if still running, and reaps it.
class ChildProcess {
 public:
  struct Options {
    EnvVars extra_env;                    // added to (and overriding) this process's environment
    std::filesystem::path output_path;    // empty: a temp file that is removed with the object
    bool append_output = false;           // keep earlier content, e.g. across restarts of one server
    std::filesystem::path working_dir;    // empty: inherit
  };

  // argv[0] is looked up in PATH when it has no '/'. Returns nullopt (and prints why to stderr) when the
  // program cannot be executed. The child gets PR_SET_PDEATHSIG=SIGKILL, so it dies with the spawning
  // THREAD: spawn from the test's main thread, not from a short-lived helper thread.
  static std::optional<ChildProcess> spawn(const std::vector<std::string>& argv, const Options& options);
  static std::optional<ChildProcess> spawn(const std::vector<std::string>& argv, EnvVars extra_env = {});

  ~ChildProcess();
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // The PID while the child has not been reaped; -1 afterwards.
  pid_t pid() const { return exit_code_ ? -1 : pid_; }
  // False once the child has been reaped (signals are never sent to a reaped PID, which may be reused).
  bool signal(int signo);
  // Reaps the child if it has exited. A SIGSTOPped child counts as running.
  bool is_running();
  // Exit code, or -N when killed by signal N; nullopt if it is still running after `timeout`.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  // SIGKILL (also wakes a stopped child) and reap; returns the same value as wait_exit.
  int kill_and_reap();
  std::optional<int> exit_code() const { return exit_code_; }

  const std::filesystem::path& output_path() const { return output_path_; }
  // Everything the child wrote to stdout/stderr so far.
  std::string output() const;

 private:
  ChildProcess() = default;
  void reset() noexcept;

  pid_t pid_ = -1;
  int pidfd_ = -1;  // lets wait_exit block on the exit itself instead of polling waitpid
  std::optional<int> exit_code_;
  std::filesystem::path output_path_;
  bool owns_output_ = false;
};

struct CaptureResult {
  int exit_code = -1;       // exit code, -N when killed by signal N, 127 when it could not be started
  bool timed_out = false;   // the child was SIGKILLed because it outlived `timeout`
  std::string output;       // stdout and stderr interleaved
};

// Runs argv to completion (no shell) and returns its exit code and output.
CaptureResult run_and_capture(const std::vector<std::string>& argv,
                              std::chrono::milliseconds timeout = std::chrono::seconds(30),
                              EnvVars extra_env = {});

// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released). Another process can
// take it before it is used again, so a caller that binds it must be ready to retry. 0 on failure.
std::uint16_t free_port();

// Creates or truncates `path` with `text`. False (with errno printed) on failure.
bool write_file(const std::filesystem::path& path, std::string_view text);
// Writes to a sibling temp file and renames it over `path`, so a reader never sees a partial file.
bool write_file_atomic(const std::filesystem::path& path, std::string_view text);
std::optional<std::string> read_file(const std::filesystem::path& path);

}  // namespace sidecar::test
