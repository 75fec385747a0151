// Section for the xDS server's targets (issue 14): put of a new instance -> the ADS client holds the
// ClusterLoadAssignment with it, against a raw etcd watcher on the same prefix; put of a new instance ->
// gRPC's own xDS client (an `xds:///` channel) sends its first request to that backend, the issue's target
// proper; 1,000 ADS streams on 10
// services: the agent's extra RSS, and put -> every watching stream updated (one service, then all ten).
// The idle agent with xds on is measured by the `lookups` section.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <thread>

#include "bench/proc_info.hpp"
#include "bench/scenario.hpp"
#include "grpc/health.grpc.pb.h"
#include "tests/support/ads_client.hpp"
#include "tests/support/bulk_writer.hpp"
#include "tests/support/health_servers.hpp"
#include "tests/support/wait.hpp"

namespace sidecar::bench {
namespace {

constexpr std::size_t kStreams = 1000;
constexpr std::size_t kServices = 10;
// AdsFanout spreads the streams over a few connections, as a handful of Envoys multiplexing would.
constexpr std::size_t kConnections = 4;
constexpr int kPort = 8080;

struct XdsAgent {
  std::optional<Agent> agent;
  std::string target;  // "127.0.0.1:PORT" of the ADS listener
};

// An agent with an ADS listener on a free port, and one discover entry on `discovered` so the manifest has
// work besides xDS (the deployment shape). Returns once the agent logged that it serves ADS.
XdsAgent start_xds_agent(BenchContext& ctx, const std::string& name, const std::string& discovered) {
  XdsAgent a;
  a.target = "127.0.0.1:" + std::to_string(test::free_port());
  const std::string manifest = etcd_section(ctx) + "discover:\n  - service: " + discovered + "\n    output: " +
                               (ctx.work_dir / (name + ".json")).string() + "\nxds:\n  listen: \"" + a.target + "\"\n";
  a.agent.emplace(Agent::start(ctx, name, manifest));
  if (!test::wait_until([&] { return a.agent->process().output().find("xds: serving ADS") != std::string::npos; },
                        10s)) {
    throw SectionFailed("the agent never logged \"xds: serving ADS\"; log:\n" + a.agent->log_tail());
  }
  return a;
}

// instance_value(service, id, n, kPort)'s endpoint as endpoints_of() prints it.
std::string endpoint_of(int n) {
  return "10." + std::to_string((n >> 16) & 0xff) + "." + std::to_string((n >> 8) & 0xff) + "." +
         std::to_string(n & 0xff) + ":" + std::to_string(kPort);
}

bool holds(const test::discovery::DiscoveryResponse& response, const std::string& endpoint) {
  for (const auto& any : response.resources()) {
    const auto eps = test::endpoints_of(any).value_or(std::vector<std::string>{});
    if (std::find(eps.begin(), eps.end(), endpoint) != eps.end()) return true;
  }
  return false;
}

void put_to_eds_update(BenchContext& ctx, test::EtcdSyncClient& client) {
  const std::string service = "bench-xds";
  const std::string prefix = "/services/" + service + "/";
  const auto raw_watch = watch_prefix(ctx, prefix);
  test::WatchRecorder& raw = *raw_watch;
  if (client.put(prefix + "seed", instance_value(service, "seed", 1, kPort)) <= 0) {
    throw SectionFailed("etcd refused the seed put: " + client.last_error());
  }
  XdsAgent a = start_xds_agent(ctx, service, service);

  test::AdsClient ads(grpc::CreateChannel(a.target, grpc::InsecureChannelCredentials()), "bench-xds-eds");
  const std::vector<std::string> names{service};
  // Waits for the response holding `endpoint`, ACKing every response on the way (an Envoy would).
  const auto await_endpoint = [&](const std::string& endpoint) -> Clock::time_point {
    const auto deadline = Clock::now() + 5s;
    while (Clock::now() < deadline) {
      const auto response = ads.next(test::kEndpointsType, 5s);
      if (!response) break;
      const auto at = Clock::now();
      ads.ack(*response, names);
      if (holds(*response, endpoint)) return at;
    }
    throw SectionFailed("no ClusterLoadAssignment with " + endpoint + " within 5 s; log:\n" + a.agent->log_tail());
  };
  if (!ads.send(test::kEndpointsType, names)) throw SectionFailed("the ADS call failed at once");
  await_endpoint(endpoint_of(1));

  const int iterations = ctx.options.quick ? 30 : 200;
  LatencyPlot samples{"put -> EDS update received (ADS client)", {}, {}};
  for (int i = 2; i < iterations + 2; ++i) {
    const std::string id = numbered_id("x", i);
    const std::string key = prefix + id;
    const std::size_t raw_before = event_count(raw);
    const auto t0 = Clock::now();
    client.put(key, instance_value(service, id, i, kPort));
    const auto answered = await_endpoint(endpoint_of(i));
    record_against_raw(raw, raw_before, key, t0, answered, *a.agent, samples);
    std::this_thread::sleep_for(20ms);  // each put meets a quiet agent, as in the discovery section
  }
  report_against_raw(ctx, "xds", "put -> EDS update received", samples, 5);
  ctx.plots.push_back(std::move(samples));
  a.agent->stop();
}

// What gRPC's xDS client reads its bootstrap from (the JSON itself, not a file path).
constexpr const char* kBootstrapEnv = "GRPC_XDS_BOOTSTRAP_CONFIG";

// A real backend's instance value, as tests/integration/xds_test.cpp writes them.
std::string backend_instance(std::uint16_t port) {
  return R"({"address":"127.0.0.1","port":)" + std::to_string(port) + R"(,"state":"passing"})";
}

// grpc.health.v1 Check calls back to back through one channel, on its own thread. With round robin over
// the backends, a backend the client adds gets a call within about one RPC (a few hundred µs on loopback)
// of the client applying the update, so the loop's RPC rate is the measurement's resolution.
class CheckLoop {
 public:
  explicit CheckLoop(const std::shared_ptr<grpc::Channel>& channel)
      : stub_(grpc::health::v1::Health::NewStub(channel)), thread_([this] { run(); }) {}
  ~CheckLoop() {
    stopping_ = true;
    thread_.join();
  }
  CheckLoop(const CheckLoop&) = delete;
  CheckLoop& operator=(const CheckLoop&) = delete;

