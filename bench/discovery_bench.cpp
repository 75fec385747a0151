// Sections for the issue's "discovery" targets: put -> output file latency against a raw watcher on the
// same etcd, the same with 10,000 instances present, a 10,000-instance burst, and memory at 10k / 100k.
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <functional>
#include <thread>
#include <utility>

#include "bench/proc_info.hpp"
#include "bench/rename_recorder.hpp"
#include "bench/scenario.hpp"
#include "etcd/rpc.grpc.pb.h"
#include "tests/support/wait.hpp"

namespace sidecar::bench {

std::string instance_value(const std::string& service, const std::string& id, int n, int port) {
  char address[32];
  std::snprintf(address, sizeof address, "10.%d.%d.%d", (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
  return R"({"name":")" + service + R"(","id":")" + id + R"(","address":")" + address +
         R"(","port":)" + std::to_string(port) + R"(,"metadata":{"zone":"z)" + std::to_string(n % 3) + R"("}})";
}

std::string numbered_id(const char* letter, int n) {
  char id[32];
  std::snprintf(id, sizeof id, "%s%06d", letter, n);
  return id;
}

std::optional<std::size_t> instances_in_file(const std::filesystem::path& path) {
  const auto text = test::read_file(path);
  if (!text) return std::nullopt;
  std::size_t count = 0;
  for (auto pos = text->find("{\"id\":"); pos != std::string::npos; pos = text->find("{\"id\":", pos + 6)) ++count;
  return count;
}

namespace {

using test::WatchEvent;
using test::WatchRecorder;

// etcd's default --max-txn-ops: the largest batch one Txn may carry.
constexpr std::size_t kTxnOps = 128;
// The isolated-change section: each timed put meets an idle coalescer. Kept at today's 150 ms so its rows
// stay comparable with earlier runs; the stream section puts with no spacing at all.
constexpr auto kPutSpacing = 150ms;

// Writes `kvs` in Txns of kTxnOps puts, one after the other, as fast as etcd acknowledges them. Returns the
// steady_clock time the last Txn's response arrived.
Clock::time_point put_batched(test::EtcdSyncClient& client, const std::vector<KeyValue>& kvs) {
  auto stub = etcdserverpb::KV::NewStub(client.channel());
  Clock::time_point last_done = Clock::now();
  for (std::size_t start = 0; start < kvs.size(); start += kTxnOps) {
    etcdserverpb::TxnRequest request;
    for (std::size_t i = start; i < std::min(kvs.size(), start + kTxnOps); ++i) {
      auto* put = request.add_success()->mutable_request_put();
      put->set_key(kvs[i].first);
      put->set_value(kvs[i].second);
    }
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + 10s);
    etcdserverpb::TxnResponse response;
    const grpc::Status status = stub->Txn(&context, request, &response);
    last_done = Clock::now();
    if (!status.ok()) {
      throw SectionFailed("Txn of " + std::to_string(request.success_size()) + " puts failed: " +
                          status.error_message());
    }
  }
  return last_done;
}

struct DiscoveryRig {
  std::string service;
  std::string prefix;                       // "/services/<service>/"
  std::unique_ptr<ScratchDir> out_dir;
  std::filesystem::path output;
  std::unique_ptr<WatchRecorder> raw;       // the baseline: a watcher in this process on the same prefix
  std::unique_ptr<RenameRecorder> renames;  // IN_MOVED_TO on the output file
  std::optional<Agent> agent;
  Clock::time_point started{};  // when the agent was spawned
};

// The agent unmaps the pages only start-up touched 2 s after it is first ready (startup_pages.hpp); a
// memory sample taken before that would count them, and whether it does would depend on the machine's speed.
void wait_past_startup_pages(const DiscoveryRig& rig) { std::this_thread::sleep_until(rig.started + 3s); }

