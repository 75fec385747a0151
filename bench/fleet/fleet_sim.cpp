// fleet_sim: N agents' worth of registrations and discovery watches in one process, through the agent's
// own runtime (etcd::Client, Registrar, Discovery, atomic file output), against a local etcd directly or
// through `etcd grpc-proxy`. Prints etcd's (and the proxy's) CPU and memory in steady state and the
// put -> file latency seen at every agent. The figures go into docs/scaling.md.
//
//   fleet_sim --agents 1000 --mode direct|proxy [--clients N] [--seconds 20] [--changes 5]
#include <sys/stat.h>

#include <utility>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include "agent/core/registration.hpp"
#include "agent/etcd/client.hpp"
#include "agent/runtime/discovery.hpp"
#include "agent/runtime/etcd_client_port.hpp"
#include "agent/runtime/registrar.hpp"
#include "bench/proc_info.hpp"
#include "tests/support/etcd_client.hpp"
#include "tests/support/etcd_process.hpp"
#include "tests/support/secure_etcd.hpp"
#include "tests/support/wait.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
namespace test = sidecar::test;
namespace bench = sidecar::bench;

namespace {

struct Usage {
  double cpu_percent = 0;  // of one core, over the window
  double rss_mb = 0;
};

double rss_mb(pid_t pid) {
  auto m = bench::read_memory(pid);
  return m ? m->rss_kb / 1024.0 : -1;
}

std::uint64_t run_ns(pid_t pid) {
  auto c = bench::read_cpu_times(pid);
  return c ? c->run_ns : 0;
}

long long mtime_ns(const std::filesystem::path& p) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return -1;
  return static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  return v[i];
}