  std::size_t ok_calls() const { return ok_.load(); }
  std::size_t failed_calls() const { return failed_.load(); }

 private:
  void run() {
    while (!stopping_) {
      grpc::ClientContext call;
      // Short: a call stuck on a backend being shut down must not stall the loop (and the resolution).
      call.set_deadline(std::chrono::system_clock::now() + 200ms);
      grpc::health::v1::HealthCheckRequest request;
      grpc::health::v1::HealthCheckResponse response;
      if (stub_->Check(&call, request, &response).ok()) {
        ++ok_;
      } else {
        ++failed_;
      }
    }
  }

  std::unique_ptr<grpc::health::v1::Health::Stub> stub_;
  std::atomic<bool> stopping_{false};
  std::atomic<std::size_t> ok_{0};
  std::atomic<std::size_t> failed_{0};
  std::thread thread_;  // last: starts once the members it uses exist
};

// Sets GRPC_XDS_BOOTSTRAP_CONFIG for the scope and puts back what was there (nothing, in sidecar_bench).
class ScopedBootstrap {
 public:
  explicit ScopedBootstrap(const std::string& json) {
    if (const char* previous = std::getenv(kBootstrapEnv)) previous_ = previous;
    ::setenv(kBootstrapEnv, json.c_str(), 1);
  }
  ~ScopedBootstrap() {
    if (previous_) {
      ::setenv(kBootstrapEnv, previous_->c_str(), 1);
    } else {
      ::unsetenv(kBootstrapEnv);
    }
  }
  ScopedBootstrap(const ScopedBootstrap&) = delete;
  ScopedBootstrap& operator=(const ScopedBootstrap&) = delete;
  bool replaced() const { return previous_.has_value(); }