// Raw watcher, inotify and a discover-only agent, all up, and the agent's first (empty) file written.
DiscoveryRig start_rig(BenchContext& ctx, const std::string& service, const std::filesystem::path& out_base) {
  DiscoveryRig rig;
  rig.service = service;
  rig.prefix = "/services/" + service + "/";
  rig.out_dir = std::make_unique<ScratchDir>(out_base, "sidecar-bench-out");
  rig.output = rig.out_dir->path() / (service + ".json");
  rig.raw = watch_prefix(ctx, rig.prefix);
  std::string error;
  rig.renames = RenameRecorder::start(rig.out_dir->path(), service + ".json", &error);
  if (!rig.renames) throw SectionFailed(error);
  const std::string manifest = etcd_section(ctx) +
                               "discover:\n"
                               "  - service: " + service + "\n"
                               "    output: " + rig.output.string() + "\n"
                               "    format: json\n"
                               "    wait: {min: 0ms, max: 1s}\n";
  rig.started = Clock::now();
  rig.agent.emplace(Agent::start(ctx, service, manifest));
  if (!rig.renames->wait_for(0, 10s)) {
    throw SectionFailed("the agent did not write " + rig.output.string() + " within 10 s; log:\n" +
                        rig.agent->log_tail());
  }
  std::this_thread::sleep_for(300ms);  // past the holdoff of that first write
  return rig;
}

struct PutToFile {
  std::vector<double> raw_ms;
  std::vector<double> agent_ms;
  std::size_t extra_writes = 0;  // renames beyond one per put (should stay 0)
};

// t0 = just before the put call; raw = the watcher's receive time of the event; agent = the IN_MOVED_TO
// of the output file. One put at a time, `spacing` after the previous one reached the file (0: a stream,
// each put as soon as the previous one is visible).
PutToFile measure_put_to_file(test::EtcdSyncClient& client, DiscoveryRig& rig, int iterations,
                              const std::function<KeyValue(int)>& make_put,
                              std::chrono::milliseconds spacing = kPutSpacing) {
  PutToFile result;
  for (int i = 0; i < iterations; ++i) {
    rig.agent->require_running("during put #" + std::to_string(i));
    const auto [key, value] = make_put(i);
    const std::size_t raw_before = event_count(*rig.raw);
    const std::size_t renames_before = rig.renames->count();
    const auto t0 = Clock::now();
    if (client.put(key, value) == 0) throw SectionFailed("put " + key + " failed: " + client.last_error());
    const auto raw = require_event(*rig.raw, raw_before, WatchEvent::Type::kPut, 5s,
                                   "the raw watcher did not see " + key, nullptr, key);
    const auto renamed = rig.renames->wait_for(renames_before, 5s);
    if (!renamed) {
      throw SectionFailed("the agent did not replace " + rig.output.string() + " within 5 s of put #" +
                          std::to_string(i) + "; log:\n" + rig.agent->log_tail());
    }
    result.raw_ms.push_back(to_ms(raw.event.received_at - t0));
    result.agent_ms.push_back(to_ms(*renamed - t0));
    if (spacing > 0ms) std::this_thread::sleep_for(spacing);
    result.extra_writes += rig.renames->count() - (renames_before + 1);
  }
  return result;
}

// Appends the two put -> file rows: checks against the targets, or info rows when `targeted` is false.
struct PutTargets {
  double p50_ms = 1.0;  // over the raw watcher's p50
  double p99_ms = 3.0;  // over the raw watcher's p99
};

void report_put_to_file(BenchContext& ctx, const std::string& section, const std::string& label,
                        const PutToFile& samples, bool targeted, PutTargets targets = {}) {
  const Summary raw = summarize(samples.raw_ms);
  const Summary agent = summarize(samples.agent_ms);
  auto cell = [](double agent_ms, double raw_ms) {
    return "agent " + format_ms(agent_ms) + " vs raw " + format_ms(raw_ms) + " (+" + format_ms(agent_ms - raw_ms) +
           ")";
  };
  const std::string n = " n=" + std::to_string(agent.count);
  if (targeted) {
    ctx.report.add_check(section, "put -> file p50, " + label, cell(agent.p50, raw.p50) + n,
                         "<= raw p50 + " + format_ms(targets.p50_ms), agent.p50 <= raw.p50 + targets.p50_ms);
    ctx.report.add_check(section, "put -> file p99, " + label, cell(agent.p99, raw.p99) + n,
                         "<= raw p99 + " + format_ms(targets.p99_ms), agent.p99 <= raw.p99 + targets.p99_ms);
  } else {
    ctx.report.add_info(section, "put -> file p50, " + label, cell(agent.p50, raw.p50) + n);
    ctx.report.add_info(section, "put -> file p99, " + label, cell(agent.p99, raw.p99) + n);
  }
  if (samples.extra_writes > 0) {
    ctx.report.note(section + ": " + std::to_string(samples.extra_writes) +
                    " more file write(s) than puts during the put -> file runs (" + label + ")");
  }
}

