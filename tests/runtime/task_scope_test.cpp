// TaskScope and the command registry, on an io_context this test runs itself: no etcd, no sockets. The
// loops wait on timers that only the test's own stop() cancels, so nothing depends on time passing.
#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "agent/runtime/command.hpp"
#include "agent/runtime/task_scope.hpp"

namespace sidecar::runtime {
namespace {

using namespace std::chrono_literals;

// A component in the shape the agent's are: loops in a scope, stop() ends them, join() awaits them.
class Looper {
 public:
  Looper(asio::io_context& io, std::vector<std::string>& log, bool* destroyed = nullptr)
      : io_(io), log_(log), destroyed_(destroyed), wake_(io, asio::steady_timer::time_point::max()), scope_(io, "looper") {}
  ~Looper() {
    if (destroyed_ != nullptr) *destroyed_ = true;
  }
  void start(int loops) {
    for (int i = 0; i < loops; ++i) scope_.spawn("loop " + std::to_string(i), loop(i));
  }
  void stop() { wake_.cancel(); }
  asio::awaitable<void> join() { return scope_.join(); }
  size_t live() const { return scope_.live(); }

 private:
  asio::awaitable<void> loop(int i) {
    boost::system::error_code ec;
    co_await wake_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    log_.push_back("loop " + std::to_string(i) + " ended");
  }

  asio::io_context& io_;
  std::vector<std::string>& log_;
  bool* destroyed_;
  asio::steady_timer wake_;
  TaskScope scope_;
};

asio::awaitable<void> join_then_log(Looper& looper, std::vector<std::string>& log) {
  co_await looper.join();
  log.push_back("joined");
}

TEST(TaskScope, JoinCompletesAtOnceWhenNothingRuns) {
  asio::io_context io;
  std::vector<std::string> log;
  Looper looper(io, log);
  TaskScope outer(io, "outer");
  outer.spawn("join", join_then_log(looper, log));
  io.run();
  EXPECT_EQ(log, std::vector<std::string>{"joined"});
  EXPECT_EQ(outer.live(), 0u);
}

TEST(TaskScope, JoinWaitsUntilEveryLoopHasEnded) {
  asio::io_context io;
  std::vector<std::string> log;
  Looper looper(io, log);
  TaskScope outer(io, "outer");
  looper.start(2);
  outer.spawn("join", join_then_log(looper, log));
  io.poll();
  EXPECT_EQ(looper.live(), 2u);
  EXPECT_TRUE(log.empty()) << "join completed with two loops still live";

  looper.stop();
  io.run();
  EXPECT_EQ(log, (std::vector<std::string>{"loop 0 ended", "loop 1 ended", "joined"}));
  EXPECT_EQ(looper.live(), 0u);
}

TEST(TaskScope, JoinAndDestroyFreesAComponentOnlyAfterItsLoopsEnded) {
  asio::io_context io;
  std::vector<std::string> log;
  bool destroyed = false;
  auto looper = std::make_unique<Looper>(io, log, &destroyed);
  looper->start(3);
  TaskScope owner(io, "owner");
  Looper* raw = looper.get();
  owner.spawn("dispose", join_and_destroy(std::move(looper)));
  io.poll();
  EXPECT_FALSE(destroyed);
  EXPECT_EQ(owner.live(), 1u);

  raw->stop();
  io.run();
  EXPECT_TRUE(destroyed);
  EXPECT_EQ(log.size(), 3u);
  EXPECT_EQ(owner.live(), 0u);
}

asio::awaitable<void> throws_after_a_turn(asio::io_context& io) {
  asio::steady_timer t(io, 0ms);
  co_await t.async_wait(asio::use_awaitable);
  throw std::runtime_error("broken invariant");
}

TEST(TaskScope, ALoopThatThrowsIsReportedWithItsNameAndCountedAsEnded) {
  asio::io_context io;
  std::vector<std::string> failures;
  TaskScope::set_failure_handler(
      [&](const std::string& task, const std::string& what) { failures.push_back(task + ": " + what); });
  TaskScope scope(io, "component");
  scope.spawn("tick", throws_after_a_turn(io));
  io.run();
  TaskScope::set_failure_handler(nullptr);
  EXPECT_EQ(failures, std::vector<std::string>{"component: tick: broken invariant"});
  EXPECT_EQ(scope.live(), 0u);
}

asio::awaitable<void> run_and_keep(std::string command, CommandResult& out) {
  out = co_await run_shell(std::move(command), 60s);
}

asio::awaitable<void> kill_when_started(asio::io_context& io, std::string pid_file, size_t& killed) {
  // Polls for the pid file the command writes first: the group exists from then on.
  asio::steady_timer t(io);
  while (::access(pid_file.c_str(), F_OK) != 0) {
    t.expires_after(5ms);
    co_await t.async_wait(asio::use_awaitable);
  }
  killed = kill_running_commands();
}

TEST(Commands, KillRunningCommandsKillsEveryRunningCommandsWholeGroup) {
  char dir_template[] = "/tmp/kill-commands-XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  const std::string pid_file = dir + "/started";
  asio::io_context io;
  CommandResult result;
  size_t killed = 0;
  TaskScope scope(io, "commands");
  // A background child in the same group: killing only the shell would leave it running.
  scope.spawn("command", run_and_keep("sleep 60 & echo $! > " + dir + "/child; touch " + pid_file + "; wait", result));
  scope.spawn("killer", kill_when_started(io, pid_file, killed));
  const auto started = std::chrono::steady_clock::now();
  io.run();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 10s);
  EXPECT_EQ(killed, 1u);
  EXPECT_EQ(result.kind, CommandResult::Kind::kSignaled);
  EXPECT_EQ(result.code, SIGKILL);
  EXPECT_EQ(kill_running_commands(), 0u) << "a finished command is still counted as running";

  std::ifstream in(dir + "/child");
  pid_t child = 0;
  ASSERT_TRUE(in >> child);
  // The background sleep got SIGKILL with its group: gone, or a zombie waiting for init.
  std::ifstream stat("/proc/" + std::to_string(child) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  if (!text.empty()) {
    const auto paren = text.rfind(')');
    ASSERT_NE(paren, std::string::npos);
    // Killing is asynchronous: by the time the shell was reaped its child may still be dying.
    for (int i = 0; i < 200 && text[paren + 2] != 'Z' && text[paren + 2] != 'X'; ++i) {
      ::usleep(10 * 1000);
      std::ifstream again("/proc/" + std::to_string(child) + "/stat");
      text.assign((std::istreambuf_iterator<char>(again)), std::istreambuf_iterator<char>());
      if (text.empty()) break;
    }
    if (!text.empty()) {
      EXPECT_TRUE(text[paren + 2] == 'Z' || text[paren + 2] == 'X') << text;
    }
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sidecar::runtime