 private:
  std::optional<std::string> previous_;
};

// put of a new instance -> gRPC's xDS client sends its first request to that backend. Backend A is always
// registered, so the channel stays READY and the loop's calls go somewhere; each iteration starts a new
// backend B (a new port: a real new instance, so the client's connect to it is part of the time), puts its
// instance under a new id, and takes B's first Check as the agent's time. Then B's key is deleted and the
// bench waits until the client's calls all go to A again, so every iteration starts from the same state.
void put_to_grpc_first_request(BenchContext& ctx, test::EtcdSyncClient& client) {
  const std::string service = "bench-xds-grpc";
  const std::string prefix = "/services/" + service + "/";
  const auto raw_watch = watch_prefix(ctx, prefix);
  test::WatchRecorder& raw = *raw_watch;
  test::GrpcHealthServer backend_a;
  if (!backend_a.ok()) throw SectionFailed("backend A (gRPC health server) did not start");
  backend_a.set_status("", test::GrpcHealthServer::Status::kServing);
  if (client.put(prefix + "a", backend_instance(backend_a.port())) <= 0) {
    throw SectionFailed("etcd refused backend A's put: " + client.last_error());
  }
  XdsAgent a = start_xds_agent(ctx, service, service);  // its port comes from test::free_port()

  // gRPC reads the bootstrap when it creates its process-wide XdsClient: with the first xds channel, and
  // again only once every xds channel (and so that client) is gone. In sidecar_bench this is the only code
  // that makes xds channels (no other section or support helper names an xds:/// target), and the channel
  // below is destroyed before the function returns, so the bootstrap set here is the one read. Should
  // another xds channel ever outlive its section, ours would reuse its stale server: the wait for backend
  // A's first call below then fails with this message rather than measuring something else, since only
  // this agent can hand the client A's address.
  const std::string bootstrap = R"({"xds_servers":[{"server_uri":")" + a.target +
                                R"(","channel_creds":[{"type":"insecure"}],"server_features":["xds_v3"]}],)"
                                R"("node":{"id":"sidecar-bench-xds","locality":{"zone":"z1"}}})";
  ScopedBootstrap scoped_bootstrap(bootstrap);
  const std::string stale_hint =
      scoped_bootstrap.replaced()
          ? " (GRPC_XDS_BOOTSTRAP_CONFIG was already set in this process: an earlier xds channel may have made "
            "gRPC read another bootstrap, which it reads once per XdsClient)"
          : "";
  {
    const auto channel = grpc::CreateChannel("xds:///" + service, grpc::InsecureChannelCredentials());
    if (!test::wait_until(
            [&] {
              grpc::ClientContext call;
              call.set_deadline(std::chrono::system_clock::now() + 1s);
              grpc::health::v1::HealthCheckRequest request;
              grpc::health::v1::HealthCheckResponse response;
              return grpc::health::v1::Health::NewStub(channel)->Check(&call, request, &response).ok();
            },
            15s)) {
      throw SectionFailed("no call through xds:///" + service + " reached backend A within 15 s" + stale_hint +
                          "; log:\n" + a.agent->log_tail());
    }
    CheckLoop loop(channel);
    const auto loop_started = Clock::now();

    // Back to the start state: `backend` gets no call in 50 calls in a row (with it in round robin, every
    // other call would be its).
    const auto drained = [&](const test::GrpcHealthServer& backend) {
      const auto deadline = Clock::now() + 5s;
      std::size_t backend_calls = backend.checks();
      std::size_t loop_calls = loop.ok_calls();
      while (Clock::now() < deadline) {
        std::this_thread::sleep_for(2ms);
        if (backend.checks() != backend_calls) {
          backend_calls = backend.checks();
          loop_calls = loop.ok_calls();
        } else if (loop.ok_calls() - loop_calls >= 50) {
          return true;
        }
      }
      return false;
    };

    const int iterations = ctx.options.quick ? 20 : 50;
    LatencyPlot samples{"put -> gRPC xDS client's first request to the new backend", {}, {}};
    for (int i = 1; i <= iterations; ++i) {
      auto backend_b = std::make_unique<test::GrpcHealthServer>();
      if (!backend_b->ok()) throw SectionFailed("backend B (gRPC health server) did not start");
      backend_b->set_status("", test::GrpcHealthServer::Status::kServing);
      const std::string id = numbered_id("g", i);
      const std::string key = prefix + id;
      const std::size_t raw_before = event_count(raw);
      const auto t0 = Clock::now();
      if (client.put(key, backend_instance(backend_b->port())) <= 0) {
        throw SectionFailed("etcd refused the put of " + key + ": " + client.last_error());
      }
      if (!test::wait_until([&] { return backend_b->first_check_at().has_value(); }, 5s, 1ms)) {
        throw SectionFailed("no call reached the new backend of " + key + " within 5 s (loop: " +
                            std::to_string(loop.ok_calls()) + " ok, " + std::to_string(loop.failed_calls()) +
                            " failed); log:\n" + a.agent->log_tail());
      }
      record_against_raw(raw, raw_before, key, t0, *backend_b->first_check_at(), *a.agent, samples);
      if (client.del(key) <= 0) throw SectionFailed("etcd refused the delete of " + key + ": " + client.last_error());
      if (!drained(*backend_b)) {
        throw SectionFailed("the client still called the removed backend of " + key + " 5 s after its delete; log:\n" +
                            a.agent->log_tail());
      }
      backend_b.reset();  // no call of the loop is on it any more: shuts down at once
      std::this_thread::sleep_for(20ms);  // each put meets a quiet agent, as in put_to_eds_update
    }
    report_against_raw(ctx, "xds", "put -> gRPC xDS client's first request to the new backend", samples, 5);
    // The loop's time per call bounds the resolution of the agent's figure (see CheckLoop).
    const double loop_s = to_ms(Clock::now() - loop_started) / 1000.0;
    const std::size_t loop_ok = loop.ok_calls();
    ctx.report.note("xds, gRPC client's Check loop during the first-request measurement: " + std::to_string(loop_ok) +
                    " calls ok, " + std::to_string(loop.failed_calls()) + " failed in " + format_ms(loop_s * 1000.0) +
                    " (" + format_ms(loop_ok == 0 ? 0.0 : loop_s * 1000.0 / static_cast<double>(loop_ok)) +
                    " per call)");
    ctx.plots.push_back(std::move(samples));
    // The loop (declared after the channel) stops first, then the channel goes, taking gRPC's XdsClient.
  }
  a.agent->stop();
}

