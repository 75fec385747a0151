// The agent as a systemd service sees it: sd_notify messages (READY, WATCHDOG, STOPPING) captured on a
// NOTIFY_SOCKET this test owns, the watchdog's rhythm and its silence while the loop is frozen, journald
// log lines when JOURNAL_STREAM names stderr, and --log-format json.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <mutex>
#include <regex>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/support/admin_client.hpp"
#include "tests/support/agent_fixture.hpp"
#include "tests/support/agent_process.hpp"
#include "tests/support/etcd_client.hpp"
#include "tests/support/etcd_process.hpp"
#include "tests/support/wait.hpp"

namespace sidecar::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using ::testing::HasSubstr;

const ServiceDef kWeb{.name = "web", .id = "web-1", .address = "10.0.0.2", .port = 80};

// An AF_UNIX datagram socket standing in for systemd's notify socket; a thread records every message.
class NotifySocket {
 public:
  struct Message {
    std::string text;
    Clock::time_point at;
  };

  explicit NotifySocket(const std::filesystem::path& path) : path_(path) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    ok_ = fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    timeval tv{0, 100 * 1000};  // lets the reader notice shutdown
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    reader_ = std::thread([this] { run(); });
  }
  ~NotifySocket() {
    done_ = true;
    reader_.join();
    ::close(fd_);
    std::filesystem::remove(path_);
  }
  bool ok() const { return ok_; }
  std::vector<Message> messages() const {
    std::lock_guard lock(mu_);
    return messages_;
  }
  std::size_t count(const std::string& text) const {
    std::size_t n = 0;
    for (const auto& m : messages()) n += m.text.find(text) != std::string::npos ? 1 : 0;
    return n;
  }
  // Sends `text` to this socket from another one and waits until the reader has recorded it. Datagrams
  // are delivered in order, so everything sent before (by the agent, too) has been recorded by then.
  bool mark(const std::string& text, std::chrono::milliseconds timeout = std::chrono::seconds(2)) {
    const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path_.c_str());
    const bool sent = fd >= 0 && ::sendto(fd, text.data(), text.size(), 0, reinterpret_cast<sockaddr*>(&addr),
                                          sizeof addr) == static_cast<ssize_t>(text.size());
    if (fd >= 0) ::close(fd);
    return sent && wait_until([&] { return count(text) > 0; }, timeout);
  }
  std::vector<Clock::time_point> times_of(const std::string& text) const {
    std::vector<Clock::time_point> out;
    for (const auto& m : messages()) {
      if (m.text == text) out.push_back(m.at);
    }
    return out;
  }

 private:
  void run() {
    char buf[4096];
    while (!done_) {
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) continue;
      std::lock_guard lock(mu_);
      messages_.push_back({std::string(buf, static_cast<size_t>(n)), Clock::now()});
    }
  }

  std::filesystem::path path_;
  int fd_ = -1;
  bool ok_ = false;
  std::atomic<bool> done_{false};
  mutable std::mutex mu_;
  std::vector<Message> messages_;
  std::thread reader_;
};

class Systemd : public EtcdAgentFixture {
 protected:
  std::string manifest() const { return registration_manifest(etcd_->client_url(), {kWeb}, "2s"); }

  TempDir dir_{"sidecar-systemd"};
};

