// The fault suite's own instruments must be able to fail: the monitor flags broken files, the proxy
// really stops bytes. Without these, a green fault suite could mean a blind monitor.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "tests/support/invariants.hpp"
#include "tests/support/process.hpp"
#include "tests/support/tcp_proxy.hpp"
#include "tests/support/wait.hpp"

namespace sidecar::test {
namespace {

using namespace std::chrono_literals;

TEST(InvariantMonitorSelfTest, FlagsTornEmptiedAndVanishedFiles) {
  TempDir dir("monitor-selftest");
  const auto path = dir / "out.json";
  ASSERT_TRUE(write_file(path, R"({"instances":[]})"));
  InvariantMonitor monitor(::getpid(), {path}, 1ms);
  ASSERT_TRUE(wait_until([&] { return monitor.samples() > 3; }, 2s));
  EXPECT_TRUE(monitor.violations().empty());
  monitor.require_instances(path, {"a"});
  ASSERT_TRUE(wait_until([&] { return monitor.violations().size() >= 1; }, 2s)) << "instance a is not listed";
  ASSERT_TRUE(write_file(path, R"({"instances":[{"id":"a","address":"h","port":1}]})"));
  // Let any sample of the old content finish: two more samples end, so one began after the write.
  const auto samples = monitor.samples();
  ASSERT_TRUE(wait_until([&] { return monitor.samples() >= samples + 2; }, 2s));
  const auto before = monitor.violations().size();
  ASSERT_TRUE(write_file(path, R"({"instances":[)"));
  ASSERT_TRUE(wait_until([&] { return monitor.violations().size() >= before + 1; }, 2s));
  ASSERT_TRUE(write_file(path, ""));
  ASSERT_TRUE(wait_until([&] { return monitor.violations().size() >= before + 2; }, 2s));
  std::filesystem::remove(path);
  ASSERT_TRUE(wait_until([&] { return monitor.violations().size() >= before + 3; }, 2s));
  monitor.stop();
  EXPECT_FALSE(monitor.rss_samples().empty());
}

TEST(TcpProxySelfTest, BlackholeHoldsBytesWithoutClosingAndHealDeliversThem) {
  // A one-connection echo server upstream.
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener, 4), 0);
  socklen_t len = sizeof addr;
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  std::thread echo([listener] {
    const int c = ::accept(listener, nullptr, nullptr);
    char buf[256];
    ssize_t n;
    while ((n = ::read(c, buf, sizeof buf)) > 0) [[maybe_unused]] auto w = ::write(c, buf, static_cast<size_t>(n));
    ::close(c);
  });

  auto proxy = TcpProxy::start(ntohs(addr.sin_port));
  ASSERT_NE(proxy, nullptr);
  const int client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  to.sin_port = htons(proxy->port());
  ASSERT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&to), sizeof to), 0);
  timeval tv{0, 300000};
  ::setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char buf[16] = {};
  ASSERT_EQ(::write(client, "ping", 4), 4);
  ASSERT_EQ(::read(client, buf, sizeof buf), 4);

  proxy->blackhole();
  ASSERT_EQ(::write(client, "pong", 4), 4);
  EXPECT_EQ(::read(client, buf, sizeof buf), -1) << "a reply crossed the black hole";
  EXPECT_TRUE(errno == EAGAIN || errno == EWOULDBLOCK) << "the connection must stay open, not be refused";

  proxy->heal();
  tv = {3, 0};
  ::setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ASSERT_EQ(::read(client, buf, sizeof buf), 4) << "held bytes flow again after heal";
  EXPECT_EQ(std::string(buf, 4), "pong");
  ::close(client);
  echo.join();
  ::close(listener);
}

}  // namespace
}  // namespace sidecar::test