// What the fan-out's streams have seen. The poller thread writes through on_response(); the bench thread
// arms a round (which endpoint each service's streams wait for) and reads the results.
class FanoutTally {
 public:
  void on_response(std::size_t stream, const test::discovery::DiscoveryResponse& response, Clock::time_point at) {
    std::lock_guard lock(mu_);
    if (!answered_[stream]) {
      answered_[stream] = true;
      ++answered_count_;
    }
    const std::string& wanted = wanted_[stream % kServices];
    if (wanted.empty() || got_at_[stream] != Clock::time_point{} || !holds(response, wanted)) return;
    got_at_[stream] = at;
    ++got_count_;
  }
  // Streams of service k (stream % kServices == k) wait for `wanted[k]`; empty: that service is not in the round.
  void arm(std::vector<std::string> wanted) {
    std::lock_guard lock(mu_);
    wanted_ = std::move(wanted);
    std::fill(got_at_.begin(), got_at_.end(), Clock::time_point{});
    got_count_ = 0;
  }
  std::size_t answered() const {
    std::lock_guard lock(mu_);
    return answered_count_;
  }
  std::size_t got() const {
    std::lock_guard lock(mu_);
    return got_count_;
  }
  Clock::time_point last_got() const {
    std::lock_guard lock(mu_);
    return *std::max_element(got_at_.begin(), got_at_.end());
  }

 private:
  mutable std::mutex mu_;
  std::vector<bool> answered_ = std::vector<bool>(kStreams, false);
  std::size_t answered_count_ = 0;
  std::vector<std::string> wanted_ = std::vector<std::string>(kServices);
  std::vector<Clock::time_point> got_at_ = std::vector<Clock::time_point>(kStreams);
  std::size_t got_count_ = 0;
};

struct RoundTimes {
  std::vector<double> agent_ms;  // put -> the last watching stream's response
  std::vector<double> raw_ms;    // put -> the raw watcher's event (the last one, for a Txn of several)
};

std::string describe_rounds(const RoundTimes& t) {
  const Summary agent = summarize(t.agent_ms);
  const Summary raw = summarize(t.raw_ms);
  return "agent p50 " + format_ms(agent.p50) + " / max " + format_ms(agent.max) + " vs raw p50 " +
         format_ms(raw.p50) + " / max " + format_ms(raw.max) + " (n=" + std::to_string(agent.count) + ")";
}

