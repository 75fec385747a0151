// Issue 16's burst rows: 10,000 instances put by 32 concurrent writers against a discover-only agent —
// how soon the file is complete, how many writes it took and how much of the burst went into writing
// (the agent's file_writing_seconds_total) — then the same burst with an on_change that takes 100 ms.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <latch>
#include <mutex>
#include <thread>

#include "bench/rename_recorder.hpp"
#include "bench/scenario.hpp"
#include "tests/support/admin_client.hpp"
#include "tests/support/wait.hpp"

namespace sidecar::bench {
namespace {

constexpr int kInstances = 10000;
constexpr int kWriters = 32;

struct OutputCounters {
  double writing_s = 0;
  double on_change_runs = 0;
  double on_change_s = 0;
};

// The discover output's counters from /metrics (the agent has one output).
OutputCounters read_counters(std::uint16_t port) {
  const test::HttpResponse r = test::http_request(port, "GET", "/metrics");
  if (r.status != 200) throw SectionFailed("GET /metrics: " + std::to_string(r.status) + " " + r.error);
  const test::PromParse m = test::parse_prometheus(r.body);
  auto sum = [&](const std::string& family) {
    const auto it = m.families.find(family);
    if (it == m.families.end()) throw SectionFailed("/metrics has no " + family);
    double total = 0;
    for (const auto& s : it->second.samples) total += s.value;
    return total;
  };
  return {sum("etcd_sidecar_file_writing_seconds_total"), sum("etcd_sidecar_on_change_runs_total"),
          sum("etcd_sidecar_on_change_seconds_total")};
}

struct BurstRun {
  double put_ms = 0;       // first put sent -> last put acknowledged
  double complete_ms = 0;  // last put acknowledged -> the rename that completed the file
  double duration_ms = 0;  // first put sent -> the rename that completed the file
  std::size_t writes = 0;
  OutputCounters spent;    // over the burst and until the agent settled
};

// 32 threads, each with its own client, put their share of 10,000 new instances one put per request (as
// 10,000 instances registering themselves would), all released at once.
BurstRun run_one(BenchContext& ctx, const std::string& service, const std::string& on_change) {
  const std::string prefix = "/services/" + service + "/";
  ScratchDir out_dir(ctx.options.output_base, "sidecar-bench-out");
  const auto output = out_dir.path() / (service + ".json");
  std::string error;
  auto renames = RenameRecorder::start(out_dir.path(), service + ".json", &error);
  if (!renames) throw SectionFailed(error);
  std::string manifest = etcd_section(ctx) +
                         "discover:\n"
                         "  - service: " + service + "\n"
                         "    output: " + output.string() + "\n"
                         "    format: json\n"
                         "    wait: {min: 0ms, max: 1s}\n";
  if (!on_change.empty()) manifest += "    on_change: \"" + on_change + "\"\n";
  Agent agent = Agent::start(ctx, service, manifest);
  if (!renames->wait_for(0, 10s)) throw SectionFailed("no first write of " + output.string() + "; log:\n" + agent.log_tail());
  std::optional<std::uint16_t> port;
  test::wait_until([&] { return (port = test::admin_port_from_log(agent.process().output())).has_value(); }, 5s, 10ms);
  if (!port) throw SectionFailed("no admin endpoint line in the agent's log:\n" + agent.log_tail());
  std::this_thread::sleep_for(1500ms);  // the first file's on_change has run and its pacing has passed
  const OutputCounters before = read_counters(*port);
  const std::size_t renames_before = renames->count();

  std::vector<std::unique_ptr<test::EtcdSyncClient>> clients;
  for (int w = 0; w < kWriters; ++w) clients.push_back(std::make_unique<test::EtcdSyncClient>(ctx.etcd.endpoint()));
  std::latch go(kWriters + 1);
  std::mutex mu;
  Clock::time_point last_ack{};
  std::string failure;
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      go.arrive_and_wait();
      Clock::time_point mine{};
      for (int n = w; n < kInstances; n += kWriters) {
        const std::string id = numbered_id("w", n);
        if (clients[w]->put(prefix + id, instance_value(service, id, n, 8080)) == 0) {
          std::lock_guard lock(mu);
          failure = "put " + id + " failed: " + clients[w]->last_error();
          return;
        }
        mine = Clock::now();
      }
      std::lock_guard lock(mu);
      last_ack = std::max(last_ack, mine);
    });
  }
  const auto t_first = Clock::now();
  go.arrive_and_wait();
  for (auto& t : writers) t.join();
  if (!failure.empty()) throw SectionFailed(failure);

  std::optional<std::size_t> listed;
  if (!test::wait_until([&] { return (listed = instances_in_file(output)) == std::size_t{kInstances}; }, 30s, 5ms)) {
    throw SectionFailed(output.string() + " lists " + (listed ? std::to_string(*listed) : "?") +
                        " instances 30 s after the burst; log:\n" + agent.log_tail());
  }
  // Nothing changes after the burst: past wait.max and the on_change pacing, the last rename is the one that
  // completed the file and every owed on_change has run.
  std::this_thread::sleep_for(on_change.empty() ? 1200ms : 2500ms);
  agent.require_running("after the burst");
  if (renames->overflowed()) throw SectionFailed("the inotify queue overflowed: write counts are unreliable");
  BurstRun r;
  r.put_ms = to_ms(last_ack - t_first);
  r.complete_ms = to_ms(*renames->last() - last_ack);
  r.duration_ms = to_ms(*renames->last() - t_first);
  r.writes = renames->count() - renames_before;
  const OutputCounters after = read_counters(*port);
  r.spent = {after.writing_s - before.writing_s, after.on_change_runs - before.on_change_runs,
             after.on_change_s - before.on_change_s};
  agent.stop();
  return r;
}