void run_small_set(BenchContext& ctx, const std::string& section, const std::filesystem::path& out_base,
                   bool targeted) {
  const std::string service = section == "discovery" ? "bench-disc" : "bench-disc-disk";
  const int iterations = ctx.options.quick ? 40 : 200;
  test::EtcdSyncClient client(ctx.etcd.endpoint());
  DiscoveryRig rig = start_rig(ctx, service, out_base);
  const std::string fs = filesystem_type(rig.out_dir->path().string());

  const auto samples = measure_put_to_file(client, rig, iterations, [&](int i) {
    const std::string id = numbered_id("i", i);
    return KeyValue{rig.prefix + id, instance_value(service, id, i, 8000 + i % 1000)};
  });
  const auto listed = instances_in_file(rig.output);
  if (listed != static_cast<std::size_t>(iterations)) {
    throw SectionFailed(rig.output.string() + " lists " + (listed ? std::to_string(*listed) : "?") +
                        " instances after " + std::to_string(iterations) + " puts");
  }
  rig.agent->stop();
  const std::string label = "0.." + std::to_string(iterations) + " instances, " + fs;
  report_put_to_file(ctx, section, label, samples, targeted);
  if (targeted) {
    ctx.plots.push_back(LatencyPlot{"put -> file vs raw watcher, 0.." + std::to_string(iterations) +
                                        " instances (output on " + fs + ")",
                                    samples.raw_ms, samples.agent_ms});
  }
}

// Puts `kvs` as a burst and waits for the agent's file to list `expected` instances. Returns
// {last batch acknowledged -> completing rename, file writes during the burst, put duration, raw watcher
// completion after the last batch}.
struct BurstResult {
  double complete_ms = 0;
  std::size_t writes = 0;
  double put_ms = 0;
  double raw_complete_ms = 0;
};

BurstResult burst(test::EtcdSyncClient& client, DiscoveryRig& rig, const std::vector<KeyValue>& kvs,
                  std::size_t expected, std::chrono::milliseconds timeout) {
  const std::size_t renames_before = rig.renames->count();
  const std::size_t raw_before = event_count(*rig.raw);
  const auto t_first = Clock::now();
  const auto t_last_done = put_batched(client, kvs);

  BurstResult r;
  r.put_ms = to_ms(t_last_done - t_first);
  Clock::time_point raw_done{};
  const bool raw_ok = rig.raw->wait_for(
      [&](const std::vector<WatchEvent>& events) {
        if (events.size() < raw_before + kvs.size()) return false;
        raw_done = events[raw_before + kvs.size() - 1].received_at;
        return true;
      },
      timeout);
  if (!raw_ok) throw SectionFailed("the raw watcher did not see all " + std::to_string(kvs.size()) + " puts");
  r.raw_complete_ms = to_ms(raw_done - t_last_done);

  std::optional<std::size_t> listed;
  const bool complete = test::wait_until(
      [&] {
        listed = instances_in_file(rig.output);
        return listed == expected;
      },
      timeout, 5ms);
  if (!complete) {
    throw SectionFailed(rig.output.string() + " lists " + (listed ? std::to_string(*listed) : "?") +
                        " instances, not " + std::to_string(expected) + ", " + std::to_string(timeout.count()) +
                        " ms after the burst; log:\n" + rig.agent->log_tail());
  }
  // Nothing changes after the burst, so the rename that completed the file is the last one. Waiting past
  // wait.max makes sure no write was still pending when we look.
  std::this_thread::sleep_for(1200ms);
  if (instances_in_file(rig.output) != expected) throw SectionFailed(rig.output.string() + " changed after the burst");
  r.complete_ms = to_ms(*rig.renames->last() - t_last_done);
  r.writes = rig.renames->count() - renames_before;
  if (rig.renames->overflowed()) throw SectionFailed("the inotify queue overflowed: write counts are unreliable");
  return r;
}

