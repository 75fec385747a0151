#include "tests/support/invariants.hpp"

#include <fstream>
#include <sstream>
#include <system_error>

#include "tests/support/etcd_client.hpp"
#include "tests/support/process.hpp"

namespace sidecar::test {

std::optional<long> rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return std::nullopt;
}

std::optional<std::size_t> fd_count(pid_t pid) {
  std::error_code ec;
  std::filesystem::directory_iterator it("/proc/" + std::to_string(pid) + "/fd", ec);
  if (ec) return std::nullopt;
  std::size_t n = 0;
  for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
    if (ec) return std::nullopt;
    ++n;
  }
  return n;
}

Endpoints endpoints_in_file(const nlohmann::json& doc) {
  Endpoints out;
  if (!doc.is_object() || !doc.contains("instances") || !doc["instances"].is_array()) return out;
  for (const auto& inst : doc["instances"]) {
    if (!inst.is_object()) continue;
    out[inst.value("id", "")] = inst.value("address", "") + ":" + std::to_string(inst.value("port", 0));
  }
  return out;
}

Endpoints endpoints_in_etcd(EtcdSyncClient& client, const std::string& service_prefix) {
  Endpoints out;
  for (const auto& kv : client.get_prefix(service_prefix)) {
    const auto v = nlohmann::json::parse(kv.value, nullptr, false);
    if (!v.is_object() || !v.contains("address") || !v.contains("port")) continue;
    out[kv.key.substr(service_prefix.size())] = v.value("address", "") + ":" + std::to_string(v.value("port", 0));
  }
  return out;
}

nlohmann::json config_in_etcd(EtcdSyncClient& client, const std::string& prefix) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& kv : client.get_prefix(prefix)) out[kv.key.substr(prefix.size())] = kv.value;
  return out;
}

InvariantMonitor::InvariantMonitor(pid_t agent_pid, std::vector<std::filesystem::path> json_files,
                                   std::chrono::milliseconds period)
    : pid_(agent_pid),
      files_(std::move(json_files)),
      seen_(files_.size(), false),
      period_(period),
      started_(std::chrono::steady_clock::now()) {
  thread_ = std::thread([this] { run(); });
}

InvariantMonitor::~InvariantMonitor() { stop(); }

void InvariantMonitor::require_instances(const std::filesystem::path& file, std::vector<std::string> ids) {
  std::lock_guard lock(mu_);
  required_[file] = std::move(ids);
}

void InvariantMonitor::stop() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
}

void InvariantMonitor::record(const std::string& what) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started_);
  std::lock_guard lock(mu_);
  if (violations_.size() < 20) violations_.push_back("+" + std::to_string(ms.count()) + " ms: " + what);
}

void InvariantMonitor::run() {
  auto next_rss = std::chrono::steady_clock::now();
  while (!stopping_) {
    for (std::size_t i = 0; i < files_.size(); ++i) {
      const auto text = read_file(files_[i]);
      if (!text) {
        if (seen_[i]) record(files_[i].filename().string() + ": disappeared");
        continue;
      }
      seen_[i] = true;
      if (text->empty()) {
        record(files_[i].filename().string() + ": empty");
        continue;
      }
      const auto doc = nlohmann::json::parse(*text, nullptr, false);
      if (doc.is_discarded() || !doc.is_object()) {
        record(files_[i].filename().string() + ": not a complete JSON object (" + std::to_string(text->size()) +
               " bytes)");
        continue;
      }
      std::vector<std::string> required;
      {
        std::lock_guard lock(mu_);
        if (auto it = required_.find(files_[i]); it != required_.end()) required = it->second;
      }
      if (!required.empty()) {
        const Endpoints listed = endpoints_in_file(doc);
        for (const auto& id : required) {
          if (listed.count(id) == 0) record(files_[i].filename().string() + ": lost instance " + id);
        }
      }
    }
    if (std::chrono::steady_clock::now() >= next_rss) {
      next_rss += std::chrono::milliseconds(100);
      if (const auto rss = rss_kib(pid_)) {
        std::lock_guard lock(mu_);
        rss_.push_back(*rss);
      }
    }
    ++samples_;
    std::this_thread::sleep_for(period_);
  }
}

std::vector<std::string> InvariantMonitor::violations() const {
  std::lock_guard lock(mu_);
  return violations_;
}

std::vector<long> InvariantMonitor::rss_samples() const {
  std::lock_guard lock(mu_);
  return rss_;
}

long InvariantMonitor::max_rss_kib() const {
  std::lock_guard lock(mu_);
  long m = 0;
  for (long r : rss_) m = std::max(m, r);
  return m;
}

}  // namespace sidecar::test