std::string percent(double part, double whole) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f %%", whole > 0 ? 100.0 * part / whole : 0.0);
  return text;
}

}  // namespace

void run_burst(BenchContext& ctx) {
  const std::string who = std::to_string(kWriters) + " writers";
  const BurstRun plain = run_one(ctx, "bench-burst", "");
  ctx.report.add_check("burst", "10,000-instance burst by " + who + ": last put acked -> file complete",
                       format_ms(plain.complete_ms) + " (puts took " + format_ms(plain.put_ms) + ")", "<= 100 ms",
                       plain.complete_ms <= 100);
  const double writing_ms = plain.spent.writing_s * 1000;
  ctx.report.add_check("burst", "10,000-instance burst by " + who + ": time writing / burst",
                       format_ms(writing_ms) + " in " + std::to_string(plain.writes) + " writes over " +
                           format_ms(plain.duration_ms) + " (" + percent(writing_ms, plain.duration_ms) + ")",
                       "<= 10 %", writing_ms <= plain.duration_ms / 10);

  const BurstRun reload = run_one(ctx, "bench-burst-reload", "sleep 0.1");
  // At most about one run per second of the burst: the pacer spaces them ten times a 100 ms run.
  const double allowed = 1 + std::ceil(reload.duration_ms / 1000);
  ctx.report.add_check("burst", "100 ms on_change during that burst: runs",
                       std::to_string(static_cast<int>(reload.spent.on_change_runs)) + " runs (" +
                           format_ms(reload.spent.on_change_s * 1000) + " running) over a " +
                           format_ms(reload.duration_ms) + " burst",
                       "<= 1 + 1 per s", reload.spent.on_change_runs <= allowed);
  ctx.report.add_info("burst", "100 ms on_change during that burst: file",
                      "complete " + format_ms(reload.complete_ms) + " after the last put, " +
                          std::to_string(reload.writes) + " writes, " + format_ms(reload.spent.writing_s * 1000) +
                          " writing (" + percent(reload.spent.writing_s * 1000, reload.duration_ms) + ")");
}

}  // namespace sidecar::bench
