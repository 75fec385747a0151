#include "tests/support/agent_runner.hpp"

#include <csignal>
#include <cstdio>
#include <fstream>

#include "tests/support/wait.hpp"

#ifndef SIDECAR_BINARY
#define SIDECAR_BINARY "etcd-sidecar"
#endif

namespace sidecar::test {
namespace {

// Single-letter state from /proc/<pid>/stat ('T' = stopped); '?' when unreadable.
char proc_state(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  std::getline(in, stat);
  // The command name is in parentheses and may contain spaces; the state follows the last ')'.
  const auto paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size()) return '?';
  return stat[paren + 2];
}

}  // namespace

std::string etcd_manifest_section(const std::string& client_url) {
  return "etcd:\n  endpoints: [\"" + client_url + "\"]\n  prefix: /services\n";
}

std::optional<AgentRunner> AgentRunner::start(const std::filesystem::path& dir, const std::string& manifest_yaml,
                                              std::vector<std::string> extra_args, std::string_view name) {
  const std::filesystem::path manifest = dir / (std::string(name) + ".yaml");
  if (!write_file(manifest, manifest_yaml)) return std::nullopt;
  std::vector<std::string> argv = {SIDECAR_BINARY, "--manifest", manifest.string()};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  ChildProcess::Options options;
  // The lease state file goes to the test's own directory, never to /var/lib/etcd-sidecar. Two runners
  // with the same dir and name share it: that is how a restart-without-gap test starts the successor.
  options.extra_env = {{"STATE_DIRECTORY", (dir / "state").string()}};
  options.output_path = dir / (std::string(name) + ".log");
  options.working_dir = dir;
  auto child = ChildProcess::spawn(argv, options);
  if (!child) return std::nullopt;
  return AgentRunner(std::move(*child), manifest);
}

std::size_t AgentRunner::count_in_output(std::string_view needle) const {
  const std::string text = output();
  std::size_t count = 0;
  for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + needle.size())) {
    ++count;
  }
  return count;
}

bool AgentRunner::sigstop() {
  const pid_t pid = process_.pid();
  if (!process_.signal(SIGSTOP)) return false;
  return wait_until([pid] { return proc_state(pid) == 'T'; }, std::chrono::milliseconds(2000));
}

bool AgentRunner::sigcont() { return process_.signal(SIGCONT); }

std::optional<int> AgentRunner::terminate(std::chrono::milliseconds timeout) {
  process_.signal(SIGTERM);
  process_.signal(SIGCONT);  // a stopped agent would keep SIGTERM pending forever
  if (auto code = process_.wait_exit(timeout)) return code;
  process_.kill_and_reap();
  return std::nullopt;
}

std::optional<nlohmann::json> read_json_file(const std::filesystem::path& path) {
  const auto text = read_file(path);
  if (!text || text->empty()) return std::nullopt;
  auto doc = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return std::nullopt;
  return doc;
}

}  // namespace sidecar::test
