// Owns: reading the environment systemd hands a service — the watchdog interval and whether stderr is the
// journal — as pure functions of the variable values.
// Thread: pure.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include <sys/types.h>

namespace sidecar::core {

// How often to send WATCHDOG=1: half of WATCHDOG_USEC (systemd's advice), or nullopt when the watchdog is
// off, the value is unusable, or WATCHDOG_PID names another process (the variable was inherited).
std::optional<std::chrono::microseconds> watchdog_ping_interval(const std::optional<std::string>& watchdog_usec,
                                                                const std::optional<std::string>& watchdog_pid,
                                                                pid_t self);

// True when JOURNAL_STREAM ("<device>:<inode>") names the file stderr is connected to; systemd sets it for
// the service's own stderr, and a child that redirected stderr must not believe it.
bool journal_stream_matches(std::string_view journal_stream, unsigned long long device, unsigned long long inode);

// The syslog priority journald reads from a "<N>" line prefix, for a spdlog-style level name.
int syslog_priority(std::string_view level);

// One log line as a JSON object: {"ts":..,"level":..,"msg":..} without a newline.
std::string json_log_line(std::string_view timestamp, std::string_view level, std::string_view message);

}  // namespace sidecar::core
