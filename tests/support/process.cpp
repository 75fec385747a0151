#include "tests/support/process.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

extern char** environ;

namespace sidecar::test {
namespace {

std::filesystem::path temp_base() {
  const char* tmp = std::getenv("TMPDIR");
  return (tmp != nullptr && *tmp != '\0') ? std::filesystem::path(tmp) : std::filesystem::path("/tmp");
}

bool keep_dirs() {
  const char* keep = std::getenv("SIDECAR_TEST_KEEP_DIRS");
  return keep != nullptr && std::string_view(keep) == "1";
}

int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return -WTERMSIG(status);
  return -1;
}

// PATH lookup happens before fork: execvp may allocate, which is unsafe in the child of a threaded process.
std::optional<std::string> resolve_program(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path_env = std::getenv("PATH");
  std::string_view dirs = path_env != nullptr ? path_env : "/usr/local/bin:/usr/bin:/bin";
  while (true) {
    const auto colon = dirs.find(':');
    const std::string dir(dirs.substr(0, colon));
    const std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    if (colon == std::string_view::npos) return std::nullopt;
    dirs.remove_prefix(colon + 1);
  }
}

std::vector<std::string> build_env(const EnvVars& extra) {
  std::vector<std::string> env;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    const std::string_view kv(*entry);
    const std::string_view name = kv.substr(0, kv.find('='));
    bool overridden = false;
    for (const auto& [key, value] : extra) overridden = overridden || key == name;
    if (!overridden) env.emplace_back(kv);
  }
  for (const auto& [key, value] : extra) env.push_back(key + "=" + value);
  return env;
}

std::vector<char*> as_c_array(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

int pidfd_open(pid_t pid) {
#ifdef SYS_pidfd_open
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
#else
  (void)pid;
  errno = ENOSYS;
  return -1;
#endif
}

}  // namespace

// ------------------------------------------------------------------------------------------------ TempDir

TempDir::TempDir(std::string_view prefix) {
  std::string templ = (temp_base() / (std::string(prefix) + "-XXXXXX")).string();
  if (::mkdtemp(templ.data()) == nullptr) {
    // Tests cannot do anything useful without scratch space; fail loudly at the cause.
    std::fprintf(stderr, "TempDir: mkdtemp(%s) failed: %s\n", templ.c_str(), std::strerror(errno));
    std::abort();
  }
  path_ = templ;
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  if (keep_dirs()) {
    std::fprintf(stderr, "TempDir: keeping %s\n", path_.c_str());
    return;
  }
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

TempDir::TempDir(TempDir&& other) noexcept : path_(std::exchange(other.path_, {})) {}

TempDir& TempDir::operator=(TempDir&& other) noexcept {
  if (this != &other) {
    TempDir doomed(std::move(*this));
    path_ = std::exchange(other.path_, {});
  }
  return *this;
}

// ------------------------------------------------------------------------------------------------ ChildProcess

std::optional<ChildProcess> ChildProcess::spawn(const std::vector<std::string>& argv, EnvVars extra_env) {
  Options options;
  options.extra_env = std::move(extra_env);
  return spawn(argv, options);
}

std::optional<ChildProcess> ChildProcess::spawn(const std::vector<std::string>& argv, const Options& options) {
  if (argv.empty()) {
    std::fprintf(stderr, "ChildProcess: empty argv\n");
    return std::nullopt;
  }
  const auto program = resolve_program(argv[0]);
  if (!program) {
    std::fprintf(stderr, "ChildProcess: %s not found in PATH\n", argv[0].c_str());
    return std::nullopt;
  }

  ChildProcess child;
  int out_fd = -1;
  if (options.output_path.empty()) {
    std::string templ = (temp_base() / "sidecar-child-XXXXXX.log").string();
    out_fd = ::mkostemps(templ.data(), 4, O_CLOEXEC);
    child.output_path_ = templ;
    child.owns_output_ = true;
  } else {
    const int mode = options.append_output ? O_APPEND : O_TRUNC;
    out_fd = ::open(options.output_path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | mode, 0644);
    child.output_path_ = options.output_path;
  }
  if (out_fd < 0) {
    std::fprintf(stderr, "ChildProcess: cannot open output %s: %s\n", child.output_path_.c_str(),
                 std::strerror(errno));
    return std::nullopt;
  }
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  int err_pipe[2] = {-1, -1};
  if (null_fd < 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0) {
    std::fprintf(stderr, "ChildProcess: open/pipe failed: %s\n", std::strerror(errno));
    ::close(out_fd);
    if (null_fd >= 0) ::close(null_fd);
    return std::nullopt;
  }

  // Everything the child touches is prepared here: between fork and exec only async-signal-safe calls.
  std::vector<std::string> args = argv;
  std::vector<char*> c_args = as_c_array(args);
  std::vector<std::string> env = build_env(options.extra_env);
  std::vector<char*> c_env = as_c_array(env);
  const std::string workdir = options.working_dir.string();
  const pid_t parent = ::getpid();

  const pid_t pid = ::fork();
  if (pid == 0) {
    // A test binary killed by a ctest timeout must not leave an etcd or agent running behind it.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    // gRPC and gtest may have changed dispositions/masks; the child starts from defaults.
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig) {
      if (sig != SIGKILL && sig != SIGSTOP) ::sigaction(sig, &dfl, nullptr);
    }
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    int err = 0;
    if (::dup2(null_fd, 0) < 0 || ::dup2(out_fd, 1) < 0 || ::dup2(out_fd, 2) < 0) err = errno;
    if (err == 0 && !workdir.empty() && ::chdir(workdir.c_str()) != 0) err = errno;
    if (err == 0) {
      ::execve(program->c_str(), c_args.data(), c_env.data());
      err = errno;
    }
    [[maybe_unused]] auto n = ::write(err_pipe[1], &err, sizeof err);
    ::_exit(127);
  }
  ::close(out_fd);
  ::close(null_fd);
  ::close(err_pipe[1]);
  if (pid < 0) {
    std::fprintf(stderr, "ChildProcess: fork failed: %s\n", std::strerror(errno));
    ::close(err_pipe[0]);
    return std::nullopt;
  }
  child.pid_ = pid;

  // The pipe closes on a successful exec (CLOEXEC); a value means exec failed and the child is exiting.
  int child_errno = 0;
  ssize_t n = 0;
  do {
    n = ::read(err_pipe[0], &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  ::close(err_pipe[0]);
  if (n == static_cast<ssize_t>(sizeof child_errno)) {
    std::fprintf(stderr, "ChildProcess: cannot exec %s: %s\n", program->c_str(), std::strerror(child_errno));
    child.kill_and_reap();
    return std::nullopt;
  }
  child.pidfd_ = pidfd_open(pid);
  return child;
}

ChildProcess::~ChildProcess() { reset(); }

void ChildProcess::reset() noexcept {
  if (pid_ > 0 && !exit_code_) kill_and_reap();
  if (pidfd_ >= 0) ::close(pidfd_);
  pidfd_ = -1;
  if (owns_output_ && !output_path_.empty() && !keep_dirs()) {
    std::error_code ec;
    std::filesystem::remove(output_path_, ec);
  }
  pid_ = -1;
  exit_code_.reset();
  output_path_.clear();
  owns_output_ = false;
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      pidfd_(std::exchange(other.pidfd_, -1)),
      exit_code_(std::exchange(other.exit_code_, std::nullopt)),
      output_path_(std::exchange(other.output_path_, {})),
      owns_output_(std::exchange(other.owns_output_, false)) {}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    reset();
    pid_ = std::exchange(other.pid_, -1);
    pidfd_ = std::exchange(other.pidfd_, -1);
    exit_code_ = std::exchange(other.exit_code_, std::nullopt);
    output_path_ = std::exchange(other.output_path_, {});
    owns_output_ = std::exchange(other.owns_output_, false);
  }
  return *this;
}

bool ChildProcess::signal(int signo) {
  if (pid_ <= 0 || exit_code_) return false;
  return ::kill(pid_, signo) == 0;
}

bool ChildProcess::is_running() {
  if (pid_ <= 0 || exit_code_) return false;
  int status = 0;
  const pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) exit_code_ = decode_status(status);
  return !exit_code_;
}

