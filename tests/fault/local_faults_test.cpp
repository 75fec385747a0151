// Faults on the agent's own machine: a full disk, a read-only output directory, a hanging on_change.
// The disk faults mount a tmpfs on the output directory inside a private mount namespace of this test
// process (root, or CAP_SYS_ADMIN, is needed; CI runs as root). The agent, spawned afterwards, inherits
// the namespace; nothing is visible outside it and nothing outlives the test.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "tests/fault/fault_fixture.hpp"

namespace sidecar::test {
namespace {

// Any live process whose command line is exactly `argv` (NUL-separated in /proc/PID/cmdline).
bool process_with_cmdline_exists(const std::string& cmdline_nul) {
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const auto name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    const auto text = read_file(entry.path() / "cmdline");
    if (text && *text == cmdline_nul) return true;
  }
  return false;
}

class LocalDiskFault : public FaultTest {
 protected:
  void SetUp() override {
    // Before any thread exists (gRPC starts some in FaultTest::SetUp): every later thread and child must
    // share this namespace, or the monitor thread would look at the directory under the mount.
    if (::unshare(CLONE_NEWNS) != 0) {
      GTEST_SKIP() << "cannot create a private mount namespace (" << std::strerror(errno)
                   << "); these scenarios need root or CAP_SYS_ADMIN";
    }
    ASSERT_EQ(::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr), 0) << std::strerror(errno);
    std::filesystem::create_directories(out_dir_);
    ASSERT_EQ(::mount("tmpfs", out_dir_.c_str(), "tmpfs", 0, "size=64k,mode=0755"), 0) << std::strerror(errno);
    mounted_ = true;
    FaultTest::SetUp();
  }

  void TearDown() override {
    FaultTest::TearDown();
    if (!mounted_) return;
    agent_.reset();  // nothing may hold the mount when it goes
    // Lazy unmount, so the TempDir can remove the mount point (EBUSY while the tmpfs is on it).
    EXPECT_EQ(::umount2(out_dir_.c_str(), MNT_DETACH), 0) << std::strerror(errno);
  }

  // Fills the tmpfs until the kernel says ENOSPC.
  void fill_disk() {
    const int fd = ::open(filler().c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    const std::string block(4096, 'x');
    while (::write(fd, block.data(), block.size()) > 0) {
    }
    const int err = errno;
    // The last page may be partly free: fill it byte-wise.
    while (::write(fd, "x", 1) > 0) {
    }
    ::close(fd);
    ASSERT_EQ(err, ENOSPC);
  }

  std::filesystem::path filler() const { return out_dir_ / "filler"; }

  bool mounted_ = false;
};

TEST_F(LocalDiskFault, FullDiskKeepsTheOldFileReportsAndRecoversWhenSpaceReturns) {
  seed();
  start_agent();
  require_seeds_listed();
  const auto old_discovery = read_file(discovery_file());
  const auto old_config = read_file(config_file());
  ASSERT_TRUE(old_discovery && old_config);
  fill_disk();

  ASSERT_GT(client_->put(self_key("while-full"), instance_value("while-full", 7600)), 0);
  ASSERT_GT(client_->put(std::string(kFaultConfigPrefix) + "while-full", std::string(2000, 'y')), 0);
  ASSERT_TRUE(wait_until([&] { return agent_->count_in_output("cannot write") >= 2; }, 10s))
      << "both outputs should report the failed write";
  EXPECT_EQ(read_file(discovery_file()), old_discovery) << "the old file must stay as it was";
  EXPECT_EQ(read_file(config_file()), old_config);
  EXPECT_TRUE(agent_->is_running());
  EXPECT_TRUE(registered(1s)) << "a full disk has nothing to do with the registration";
  // Leftover temp files would keep the disk full after it is freed.
  std::size_t entries = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(out_dir_)) ++entries;
  EXPECT_EQ(entries, 3u) << "only the two outputs and the filler belong in the directory";

  std::filesystem::remove(filler());
  EXPECT_TRUE(converged(15s)) << "the agent must retry once space returns";
  EXPECT_TRUE(wait_until([&] { return agent_->count_in_output("written again after failures") >= 2; }, 5s));
  expect_files_never_broken();
  expect_rss_flat();
  expect_clean_shutdown();
}

TEST_F(LocalDiskFault, ReadOnlyOutputDirectoryIsReportedAndRecovered) {
  seed();
  start_agent();
  require_seeds_listed();
  const auto old_discovery = read_file(discovery_file());
  ASSERT_EQ(::mount(nullptr, out_dir_.c_str(), nullptr, MS_REMOUNT | MS_RDONLY, nullptr), 0) << std::strerror(errno);

  ASSERT_GT(client_->put(self_key("while-ro"), instance_value("while-ro", 7700)), 0);
  ASSERT_TRUE(wait_until([&] { return agent_->count_in_output("cannot write") >= 1; }, 10s));
  EXPECT_EQ(read_file(discovery_file()), old_discovery);
  EXPECT_TRUE(agent_->is_running());

  ASSERT_EQ(::mount(nullptr, out_dir_.c_str(), nullptr, MS_REMOUNT, "size=64k"), 0) << std::strerror(errno);
  EXPECT_TRUE(converged(15s));
  expect_files_never_broken();
  expect_clean_shutdown();
}

class OnChangeFault : public FaultTest {};

TEST_F(OnChangeFault, HangingOnChangeIsKilledAndLaterChangesStillReachTheFile) {
  // A distinctive duration identifies this command among all processes on the machine.
  AgentConfig config;
  config.discover_extra = "    on_change: \"sleep 987\"\n    command_timeout: 1s\n";
  start_agent(config);
  const std::string sleeper = std::string("sleep") + '\0' + "987" + '\0';
  ASSERT_GT(client_->put(self_key("first"), instance_value("first", 7800)), 0);
  ASSERT_TRUE(wait_until([&] { return agent_->count_in_output("on_change 'sleep 987' failed") >= 1; }, 10s));
  EXPECT_TRUE(wait_until([&] { return !process_with_cmdline_exists(sleeper); }, 3s))
      << "the timed-out command was left running";
  ASSERT_GT(client_->put(self_key("second"), instance_value("second", 7801)), 0);
  EXPECT_TRUE(converged(10s));
  EXPECT_TRUE(registered(1s));

  // SIGTERM while on_change hangs: the agent still deregisters and exits promptly, and takes it along.
  ASSERT_GT(client_->put(self_key("third"), instance_value("third", 7802)), 0);
  ASSERT_TRUE(wait_until([&] { return process_with_cmdline_exists(sleeper); }, 10s));
  expect_files_never_broken();
  const auto started = std::chrono::steady_clock::now();
  expect_clean_shutdown();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 3s);
  EXPECT_TRUE(wait_until([&] { return !process_with_cmdline_exists(sleeper); }, 3s))
      << "on_change outlived the agent";
}

}  // namespace
}  // namespace sidecar::test
