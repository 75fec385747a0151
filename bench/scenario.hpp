// Owns: what bench sections share (options, etcd, report, plot samples); agent runs; bounded event waits.
// Thread: main thread only. Agents must be spawned from it: a ChildProcess dies with its spawning thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "bench/report.hpp"
#include "bench/stats.hpp"
#include "tests/support/etcd_client.hpp"
#include "tests/support/etcd_process.hpp"
#include "tests/support/process.hpp"

namespace sidecar::bench {

using namespace std::chrono_literals;

struct BenchOptions {
  bool quick = false;
  int idle_seconds = 60;
  std::string only;                         // empty: every section
  std::string svg_path = "bench-latency.svg";
  std::filesystem::path output_base;        // where discovery output files go (tmpfs by default, like /run)
};

struct LatencyPlot {
  std::string title;
  std::vector<double> raw_ms;
  std::vector<double> agent_ms;
};

struct BenchContext {
  const BenchOptions& options;
  test::EtcdProcess& etcd;
  Report& report;
  std::filesystem::path work_dir;           // manifests and agent logs
  std::vector<LatencyPlot> plots;
};

// A section could not finish (timeout, agent died, etcd refused a write). Thrown inside a section and
// caught by the runner only, so one broken measurement becomes an ERROR row instead of ending the run.
class SectionFailed : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A fresh directory under `base`, removed recursively with the object (kept with SIDECAR_TEST_KEEP_DIRS=1,
// like the test fixture's TempDir).
class ScratchDir {
 public:
  ScratchDir(const std::filesystem::path& base, std::string_view prefix);
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// One etcd-sidecar process on a manifest written to <work_dir>/<name>.yaml, logging to <name>.log.
class Agent {
 public:
  // Throws SectionFailed when the binary cannot be spawned.
  static Agent start(const BenchContext& ctx, const std::string& name, const std::string& manifest_yaml);

  pid_t pid() const { return process_.pid(); }
  test::ChildProcess& process() { return process_; }
  // steady_clock reading taken immediately before fork/exec: t0 of the start-up measurement.
  Clock::time_point spawned_at() const { return spawned_at_; }
  std::string log_tail(std::size_t max_bytes = 1500) const;
  // Throws SectionFailed (with the log tail) if the agent is no longer running.
  void require_running(const std::string& during);
  // SIGTERM and wait (the agent deregisters on the way out); SIGKILL after `timeout`. The exit code, or
  // nullopt if it had to be killed. An agent that is simply destroyed is SIGKILLed by ChildProcess.
  std::optional<int> stop(std::chrono::milliseconds timeout = 5s);

 private:
  Agent(test::ChildProcess process, Clock::time_point spawned_at)
      : process_(std::move(process)), spawned_at_(spawned_at) {}
  test::ChildProcess process_;
  Clock::time_point spawned_at_;
};

// "etcd:\n  endpoints: [...]\n  prefix: /services\n" for the bench's etcd.
std::string etcd_section(const BenchContext& ctx);

struct FoundEvent {
  std::size_t index = 0;
  test::WatchEvent event;
};

// A raw watcher in the bench process on `prefix`, from now: the floor a view's latency is set against.
// Throws SectionFailed when etcd does not confirm the watch.
std::unique_ptr<test::WatchRecorder> watch_prefix(const BenchContext& ctx, const std::string& prefix);

// Number of events the recorder holds now (without copying them).
std::size_t event_count(test::WatchRecorder& watch);
// First event at index >= `from` of `type` (and, if `key` is non-empty, for that key); nullopt on timeout.
std::optional<FoundEvent> wait_event(test::WatchRecorder& watch, std::size_t from, test::WatchEvent::Type type,
                                     std::chrono::milliseconds timeout, const std::string& key = "");
// Same, but a timeout throws SectionFailed with `what` and, if given, the agent's log tail.
FoundEvent require_event(test::WatchRecorder& watch, std::size_t from, test::WatchEvent::Type type,
                         std::chrono::milliseconds timeout, const std::string& what, const Agent* agent = nullptr,
                         const std::string& key = "");

// Discovery sections' instances (bench/discovery_bench.cpp): a sidecar-format value for instance `n`, an id
// such as "b000042", and how many instances a json-format output file lists (our values carry no nested
// "id" keys; nullopt if the file cannot be read).
using KeyValue = std::pair<std::string, std::string>;
std::string instance_value(const std::string& service, const std::string& id, int n, int port);
std::string numbered_id(const char* letter, int n);
std::optional<std::size_t> instances_in_file(const std::filesystem::path& path);

// "p50 3.21 ms / p99 7.80 ms (n=50)"
std::string describe_p50_p99(const Summary& s);

// One put's pair of samples, both from `t0` (just before the put): the raw watcher's receive time of the
// PUT of `key` (at or after event `raw_before`; a timeout throws SectionFailed with the agent's log) into
// samples.raw_ms, and `answered` (when the agent's view showed the change) into samples.agent_ms.
void record_against_raw(test::WatchRecorder& raw, std::size_t raw_before, const std::string& key, Clock::time_point t0,
                        Clock::time_point answered, const Agent& agent, LatencyPlot& samples);
// Two rows: "<measure> p50" checked against "<= raw p50 + allowance_ms", and "<measure> p99" as info.
void report_against_raw(BenchContext& ctx, const std::string& section, const std::string& measure,
                        const LatencyPlot& samples, int allowance_ms);

// Sections. Each appends its rows to ctx.report; a SectionFailed ends only that section.
void run_revoke(BenchContext& ctx);
void run_delete(BenchContext& ctx);
void run_sigterm(BenchContext& ctx);
void run_startup(BenchContext& ctx);
void run_idle(BenchContext& ctx);
void run_discovery(BenchContext& ctx);
void run_discovery_disk(BenchContext& ctx);
void run_stream(BenchContext& ctx);
void run_scale(BenchContext& ctx);
void run_burst(BenchContext& ctx);
void run_failover(BenchContext& ctx);
void run_lookups(BenchContext& ctx);  // bench/lookups_bench.cpp
void run_xds(BenchContext& ctx);      // bench/xds_bench.cpp

}  // namespace sidecar::bench