TEST_F(Systemd, SendsReadyWatchdogAtHalfTheIntervalOnlyWhileTheLoopRunsAndStopping) {
  NotifySocket notify(dir_ / "notify.sock");
  ASSERT_TRUE(notify.ok());
  // WATCHDOG_USEC 400 ms: a ping every 200 ms.
  agent_ = AgentProcess::start(manifest(), {},
                               {{"NOTIFY_SOCKET", (dir_ / "notify.sock").string()}, {"WATCHDOG_USEC", "400000"}});
  ASSERT_NE(agent_, nullptr);
  ASSERT_TRUE(wait_until([&] { return notify.count("READY=1") == 1; }, 10s));
  EXPECT_TRUE(client_->get(service_key(kWeb)).has_value()) << "READY=1 before the key was registered";
  ASSERT_TRUE(wait_until([&] { return notify.times_of("WATCHDOG=1").size() >= 6; }, 5s));
  const auto pings = notify.times_of("WATCHDOG=1");
  for (size_t i = 2; i < pings.size(); ++i) {  // the first is sent at start, then one per interval
    const auto gap = std::chrono::duration_cast<std::chrono::milliseconds>(pings[i] - pings[i - 1]);
    EXPECT_GE(gap.count(), 150) << "ping " << i;
    EXPECT_LE(gap.count(), 500) << "ping " << i;  // slack for a loaded 2-core CI machine
  }

  // A frozen loop must not ping: that is what lets systemd restart a stuck agent.
  ASSERT_TRUE(agent_->sigstop());
  // A ping sent just before the stop may still be in the socket buffer: read up to a mark sent after it.
  ASSERT_TRUE(notify.mark("TEST_MARK=stopped"));
  const size_t before = notify.times_of("WATCHDOG=1").size();
  std::this_thread::sleep_for(700ms);  // the window itself: three and a half intervals frozen
  // The reader was still recording at the window's end, so a ping in it would have been seen.
  ASSERT_TRUE(notify.mark("TEST_MARK=window-end"));
  EXPECT_EQ(notify.times_of("WATCHDOG=1").size(), before);
  ASSERT_TRUE(agent_->sigcont());
  EXPECT_TRUE(wait_until([&] { return notify.times_of("WATCHDOG=1").size() > before; }, 2s));

  ASSERT_TRUE(agent_->signal(SIGTERM));
  EXPECT_EQ(agent_->wait_exit(5s), 0);
  EXPECT_EQ(notify.count("STOPPING=1"), 1u);
}

TEST_F(Systemd, NoWatchdogPingsWhenWatchdogPidNamesAnotherProcess) {
  NotifySocket notify(dir_ / "notify.sock");
  ASSERT_TRUE(notify.ok());
  agent_ = AgentProcess::start(manifest(), {},
                               {{"NOTIFY_SOCKET", (dir_ / "notify.sock").string()},
                                {"WATCHDOG_USEC", "200000"},
                                {"WATCHDOG_PID", std::to_string(::getpid())}});  // ours, not the agent's
  ASSERT_NE(agent_, nullptr);
  ASSERT_TRUE(wait_until([&] { return notify.count("READY=1") == 1; }, 10s));
  // A wrongly armed watchdog pings once when it starts, before READY=1, then every 100 ms.
  std::this_thread::sleep_for(400ms);  // the window itself: four intervals in which a wrong ping would show
  // Something the agent sends after the window (a reload's READY=1): its loop ran through the window, and
  // anything it sent in it has been read.
  ASSERT_TRUE(agent_->signal(SIGHUP));
  ASSERT_TRUE(wait_until([&] { return notify.count("READY=1") == 2; }, 5s)) << "no READY=1 after the reload";
  EXPECT_EQ(notify.count("WATCHDOG=1"), 0u);
}

// Starts the agent with stderr in `log` (created first, so the test knows its device and inode).
std::optional<ChildProcess> spawn_with_log(const std::filesystem::path& manifest, const std::filesystem::path& log,
                                           std::vector<std::string> extra_args, EnvVars env) {
  std::vector<std::string> argv = {SIDECAR_BINARY, "--manifest", manifest.string(), "--admin-listen", "127.0.0.1:0"};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  ChildProcess::Options options;
  options.output_path = log;
  options.extra_env = std::move(env);
  return ChildProcess::spawn(argv, options);
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) out.push_back(line);
  }
  return out;
}

std::string journal_stream_of(const std::filesystem::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) return "";
  return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
}

