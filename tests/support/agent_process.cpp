#include "tests/support/agent_process.hpp"

#include <cctype>
#include <cinttypes>
#include <cstdio>
#include <fstream>

#include "tests/support/admin_client.hpp"
#include "tests/support/wait.hpp"

#ifndef SIDECAR_BINARY
#define SIDECAR_BINARY "etcd-sidecar"
#endif

namespace sidecar::test {
namespace {

// Single-letter process state from /proc/<pid>/stat ('T' = stopped), or '?' when unreadable.
char proc_state(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  std::getline(in, stat);
  // The command name is in parentheses and may contain spaces; the state follows the last ')'.
  const auto paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size()) return '?';
  return stat[paren + 2];
}

// Double-quoted YAML scalar: test values may contain ':' or '#', which plain scalars would misread.
std::string yaml_quoted(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

}  // namespace

std::string registration_manifest(const std::string& client_url, const std::vector<ServiceDef>& services,
                                  std::string_view ttl) {
  std::string yaml = "etcd:\n  endpoints: [" + yaml_quoted(client_url) + "]\n";
  if (!ttl.empty()) yaml += "lease:\n  ttl: " + std::string(ttl) + "\n";
  yaml += "services:\n";
  for (const auto& s : services) {
    yaml += "  - name: " + yaml_quoted(s.name) + "\n";
    yaml += "    id: " + yaml_quoted(s.id) + "\n";
    yaml += "    address: " + yaml_quoted(s.address) + "\n";
    yaml += "    port: " + std::to_string(s.port) + "\n";
    if (!s.metadata.empty()) {
      yaml += "    metadata:\n";
      for (const auto& [key, value] : s.metadata) yaml += "      " + key + ": " + yaml_quoted(value) + "\n";
    }
  }
  return yaml;
}

std::string service_key(const ServiceDef& service) { return "/services/" + service.name + "/" + service.id; }

std::string lease_hex(std::int64_t lease) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%" PRIx64, static_cast<std::uint64_t>(lease));
  return buf;
}

std::optional<std::string> word_after(std::string_view text, std::string_view marker) {
  const auto at = text.find(marker);
  if (at == std::string_view::npos) return std::nullopt;
  std::size_t begin = at + marker.size();
  std::size_t end = begin;
  while (end < text.size() && std::isspace(static_cast<unsigned char>(text[end])) == 0) ++end;
  return std::string(text.substr(begin, end - begin));
}

std::string etcd_manifest_section(const std::string& client_url) {
  return "etcd:\n  endpoints: [" + yaml_quoted(client_url) + "]\n  prefix: /services\n";
}

std::optional<nlohmann::json> read_json_file(const std::filesystem::path& path) {
  const auto text = read_file(path);
  if (!text || text->empty()) return std::nullopt;
  auto doc = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return std::nullopt;
  return doc;
}

std::unique_ptr<AgentProcess> AgentProcess::start(std::string_view manifest_yaml,
                                                  std::vector<std::string> extra_args, EnvVars extra_env) {
  std::unique_ptr<AgentProcess> agent(new AgentProcess());
  agent->own_dir_.emplace("sidecar-agent");
  agent->dir_ = agent->own_dir_->path();
  return spawn(std::move(agent), manifest_yaml, "agent", std::move(extra_args), std::move(extra_env));
}

std::unique_ptr<AgentProcess> AgentProcess::start_in(const std::filesystem::path& dir,
                                                     std::string_view manifest_yaml,
                                                     std::vector<std::string> extra_args, std::string_view name,
                                                     EnvVars extra_env) {
  std::unique_ptr<AgentProcess> agent(new AgentProcess());
  agent->dir_ = dir;
  return spawn(std::move(agent), manifest_yaml, name, std::move(extra_args), std::move(extra_env));
}

std::unique_ptr<AgentProcess> AgentProcess::spawn(std::unique_ptr<AgentProcess> agent,
                                                  std::string_view manifest_yaml, std::string_view name,
                                                  std::vector<std::string> extra_args, EnvVars extra_env) {
  // start() keeps its historical names (manifest.yaml, agent.log) so existing tests' paths stay valid.
  const bool own = agent->own_dir_.has_value();
  agent->manifest_path_ = agent->dir_ / (own ? std::string("manifest.yaml") : std::string(name) + ".yaml");
  if (!write_file(agent->manifest_path_, manifest_yaml)) return nullptr;

  std::vector<std::string> argv = {SIDECAR_BINARY, "--manifest", agent->manifest_path_.string()};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  add_admin_listen_default(argv, manifest_yaml);
  ChildProcess::Options options;
  // The lease state file goes to the agent's own directory, never to /var/lib/etcd-sidecar. Two agents
  // started in the same dir with the same name share it: that is how a restart test starts the successor.
  options.extra_env = {{"STATE_DIRECTORY", (agent->dir_ / "state").string()}};
  options.extra_env.insert(options.extra_env.end(), extra_env.begin(), extra_env.end());
  options.output_path = agent->dir_ / (std::string(name) + ".log");
  options.working_dir = agent->dir_;
  agent->child_ = ChildProcess::spawn(argv, options);
  if (!agent->child_) return nullptr;
  return agent;
}

AgentProcess::~AgentProcess() {
  // Before the TempDir goes: the log lives in it, and a running agent would keep writing there.
  child_.reset();
}

bool AgentProcess::sigstop() {
  const pid_t p = child_->pid();
  if (!child_->signal(SIGSTOP)) return false;
  return wait_until([p] { return proc_state(p) == 'T'; }, std::chrono::milliseconds(2000));
}

std::optional<int> AgentProcess::terminate(std::chrono::milliseconds timeout) {
  child_->signal(SIGTERM);
  child_->signal(SIGCONT);
  if (auto code = child_->wait_exit(timeout)) return code;
  child_->kill_and_reap();
  return std::nullopt;
}

std::size_t AgentProcess::count_in_output(std::string_view needle) const {
  const std::string text = output();
  std::size_t count = 0;
  for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + needle.size())) {
    ++count;
  }
  return count;
}

bool AgentProcess::output_contains(std::string_view needle) const {
  return output().find(needle) != std::string::npos;
}

bool AgentProcess::wait_for_output(std::string_view needle, std::chrono::milliseconds timeout) const {
  return wait_until([&] { return output_contains(needle); }, timeout);
}

}  // namespace sidecar::test
