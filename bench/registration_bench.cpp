// Sections for the "registration" targets: restore after a revoked lease or a deleted key,
// deregistration on SIGTERM, start-up to registered, and idle memory and CPU.
#include <csignal>
#include <thread>

#include "bench/proc_info.hpp"
#include "bench/scenario.hpp"
#include "tests/support/wait.hpp"

namespace sidecar::bench {
namespace {

using test::WatchEvent;
using test::WatchRecorder;

std::string one_service_manifest(const BenchContext& ctx, const std::string& name, const std::string& id) {
  return etcd_section(ctx) + "lease:\n  ttl: 10s\nservices:\n  - name: " + name + "\n    id: " + id +
         "\n    port: 8080\n";
}

std::unique_ptr<WatchRecorder> watch_key(const BenchContext& ctx, const std::string& key) {
  auto watch = std::make_unique<WatchRecorder>(ctx.etcd.endpoint(), key);
  if (!watch->created()) throw SectionFailed("etcd did not confirm a watch on " + key + " within 5 s");
  return watch;
}

// The key exists and carries a lease other than `not_lease` that etcd still knows: the agent is back in
// its steady state, so the next iteration starts from the same conditions as the first.
void wait_registered_again(test::EtcdSyncClient& client, const std::string& key, std::int64_t not_lease,
                           Agent& agent) {
  const bool ok = test::wait_until(
      [&] {
        auto kv = client.get(key);
        return kv && kv->lease != 0 && kv->lease != not_lease && client.lease_ttl(kv->lease).ttl > 0;
      },
      5s, 5ms);
  if (!ok) throw SectionFailed(key + " is not back on a live lease 5 s after the restore; agent log:\n" +
                               agent.log_tail());
}

enum class Disruption { kRevokeLease, kDeleteKey };

void run_restore(BenchContext& ctx, Disruption how) {
  const bool revoke = how == Disruption::kRevokeLease;
  const std::string section = revoke ? "revoke" : "delete";
  const std::string service = revoke ? "bench-revoke" : "bench-delete";
  const std::string key = "/services/" + service + "/r1";
  const int iterations = ctx.options.quick ? (revoke ? 10 : 20) : (revoke ? 50 : 100);

  test::EtcdSyncClient client(ctx.etcd.endpoint());
  auto watch = watch_key(ctx, key);
  Agent agent = Agent::start(ctx, section, one_service_manifest(ctx, service, "r1"));
  require_event(*watch, 0, WatchEvent::Type::kPut, 10s, "the agent did not register " + key, &agent);
  std::this_thread::sleep_for(300ms);  // keepalive stream and own-key watch up

  std::vector<double> restore_ms;   // DELETE event -> PUT event, both as seen by a watcher
  std::vector<double> from_call_ms;  // the revoke/delete call starts -> PUT event
  for (int i = 0; i < iterations; ++i) {
    agent.require_running("during iteration " + std::to_string(i));
    const auto kv = client.get(key);
    if (!kv || kv->lease == 0) throw SectionFailed(key + " missing or without a lease before iteration " +
                                                   std::to_string(i) + ": " + client.last_error());
    const std::size_t before = event_count(*watch);
    const auto t_call = Clock::now();
    if (revoke) {
      if (!client.lease_revoke(kv->lease)) throw SectionFailed("lease_revoke failed: " + client.last_error());
    } else {
      if (client.del(key) != 1) throw SectionFailed("del " + key + " failed: " + client.last_error());
    }
    const auto deleted = require_event(*watch, before, WatchEvent::Type::kDelete, 5s,
                                       "no DELETE of " + key + " after the " + section, &agent);
    const auto restored = require_event(*watch, deleted.index + 1, WatchEvent::Type::kPut, 5s,
                                        "the agent did not restore " + key + " (iteration " + std::to_string(i) + ")",
                                        &agent);
    restore_ms.push_back(to_ms(restored.event.received_at - deleted.event.received_at));
    from_call_ms.push_back(to_ms(restored.event.received_at - t_call));
    wait_registered_again(client, key, revoke ? kv->lease : -1, agent);
    std::this_thread::sleep_for(50ms);
  }
  agent.stop();

  const Summary restore = summarize(restore_ms);
  const Summary from_call = summarize(from_call_ms);
  const std::string what = revoke ? "revoked lease -> key back" : "deleted key -> key back";
  ctx.report.add_check(section, what + " (DELETE event -> PUT event)", describe_p50_p99(restore),
                       "p50, p99 < 100 ms", restore.p50 < 100 && restore.p99 < 100);
  ctx.report.add_info(section, what + std::string(revoke ? " (from lease_revoke call)" : " (from del call)"),
                      describe_p50_p99(from_call));
}

}  // namespace

void run_revoke(BenchContext& ctx) { run_restore(ctx, Disruption::kRevokeLease); }
void run_delete(BenchContext& ctx) { run_restore(ctx, Disruption::kDeleteKey); }

void run_sigterm(BenchContext& ctx) {
  const std::string service = "bench-term";
  const std::string key = "/services/" + service + "/t1";
  const int iterations = ctx.options.quick ? 3 : 10;
  test::EtcdSyncClient client(ctx.etcd.endpoint());
  auto watch = watch_key(ctx, key);

  std::vector<double> gone_ms;
  std::vector<double> exit_ms;
  std::vector<int> bad_exit_codes;
  for (int i = 0; i < iterations; ++i) {
    if (client.get(key)) client.del(key);  // a leftover from an earlier run must not count as registered
    const std::size_t before_start = event_count(*watch);
    Agent agent = Agent::start(ctx, "sigterm-" + std::to_string(i), one_service_manifest(ctx, service, "t1"));
    require_event(*watch, before_start, WatchEvent::Type::kPut, 10s, "the agent did not register " + key, &agent);
    std::this_thread::sleep_for(300ms);  // steady state: keepalives flowing
    agent.require_running("before SIGTERM");

    const std::size_t before_term = event_count(*watch);
    const auto t0 = Clock::now();
    agent.process().signal(SIGTERM);
    const auto gone = require_event(*watch, before_term, WatchEvent::Type::kDelete, 3s,
                                    "SIGTERM did not remove " + key, &agent);
    const auto code = agent.process().wait_exit(5s);
    const auto t_exit = Clock::now();
    if (!code) throw SectionFailed("the agent still runs 5 s after SIGTERM; log:\n" + agent.log_tail());
    if (*code != 0) bad_exit_codes.push_back(*code);
    gone_ms.push_back(to_ms(gone.event.received_at - t0));
    exit_ms.push_back(to_ms(t_exit - t0));
  }

  const Summary gone = summarize(gone_ms);
  const Summary exited = summarize(exit_ms);
  ctx.report.add_check("sigterm", "SIGTERM -> key gone (DELETE event)",
                       "p50 " + format_ms(gone.p50) + " / max " + format_ms(gone.max) + " (n=" +
                           std::to_string(gone.count) + ")",
                       "< 50 ms (every run)", gone.max < 50);
  ctx.report.add_info("sigterm", "SIGTERM -> process exited",
                      "p50 " + format_ms(exited.p50) + " / max " + format_ms(exited.max));
  if (!bad_exit_codes.empty()) {
    std::string codes;
    for (int c : bad_exit_codes) codes += (codes.empty() ? "" : ", ") + std::to_string(c);
    ctx.report.note("sigterm: the agent exited with non-zero code(s) after SIGTERM: " + codes);
  }
}

void run_startup(BenchContext& ctx) {
  const std::string service = "bench-start";
  const std::string key = "/services/" + service + "/s1";
  const int iterations = ctx.options.quick ? 3 : 10;
  test::EtcdSyncClient client(ctx.etcd.endpoint());
  auto watch = watch_key(ctx, key);

  std::vector<double> startup_ms;
  for (int i = 0; i < iterations; ++i) {
    if (client.get(key)) client.del(key);
    const std::size_t before = event_count(*watch);
    Agent agent = Agent::start(ctx, "startup-" + std::to_string(i), one_service_manifest(ctx, service, "s1"));
    const auto put = require_event(*watch, before, WatchEvent::Type::kPut, 10s,
                                   "the agent did not register " + key, &agent);
    startup_ms.push_back(to_ms(put.event.received_at - agent.spawned_at()));
    const std::size_t before_stop = event_count(*watch);
    if (agent.stop() != 0) ctx.report.note("startup: run " + std::to_string(i) + " did not exit cleanly on SIGTERM");
    wait_event(*watch, before_stop, WatchEvent::Type::kDelete, 2s);
    std::this_thread::sleep_for(100ms);
  }
  const Summary s = summarize(startup_ms);
  ctx.report.add_check("startup", "spawn -> registered (PUT event; etcd already up)",
                       "p50 " + format_ms(s.p50) + " / max " + format_ms(s.max) + " (n=" + std::to_string(s.count) +
                           ")",
                       "p50 < 30 ms", s.p50 < 30);
}

void run_idle(BenchContext& ctx) {
  test::EtcdSyncClient client(ctx.etcd.endpoint());
  const std::string manifest = etcd_section(ctx) +
                               "lease:\n  ttl: 10s\n"
                               "services:\n"
                               "  - name: bench-idle\n    id: a\n    port: 8081\n    metadata: {zone: a}\n"
                               "  - name: bench-idle\n    id: b\n    port: 8082\n    metadata: {zone: b}\n";
  Agent agent = Agent::start(ctx, "idle", manifest);
  const bool registered = test::wait_until(
      [&] { return client.get("/services/bench-idle/a") && client.get("/services/bench-idle/b"); }, 10s, 10ms);
  if (!registered) throw SectionFailed("the idle agent did not register both services; log:\n" + agent.log_tail());

  std::this_thread::sleep_for(5s);
  agent.require_running("while idle");
  const auto memory = read_memory(agent.pid());
  if (!memory) throw SectionFailed("cannot read /proc/" + std::to_string(agent.pid()) + "/smaps_rollup");
  // Issue 15's target for the default (dynamically linked) build; the static build idles near 10 MB.
  ctx.report.add_check("idle", "RSS, 2 services, 5 s idle", format_mb(memory->rss_kb), "<= 12 MB",
                       memory->rss_kb <= 12 * 1024);
  ctx.report.add_check("idle", "Anonymous (smaps_rollup), same process", format_mb(memory->anonymous_kb), "<= 3 MB",
                       memory->anonymous_kb <= 3 * 1024);
  ctx.report.note("idle: smaps_rollup of the 2-service agent: " + describe(*memory));
  ctx.report.note("idle: largest resident mappings: " + top_mappings(agent.pid(), 8));

  const int seconds = ctx.options.idle_seconds;
  const auto before = read_cpu_times(agent.pid());
  const auto t_before = Clock::now();
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  const auto after = read_cpu_times(agent.pid());
  const double wall_s = to_ms(Clock::now() - t_before) / 1000.0;
  agent.require_running("during the idle CPU window");
  if (!before || !after) throw SectionFailed("cannot read /proc/" + std::to_string(agent.pid()) + "/stat");

  const auto ticks = after->ticks - before->ticks;
  const double tick_pct = static_cast<double>(ticks) / static_cast<double>(clock_ticks_per_second()) / wall_s * 100;
  const double sched_pct = static_cast<double>(after->run_ns - before->run_ns) / 1e9 / wall_s * 100;
  char result[128];
  std::snprintf(result, sizeof result, "%.3f %% (%llu ticks of %ld/s in %.0f s)", tick_pct,
                static_cast<unsigned long long>(ticks), clock_ticks_per_second(), wall_s);
  ctx.report.add_check("idle", "CPU over " + std::to_string(seconds) + " s idle (utime+stime)", result,
                       "<= 0.05 % of a core", tick_pct <= 0.05);
  // utime/stime are sampled at tick granularity, so a process that wakes briefly can be under-counted
  // (or over-counted); the scheduler's per-thread run time is exact, so it is checked as well.
  std::snprintf(result, sizeof result, "%.4f %% (%.1f ms on CPU in %.0f s)", sched_pct,
                static_cast<double>(after->run_ns - before->run_ns) / 1e6, wall_s);
  ctx.report.add_check("idle", "CPU over " + std::to_string(seconds) + " s idle (schedstat, all threads)", result,
                       "<= 0.05 % of a core", sched_pct <= 0.05);
  agent.stop();
}

}  // namespace sidecar::bench