TEST_F(Systemd, JournalStreamNamingStderrGivesPriorityPrefixesWithoutTimestamps) {
  const auto manifest_path = dir_ / "m.yaml";
  ASSERT_TRUE(write_file(manifest_path, manifest()));
  const auto log = dir_ / "journal.log";
  ASSERT_TRUE(write_file(log, ""));
  auto child = spawn_with_log(manifest_path, log, {}, {{"JOURNAL_STREAM", journal_stream_of(log)}});
  ASSERT_TRUE(child.has_value());
  ASSERT_TRUE(wait_until([&] { return child->output().find("registered /services/web/web-1") != std::string::npos; }, 10s))
      << child->output();
  ASSERT_TRUE(child->signal(SIGTERM));
  ASSERT_EQ(child->wait_exit(5s), 0);
  const auto lines = lines_of(child->output());
  ASSERT_FALSE(lines.empty());
  const std::regex journal_line(R"(<[0-7]>\S.*)");
  const std::regex timestamp(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2})");
  for (const auto& line : lines) {
    EXPECT_TRUE(std::regex_match(line, journal_line)) << line;
    EXPECT_FALSE(std::regex_search(line, timestamp)) << line;
  }
  EXPECT_THAT(child->output(), HasSubstr("<6>registered /services/web/web-1"));
  EXPECT_THAT(child->output(), HasSubstr("<6>admin endpoint listening on"));
}

TEST_F(Systemd, JournalStreamOfAnotherFileIsIgnored) {
  const auto manifest_path = dir_ / "m.yaml";
  ASSERT_TRUE(write_file(manifest_path, manifest()));
  const auto log = dir_ / "plain.log";
  ASSERT_TRUE(write_file(log, ""));
  // Inherited from a parent whose stderr was the journal; ours is a file, so it must not count.
  auto child = spawn_with_log(manifest_path, log, {}, {{"JOURNAL_STREAM", journal_stream_of(manifest_path)}});
  ASSERT_TRUE(child.has_value());
  ASSERT_TRUE(wait_until([&] { return child->output().find("registered /services/web/web-1") != std::string::npos; }, 10s));
  EXPECT_THAT(child->output(), ::testing::ContainsRegex(R"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3} info  registered)"));
  EXPECT_THAT(child->output(), ::testing::Not(HasSubstr("<6>")));
}

TEST_F(Systemd, LogFormatJsonWritesOneObjectPerLine) {
  const auto manifest_path = dir_ / "m.yaml";
  ASSERT_TRUE(write_file(manifest_path, manifest()));
  const auto log = dir_ / "json.log";
  // JOURNAL_STREAM matching too: an explicit --log-format json wins.
  ASSERT_TRUE(write_file(log, ""));
  auto child = spawn_with_log(manifest_path, log, {"--log-format", "json"},
                              {{"JOURNAL_STREAM", journal_stream_of(log)}});
  ASSERT_TRUE(child.has_value());
  ASSERT_TRUE(wait_until([&] { return child->output().find("registered /services/web/web-1") != std::string::npos; }, 10s));
  ASSERT_TRUE(child->signal(SIGTERM));
  ASSERT_EQ(child->wait_exit(5s), 0);
  const auto lines = lines_of(child->output());
  ASSERT_GE(lines.size(), 3u);
  for (const auto& line : lines) {
    nlohmann::json j;
    ASSERT_NO_THROW(j = nlohmann::json::parse(line)) << line;
    ASSERT_TRUE(j.is_object()) << line;
    EXPECT_TRUE(j["ts"].is_string()) << line;
    EXPECT_THAT(j["ts"].get<std::string>(), ::testing::MatchesRegex(R"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z)"));
    EXPECT_THAT(j["level"].get<std::string>(), ::testing::AnyOf("trace", "debug", "info", "warn", "error", "critical"));
    EXPECT_TRUE(j["msg"].is_string()) << line;
  }
  EXPECT_THAT(child->output(), HasSubstr("\"msg\":\"registered /services/web/web-1 lease "));
}

TEST_F(Systemd, UnknownLogFormatIsAUsageError) {
  const auto r = run_and_capture({SIDECAR_BINARY, "--manifest", "x.yaml", "--log-format", "xml"}, 5s);
  EXPECT_EQ(r.exit_code, 64);
}

}  // namespace
}  // namespace sidecar::test