MemoryUsage require_memory(Agent& agent) {
  agent.require_running("before reading its memory");
  const auto m = read_memory(agent.pid());
  if (!m) throw SectionFailed("cannot read /proc/" + std::to_string(agent.pid()) + "/smaps_rollup");
  return *m;
}

}  // namespace

void run_discovery(BenchContext& ctx) { run_small_set(ctx, "discovery", ctx.options.output_base, true); }

// Issue 16's stream: each put as soon as the previous one is in the file, so every change arrives a few ms
// after the last write. A fixed 100 ms holdoff made each of them ~100 ms late; cost-based pacing should
// keep them within a few ms of the raw watcher. 200 new instances, then 200 changes with 10,000 present.
void run_stream(BenchContext& ctx) {
  const std::string service = "bench-stream";
  const int iterations = ctx.options.quick ? 40 : 200;
  constexpr PutTargets kStreamTargets{5.0, 10.0};
  test::EtcdSyncClient client(ctx.etcd.endpoint());
  DiscoveryRig rig = start_rig(ctx, service, ctx.options.output_base);
  const std::string fs = filesystem_type(rig.out_dir->path().string());
  const auto fresh = measure_put_to_file(
      client, rig, iterations,
      [&](int i) {
        const std::string id = numbered_id("s", i);
        return KeyValue{rig.prefix + id, instance_value(service, id, i, 8000 + i % 1000)};
      },
      0ms);
  report_put_to_file(ctx, "stream", "0.." + std::to_string(iterations) + " instances, " + fs, fresh, true,
                     kStreamTargets);

  constexpr int kPresent = 10000;
  std::vector<KeyValue> kvs;
  for (int n = iterations; n < kPresent; ++n) {
    const std::string id = numbered_id("s", n);
    kvs.emplace_back(rig.prefix + id, instance_value(service, id, n, 8080));
  }
  burst(client, rig, kvs, kPresent, 30s);
  const auto present = measure_put_to_file(
      client, rig, iterations,
      [&](int i) {
        const int n = (i * 37) % kPresent;
        const std::string id = numbered_id("s", n);
        return KeyValue{rig.prefix + id, instance_value(service, id, n, 20000 + i)};
      },
      0ms);
  report_put_to_file(ctx, "stream", "10,000 instances, " + fs, present, true, kStreamTargets);
  rig.agent->stop();
}

void run_discovery_disk(BenchContext& ctx) {
  // Same measurement with the output on the work directory's filesystem (usually a disk): the agent fsyncs
  // the file before the rename, so this shows what a disk-backed output path costs. No target of its own.
  run_small_set(ctx, "discovery-disk", ctx.work_dir, false);
}