// Runs `fn` on the io_context thread and waits for it.
template <class Fn>
void on_io(asio::io_context& io, Fn fn) {
  std::promise<void> done;
  asio::post(io, [&] {
    fn();
    done.set_value();
  });
  done.get_future().wait();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"fleet_sim: N agents against one etcd, directly or through grpc-proxy"};
  int agents = 1000;
  int clients = 0;
  int seconds = 20;
  int changes = 5;
  std::string mode = "direct";
  app.add_option("--agents", agents, "agent instances (one lease, one key, one discovery watch each)");
  app.add_option("--clients", clients, "etcd::Client objects (connections) shared by the agents; 0: one each");
  app.add_option("--seconds", seconds, "steady-state measurement window");
  app.add_option("--changes", changes, "puts whose put->file latency is measured at every agent");
  app.add_option("--mode", mode, "direct | proxy")->check(CLI::IsMember({"direct", "proxy"}));
  CLI11_PARSE(app, argc, argv);
  if (clients <= 0) clients = agents;
  spdlog::set_level(spdlog::level::warn);

  auto etcd = test::EtcdProcess::start();
  if (!etcd) return 1;
  std::unique_ptr<test::GrpcProxy> proxy;
  if (mode == "proxy") {
    proxy = test::GrpcProxy::start({etcd->endpoint()});
    if (!proxy) return 1;
  }
  const std::string url = proxy ? proxy->client_url() : etcd->client_url();
  std::this_thread::sleep_for(1s);
  const double etcd_rss_idle = rss_mb(etcd->pid());
  const double proxy_rss_idle = proxy ? rss_mb(proxy->pid()) : 0;

  const std::filesystem::path out_dir = "/dev/shm/fleet-sim-" + std::to_string(::getpid());
  std::filesystem::create_directories(out_dir);

  asio::io_context io(1);
  auto work = asio::make_work_guard(io);
  asio::thread_pool writer(1);
  std::thread io_thread([&] { io.run(); });

  std::vector<std::unique_ptr<sidecar::etcd::Client>> client_set;
  std::vector<std::unique_ptr<sidecar::runtime::EtcdClientPort>> port_set;  // the watchers' view of each client
  std::vector<std::unique_ptr<sidecar::runtime::Registrar>> registrars;
  // One catalog per simulated agent, as each agent process has its own; made before the discoveries that
  // subscribe to them, so destroyed after them.
  std::vector<std::unique_ptr<sidecar::runtime::Catalog>> catalogs;
  std::vector<std::unique_ptr<sidecar::runtime::Discovery>> discoveries;
  std::vector<std::filesystem::path> files;
  const auto started = Clock::now();
  on_io(io, [&] {
    for (int c = 0; c < clients; ++c) {
      sidecar::etcd::ClientOptions options;
      options.endpoints = {url};
      std::string error;
      client_set.push_back(sidecar::etcd::Client::create(io, options, &error));
      port_set.push_back(std::make_unique<sidecar::runtime::EtcdClientPort>(*client_set.back()));
    }
    sidecar::core::RegistrationOptions reg;
    reg.ttl = 10s;
    for (int i = 0; i < agents; ++i) {
      auto& client = *port_set[static_cast<size_t>(i % clients)];
      const std::string id = "agent-" + std::to_string(i);
      std::vector<sidecar::core::DesiredKey> keys{
          {"/services/fleet/" + id, R"({"address":"10.1.0.1","port":)" + std::to_string(1000 + i) + "}"}};
      registrars.push_back(std::make_unique<sidecar::runtime::Registrar>(io, client, keys, reg));
      registrars.back()->start();
      sidecar::core::DiscoverSpec spec;
      spec.service = "target";
      spec.output = (out_dir / (id + ".json")).string();
      spec.wait_min = 0ms;
      spec.wait_max = 0ms;
      files.emplace_back(spec.output);
      auto& port = *port_set[static_cast<size_t>(i % clients)];
      catalogs.push_back(std::make_unique<sidecar::runtime::Catalog>(io, port, sidecar::runtime::CatalogOptions{}));
      discoveries.push_back(std::make_unique<sidecar::runtime::Discovery>(io, *catalogs.back(), writer, spec, "",
                                                                          std::set<std::string>{}));
      discoveries.back()->start();
    }
  });

  test::EtcdSyncClient check(etcd->endpoint(), 10s);
  const bool all_registered =
      test::wait_until([&] { return check.get_prefix("/services/fleet/").size() == static_cast<size_t>(agents); }, 120s, 200ms);
  // The first put creates every file (an empty set with min_instances 0 is written too; wait for it).
  check.put("/services/target/base", R"({"address":"10.2.0.1","port":1})");
  const bool all_files = test::wait_until(
      [&] {
        for (const auto& f : files) {
          if (mtime_ns(f) < 0) return false;
        }
        return true;
      },
      120s, 100ms);
  const double startup_s = std::chrono::duration<double>(Clock::now() - started).count();
  if (!all_registered || !all_files) {
    std::fprintf(stderr, "fleet_sim: not all agents came up (registered %d, files %d)\n", all_registered, all_files);
  }

  // Steady state: nothing changes, every agent keeps its lease alive (TTL/3) and holds its watches.
  std::this_thread::sleep_for(3s);
  const auto t0 = Clock::now();
  const auto etcd_cpu0 = run_ns(etcd->pid());
  const auto proxy_cpu0 = proxy ? run_ns(proxy->pid()) : 0;
  const auto self_cpu0 = run_ns(::getpid());
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  const double window_ns = std::chrono::duration<double, std::nano>(Clock::now() - t0).count();
  const double etcd_cpu = 100.0 * static_cast<double>(run_ns(etcd->pid()) - etcd_cpu0) / window_ns;
  const double proxy_cpu = proxy ? 100.0 * static_cast<double>(run_ns(proxy->pid()) - proxy_cpu0) / window_ns : 0;
  const double self_cpu = 100.0 * static_cast<double>(run_ns(::getpid()) - self_cpu0) / window_ns;
  const double etcd_rss = rss_mb(etcd->pid());
  const double proxy_rss = proxy ? rss_mb(proxy->pid()) : 0;
  const double self_rss = rss_mb(::getpid());

  // put -> file at every agent.
  std::vector<double> latencies_ms;
  int missed = 0;
  for (int c = 0; c < changes; ++c) {
    std::vector<long long> before(files.size());
    for (size_t i = 0; i < files.size(); ++i) before[i] = mtime_ns(files[i]);
    std::vector<bool> seen(files.size(), false);
    size_t remaining = files.size();
    const auto put_at = Clock::now();
    check.put("/services/target/inst-" + std::to_string(c), R"({"address":"10.3.0.1","port":)" + std::to_string(c + 1) + "}");
    const auto deadline = put_at + 10s;
    while (remaining > 0 && Clock::now() < deadline) {
      for (size_t i = 0; i < files.size(); ++i) {
        if (seen[i] || mtime_ns(files[i]) == before[i]) continue;
        seen[i] = true;
        --remaining;
        latencies_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - put_at).count());
      }
    }
    missed += static_cast<int>(remaining);
    std::this_thread::sleep_for(500ms);
  }

  std::printf("| mode | agents | clients | startup | etcd CPU | etcd RSS (idle -> loaded) | proxy CPU | proxy RSS | sim CPU | sim RSS "
              "| put->file p50 / p99 / max | missed |\n");
  std::printf("| %s | %d | %d | %.1f s | %.1f %% | %.0f -> %.0f MB | %s | %s | %.1f %% | %.0f MB | %.1f / %.1f / %.1f ms | %d |\n",
              mode.c_str(), agents, clients, startup_s, etcd_cpu, etcd_rss_idle, etcd_rss,
              proxy ? (std::to_string(static_cast<int>(proxy_cpu * 10) / 10.0).substr(0, 4) + " %").c_str() : "-",
              proxy ? (std::to_string(static_cast<int>(proxy_rss_idle)) + " -> " + std::to_string(static_cast<int>(proxy_rss)) + " MB").c_str() : "-",
              self_cpu, self_rss, percentile(latencies_ms, 0.5), percentile(latencies_ms, 0.99),
              percentile(latencies_ms, 1.0), missed);
  std::printf("etcd per agent: %.1f KB RSS (lease + key + 2 watchers + connection share)\n",
              (etcd_rss - etcd_rss_idle) * 1024.0 / agents);
  std::fflush(stdout);

  spdlog::set_level(spdlog::level::off);  // the agents complain about etcd going away below
  std::error_code ec;
  std::filesystem::remove_all(out_dir, ec);
  proxy.reset();
  etcd.reset();
  std::_Exit(0);  // agents and clients die with the process; their etcd is gone already
}