void thousand_streams(BenchContext& ctx) {
  const std::string stem = "bench-xds-fan-";
  const auto service = [&](std::size_t k) { return stem + std::to_string(k); };
  const auto key = [&](std::size_t k, const std::string& id) { return "/services/" + service(k) + "/" + id; };
  // One prefix over all ten services' keys: etcd prefixes are byte prefixes, not path segments.
  const auto raw_watch = watch_prefix(ctx, "/services/" + stem);
  test::WatchRecorder& raw = *raw_watch;
  test::BulkWriter writer(ctx.etcd.endpoint());
  std::vector<test::BulkOp> seeds;
  for (std::size_t k = 0; k < kServices; ++k) {
    seeds.push_back({key(k, "seed"), instance_value(service(k), "seed", static_cast<int>(k) + 1, kPort)});
  }
  if (writer.apply(seeds) == 0) throw SectionFailed("etcd refused the seed txn: " + writer.last_error());
  XdsAgent a = start_xds_agent(ctx, "bench-xds-fanout", service(0));
  std::this_thread::sleep_for(3s);  // past the start-up page release (startup_pages.hpp), as in `lookups`
  a.agent->require_running("before the fan-out");
  const auto before = read_memory(a.agent->pid());

  FanoutTally tally;
  test::AdsFanout fanout(
      a.target, kConnections, kStreams, std::string(test::kEndpointsType),
      [&](std::size_t i) { return service(i % kServices); },
      [&tally](std::size_t i, const test::discovery::DiscoveryResponse& r, Clock::time_point at) {
        tally.on_response(i, r, at);
      });
  const auto opened = Clock::now();
  fanout.start();
  if (!test::wait_until([&] { return tally.answered() == kStreams; }, 30s)) {
    throw SectionFailed(std::to_string(tally.answered()) + " of 1,000 streams answered (" +
                        std::to_string(fanout.failed()) + " failed); log:\n" + a.agent->log_tail());
  }
  const double open_ms = to_ms(Clock::now() - opened);
  const auto during = read_memory(a.agent->pid());
  if (!before || !during) throw SectionFailed("cannot read the agent's smaps_rollup");
  const long extra_kb = during->rss_kb - before->rss_kb;
  ctx.report.add_check("xds", "1,000 ADS streams (10 services, 4 connections): extra RSS",
                       format_mb(extra_kb) + " (all answered in " + format_ms(open_ms) + ")", "<= 30 MB",
                       extra_kb <= 30 * 1024);
  ctx.report.note("xds, agent memory before the 1,000 ADS streams: " + describe(*before) + "; with them: " +
                  describe(*during));

  // One round: put `ops` (a Txn of one or ten puts), wait until `watching` streams hold their endpoint.
  int n = 100;  // instance numbers past the seeds' 1..10, so every round's endpoints are new
  const auto round = [&](const std::vector<std::size_t>& services, RoundTimes& times) {
    std::vector<std::string> wanted(kServices);
    std::vector<test::BulkOp> ops;
    for (const std::size_t k : services) {
      const std::string id = numbered_id("f", ++n);
      wanted[k] = endpoint_of(n);
      ops.push_back({key(k, id), instance_value(service(k), id, n, kPort)});
    }
    const std::size_t watching = services.size() * (kStreams / kServices);
    tally.arm(std::move(wanted));
    const std::size_t raw_before = event_count(raw);
    const auto t0 = Clock::now();
    if (writer.apply(ops) == 0) throw SectionFailed("etcd refused a txn: " + writer.last_error());
    if (!test::wait_until([&] { return tally.got() == watching; }, 10s, 1ms)) {
      throw SectionFailed(std::to_string(tally.got()) + " of " + std::to_string(watching) +
                          " streams updated within 10 s; log:\n" + a.agent->log_tail());
    }
    const auto seen = require_event(raw, raw_before + ops.size() - 1, test::WatchEvent::Type::kPut, 5s,
                                    "raw watch of the round's last put", &*a.agent);
    times.agent_ms.push_back(to_ms(tally.last_got() - t0));
    times.raw_ms.push_back(to_ms(seen.event.received_at - t0));
    std::this_thread::sleep_for(50ms);
  };
  const int rounds = ctx.options.quick ? 3 : 10;
  RoundTimes one;
  RoundTimes all;
  std::vector<std::size_t> every(kServices);
  for (std::size_t k = 0; k < kServices; ++k) every[k] = k;
  for (int r = 0; r < rounds; ++r) {
    round({static_cast<std::size_t>(r) % kServices}, one);
    round(every, all);
  }
  ctx.report.add_info("xds", "put to 1 service -> its 100 streams updated", describe_rounds(one));
  const Summary all_agent = summarize(all.agent_ms);
  ctx.report.add_check("xds", "Txn of 10 puts (all services) -> all 1,000 streams updated", describe_rounds(all),
                       "<= 100 ms", all_agent.max <= 100.0 && fanout.failed() == 0);
  // The fan-out (declared after the agent) cancels its calls first; then the agent is killed with `a`.
}

}  // namespace

void run_xds(BenchContext& ctx) {
  test::EtcdSyncClient client(ctx.etcd.endpoint());
  put_to_eds_update(ctx, client);
  put_to_grpc_first_request(ctx, client);
  thousand_streams(ctx);
}

}  // namespace sidecar::bench