void run_scale(BenchContext& ctx) {
  const std::string service = "bench-scale";
  test::EtcdSyncClient client(ctx.etcd.endpoint());
  DiscoveryRig rig = start_rig(ctx, service, ctx.options.output_base);
  const std::string fs = filesystem_type(rig.out_dir->path().string());

  // 1. Burst of 10,000 new instances.
  constexpr int kBurst = 10000;
  std::vector<KeyValue> kvs;
  for (int n = 0; n < kBurst; ++n) {
    const std::string id = numbered_id("b", n);
    kvs.emplace_back(rig.prefix + id, instance_value(service, id, n, 8080));
  }
  const BurstResult b = burst(client, rig, kvs, kBurst, 30s);
  ctx.report.add_check("scale", "10,000-instance burst: last Txn acked -> file complete",
                       format_ms(b.complete_ms) + " (raw watcher: " + format_ms(b.raw_complete_ms) + ")",
                       "<= 100 ms", b.complete_ms <= 100);
  ctx.report.add_check("scale", "10,000-instance burst: file writes (IN_MOVED_TO)", std::to_string(b.writes), "<= 50",
                       b.writes <= 50);
  ctx.report.add_info("scale", "10,000-instance burst: put time",
                      std::to_string((kBurst + kTxnOps - 1) / kTxnOps) + " Txns of <= 128 puts in " +
                          format_ms(b.put_ms));

  // 2. Memory with 10,000 discovered.
  wait_past_startup_pages(rig);
  const MemoryUsage m10k = require_memory(*rig.agent);
  ctx.report.add_check("scale", "RSS, 10,000 instances discovered one by one", format_mb(m10k.rss_kb), "<= 16 MB",
                       m10k.rss_kb <= 16 * 1024);
  ctx.report.note("scale: smaps_rollup with 10,000 instances: " + describe(m10k));
  ctx.report.note("scale: largest resident mappings with 10,000 instances: " + top_mappings(rig.agent->pid(), 6));

  // 3. put -> file with 10,000 present: each put changes the port of an existing instance, so the set stays
  // at 10,000 and every put changes the file.
  const int iterations = ctx.options.quick ? 40 : 200;
  const auto samples = measure_put_to_file(client, rig, iterations, [&](int i) {
    const int n = (i * 37) % kBurst;
    const std::string id = numbered_id("b", n);
    return KeyValue{rig.prefix + id, instance_value(service, id, n, 20000 + i)};
  });
  report_put_to_file(ctx, "scale", "10,000 instances, " + fs, samples, true);
  if (const auto text = test::read_file(rig.output)) {
    ctx.report.note("scale: the output file with 10,000 instances is " + std::to_string(text->size() / 1024) +
                    " KiB; every change rewrites it whole, splicing cached per-instance fragments");
  }
  ctx.plots.push_back(LatencyPlot{"put -> file vs raw watcher, 10,000 instances present (output on " + fs + ")",
                                  samples.raw_ms, samples.agent_ms});

  // 4. Up to 100,000.
  if (ctx.options.quick) {
    ctx.report.add(Row{"scale", "RSS, 100,000 instances discovered one by one", "not run (--quick)", "<= 40 MB",
                       Verdict::kSkipped});
    ctx.report.add(Row{"scale", "RSS, 100,000 instances present at start", "not run (--quick)", "<= 40 MB",
                       Verdict::kSkipped});
    rig.agent->stop();
    return;
  }
  constexpr int kTotal = 100000;
  kvs.clear();
  for (int n = kBurst; n < kTotal; ++n) {
    const std::string id = numbered_id("b", n);
    kvs.emplace_back(rig.prefix + id, instance_value(service, id, n, 8080));
  }
  const BurstResult b100k = burst(client, rig, kvs, kTotal, 120s);
  ctx.report.add_info("scale", "90,000 more (to 100,000): last Txn acked -> file complete",
                      format_ms(b100k.complete_ms) + ", " + std::to_string(b100k.writes) + " file writes, puts took " +
                          format_ms(b100k.put_ms));
  const MemoryUsage m100k = require_memory(*rig.agent);
  ctx.report.add_check("scale", "RSS, 100,000 instances discovered one by one", format_mb(m100k.rss_kb), "<= 40 MB",
                       m100k.rss_kb <= 40 * 1024);
  ctx.report.note("scale: smaps_rollup with 100,000 instances: " + describe(m100k));
  ctx.report.note("scale: largest resident mappings with 100,000 instances: " + top_mappings(rig.agent->pid(), 6));
  rig.agent->stop();

  // 5. The other path: a fresh agent that finds the 100,000 already there (a restart on a big registry). Its
  // first read comes in pages (one consistent revision); the file is complete when it lists all of them.
  const auto started = Clock::now();
  DiscoveryRig again = start_rig(ctx, service, ctx.options.output_base);
  const auto deadline = Clock::now() + 60s;
  while (instances_in_file(again.output) != static_cast<std::size_t>(kTotal)) {
    if (Clock::now() > deadline) {
      throw SectionFailed("a fresh agent did not list " + std::to_string(kTotal) + " instances within 60 s; log:\n" +
                          again.agent->log_tail());
    }
    std::this_thread::sleep_for(20ms);
  }
  ctx.report.add_info("scale", "fresh agent, 100,000 present: start -> file complete", format_ms(to_ms(Clock::now() - started)));
  std::this_thread::sleep_for(1200ms);  // past wait.max: no write still pending
  wait_past_startup_pages(again);
  const MemoryUsage at_start = require_memory(*again.agent);
  ctx.report.add_check("scale", "RSS, 100,000 instances present at start", format_mb(at_start.rss_kb), "<= 40 MB",
                       at_start.rss_kb <= 40 * 1024);
  ctx.report.note("scale: smaps_rollup with 100,000 instances read at start: " + describe(at_start));
  again.agent->stop();
}

}  // namespace sidecar::bench
