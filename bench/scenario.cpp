#include "bench/scenario.hpp"

#include <csignal>
#include <cstdlib>
#include <fstream>

#ifndef SIDECAR_BINARY
#define SIDECAR_BINARY "etcd-sidecar"
#endif

namespace sidecar::bench {

ScratchDir::ScratchDir(const std::filesystem::path& base, std::string_view prefix) {
  std::string pattern = (base / (std::string(prefix) + "-XXXXXX")).string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    throw SectionFailed("cannot create a directory under " + base.string());
  }
  path_ = pattern;
}

ScratchDir::~ScratchDir() {
  const char* keep = std::getenv("SIDECAR_TEST_KEEP_DIRS");
  if (keep != nullptr && std::string_view(keep) == "1") return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

Agent Agent::start(const BenchContext& ctx, const std::string& name, const std::string& manifest_yaml) {
  const auto manifest = ctx.work_dir / (name + ".yaml");
  if (!test::write_file(manifest, manifest_yaml)) throw SectionFailed("cannot write " + manifest.string());
  test::ChildProcess::Options options;
  options.output_path = ctx.work_dir / (name + ".log");
  options.extra_env = {{"STATE_DIRECTORY", (ctx.work_dir / "state").string()}};
  options.working_dir = ctx.work_dir;
  const auto spawned_at = Clock::now();
  // An ephemeral admin port: a bench run must not collide with an agent (or test) holding 9464.
  auto child = test::ChildProcess::spawn(
      {SIDECAR_BINARY, "--manifest", manifest.string(), "--admin-listen", "127.0.0.1:0"}, options);
  if (!child) throw SectionFailed(std::string("cannot spawn ") + SIDECAR_BINARY);
  return Agent(std::move(*child), spawned_at);
}

std::string Agent::log_tail(std::size_t max_bytes) const {
  std::string text = process_.output();
  if (text.size() > max_bytes) text = "..." + text.substr(text.size() - max_bytes);
  return text;
}

void Agent::require_running(const std::string& during) {
  if (process_.is_running()) return;
  const auto code = process_.exit_code();
  throw SectionFailed("the agent exited (code " + (code ? std::to_string(*code) : std::string("?")) + ") " +
                      during + "; its log ends with:\n" + log_tail());
}

std::optional<int> Agent::stop(std::chrono::milliseconds timeout) {
  if (!process_.is_running()) return process_.exit_code();
  process_.signal(SIGTERM);
  if (auto code = process_.wait_exit(timeout)) return code;
  process_.kill_and_reap();
  return std::nullopt;
}

std::string etcd_section(const BenchContext& ctx) {
  return "etcd:\n  endpoints: [\"" + ctx.etcd.client_url() + "\"]\n  prefix: /services\n";
}

std::unique_ptr<test::WatchRecorder> watch_prefix(const BenchContext& ctx, const std::string& prefix) {
  auto watch = std::make_unique<test::WatchRecorder>(ctx.etcd.endpoint(), prefix, test::WatchRecorder::Scope::kPrefix);
  if (!watch->created()) throw SectionFailed("etcd did not confirm a watch on " + prefix);
  return watch;
}

std::size_t event_count(test::WatchRecorder& watch) {
  std::size_t n = 0;
  watch.wait_for(
      [&n](const std::vector<test::WatchEvent>& events) {
        n = events.size();
        return true;
      },
      0ms);
  return n;
}

std::optional<FoundEvent> wait_event(test::WatchRecorder& watch, std::size_t from, test::WatchEvent::Type type,
                                     std::chrono::milliseconds timeout, const std::string& key) {
  std::optional<FoundEvent> found;
  // Resume the scan where the previous wake-up stopped: with 100,000 events a rescan per wake-up adds up.
  std::size_t scanned = from;
  watch.wait_for(
      [&](const std::vector<test::WatchEvent>& events) {
        for (; scanned < events.size(); ++scanned) {
          const auto& e = events[scanned];
          if (e.type == type && (key.empty() || e.key == key)) {
            found = FoundEvent{scanned, e};
            return true;
          }
        }
        return false;
      },
      timeout);
  return found;
}

FoundEvent require_event(test::WatchRecorder& watch, std::size_t from, test::WatchEvent::Type type,
                         std::chrono::milliseconds timeout, const std::string& what, const Agent* agent,
                         const std::string& key) {
  if (auto found = wait_event(watch, from, type, timeout, key)) return *found;
  std::string message = what + " (no " + (type == test::WatchEvent::Type::kPut ? "PUT" : "DELETE") +
                        " event within " + std::to_string(timeout.count()) + " ms)";
  if (agent != nullptr) message += "; the agent's log ends with:\n" + agent->log_tail();
  throw SectionFailed(message);
}

std::string describe_p50_p99(const Summary& s) {
  return "p50 " + format_ms(s.p50) + " / p99 " + format_ms(s.p99) + " (n=" + std::to_string(s.count) + ")";
}

void record_against_raw(test::WatchRecorder& raw, std::size_t raw_before, const std::string& key, Clock::time_point t0,
                        Clock::time_point answered, const Agent& agent, LatencyPlot& samples) {
  const auto seen =
      require_event(raw, raw_before, test::WatchEvent::Type::kPut, 5s, "raw watch of " + key, &agent, key);
  samples.raw_ms.push_back(to_ms(seen.event.received_at - t0));
  samples.agent_ms.push_back(to_ms(answered - t0));
}

void report_against_raw(BenchContext& ctx, const std::string& section, const std::string& measure,
                        const LatencyPlot& samples, int allowance_ms) {
  const Summary agent = summarize(samples.agent_ms);
  const Summary floor = summarize(samples.raw_ms);
  ctx.report.add_check(section, measure + " p50",
                       "agent " + format_ms(agent.p50) + " vs raw " + format_ms(floor.p50) +
                           " (n=" + std::to_string(agent.count) + ")",
                       "<= raw p50 + " + std::to_string(allowance_ms) + " ms", agent.p50 <= floor.p50 + allowance_ms);
  ctx.report.add_info(section, measure + " p99", "agent " + format_ms(agent.p99) + " vs raw " + format_ms(floor.p99));
}

}  // namespace sidecar::bench
