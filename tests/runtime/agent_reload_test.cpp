// The whole agent (daemon wiring: registrar, checks, discoveries, reload, shutdown) on FakeEtcd instead of
// a socket: the agent runs on its own thread, as in the daemon, and the test looks at the fake through the
// agent's io_context. SIGHUP and SIGTERM are real signals to this process, caught by the agent's signal_set.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <atomic>
#include <future>
#include <optional>
#include <string>
#include <thread>

#include "agent/core/manifest.hpp"
#include "agent/daemon/agent.hpp"
#include "tests/runtime/fake_etcd.hpp"

namespace sidecar::runtime {
namespace {

using namespace std::chrono_literals;
using testing::FakeEtcd;

std::string manifest_text(const std::filesystem::path& dir, bool second) {
  // The second version changes orders' port (a value rewritten in place), drops billing and adds payments,
  // and swaps the discovery of users for one of stock.
  std::string m = "etcd: {endpoints: [\"http://127.0.0.1:1\"]}\n"  // never dialled: the agent gets the fake
                  "admin: {enabled: false}\n"
                  "services:\n"
                  "  - {name: orders, id: o-1, address: 10.0.0.1, port: " +
                  std::string(second ? "8081" : "8080") + "}\n";
  m += second ? "  - {name: payments, id: p-1, address: 10.0.0.3, port: 7070}\n"
              : "  - {name: billing, id: b-1, address: 10.0.0.2, port: 9090}\n";
  const std::string watched = second ? "stock" : "users";
  m += "discover:\n  - {service: " + watched + ", output: " + (dir / (watched + ".json")).string() +
       ", format: json, wait: {min: 0ms, max: 1s}}\n";
  return m;
}

void write_file(const std::filesystem::path& path, const std::string& text) {
  const auto tmp = path.string() + ".tmp";
  std::ofstream(tmp) << text;
  std::filesystem::rename(tmp, path);  // atomically, as an editor or a ConfigMap update does
}

class AgentOnFake {
 public:
  explicit AgentOnFake(const std::filesystem::path& manifest) {
    auto parsed = core::load_manifest(manifest.string(), core::process_env());
    EXPECT_TRUE(parsed.ok());
    daemon::AgentOptions options;
    options.manifest = std::move(*parsed.manifest);
    options.manifest_path = manifest.string();
    options.etcd = [this](asio::io_context& io) {
      auto fake = std::make_unique<FakeEtcd>(io);
      fake->on_destroy = [this](const FakeEtcd& f) { keys_left_at_exit_ = f.key_count(); };
      io_ = &io;
      fake_ = fake.get();
      return fake;
    };
    thread_ = std::thread([this, options = std::move(options)]() mutable { exit_code_ = daemon::run_agent(std::move(options)); });
  }
  ~AgentOnFake() {
    if (thread_.joinable()) {
      ::kill(::getpid(), SIGTERM);
      thread_.join();
    }
  }

  // Evaluates `look` on the agent's thread, where the fake lives.
  template <class F>
  auto on_agent(F look) -> decltype(look(std::declval<FakeEtcd&>())) {
    using R = decltype(look(std::declval<FakeEtcd&>()));
    std::promise<R> result;
    asio::post(*io_, [&] { result.set_value(look(*fake_)); });
    return result.get_future().get();
  }
  // Polls `done` on the agent's thread until it holds; false after `limit`.
  bool wait(const std::function<bool(FakeEtcd&)>& done, std::chrono::milliseconds limit = 5s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (io_ == nullptr) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(1ms);
    }
    while (!on_agent(done)) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(5ms);
    }
    return true;
  }
  int stop() {
    ::kill(::getpid(), SIGTERM);
    thread_.join();
    return exit_code_;
  }
  std::optional<size_t> keys_left_at_exit() const { return keys_left_at_exit_; }

 private:
  std::atomic<asio::io_context*> io_{nullptr};
  FakeEtcd* fake_ = nullptr;  // owned by the agent; touched only on its thread
  std::optional<size_t> keys_left_at_exit_;
  int exit_code_ = -1;
  std::thread thread_;
};

bool watching(FakeEtcd& etcd, const std::string& prefix) {
  for (const auto& w : etcd.watches()) {
    if (w->opened() && !w->cancelled() && !w->ended() && w->request().key == prefix) return true;
  }
  return false;
}

std::string value_of(FakeEtcd& etcd, const std::string& key) {
  const auto kv = etcd.get(key);
  return kv ? kv->value : std::string();
}

TEST(AgentReload, SighupAppliesTheManifestDiffToTheRunningComponentsOnTheSameLease) {
  const auto dir = std::filesystem::temp_directory_path() / ("agent-reload-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto manifest = dir / "agent.yaml";
  write_file(manifest, manifest_text(dir, false));
  AgentOnFake agent(manifest);

  ASSERT_TRUE(agent.wait([](FakeEtcd& e) {
    return e.get("/services/orders/o-1") && e.get("/services/billing/b-1") && watching(e, "/services/users/");
  })) << "the first manifest was never running";
  const int64_t lease = agent.on_agent([](FakeEtcd& e) { return e.get("/services/orders/o-1")->lease; });
  const int64_t orders_created = agent.on_agent([](FakeEtcd& e) { return e.get("/services/orders/o-1")->create_revision; });

  write_file(manifest, manifest_text(dir, true));
  ::kill(::getpid(), SIGHUP);
  ASSERT_TRUE(agent.wait([](FakeEtcd& e) {
    return value_of(e, "/services/orders/o-1").find("8081") != std::string::npos && !e.get("/services/billing/b-1") &&
           e.get("/services/payments/p-1") && watching(e, "/services/stock/") && !watching(e, "/services/users/");
  })) << "the reload was not applied";
  // Everything stayed on the one lease, and orders was rewritten in place, never deleted.
  EXPECT_EQ(agent.on_agent([](FakeEtcd& e) { return e.grants(); }), 1);
  EXPECT_EQ(agent.on_agent([](FakeEtcd& e) { return e.get("/services/payments/p-1")->lease; }), lease);
  EXPECT_EQ(agent.on_agent([](FakeEtcd& e) { return e.get("/services/orders/o-1")->create_revision; }), orders_created);
  // The new discovery is live: an instance that appears reaches its file.
  agent.on_agent([](FakeEtcd& e) {
    return e.put("/services/stock/s-1", R"({"address":"10.0.0.9","port":6060})");
  });
  const auto stock = dir / "stock.json";
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  std::string text;
  while (text.find("10.0.0.9") == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
    std::ifstream in(stock);
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  EXPECT_NE(text.find("10.0.0.9"), std::string::npos) << text;

  EXPECT_EQ(agent.stop(), 0);
  // SIGTERM deregistered: the lease went, and with it every key but the one another writer put.
  EXPECT_EQ(agent.keys_left_at_exit(), std::optional<size_t>(1));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sidecar::runtime
