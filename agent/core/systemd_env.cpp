#include "agent/core/systemd_env.hpp"

#include <charconv>

#include <nlohmann/json.hpp>

namespace sidecar::core {

namespace {

template <typename T>
std::optional<T> whole_number(std::string_view text) {
  T value{};
  const auto [stop, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || stop != text.data() + text.size()) return std::nullopt;
  return value;
}

}  // namespace

std::optional<std::chrono::microseconds> watchdog_ping_interval(const std::optional<std::string>& watchdog_usec,
                                                                const std::optional<std::string>& watchdog_pid,
                                                                pid_t self) {
  if (!watchdog_usec) return std::nullopt;
  const auto usec = whole_number<unsigned long long>(*watchdog_usec);
  if (!usec || *usec == 0) return std::nullopt;
  if (watchdog_pid && !watchdog_pid->empty()) {
    const auto pid = whole_number<long long>(*watchdog_pid);
    if (!pid || *pid != static_cast<long long>(self)) return std::nullopt;
  }
  return std::chrono::microseconds(static_cast<long long>(*usec / 2));
}

bool journal_stream_matches(std::string_view journal_stream, unsigned long long device, unsigned long long inode) {
  const auto colon = journal_stream.find(':');
  if (colon == std::string_view::npos) return false;
  const auto dev = whole_number<unsigned long long>(journal_stream.substr(0, colon));
  const auto ino = whole_number<unsigned long long>(journal_stream.substr(colon + 1));
  return dev && ino && *dev == device && *ino == inode;
}

int syslog_priority(std::string_view level) {
  if (level == "critical") return 2;
  if (level == "error" || level == "err") return 3;
  if (level == "warning" || level == "warn") return 4;
  if (level == "info") return 6;
  return 7;  // debug, trace
}

std::string json_log_line(std::string_view timestamp, std::string_view level, std::string_view message) {
  nlohmann::json j = {{"ts", timestamp}, {"level", level}, {"msg", message}};
  // Replace, not throw: a log line with broken UTF-8 (a value read from etcd) must still be written.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace sidecar::core
