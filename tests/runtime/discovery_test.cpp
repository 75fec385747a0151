// Discovery on FakeEtcd: the catalog's watch feeds the service's set and the output file, no etcd, no sockets.
#include <gtest/gtest.h>

#include <boost/asio/thread_pool.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "agent/runtime/discovery.hpp"
#include "tests/runtime/drive.hpp"
#include "tests/runtime/fake_etcd.hpp"

namespace sidecar::runtime {
namespace {

using namespace std::chrono_literals;
using testing::FakeEtcd;
using testing::run_until;

std::string instance(int port) { return R"({"address":"10.1.0.1","port":)" + std::to_string(port) + "}"; }

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A scratch directory, the loop, the writer thread, the fake etcd and a started catalog on it; TearDown
// joins the catalog and the writer and removes the directory. Each test stops and joins its discoveries.
class DiscoveryOnFakeEtcd : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir_template[] = "/tmp/discovery-fake-XXXXXX";
    ASSERT_NE(::mkdtemp(dir_template), nullptr);
    dir = dir_template;
    catalog.start();
  }
  void TearDown() override {
    EXPECT_TRUE(testing::stop_and_join(io, catalog));
    writer.join();
    std::filesystem::remove_all(dir);
  }

  std::filesystem::path dir;
  asio::io_context io;
  asio::thread_pool writer{1};
  FakeEtcd etcd{io};
  Catalog catalog{io, etcd, {}};
};

TEST_F(DiscoveryOnFakeEtcd, FollowsEtcdIntoItsSetAndFile) {
  etcd.put("/services/web/a", instance(1001));
  etcd.put("/services/webx/b", instance(1002));  // another service sharing the name's first letters
  core::DiscoverSpec spec;
  spec.service = "web";
  spec.output = (dir / "web.json").string();
  spec.wait_min = 0ms;
  spec.wait_max = 0ms;
  Discovery discovery(io, catalog, writer, spec, "", {});
  discovery.start();
  ASSERT_TRUE(run_until(io, [&] { return discovery.output_stats().writes >= 1; }));
  EXPECT_EQ(discovery.stats().instances, 1u);
  EXPECT_NE(read_file(spec.output).find("1001"), std::string::npos);

  etcd.put("/services/web/c", instance(1003));
  etcd.erase("/services/web/a");
  ASSERT_TRUE(run_until(io, [&] {
    const auto text = read_file(spec.output);
    return text.find("1003") != std::string::npos && text.find("1001") == std::string::npos;
  }));
  EXPECT_EQ(discovery.stats().instances, 1u);
  EXPECT_EQ(etcd.ranges(), 1) << "an event made the watcher re-read the prefix";

  EXPECT_TRUE(testing::stop_and_join(io, discovery));
}

TEST_F(DiscoveryOnFakeEtcd, TwoEntriesOfOneServiceShareAWatchAndALateOneWritesFromTheCatalogAtOnce) {
  etcd.put("/services/web/a", instance(1001));
  core::DiscoverSpec json;
  json.service = "web";
  json.output = (dir / "web.json").string();
  json.wait_max = 0ms;
  core::DiscoverSpec lines = json;
  lines.output = (dir / "web.lines").string();
  lines.format = core::OutputFormat::kLines;
  Discovery first(io, catalog, writer, json, "", {});
  first.start();
  ASSERT_TRUE(run_until(io, [&] { return first.output_stats().writes == 1; }));
  // Started after the service synced: nothing new comes from etcd, yet its file is written.
  Discovery second(io, catalog, writer, lines, "", {});
  second.start();
  ASSERT_TRUE(run_until(io, [&] { return second.output_stats().writes == 1; }));
  EXPECT_EQ(read_file(lines.output), "10.1.0.1:1001\n");
  EXPECT_EQ(etcd.watches().size(), 1u);
  EXPECT_EQ(etcd.ranges(), 1);

  etcd.put("/services/web/b", instance(1002));
  ASSERT_TRUE(run_until(io, [&] { return first.output_stats().writes == 2 && second.output_stats().writes == 2; }));
  EXPECT_EQ(read_file(lines.output), "10.1.0.1:1001\n10.1.0.1:1002\n");
  EXPECT_EQ(etcd.watches().size(), 1u);

  EXPECT_TRUE(testing::stop_and_join(io, first));
  EXPECT_TRUE(testing::stop_and_join(io, second));
}

}  // namespace
}  // namespace sidecar::runtime
