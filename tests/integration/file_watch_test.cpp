// runtime::FileWatch in-process on a real directory: the Kubernetes ConfigMap `..data` swap, an editor's
// rename, an in-place write, and unrelated files (which must not count).
#include "agent/runtime/file_watch.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <filesystem>
#include <fstream>

#include "tests/support/process.hpp"

namespace sidecar::runtime {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

class FileWatchTest : public ::testing::Test {
 protected:
  // Runs the io_context until `calls_` reaches `want` or `limit` passes; returns the calls seen.
  int run_until(int want, std::chrono::milliseconds limit) {
    io_.restart();
    boost::asio::steady_timer deadline(io_, limit);
    deadline.async_wait([&](const boost::system::error_code& ec) {
      if (!ec) io_.stop();
    });
    while (calls_ < want && !io_.stopped()) io_.run_one();
    deadline.cancel();
    io_.poll();
    return calls_;
  }

  std::unique_ptr<FileWatch> watch(const fs::path& file) {
    std::string error;
    auto w = FileWatch::create(io_, file.string(), 50ms, [this] { ++calls_; }, &error);
    EXPECT_NE(w, nullptr) << error;
    if (w) w->start();
    return w;
  }

  static void write(const fs::path& p, const std::string& text) { std::ofstream(p) << text; }

  boost::asio::io_context io_;
  int calls_ = 0;
  test::TempDir dir_{"file-watch"};
};

TEST_F(FileWatchTest, ConfigMapDataSymlinkSwapIsReportedOnce) {
  // The layout kubelet writes: manifest.yaml -> ..data/manifest.yaml, ..data -> ..v1
  fs::create_directory(dir_ / "..v1");
  write(dir_ / "..v1" / "manifest.yaml", "v1");
  fs::create_directory_symlink("..v1", dir_ / "..data");
  fs::create_symlink("..data/manifest.yaml", dir_ / "manifest.yaml");
  auto w = watch(dir_ / "manifest.yaml");
  ASSERT_TRUE(w);

  // An update: a new timestamped dir, a temp symlink renamed over ..data.
  fs::create_directory(dir_ / "..v2");
  write(dir_ / "..v2" / "manifest.yaml", "v2");
  fs::create_directory_symlink("..v2", dir_ / "..data_tmp");
  fs::rename(dir_ / "..data_tmp", dir_ / "..data");
  EXPECT_EQ(run_until(1, 3s), 1);
  EXPECT_EQ(run_until(2, 300ms), 1) << "one swap is one change";
  w->stop();
}

TEST_F(FileWatchTest, EditorRenameAndInPlaceWriteAreReported) {
  write(dir_ / "manifest.yaml", "a");
  auto w = watch(dir_ / "manifest.yaml");
  ASSERT_TRUE(w);
  write(dir_ / ".manifest.yaml.swp", "b");
  fs::rename(dir_ / ".manifest.yaml.swp", dir_ / "manifest.yaml");
  EXPECT_EQ(run_until(1, 3s), 1);
  write(dir_ / "manifest.yaml", "c");
  EXPECT_EQ(run_until(2, 3s), 2);
  w->stop();
}

TEST_F(FileWatchTest, OtherFilesInTheDirectoryAreIgnored) {
  write(dir_ / "manifest.yaml", "a");
  auto w = watch(dir_ / "manifest.yaml");
  ASSERT_TRUE(w);
  write(dir_ / "other.yaml", "x");
  fs::rename(dir_ / "other.yaml", dir_ / "other2.yaml");
  EXPECT_EQ(run_until(1, 500ms), 0);
  w->stop();
}

TEST_F(FileWatchTest, MissingDirectoryIsAnErrorValue) {
  std::string error;
  auto w = FileWatch::create(io_, (dir_ / "nope" / "manifest.yaml").string(), 50ms, [] {}, &error);
  EXPECT_EQ(w, nullptr);
  EXPECT_NE(error.find("inotify_add_watch"), std::string::npos) << error;
}

}  // namespace
}  // namespace sidecar::runtime
