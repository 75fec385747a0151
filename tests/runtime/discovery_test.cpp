// Discovery on FakeEtcd: the watcher feeds the endpoint set and the output file with no etcd and no sockets.
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

TEST(Discovery, FollowsEtcdIntoItsSetAndFile) {
  char dir_template[] = "/tmp/discovery-fake-XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  const std::filesystem::path dir = dir_template;
  asio::io_context io;
  asio::thread_pool writer(1);
  FakeEtcd etcd(io);
  etcd.put("/services/web/a", instance(1001));
  etcd.put("/services/webx/b", instance(1002));  // another service sharing the name's first letters
  core::DiscoverSpec spec;
  spec.service = "web";
  spec.output = (dir / "web.json").string();
  spec.wait_min = 0ms;
  spec.wait_max = 0ms;
  Discovery discovery(io, etcd, writer, spec, "/services", "", {});
  discovery.start();
  ASSERT_TRUE(run_until(io, [&] { return discovery.output_stats().writes >= 1; }));
  EXPECT_EQ(discovery.set().size(), 1u);
  EXPECT_NE(read_file(spec.output).find("1001"), std::string::npos);

  etcd.put("/services/web/c", instance(1003));
  etcd.erase("/services/web/a");
  ASSERT_TRUE(run_until(io, [&] {
    const auto text = read_file(spec.output);
    return text.find("1003") != std::string::npos && text.find("1001") == std::string::npos;
  }));
  EXPECT_EQ(discovery.set().size(), 1u);
  EXPECT_EQ(etcd.ranges(), 1) << "an event made the watcher re-read the prefix";

  EXPECT_TRUE(testing::stop_and_join(io, discovery));
  writer.join();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sidecar::runtime
