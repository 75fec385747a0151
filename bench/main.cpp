// sidecar_bench: starts its own etcd on loopback, runs the real etcd-sidecar binary against it, and prints
// one table (measure | result | target | pass/fail) plus a machine line. See BENCHMARKS.md.
// Exit codes: 0 every section measured (targets may still be missed: FAIL rows), 1 a section could not
// be measured (ERROR rows) or etcd did not start, 64 usage.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <ctime>
#include <fstream>
#include <functional>
#include <iostream>

#include "bench/proc_info.hpp"
#include "bench/scenario.hpp"
#include "bench/svg_histogram.hpp"

using namespace sidecar;
using namespace sidecar::bench;

namespace {

struct Section {
  std::string name;
  std::function<void(BenchContext&)> run;
};

const std::vector<Section>& sections() {
  static const std::vector<Section> all = {
      {"revoke", run_revoke},       {"delete", run_delete},       {"sigterm", run_sigterm},
      {"startup", run_startup},     {"idle", run_idle},           {"discovery", run_discovery},
      {"discovery-disk", run_discovery_disk}, {"stream", run_stream}, {"scale", run_scale},
      {"burst", run_burst}, {"failover", run_failover}, {"lookups", run_lookups}, {"xds", run_xds},
  };
  return all;
}

// Discovery output goes where a deployment would put it: /run is a tmpfs, and /dev/shm is the tmpfs an
// unprivileged bench can write to. Falls back to TMPDIR (say so in the report) when there is none.
std::filesystem::path default_output_base() {
  if (filesystem_type("/dev/shm") == "tmpfs" && ::access("/dev/shm", W_OK) == 0) return "/dev/shm";
  const char* tmp = std::getenv("TMPDIR");
  return tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
}

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sidecar_bench: latency, memory and CPU of etcd-sidecar against a real etcd"};
  BenchOptions options;
  std::string output_base;
  std::vector<std::string> names;
  for (const auto& s : sections()) names.push_back(s.name);
  app.add_flag("--quick", options.quick, "short run: fewer iterations, 5 s idle window, no 100,000-instance step");
  auto* idle = app.add_option("--idle-seconds", options.idle_seconds, "idle CPU window (default 60; 5 with --quick)")
                   ->check(CLI::Range(1, 3600));
  app.add_option("--only", options.only, "run one section")->check(CLI::IsMember(names));
  app.add_option("--svg", options.svg_path, "latency histogram output (default bench-latency.svg)");
  app.add_option("--output-dir", output_base, "base directory for discovery output files (default /dev/shm)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 64;
  }
  if (options.quick && idle->count() == 0) options.idle_seconds = 5;
  options.output_base = output_base.empty() ? default_output_base() : std::filesystem::path(output_base);

  const MachineInfo machine = machine_info();
  std::cout << "sidecar_bench: starting etcd..." << std::endl;
  auto etcd = test::EtcdProcess::start();
  if (!etcd) {
    std::cerr << "sidecar_bench: etcd did not start (is `etcd` on PATH?)" << std::endl;
    return 1;
  }
  test::EtcdSyncClient client(etcd->endpoint());
  const auto status = client.status();
  const std::string etcd_version = status ? status->version : "unknown";

  test::TempDir work("sidecar-bench");
  Report report;
  BenchContext ctx{options, *etcd, report, work.path(), {}};
  std::cout << "sidecar_bench: etcd " << etcd_version << " at " << etcd->client_url() << ", agent " << SIDECAR_BINARY
            << ", discovery output under " << options.output_base.string() << " ("
            << filesystem_type(options.output_base.string()) << ")" << std::endl;

  for (const auto& section : sections()) {
    if (!options.only.empty() && options.only != section.name) continue;
    std::cout << "[" << section.name << "] running..." << std::flush;
    const auto t0 = Clock::now();
    const std::size_t rows_before = report.rows().size();
    try {
      section.run(ctx);
    } catch (const SectionFailed& e) {
      report.add(Row{section.name, "(section did not finish)", e.what(), "-", Verdict::kError});
    }
    std::cout << " " << format_ms(to_ms(Clock::now() - t0)) << std::endl;
    for (std::size_t i = rows_before; i < report.rows().size(); ++i) {
      const auto& r = report.rows()[i];
      std::cout << "    " << r.measure << ": " << r.result << "  [" << to_string(r.verdict) << "]" << std::endl;
    }
  }

  if (!ctx.plots.empty()) {
    std::vector<HistogramPanel> panels;
    for (const auto& p : ctx.plots) {
      panels.push_back(HistogramPanel{p.title,
                                      {HistogramSeries{"raw watcher (same etcd, in the bench)", "#4c78a8", p.raw_ms},
                                       HistogramSeries{"etcd-sidecar file (IN_MOVED_TO)", "#f58518", p.agent_ms}}});
    }
    std::ofstream svg(options.svg_path);
    svg << render_histogram_svg("etcd-sidecar: put -> output file latency vs a raw etcd watcher", panels);
    if (svg) {
      std::cout << "latency histogram written to " << options.svg_path << std::endl;
    } else {
      std::cerr << "sidecar_bench: cannot write " << options.svg_path << std::endl;
    }
  }

  const MachineInfo machine_end = machine_info();
  std::cout << "\n";
  report.print(std::cout, false);
  std::cout << "\nmachine: " << machine.cpu_model << ", " << machine.cores << " cores, kernel " << machine.kernel
            << ", etcd " << etcd_version << "\n";
  std::cout << "run: finished " << utc_now() << ", " << (options.quick ? "--quick" : "full") << ", idle window "
            << options.idle_seconds << " s, discovery output on " << filesystem_type(options.output_base.string())
            << ", load average " << machine.load_average << " at start / " << machine_end.load_average << " at end"
            << std::endl;
  return report.any(Verdict::kError) ? 1 : 0;
}