std::optional<int> ChildProcess::wait_exit(std::chrono::milliseconds timeout) {
  if (pid_ <= 0 || exit_code_) return exit_code_;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (!is_running()) return exit_code_;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                                           std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    if (pidfd_ >= 0) {
      pollfd pfd{pidfd_, POLLIN, 0};
      ::poll(&pfd, 1, static_cast<int>(left.count()));  // readable once the child has exited
    } else {
      // Kernels without pidfd: a short poll of waitpid is the only portable way to bound the wait.
      std::this_thread::sleep_for(std::min(left, std::chrono::milliseconds(5)));
    }
  }
}

int ChildProcess::kill_and_reap() {
  if (pid_ <= 0) return -1;
  if (exit_code_) return *exit_code_;
  ::kill(pid_, SIGKILL);
  int status = 0;
  pid_t r = 0;
  do {
    r = ::waitpid(pid_, &status, 0);
  } while (r < 0 && errno == EINTR);
  exit_code_ = r == pid_ ? decode_status(status) : -SIGKILL;
  return *exit_code_;
}

std::string ChildProcess::output() const { return read_file(output_path_).value_or(std::string()); }

// ------------------------------------------------------------------------------------------------ helpers

CaptureResult run_and_capture(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                              EnvVars extra_env) {
  CaptureResult result;
  auto child = ChildProcess::spawn(argv, std::move(extra_env));
  if (!child) {
    result.exit_code = 127;
    result.output = "could not start " + (argv.empty() ? std::string("<empty argv>") : argv[0]) + "\n";
    return result;
  }
  if (auto code = child->wait_exit(timeout)) {
    result.exit_code = *code;
  } else {
    result.timed_out = true;
    result.exit_code = child->kill_and_reap();
  }
  result.output = child->output();
  return result;
}

std::uint16_t free_port() {
  // Never hand the same port out twice in one process: a cluster asks for six in a row.
  static std::mutex mu;
  static std::set<std::uint16_t> handed_out;
  for (int attempt = 0; attempt < 50; ++attempt) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    std::uint16_t port = 0;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port = ntohs(addr.sin_port);
    }
    ::close(fd);
    if (port == 0) return 0;
    std::lock_guard lock(mu);
    if (handed_out.insert(port).second) return port;
  }
  return 0;
}

bool write_file(const std::filesystem::path& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  out.close();
  if (!out) {
    std::fprintf(stderr, "write_file(%s) failed: %s\n", path.c_str(), std::strerror(errno));
    return false;
  }
  return true;
}

bool write_file_atomic(const std::filesystem::path& path, std::string_view text) {
  static std::atomic<unsigned> counter{0};
  std::filesystem::path tmp = path;
  tmp += ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  if (!write_file(tmp, text)) return false;
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::fprintf(stderr, "write_file_atomic(%s): %s\n", path.c_str(), ec.message().c_str());
    std::filesystem::remove(tmp, ec);
    return false;
  }
  return true;
}

std::optional<std::string> read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return std::move(text).str();
}

}  // namespace sidecar::test
